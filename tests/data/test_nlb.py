"""NLB's settings and targets from a Session (nwb_jedi.data.nlb); that the targets equal
nlb_tools' own is tests/benchmarks/test_nlb_crosscheck.py's job."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi import metrics
from nwb_jedi.data import nlb
from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.session import BehaviorSeries
from nwb_jedi.errors import UserError


@pytest.fixture(scope="module")
def maze(mc_maze_nwb):
    from nwb_jedi.io.read import read_session

    session = read_session(mc_maze_nwb, behavior=["hand_vel"])
    mapper = ConditionMapper(by=["trial_type", "trial_version"], align="move_onset_time",
                             window=(-0.25, 0.45), bin_size=0.02, verbose=False)
    return session, mapper.build(session)


def test_windows_snap_up_to_the_session_wide_grid():
    events = np.array([1.003, 1.005, 2.0004, 7.019])
    np.testing.assert_allclose(nlb.nlb_window_starts(events, -0.25, 0.005),
                               [0.755, 0.755, 1.755, 6.770])
    np.testing.assert_allclose(nlb.nlb_window_starts(events, -0.25, 0.02),
                               [0.76, 0.76, 1.76, 6.78])
    aligned = nlb.nlb_align_times(events, (-0.25, 0.45), 0.02)
    assert np.all((aligned >= events) & (aligned < events + 0.02))


def test_which_dataset_and_group():
    assert nlb.identify({"asset_path": "sub-Jenkins/sub-Jenkins_ses-large_desc-train_"
                                       "behavior+ecephys.nwb"}).name == "mc_maze_large"
    assert nlb.identify({"path": "/d/sub-Jenkins_ses-full_desc-train.nwb"}).name == "mc_maze"
    assert nlb.identify({"dandiset": "000140"}).name == "mc_maze_small"
    assert nlb.identify({"path": "/d/sub-sim_ses-maze_desc-train.nwb"}) is None
    assert nlb.NLB_DATASETS["mc_maze"].psth_sd == 0.07  # 70 ms for MC_Maze ...
    assert {d.psth_sd for n, d in nlb.NLB_DATASETS.items() if n != "mc_maze"} == {0.05}
    assert nlb.submission_group(nlb.NLB_DATASETS["mc_maze_small"], 0.02) == "mc_maze_small_20"
    assert nlb.submission_group(nlb.NLB_DATASETS["mc_maze"], 0.005) == "mc_maze"
    with pytest.raises(UserError, match="5 ms or 20 ms"):
        nlb.submission_group(nlb.NLB_DATASETS["mc_maze"], 0.01)
    with pytest.raises(UserError, match="unknown NLB dataset"):
        nlb.nlb_dataset("mc_rtt")


def test_smoothed_psth_is_the_condition_average_of_smoothed_1ms_spikes(maze):
    session, ds = maze
    psth = nlb.smoothed_psth(session, ds, 0.05)
    assert psth.shape == (ds.n_conditions, ds.n_bins, ds.n_units)
    # Directly, for one trial and one unit: 1 ms counts well around the window, NLB's kernel.
    kernel = nlb.nlb_kernel(0.05)
    assert len(kernel) == 300 and kernel.sum() == pytest.approx(1.0)
    k, u = 3, 5
    start = ds.align_time[k] - 0.25
    edges = start + (np.arange(-1000, 1700 + 1)) * 0.001
    spikes = session.spike_times[list(session.unit_ids).index(ds.unit_id[u])]
    ms = np.histogram(spikes, bins=edges - 1e-9)[0].astype(float)
    smooth = np.convolve(ms, kernel, "same")[1000:1700]
    one_trial = smooth.reshape(35, 20).sum(axis=1) / 0.02
    alone = nlb.smoothed_psth(session, ds.subset([k]), 0.05)
    np.testing.assert_allclose(alone[ds.condition[k], :, u], one_trial, rtol=1e-9, atol=1e-9)
    # The average over every trial of the condition, all splits.
    c = ds.condition[k]
    trials = np.flatnonzero(ds.condition == c)
    mean = np.mean([nlb.smoothed_psth(session, ds.subset([t]), 0.05)[c] for t in trials],
                   axis=0)
    np.testing.assert_allclose(psth[c], mean, rtol=1e-9)


def test_scores_report_nlbs_psth_r2_when_the_dataset_carries_its_targets(maze):
    session, ds = maze
    rates = np.broadcast_to(ds.counts.mean(axis=0) / ds.bin_size, ds.counts.shape)
    assert "psth_r2_nlb" not in metrics.score_rates(rates, ds)
    ds.nlb_psth = nlb.smoothed_psth(session, ds, 0.07)
    try:
        test = ds.test
        assert test.nlb_psth is ds.nlb_psth  # subsets keep the targets of every condition
        scores = metrics.score_rates(rates[ds.split == "test"], test)
        assert scores["psth_r2_nlb"] == pytest.approx(metrics.psth_r2_nlb(
            rates[ds.split == "test"], test.condition, ds.nlb_psth))
        some = ds.select_units([0, 2])
        np.testing.assert_array_equal(some.nlb_psth, ds.nlb_psth[:, :, [0, 2]])
        with pytest.raises(ValueError, match="nlb_psth has shape"):
            type(ds)(**{**_fields(ds), "nlb_psth": ds.nlb_psth[:, :5]})
    finally:
        ds.nlb_psth = None


def _fields(ds) -> dict:
    return {k: getattr(ds, k) for k in ("counts", "condition", "conditions", "trial_id",
                                        "unit_id", "time", "align_time", "bin_size", "split",
                                        "behavior", "units", "trials")}


def test_off_grid_windows_are_refused(maze):
    session, _ = maze
    mapper = ConditionMapper(by="trial_type", align="move_onset_time", window=(-0.2505, 0.4495),
                             bin_size=0.02, verbose=False)
    with pytest.raises(UserError, match="whole number of milliseconds"):
        nlb.smoothed_psth(session, mapper.build(session), 0.05)


def test_lagged_behavior_reads_the_series_later():
    t = np.arange(0, 10, 0.001)
    series = BehaviorSeries("x", np.c_[t], t)

    class Bins:  # what lagged_behavior reads of a dataset
        align_time = np.array([2.0, 5.0])
        time = (np.arange(5) + 0.5) * 0.1
        bin_size, n_bins = 0.1, 5

    now = nlb.lagged_behavior(series, Bins(), 0.0)[..., 0]
    later = nlb.lagged_behavior(series, Bins(), 0.1)[..., 0]
    np.testing.assert_allclose(later[:, :-1], now[:, 1:], atol=1e-9)
    np.testing.assert_allclose(now[0, 0], 2.0495, atol=1e-9)  # mean of the bin's samples
