"""Smoke test of benchmarks/validate.py: every section runs end to end on tiny settings, and its
pure helpers (matching, continuous-time spectra, teacher map, phase data) are correct."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import validate  # noqa: E402

# Smaller still than --quick (which is meant to be run by hand): a few epochs everywhere.
TINY = dataclasses.replace(validate.Settings.quick(), trials_per_condition=4,
                           max_epochs=3, synthetic_epochs=3, reaching_epochs=3,
                           infer_epochs=3, fp_initial=4, fp_iters=20)


@pytest.fixture(scope="module")
def small_teacher():
    from nwb_jedi.synthetic import get_teacher

    # The same tiny teacher as the synthetic tests (cached on disk after its first training).
    return get_teacher(validate.TASKS, n_units=TINY.n_units, seed=0,
                       max_iters=TINY.teacher_iters)


def test_hungarian_matching_pairs_nearest_points():
    a = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    b = a[[2, 0]] + 0.1  # two of the three, shuffled
    rows, cols, dist = validate.match_fixed_points(a, b)
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 1, 2: 0}
    np.testing.assert_allclose(dist, np.sqrt(0.02))
    assert len(validate.match_fixed_points(a, b[:0])[0]) == 0


def test_continuous_frequency_of_a_discrete_rotation():
    dt, hz, decay = 0.02, 3.0, -2.0
    # The exact discrete map of s = decay ± 2πi·hz, to first order in dt.
    s = np.array([decay + 2j * np.pi * hz, decay - 2j * np.pi * hz, -50.0])
    discrete = 1 + s * dt
    assert validate.leading_frequency(discrete, dt) == pytest.approx(hz)
    re, freq = validate.top_modes(discrete[None], dt, k=2)
    assert re == pytest.approx(decay) and freq == pytest.approx(hz)


def test_teacher_map_fixed_points_are_fixed(small_teacher):
    from nwb_jedi.analysis.fixedpoints import find_fixed_points

    gt = {**small_teacher.weights(), "alpha": small_teacher.alpha}
    step, jac = validate.teacher_map(gt, validate.sine_input(small_teacher, 4.0))
    x = torch.randn(3, small_teacher.n_units, dtype=torch.float64)
    # The float64 map is the teacher's own step (float32) up to rounding.
    u = validate.sine_input(small_teacher, 4.0)
    np.testing.assert_allclose(step(x).numpy(), small_teacher.step(x.numpy(), u), atol=1e-4)
    inputs = small_teacher.multitask.batch([("sine", 4.0)], small_teacher.dt)[0]
    states, _ = small_teacher.run(inputs)  # start the search from the sine trajectory
    found = find_fixed_points(step, states[0, ::10].astype(np.float64), jacobian=jac,
                              max_iters=300)
    assert len(found) >= 1
    residual = step(torch.as_tensor(found.locations)) - torch.as_tensor(found.locations)
    assert float(residual.abs().max()) < 1e-4


def test_reaching_phase_windows():
    ds = validate.reaching_phase_data()
    assert ds.n_bins == validate.REACHING_PHASE_MS // 20
    assert sorted(ds.conditions["phase"].unique()) == ["early", "late"]
    assert ds.n_conditions == 4 and ds.n_trials == 2 * 112
    # Both windows of a trial share its split, so no trial leaks across splits via its phases.
    split = dict(zip(ds.trial_id, ds.split, strict=True))
    for trial_id, s in split.items():
        if trial_id.endswith("/early"):
            assert split[trial_id.replace("/early", "/late")] == s


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # 3 epochs: flat spectra
def test_all_sections_and_report(tmp_path):
    results = validate.run_all(TINY, tmp_path)
    syn = results["synthetic"]
    assert np.isfinite(syn["r2_pooled"]) and np.isfinite(syn["r2_per_neuron"])
    assert 0 <= syn["classification"]["nearest_training"] <= 1
    assert len(syn["fixed_points"]) == 8  # one row per sine frequency
    assert {"rho_leading", "rho_max_imag"} <= set(syn["spearman"])
    table = results["reaching"]["table"]
    assert set(table["model"]) == {"JEDI", "PerConditionRNN", "SharedRNN", "PSTHBaseline"}
    assert table["bps"].notna().all() and table["co_bps"].notna().all()
    assert set(results["reaching"]["fewshot"]["model"]) == {"JEDI", "PerConditionRNN",
                                                            "PSTHBaseline"}
    assert list(results["memorypro_phases"]["phase"]) == ["stimulus", "delay", "response"]
    assert set(results["reaching_phases"]["phase"]) == {"early", "late"}
    report = validate.write_report(results, TINY, tmp_path, quick=True).read_text()
    assert len(pd.read_csv(tmp_path / "reaching_seeds.csv")) == 4  # 4 models x 1 seed
    for heading in ("## 1. Synthetic", "## 2. Monkey PMd reaching", "## 3. Phases"):
        assert heading in report
    for png in ("synthetic_embeddings.png", "reaching_psth_jedi.png",
                "memorypro_phase_eigenvalues.png", "reaching_phase_eigenvalues.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_sweep_writes_tables(tmp_path):
    settings = dataclasses.replace(TINY, sweep_seeds=(0,))
    rows = validate.sweep_reaching(settings, [{}, {"rank": 2}])
    validate.append_sweep(rows, tmp_path / "sweep_reaching.csv")
    validate.append_sweep(rows.iloc[:1], tmp_path / "sweep_reaching.csv")  # replaces, no dup
    assert len(pd.read_csv(tmp_path / "sweep_reaching.csv")) == 3  # + the PSTH reference
    text = validate.write_sweep(tmp_path).read_text()
    assert "| reaching | rank=2 |" in text and "PSTHBaseline (reference" in text
