"""ConditionMapper on hand-built Sessions: conditions, alignment, drops, filters and errors."""

import numpy as np
import pandas as pd
import pytest

from nwb_jedi.data.binning import gaussian_smooth
from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.errors import UserError
from tests.data.sessions import make_session


def test_counts_alignment_time_axis_and_behavior():
    session = make_session()
    mapper = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                             verbose=False)
    ds = mapper.build(session)
    assert ds.counts.shape == (12, 20, 3)
    np.testing.assert_allclose(ds.time, np.arange(-0.095, 0.1, 0.01))
    # spikes exactly at event + 0/10/20 ms land in bins 10, 11, 12 (half-open bins)
    np.testing.assert_array_equal(ds.counts[:, :, 0].sum(axis=0).nonzero()[0], [10, 11, 12])
    assert np.all(ds.counts[:, 10:13, 0] == 1)
    assert np.all(ds.counts[:, 5, 1] == 2)  # two spikes at event - 50 ms
    np.testing.assert_array_equal(ds.trial_id, np.arange(100, 112))
    np.testing.assert_array_equal(ds.unit_id, [7, 8, 9])
    np.testing.assert_allclose(ds.align_time, session.trials["go_time"])
    assert list(ds.conditions["target"]) == ["a", "b", "c"]
    # behavior: hand_pos x = t, mean over 10 ms bins = bin center - 0.5 ms sample offset
    hand = ds.behavior["hand_pos"]
    assert hand.shape == (12, 20, 2)
    expected = ds.align_time[:, None] + ds.time[None, :] - 0.0005
    np.testing.assert_allclose(hand[:, :, 0], expected, atol=1e-5)
    assert "id" in ds.trials.columns and ds.units["location"].tolist() == ["M1", "PMd", "M1"]
    assert ds.metadata["mapper"]["align"] == "go_time"
    assert mapper.report_.n_trials_kept == 12


def test_multiple_columns_binned_column_and_callable():
    session = make_session()
    ds = ConditionMapper(by=["target", "success"], align="go_time", window=(0, 0.02),
                         bin_size=0.01, verbose=False).build(session)
    assert list(ds.conditions.columns[:2]) == ["target", "success"]
    # (c, False)... trials 10, 11 are (b, False), (c, False): one each -> dropped
    assert mapper_drops(session, by=["target", "success"])["condition with < 2 trials"] == 2
    assert ds.n_trials == 10
    ds = ConditionMapper(by=("angle", 4), align="go_time", window=(0, 0.02), bin_size=0.01,
                         verbose=False).build(session)
    assert ds.n_conditions == 4 and list(ds.trials_per_condition()) == [3, 3, 3, 3]
    np.testing.assert_allclose(ds.conditions["angle"], [43.75, 131.25, 218.75, 306.25])
    ds = ConditionMapper(by={"angle": [0, 180, 360]}, align="go_time", window=(0, 0.02),
                         bin_size=0.01, verbose=False).build(session)
    assert list(ds.conditions["angle"]) == [90.0, 270.0]
    ds = ConditionMapper(by=lambda t: t["target"] == "a", align="go_time", window=(0, 0.02),
                         bin_size=0.01, verbose=False).build(session)
    assert ds.n_conditions == 2


def mapper_drops(session, **kw):
    kw = {"align": "go_time", "window": (0, 0.02), "bin_size": 0.01, "verbose": False, **kw}
    mapper = ConditionMapper(**kw)
    mapper.build(session)
    return mapper.report_.trials_dropped


def test_drops_are_counted_never_silent(capsys):
    session = make_session()
    session.trials.loc[101, "go_time"] = np.nan
    session.obs_intervals = [np.array([[0.0, 13.5], [14.5, 100.0]])] * 3  # event 14 s: gap
    session.trials.loc[111, "go_time"] = 500.0  # beyond the recording
    mapper = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                             trial_filter="success == True")
    ds = mapper.build(session)
    drops = mapper.report_.trials_dropped
    assert drops["trial_filter success == True"] == 2
    assert drops["NaN alignment event"] == 1
    assert drops["window outside obs_intervals"] == 1
    assert ds.n_trials == 12 - 2 - 1 - 1
    line = capsys.readouterr().err
    assert "kept 8/12 trials" in line and "1 NaN alignment event" in line
    # outside the recording is its own reason
    session = make_session()
    session.trials.loc[100, "go_time"] = -5.0
    assert mapper_drops(session, by="target")["window outside the recording"] == 1


def test_split_column_and_filters():
    session = make_session()
    mapper = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                             split="split", verbose=False)
    ds = mapper.build(session)
    assert mapper.report_.trials_dropped["split not train/val/test"] == 3
    assert sorted(set(ds.split)) == ["test", "train", "val"]
    np.testing.assert_array_equal(ds.split, session.trials["split"].to_numpy()[
        session.trials["split"].to_numpy() != "none"])
    ds = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                         trial_filter={"target": ["a", "b"]}, verbose=False).build(session)
    assert set(ds.conditions["target"]) == {"a", "b"}
    ds = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                         trial_filter=lambda t: t["angle"] < 200, verbose=False).build(session)
    assert ds.n_trials == 7


def test_unit_filters():
    session = make_session()
    mapper = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                             exclude_heldout=True, min_rate_hz=0.05, verbose=False)
    ds = mapper.build(session)
    np.testing.assert_array_equal(ds.unit_id, [7])
    assert mapper.report_.units_dropped == {"heldout": 1, "rate < 0.05 Hz": 1}
    ds = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                         unit_filter="location == 'M1'", verbose=False).build(session)
    np.testing.assert_array_equal(ds.unit_id, [7, 9])


def test_split_fractions_are_seeded_and_stratified():
    session = make_session(n_trials=24)
    a = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                        seed=3, verbose=False).build(session)
    b = ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                        seed=3, verbose=False).build(session)
    np.testing.assert_array_equal(a.split, b.split)
    for c in range(3):
        assert "train" in a.split[a.condition == c]


def test_smoothing_option():
    session = make_session()
    raw = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                          verbose=False).build(session)
    smooth = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                             smooth_sd=0.02, verbose=False).build(session)
    # The package's one smoother, with the kernel sd converted to bins.
    np.testing.assert_allclose(smooth.counts, gaussian_smooth(raw.counts, 2.0), rtol=1e-5)
    assert smooth.counts[:, 9, 0].min() > 0
    assert not np.allclose(smooth.counts, raw.counts)


@pytest.mark.parametrize("kwargs,match", [
    ({"by": "maze"}, r"condition column\(s\) \['maze'\] not in the trials table; columns are: "
                     r"start_time, stop_time, go_time"),
    ({"align": "move_onset_time"}, r"alignment column 'move_onset_time' is not in the trials "
                                   r"table; time columns are: start_time, stop_time, go_time"),
    ({"trial_filter": "success == 'maybe'"}, r"no trials left: trial_filter success == "
                                             r"'maybe' removed all 12"),
    ({"trial_filter": "nonsense ==="}, r"trial_filter 'nonsense ===' could not be evaluated"),
    ({"split": "fold"}, r"split column 'fold' is not in the trials table"),
    ({"unit_filter": lambda u: u["id"] > 100}, r"no units left: unit_filter <lambda> removed"),
    ({"by": ("target", 3)}, r"'target' is not numeric"),
])
def test_user_errors_are_one_clear_sentence(kwargs, match):
    session = make_session()
    kw = {"by": "target", "align": "go_time", "window": (0, 0.02), "bin_size": 0.01,
          "verbose": False, **kwargs}
    with pytest.raises(UserError, match=match):
        ConditionMapper(**kw).build(session)


def test_no_trials_table_suggests_info():
    session = make_session()
    session.trials = pd.DataFrame()
    with pytest.raises(UserError, match="no trials table.*nwb-jedi info"):
        ConditionMapper(by="target", align="go_time", window=(0, 0.02), bin_size=0.01,
                        verbose=False).build(session)


def test_relative_event_times_get_a_hint():
    session = make_session()
    session.trials["go_rel"] = session.trials["go_time"] - session.trials["start_time"] - 10
    with pytest.raises(UserError, match="align_reference='start_time'"):
        ConditionMapper(by="target", align="go_rel", window=(0, 0.02), bin_size=0.01,
                        verbose=False).build(session)
    ds = ConditionMapper(by="target", align="go_rel", align_reference="start_time",
                         window=(10, 10.02), bin_size=0.01, verbose=False).build(session)
    np.testing.assert_allclose(ds.align_time, session.trials["go_time"] - 10)
