import numpy as np
import pytest

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.synthetic import make_dataset
from tests.synthetic.teachers import TASKS3


def test_shapes_dtypes_and_conditions(small_dataset):
    ds = small_dataset
    assert isinstance(ds, TrialDataset)
    assert (ds.n_trials, ds.n_bins, ds.n_units) == (24 * 4, 50, 40)
    assert ds.counts.dtype == np.float32 and np.all(ds.counts == np.round(ds.counts))
    assert ds.bin_size == 0.02
    np.testing.assert_allclose(ds.time, 0.01 + 0.02 * np.arange(50))
    table = ds.conditions
    assert list(table.columns) == ["task", "value", "label"] and len(table) == 24
    assert set(table["task"]) == set(TASKS3)
    assert sorted(table.loc[table.task == "sine", "value"]) == [1, 2, 3, 4, 5, 6, 8, 10]
    assert "sine/3.0" in set(table["label"])
    np.testing.assert_array_equal(ds.trials_per_condition(), 4)
    # Each trial's metadata agrees with its condition row.
    rows = table.iloc[ds.condition]
    np.testing.assert_array_equal(rows["task"].to_numpy(), ds.trials["task"].to_numpy())
    np.testing.assert_array_equal(rows["value"].to_numpy(), ds.trials["value"].to_numpy())


def test_ground_truth_contents(small_dataset, small_teacher):
    ds, gt = small_dataset, small_dataset.ground_truth
    k, t, n, c = ds.n_trials, ds.n_bins, ds.n_units, ds.n_conditions
    i, o = len(gt["input_names"]), len(gt["output_names"])
    assert gt["rates"].shape == (c, t, n) and gt["trial_rates"].shape == (k, t, n)
    assert gt["trial_inputs"].shape == (k, t, i) and gt["trial_states"].shape == (k, t, n)
    assert gt["trial_outputs"].shape == (k, t, o)
    assert gt["condition_inputs"].shape == (c, t, i)
    for key in ("W", "chi", "M", "N", "B", "b", "W_out", "b_out"):
        np.testing.assert_array_equal(gt[key], small_teacher.weights()[key])
    assert gt["M"].shape == (n, 5) and gt["alpha"] == pytest.approx(0.2)
    np.testing.assert_array_equal(gt["condition_task"], ds.conditions["task"].to_numpy())
    sine = gt["condition_task"] == "sine"
    np.testing.assert_array_equal(gt["sine_frequency"][sine], ds.conditions["value"][sine])
    assert np.all(np.isnan(gt["sine_frequency"][~sine]))
    # Rates are plausible and are what the spikes were drawn from.
    assert 5 < np.median(gt["trial_rates"]) < 50 and gt["trial_rates"].min() > 0
    emp = ds.counts.mean(axis=(0, 1)) / ds.bin_size
    expected = gt["trial_rates"].mean(axis=(0, 1))
    assert np.corrcoef(emp, expected)[0, 1] > 0.95
    # The rule input of every trial names its task.
    rule = gt["trial_inputs"][:, 0, :3].argmax(axis=1)
    np.testing.assert_array_equal(np.array(TASKS3)[rule], gt["trial_task"])


def test_ground_truth_is_subset_with_the_split(small_dataset):
    ds = small_dataset
    gt = ds.ground_truth
    for part in (ds.train, ds.test):
        idx = np.searchsorted(ds.trial_id, part.trial_id)
        np.testing.assert_array_equal(part.ground_truth["trial_rates"], gt["trial_rates"][idx])
        np.testing.assert_array_equal(part.ground_truth["trial_task"], gt["trial_task"][idx])
        assert part.ground_truth["rates"] is gt["rates"]  # condition-level arrays stay whole


def test_noiseless_trials_equal_their_condition_rates(small_teacher):
    ds = make_dataset(TASKS3, trials_per_condition=2, input_noise=0.0, teacher=small_teacher)
    gt = ds.ground_truth
    np.testing.assert_allclose(gt["trial_rates"], gt["rates"][ds.condition], rtol=1e-5)
    noisy = make_dataset(TASKS3, trials_per_condition=2, input_noise=0.05,
                         teacher=small_teacher).ground_truth
    assert not np.allclose(noisy["trial_rates"], gt["trial_rates"])


def test_same_seed_same_data_other_seed_other_data(small_dataset, small_teacher):
    again = make_dataset(TASKS3, trials_per_condition=4, seed=0, teacher=small_teacher)
    np.testing.assert_array_equal(again.counts, small_dataset.counts)
    np.testing.assert_array_equal(again.split, small_dataset.split)
    np.testing.assert_array_equal(again.ground_truth["trial_rates"],
                                  small_dataset.ground_truth["trial_rates"])
    other = make_dataset(TASKS3, trials_per_condition=4, seed=1, teacher=small_teacher)
    assert not np.array_equal(other.counts, small_dataset.counts)
    np.testing.assert_array_equal(other.ground_truth["W"], small_dataset.ground_truth["W"])


def test_through_the_cache_without_passing_a_teacher(small_teacher):
    from tests.synthetic.teachers import SMALL

    ds = make_dataset(("sine", "memorypro", "dm"), trials_per_condition=2, **SMALL)
    np.testing.assert_array_equal(ds.ground_truth["W"], small_teacher.W)


def test_bin_size_and_duration(small_teacher):
    ds = make_dataset(TASKS3, trials_per_condition=2, bin_size=0.05, duration=1.2,
                      teacher=small_teacher)
    assert ds.n_bins == 24 and ds.ground_truth["trial_rates"].shape[1] == 24
    with pytest.raises(UserError, match="whole multiple"):
        make_dataset(TASKS3, bin_size=0.025, teacher=small_teacher)
    with pytest.raises(UserError, match="at least 2"):
        make_dataset(TASKS3, trials_per_condition=1, teacher=small_teacher)
    with pytest.raises(UserError, match="trained on"):
        make_dataset(("sine",), teacher=small_teacher)


def test_single_trial_variability_is_added_on_request_only(small_teacher, small_dataset):
    plain = make_dataset(TASKS3, trials_per_condition=4, seed=0, teacher=small_teacher,
                         start_jitter=0.0, trial_input=0.0)
    np.testing.assert_array_equal(plain.counts, small_dataset.counts)  # off: unchanged
    kw = dict(trials_per_condition=4, seed=0, teacher=small_teacher, input_noise=0.0)
    quiet = make_dataset(TASKS3, **kw)
    for extra in ({"start_jitter": 0.5}, {"trial_input": 0.5}):
        varied = make_dataset(TASKS3, **kw, **extra)
        gt = varied.ground_truth
        spread = gt["trial_rates"] - gt["rates"][varied.condition]
        assert np.abs(spread).mean() > 10 * np.abs(
            quiet.ground_truth["trial_rates"] - quiet.ground_truth["rates"][quiet.condition]
        ).mean() + 1e-3
        assert gt["trial_start_offsets"].shape == (varied.n_trials, varied.n_units)
        assert gt["trial_extra_inputs"].shape == (varied.n_trials, varied.n_bins,
                                                  varied.n_units)
    with pytest.raises(UserError):
        make_dataset(TASKS3, trial_input=-1.0, **kw)
