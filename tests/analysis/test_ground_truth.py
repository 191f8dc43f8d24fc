"""Fitted dynamics against a synthetic teacher: the teacher's float64 map, its rates, and the
fixed-point and spectrum comparisons behind the README's synthetic numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nwb_jedi.analysis.fixedpoints import find_fixed_points
from nwb_jedi.analysis.ground_truth import (
    compare_fixed_points,
    model_rates,
    sine_spearman,
    teacher_input,
    teacher_map,
    teacher_rates,
)
from nwb_jedi.errors import UserError

TASKS = ("sine", "memorypro", "dm")


@pytest.fixture(scope="module")
def small_teacher():
    from nwb_jedi.synthetic import get_teacher

    # The same tiny teacher as the synthetic tests (cached on disk after its first training).
    return get_teacher(TASKS, n_units=40, seed=0, max_iters=60)


@pytest.fixture(scope="module")
def synthetic(small_teacher):
    from nwb_jedi.model.jedi import JEDI
    from nwb_jedi.synthetic import make_dataset

    ds = make_dataset(TASKS, trials_per_condition=4, seed=0, teacher=small_teacher)
    model = JEDI(embed_dim=3, hidden=16, rank=3, max_epochs=5, device="cpu", seed=0)
    return ds, model.fit(ds.train, ds.val)


def test_teacher_map_fixed_points_are_fixed(small_teacher):
    gt = {**small_teacher.weights(), "alpha": small_teacher.alpha}
    u = teacher_input(small_teacher, "sine", 4.0)
    step, jac = teacher_map(gt, u)
    x = torch.randn(3, small_teacher.n_units, dtype=torch.float64)
    # The float64 map is the teacher's own step (float32) up to rounding.
    np.testing.assert_allclose(step(x).numpy(), small_teacher.step(x.numpy(), u), atol=1e-4)
    inputs = small_teacher.multitask.batch([("sine", 4.0)], small_teacher.dt)[0]
    states, _ = small_teacher.run(inputs)  # start the search from the sine trajectory
    found = find_fixed_points(step, states[0, ::10].astype(np.float64), jacobian=jac,
                              max_iters=300)
    assert len(found) >= 1
    residual = step(torch.as_tensor(found.locations)) - torch.as_tensor(found.locations)
    assert float(residual.abs().max()) < 1e-4


def test_teacher_input_at_a_time(small_teacher):
    trial = small_teacher.multitask.trial("memorypro", 90.0, small_teacher.dt)
    np.testing.assert_array_equal(teacher_input(small_teacher, "memorypro", 90.0, 0.2),
                                  trial.inputs[int(round(0.2 / small_teacher.dt))])
    np.testing.assert_array_equal(teacher_input(small_teacher, "memorypro", 90.0),
                                  trial.inputs[-1])


def test_teacher_rates_are_the_datasets_rates(synthetic):
    ds, _ = synthetic
    gt = ds.ground_truth
    # Condition rates are bin averages of the per-step rates, so compare one step exactly:
    # a constant state gives the same rate in every bin.
    x = gt["condition_states"][0, :1]
    rates = teacher_rates(gt, x)
    expected = gt["rate_scale"] * gt["readout_baseline"] * np.exp(gt["readout_gain"]
                                                                  * np.tanh(x))
    np.testing.assert_allclose(rates, expected)
    assert rates.shape == x.shape and (rates > 0).all()


def test_model_rates_are_the_models_predictions(synthetic):
    ds, model = synthetic
    from nwb_jedi.analysis.dynamics import model_trajectory

    # Along the condition's noiseless trajectory, the readout's rates are its network's.
    rates = model_rates(model, model_trajectory(model, 0, ds.n_bins))
    np.testing.assert_allclose(rates, model.condition_rates(0, ds.n_bins), rtol=1e-3,
                               atol=1e-3)


def test_compare_fixed_points_and_sine_spearman(synthetic, small_teacher):
    ds, model = synthetic
    table = compare_fixed_points(model, ds, small_teacher, n_initial=8, max_iters=50)
    sine = sorted(ds.conditions.loc[ds.conditions["task"] == "sine", "value"])
    assert sorted(table["frequency_hz"]) == sine
    assert (table["matched"] <= np.minimum(table["teacher_n"], table["jedi_n"])).all()
    matched = table[table["matched"] > 0]
    assert (matched["rms_distance_hz"] >= 0).all()
    assert matched["distance_over_spread"].notna().all()
    for _, row in matched.iterrows():
        assert len(row["teacher_unstable_modes"].split(",")) == row["matched"]
    again = compare_fixed_points(model, ds, small_teacher, n_initial=8, max_iters=50)
    assert table.equals(again)  # seeded starts: the same search twice

    result = sine_spearman(model, table)
    assert result["frequencies"] == sine
    assert len(result["leading_abs_imag"]) == len(sine) == len(result["max_abs_imag"])
    assert np.all(np.asarray(result["max_abs_imag"]) >= np.asarray(result["leading_abs_imag"]))
    assert -1 <= result["rho_max_imag"] <= 1 or np.isnan(result["rho_max_imag"])


def test_ground_truth_comparisons_refuse_real_data(small_jedi, oscillation_dataset):
    with pytest.raises(UserError, match="synthetic"):
        compare_fixed_points(small_jedi, oscillation_dataset, None)
    with pytest.raises(UserError, match="synthetic"):
        sine_spearman(small_jedi)


def test_ground_truth_is_imported_on_demand():
    import nwb_jedi.analysis as analysis

    assert analysis.ground_truth.teacher_map is teacher_map
    assert "ground_truth" in dir(analysis)
