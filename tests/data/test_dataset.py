"""TrialDataset: construction, validation, splits, subsets."""

import numpy as np
import pandas as pd
import pytest

from nwb_jedi import TrialDataset


def make(k_per=10, conditions=("a", "b", "c"), t=5, n=4, seed=0, **kw):
    rng = np.random.default_rng(seed)
    labels = [c for c in conditions for _ in range(k_per)]
    counts = rng.poisson(1.0, (len(labels), t, n))
    return TrialDataset.from_arrays(counts, labels, 0.02, **kw)


def test_shapes_and_dtypes():
    ds = make()
    assert ds.counts.shape == (30, 5, 4) and ds.counts.dtype == np.float32
    assert ds.condition.dtype == np.int64
    assert list(ds.conditions["label"]) == ["a", "b", "c"]
    assert ds.time.shape == (5,) and np.allclose(ds.time, (np.arange(5) + 0.5) * 0.02)
    assert ds.n_conditions == 3 and ds.trials_per_condition().tolist() == [10, 10, 10]
    assert np.all(np.isnan(ds.align_time))


def test_split_is_stratified_seeded_and_partitions():
    ds = make()
    sizes = [ds.train.n_trials, ds.val.n_trials, ds.test.n_trials]
    assert sum(sizes) == ds.n_trials
    for part in (ds.train, ds.val, ds.test):
        assert set(part.condition) == {0, 1, 2}  # every condition in every split
    assert np.array_equal(make().split, ds.split)
    assert not np.array_equal(make(seed=0, split=(0.7, 0.15, 0.15)).split,
                              TrialDataset.from_arrays(ds.counts, ds.condition_labels, 0.02,
                                                       seed=1).split)
    ids = np.concatenate([ds.train.trial_id, ds.val.trial_id, ds.test.trial_id])
    assert sorted(ids) == list(range(30))


def test_two_trials_condition_gets_train_and_val():
    ds = make(k_per=2)
    for c in range(3):
        assert sorted(ds.split[ds.condition == c]) == ["train", "val"]


def test_explicit_split_labels_are_kept():
    labels = np.array(["train", "val", "test"] * 10)
    ds = make(split=labels)
    assert np.array_equal(ds.split, labels)


def test_tuple_conditions_become_columns():
    counts = np.zeros((4, 3, 2))
    ds = TrialDataset.from_arrays(counts, [("maze", 1), ("maze", 2)] * 2, 0.01,
                                  condition_names=["trial_type", "trial_version"])
    assert list(ds.conditions.columns) == ["trial_type", "trial_version", "label"]
    assert list(ds.conditions["label"]) == ["maze/1", "maze/2"]


def test_subset_keeps_condition_table_and_ground_truth():
    rates = np.random.default_rng(0).random((30, 5, 4))
    ds = make(ground_truth={"trial_rates": rates, "weights": np.eye(3)})
    sub = ds.subset([3, 1])
    assert sub.conditions is ds.conditions
    assert np.array_equal(sub.counts, ds.counts[[3, 1]])
    assert np.array_equal(sub.ground_truth["trial_rates"], rates[[3, 1]])
    assert sub.ground_truth["weights"] is ds.ground_truth["weights"]
    mask = ds.condition == 2
    assert np.array_equal(ds.subset(mask).trial_id, ds.trial_id[mask])


def test_select_units_and_psth():
    ds = make()
    sub = ds.select_units([0, 2])
    assert sub.counts.shape == (30, 5, 2) and list(sub.unit_id) == [0, 2]
    psth = ds.psth()
    assert psth.shape == (3, 5, 4)
    assert np.allclose(psth[1], ds.counts[ds.condition == 1].mean(0))


@pytest.mark.parametrize("counts, labels, bin_size, message", [
    (np.full((4, 2, 2), np.nan), ["a", "b"] * 2, 0.01, "NaN"),
    (-np.ones((4, 2, 2)), ["a", "b"] * 2, 0.01, "negative"),
    (np.ones((4, 2, 2)), ["a", "b", "a"], 0.01, "3 labels but counts has 4 trials"),
    (np.ones((4, 2, 2)), ["a", "b", "a", "a"], 0.01, "fewer than 2 trials"),
    (np.ones((4, 2, 2)), ["a", "b"] * 2, 0.0, "bin_size must be a positive"),
    (np.ones((4, 2, 2)), ["a", "b"] * 2, -1.0, "bin_size must be a positive"),
    (np.ones((4, 2)), ["a", "b"] * 2, 0.01, "3-D"),
])
def test_bad_input_raises_value_error(counts, labels, bin_size, message):
    with pytest.raises(ValueError, match=message):
        TrialDataset.from_arrays(counts, labels, bin_size)


def test_mismatched_ids_raise():
    with pytest.raises(ValueError, match="trial_id has shape"):
        TrialDataset.from_arrays(np.ones((4, 2, 2)), ["a", "b"] * 2, 0.01, trial_ids=[1, 2])
    with pytest.raises(ValueError, match="unit_id has shape"):
        TrialDataset.from_arrays(np.ones((4, 2, 2)), ["a", "b"] * 2, 0.01, unit_ids=[1])
    with pytest.raises(ValueError, match="units table has 1 rows"):
        TrialDataset.from_arrays(np.ones((4, 2, 2)), ["a", "b"] * 2, 0.01,
                                 units=pd.DataFrame({"x": [1]}))
