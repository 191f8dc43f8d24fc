"""Issue 11, data layer: stored filters never reach an evaluator (item 1), trial filters select by
position with duplicate ids reported (3), condition labels never collide (4), binned arrays are
sized before they are allocated (6), non-finite spike times are refused (10), and bins off the
spike-time grid warn (11)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.data.filters import StoredQuery, evaluate_query
from nwb_jedi.data.session import Session
from nwb_jedi.errors import UserError

BASE = dict(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.02, verbose=False)


# ------------------------------------------------------------------ 1. stored filters
def _shell_filter(marker) -> str:
    return f"@sys.modules['os'].system('touch {marker}') == 0 or target == 'x'"


def test_a_stored_filter_that_runs_code_is_refused_and_never_run(hand_session, tmp_path):
    marker = tmp_path / "PWNED"
    settings = ConditionMapper(**BASE).to_settings()
    settings["trial_filter"] = _shell_filter(marker)
    stored = json.loads(json.dumps(settings))
    with pytest.raises(UserError, match=r"stored trial_filter .* give the filter yourself with "
                                        r"--trial-filter"):
        ConditionMapper.from_settings(stored).build(hand_session)
    assert not marker.exists()
    settings.update(trial_filter=None, unit_filter=f"__import__('os').system('touch {marker}')")
    with pytest.raises(UserError, match="stored unit_filter .* --unit-filter"):
        ConditionMapper.from_settings(settings)
    assert not marker.exists()


def test_the_users_own_filter_still_uses_pandas(hand_session):
    # A query typed by the user is evaluated by pandas, whole language included.
    mapper = ConditionMapper(**BASE, trial_filter="target.str.startswith('a') or angle > 250")
    ds = mapper.build(hand_session)
    assert sorted(set(ds.conditions["target"])) == ["a", "c"]


@pytest.mark.parametrize("text", [
    "__import__('os').system('x')", "target.str.len() > 1", "@x == 1", "target[0] == 'a'",
    "angle + 1 > 3", "lambda: 1", "[t for t in target]", "(x := 1) == 1", "f'{target}' == 'a'",
    "1 == 1", "'a' in 'abc'", "target == angle.max()", "not", "not " * 60 + "success",
    "a" * 3000, "target ==\x00 'a'",
])
def test_what_the_whitelist_refuses(text):
    with pytest.raises(UserError, match="stored trial_filter"):
        StoredQuery(text)


@pytest.mark.parametrize("text", [
    "success == True", "target == 'a'", "target != 'a' and angle >= 100",
    "target in ['a', 'b']", "target not in ('c',)", "~(success == True) | (angle < 50)",
    "not success or angle > 300.5", "100 < angle <= 250", "-1 < angle", "success",
    "`start_time` > 10", "id > 105", "target == None",
])
def test_the_whitelist_selects_what_pandas_selects(hand_session, text):
    trials = hand_session.trials
    expected = trials.eval(text, engine="python").to_numpy(dtype=bool)
    query = StoredQuery(text)
    assert query == text and isinstance(query, str)
    np.testing.assert_array_equal(evaluate_query(query, trials), expected)


def test_stored_filters_round_trip_and_select_the_same_trials(hand_session):
    mapper = ConditionMapper(**BASE, trial_filter="success == True and angle < 300",
                             unit_filter="location == 'M1'")
    rebuilt = ConditionMapper.from_settings(json.loads(json.dumps(mapper.to_settings())),
                                            verbose=False)
    assert isinstance(rebuilt.trial_filter, StoredQuery)
    assert isinstance(rebuilt.unit_filter, StoredQuery)
    assert rebuilt.to_settings() == mapper.to_settings()
    a, b = mapper.build(hand_session), rebuilt.build(hand_session)
    np.testing.assert_array_equal(a.trial_id, b.trial_id)
    np.testing.assert_array_equal(a.unit_id, b.unit_id)
    assert rebuilt.report_ == mapper.report_


def test_a_stored_filter_naming_a_missing_column_says_so(hand_session):
    settings = {**ConditionMapper(**BASE).to_settings(), "trial_filter": "nope == 1"}
    with pytest.raises(UserError, match="names column 'nope'.*columns: start_time"):
        ConditionMapper.from_settings(settings).build(hand_session)


# ------------------------------------------------------------------ 3. duplicate trial ids
def _duplicated_ids_session(n=100) -> Session:
    start = np.arange(n) * 2.0 + 1.0
    trials = pd.DataFrame({
        "start_time": start, "stop_time": start + 1.8, "go_time": start + 1.0,
        "target": ["a", "b"] * (n // 2), "subset": ["keep"] * (n // 2) + ["drop"] * (n // 2),
    }, index=pd.Index(np.arange(n) % (n // 2), name="id"))  # ids 0..49, each twice
    spikes = np.sort(np.concatenate([start + 1.0, start + 1.05]))
    return Session(unit_ids=np.array([1]), spike_times=[spikes], trials=trials)


@pytest.mark.parametrize("stored", [False, True])
def test_duplicate_trial_ids_do_not_defeat_a_filter(stored):
    session = _duplicated_ids_session()
    mapper = ConditionMapper(**BASE, trial_filter="subset == 'keep'")
    if stored:  # the same filter read back from a file
        mapper = ConditionMapper.from_settings(mapper.to_settings(), verbose=False)
    with pytest.warns(UserWarning, match="100 trials of the trials table share their id"):
        ds = mapper.build(session)
    assert ds.n_trials == 50
    assert mapper.report_.trials_dropped["trial_filter subset == 'keep'"] == 50
    assert mapper.report_.duplicate_trial_ids == 100
    summary = mapper.report_.summary()
    assert "trials dropped: 50 trial_filter" in summary and "100 trials share their id" in summary
    assert set(ds.trials["subset"]) == {"keep"}


def test_unique_ids_give_no_warning(hand_session):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConditionMapper(**BASE, trial_filter="success == True").build(hand_session)


# ------------------------------------------------------------------ 4. condition labels
def test_condition_labels_never_collide():
    counts = np.ones((8, 3, 2))
    labels = [("a/b", "c"), ("a", "b/c"), ("a\\", "/c"), ("a", "\\/c")] * 2
    ds = TrialDataset.from_arrays(counts, labels, 0.02, condition_names=["x", "y"])
    assert ds.n_conditions == 4
    assert ds.conditions["label"].is_unique
    assert sorted(ds.conditions["label"]) == sorted(["a\\/b/c", "a/b\\/c", "a\\\\/\\/c",
                                                     "a/\\\\\\/c"])
    # The labels of plain values are as before.
    plain = TrialDataset.from_arrays(counts, [("maze", 1), ("maze", 2)] * 4, 0.02)
    assert list(plain.conditions["label"]) == ["maze/1", "maze/2"]


def test_conditions_that_print_alike_are_refused():
    with pytest.raises(UserError, match="differ only in type"):
        TrialDataset.from_arrays(np.ones((4, 3, 2)), [1, "1", 1, "1"], 0.02)


def test_jedi_gives_colliding_labels_their_own_embeddings():
    from nwb_jedi.model.jedi import JEDI

    rng = np.random.default_rng(0)
    labels = [("a/b", "c"), ("a", "b/c")] * 6
    ds = TrialDataset.from_arrays(rng.poisson(1.0, (12, 5, 4)), labels, 0.02,
                                  condition_names=["x", "y"], split=["train"] * 12)
    model = JEDI(hidden=8, embed_dim=2, rank=1, max_epochs=2, device="cpu", progress=False)
    model.fit(ds)
    assert model.embeddings_.shape[0] == 2
    rows = model._condition_rows(ds)
    assert set(rows[ds.condition == 0]) != set(rows[ds.condition == 1])


# ------------------------------------------------------------------ 6. array sizes
def test_binned_counts_are_sized_before_allocating(hand_session, monkeypatch):
    monkeypatch.setenv("NWB_JEDI_MAX_ARRAY_GB", "0.5")
    mapper = ConditionMapper(by="target", align="go_time", window=(0.0, 1.0), bin_size=1e-9,
                             verbose=False)
    with pytest.raises(UserError, match=r"would take 134 GB \(12 trials x 1000000000 bins of "
                                        r"1e-06 ms x 3 units, float32\), more than the 512 MB "
                                        r"allowed; use larger bins \(--bin-ms\)"):
        mapper.build(hand_session)
    monkeypatch.setenv("NWB_JEDI_MAX_ARRAY_GB", "many")
    with pytest.raises(UserError, match="NWB_JEDI_MAX_ARRAY_GB must be a positive number"):
        mapper.build(hand_session)


# ------------------------------------------------------------------ 10. non-finite spike times
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_session_refuses_non_finite_spike_times_by_unit(bad):
    with pytest.raises(ValueError, match=r"unit 8 has 1 spike times that are NaN or infinite"):
        Session(unit_ids=np.array([7, 8]), spike_times=[[0.1, 0.2], [0.3, bad, 0.5]])


# ------------------------------------------------------------------ 11. off-grid bins
def _grid_session(resolution=None) -> Session:
    rng = np.random.default_rng(1)
    start = np.arange(40) * 2.0 + 1.0
    trials = pd.DataFrame({"start_time": start, "stop_time": start + 1.8, "go_time": start + 1,
                           "target": ["a", "b"] * 20})
    # Poisson spikes on a 1 ms grid, as in the NLB files (at most one per unit and ms).
    grid = np.arange(0, 82_000) / 1000.0
    spikes = [grid[rng.random(grid.size) < 0.2] for _ in range(3)]
    return Session(unit_ids=np.arange(3), spike_times=spikes, trials=trials,
                   time_resolution=resolution)


@pytest.mark.parametrize("resolution", [None, 0.001])  # inferred from the spikes, or stated
def test_bins_off_the_spike_time_grid_warn_with_the_fix(resolution):
    session = _grid_session(resolution)
    mapper = ConditionMapper(by="target", align="go_time", window=(0.0, 0.5), bin_size=0.0025,
                             verbose=False)
    with pytest.warns(UserWarning, match=r"bins of 2.5 ms are not a whole number of the spike "
                                         r"times' 1 ms resolution.*\(x1.5\).*--bin-ms 2 or 3"):
        ds = mapper.build(session)
    # The artifact is real: bins alternately hold 3 and 2 possible spike times.
    per_bin = ds.counts.mean(axis=(0, 2))
    assert per_bin[0::2].mean() / per_bin[1::2].mean() == pytest.approx(1.5, rel=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConditionMapper(by="target", align="go_time", window=(0.0, 0.5), bin_size=0.002,
                        verbose=False).build(session)


# ------------------------------------------------------------------ windows beyond the trials
@pytest.mark.parametrize("window,message", [
    ((-0.5, 1.6), r"39 of 40 trials' windows overlap the next trial's window \(2.1 s long\), "
                  r"so the same spikes are counted in both; shorten --window"),
    ((0.0, 1.0), r"40 of 40 trials' windows end after their trial's stop_time \(by up to 0.2 "
                 r"s\)"),
])
def test_windows_beyond_their_trials_warn(window, message):
    from nwb_jedi.errors import DataWarning

    session = _grid_session(0.001)  # trials 1.8 s long, every 2 s; go 1 s after the start
    mapper = ConditionMapper(by="target", align="go_time", window=window, bin_size=0.002,
                             verbose=False)
    with pytest.warns(DataWarning, match=message):
        mapper.build(session)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a window inside its trial says nothing
        ConditionMapper(by="target", align="go_time", window=(-0.5, 0.8), bin_size=0.002,
                        verbose=False).build(session)
