"""The package's NLB metrics and targets equal nlb_tools' own, on the inputs and with the numbers
that ``benchmarks/nlb_crosscheck.py`` recorded by running nlb_tools 0.0.4 (which cannot join the
test environment: it pins pandas<=1.3.4 and needs scikit-learn)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def crosscheck(nlb_crosscheck):
    return nlb_crosscheck


@pytest.fixture(scope="module")
def expected(crosscheck):
    return json.loads(crosscheck.EXPECTED.read_text())


def test_metrics_on_fixed_arrays_equal_nlb_tools(crosscheck, expected):
    ours = crosscheck.package_fixed(crosscheck.fixed_arrays())
    theirs = expected["fixed"]
    for key in ("bits_per_spike", "vel_r2", "vel_r2_masks", "vel_r2_fixed_alpha", "psth_r2"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key
    # NLB's smoothing baseline GLM: scikit-learn's PoissonRegressor, each at its tolerance.
    np.testing.assert_allclose(ours["glm_coef"], theirs["glm_coef"], atol=1e-5)
    np.testing.assert_allclose(ours["glm_intercept"], theirs["glm_intercept"], atol=1e-5)


@pytest.fixture(scope="module")
def fixture_session(crosscheck, expected, tmp_path_factory):
    from nwb_jedi.io.read import read_session

    path = crosscheck.write_fixture_file(tmp_path_factory.mktemp("nlb"))
    session = read_session(path)
    assert crosscheck.fingerprint(session) == expected["fingerprint"], (
        "the MC_Maze-layout file changed (nwb_jedi.io.layouts.simulate_reaching or its "
        "writer); rerun benchmarks/nlb_crosscheck.py --write where nlb_tools runs")
    return session


@pytest.mark.parametrize("bin_ms", [5, 20])
def test_targets_and_evaluation_of_a_file_equal_nlb_tools(crosscheck, expected,
                                                          fixture_session, bin_ms):
    ours = crosscheck.package_file(fixture_session, bin_ms)
    theirs = expected["file"][str(bin_ms)]
    assert ours["targets"]["eval_cond_idx"] == theirs["targets"]["eval_cond_idx"]
    for key, sums in theirs["targets"].items():
        if key == "eval_cond_idx":
            continue
        mine = ours["targets"][key]
        assert mine["shape"] == sums["shape"] and mine["nan"] == sums["nan"], key
        assert mine["sum"] == pytest.approx(sums["sum"], rel=1e-9, abs=1e-9), key
        assert mine["sum_sq"] == pytest.approx(sums["sum_sq"], rel=1e-9), key
        # Trials and bins in the benchmark's order.
        assert mine["weighted"] == pytest.approx(sums["weighted"], rel=1e-9, abs=1e-9), key
    assert set(ours["evaluate"]) == {"co-bps", "vel R2", "psth R2", "fp-bps"}
    for key, value in theirs["evaluate"].items():
        assert ours["evaluate"][key] == pytest.approx(value, abs=1e-9), key
