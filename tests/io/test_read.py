"""read_session on real NWB files: MC_Maze and Perich layouts, DANDI:000006 (NWB 2.0.2)."""

import pickle

import h5py
import numpy as np
import pytest

from nwb_jedi import ConditionMapper, read_session
from nwb_jedi.errors import SourceError, UserError
from nwb_jedi.io.read import describe_source


def test_mc_maze_layout_reads_everything(mc_maze_nwb, mc_maze_sim):
    s = read_session(mc_maze_nwb)
    sim = mc_maze_sim
    assert s.n_units == 24 and s.n_trials == 72
    for got, want in zip(s.spike_times, sim.spike_times, strict=True):
        np.testing.assert_array_equal(got, want)
    assert s.time_resolution == 0.001
    np.testing.assert_array_equal(s.units["heldout"], sim.heldout)
    assert s.units["location"].tolist() == sim.locations
    assert set(s.units["location"]) == {"PMd", "M1"}
    assert s.obs_intervals[0].shape == (1, 2)
    expected_cols = {"start_time", "stop_time", "move_onset_time", "go_cue_time",
                     "target_on_time", "rt", "delay", "trial_type", "trial_version", "maze_id",
                     "num_targets", "active_target", "target_pos", "num_barriers",
                     "barrier_pos", "success", "split"}
    assert expected_cols <= set(s.trials.columns)
    # ragged columns are lists of arrays, strings are str
    pos = s.trials["target_pos"].iloc[0]
    assert isinstance(pos, np.ndarray) and pos.dtype == np.int16 and pos.shape[1] == 2
    np.testing.assert_array_equal(pos, sim.trials["target_pos"].iloc[0])
    assert set(s.trials["split"]) <= {"train", "val", "test"}
    assert isinstance(s.trials["split"].iloc[0], str)
    assert s.trials["success"].dtype == bool
    # behavior: four bare series, SI conversion applied (mm * 1e-3), shared timestamps
    assert set(s.behavior) == {"hand_pos", "hand_vel", "cursor_pos", "eye_pos"}
    ts, hand_mm = sim.behavior["hand_pos"]
    np.testing.assert_allclose(s.behavior["hand_pos"].data, hand_mm * 1e-3)
    np.testing.assert_array_equal(s.behavior["hand_vel"].timestamps, ts)
    assert s.behavior["hand_vel"].unit == "m/s"
    assert s.behavior["hand_pos"].rate == pytest.approx(1000.0)
    assert s.behavior["hand_pos"].path == "/processing/behavior/hand_pos"
    assert s.metadata["session_id"] == "synthetic-mc-maze"
    # Issue 13: simulated files claim no species as recorded (NCBI "synthetic construct").
    assert s.metadata["subject"]["species"] == "http://purl.obolibrary.org/obo/NCBITaxon_32630"
    assert s.source["kind"] == "local"
    # plain data: no open handles, survives pickling
    again = pickle.loads(pickle.dumps(s))
    assert again.n_units == s.n_units and "24 units" in repr(again)


def naive_counts(spike_times, starts_ms, n_bins, bin_ms):
    """Reference counts in exact integer ms (the fixture's spikes sit on a 1 ms grid)."""
    out = np.zeros((len(starts_ms), n_bins, len(spike_times)))
    for u, spikes in enumerate(spike_times):
        ticks = np.round(np.asarray(spikes) * 1000).astype(np.int64)
        for k, t0 in enumerate(starts_ms):
            rel = ticks - t0
            rel = rel[(rel >= 0) & (rel < n_bins * bin_ms)]
            np.add.at(out[k, :, u], rel // bin_ms, 1)
    return out


def test_mc_maze_mapped_with_nlb_conventions(mc_maze_nwb, mc_maze_sim):
    s = read_session(mc_maze_nwb)
    mapper = ConditionMapper(by=["trial_type", "trial_version"], align="move_onset_time",
                             window=(-0.25, 0.45), bin_size=0.005, verbose=False)
    ds = mapper.build(s)
    assert ds.counts.shape == (72, 140, 24)
    assert ds.n_conditions == 6
    assert list(ds.conditions.columns[:2]) == ["trial_type", "trial_version"]
    np.testing.assert_allclose(ds.time[[0, -1]], [-0.2475, 0.4475])
    starts_ms = np.round(s.trials["move_onset_time"].to_numpy() * 1000).astype(int) - 250
    np.testing.assert_array_equal(ds.counts, naive_counts(s.spike_times, starts_ms, 140, 5))
    # behavior resampled to the same bins: hand velocity peaks after movement onset
    vel = ds.behavior["hand_vel"]
    assert vel.shape == (72, 140, 2)
    speed = np.linalg.norm(vel, axis=2).mean(axis=0)
    assert ds.time[np.argmax(speed)] > 0 and speed[:40].max() < 1e-6
    assert mapper.report_.n_trials_kept == 72
    # NLB split column and held-out units
    ds2 = ConditionMapper(by=["trial_type", "trial_version"], align="move_onset_time",
                          window=(-0.25, 0.45), bin_size=0.005, split="split",
                          exclude_heldout=True, trial_filter="success == True",
                          verbose=False).build(s)
    assert ds2.n_units == int((~mc_maze_sim.heldout).sum())
    assert not ds2.units["heldout"].any()
    assert ds2.trials["success"].all()


def test_perich_layout_reads_and_maps(perich_nwb):
    s = read_session(perich_nwb)
    assert set(s.behavior) == {"cursor_pos", "cursor_vel", "cursor_acc"}
    pos = s.behavior["cursor_pos"]
    assert pos.path == "/processing/behavior/Position/cursor_pos"
    assert s.behavior["cursor_vel"].path == "/processing/behavior/Velocity/cursor_vel"
    assert pos.rate == pytest.approx(100.0)  # timestamps built from starting_time + rate
    assert np.abs(pos.data).max() <= 0.08 + 1e-9  # 8 cm reach stored in cm, read in m
    assert {"target_on_time", "go_cue_time", "target_id", "result"} <= set(s.trials.columns)
    mapper = ConditionMapper(by="target_id", align="go_cue_time", window=(-0.2, 0.6),
                             bin_size=0.02, trial_filter="result == 'R'", verbose=False)
    ds = mapper.build(s)
    assert mapper.report_.trials_dropped["trial_filter result == 'R'"] == 4
    assert ds.n_trials == 48 - sum(mapper.report_.trials_dropped.values())
    assert set(ds.trials["result"]) == {"R"}
    assert ds.counts.shape[1:] == (40, 16)
    assert ds.behavior["cursor_pos"].shape == (ds.n_trials, 40, 2)
    assert np.isfinite(ds.behavior["cursor_pos"]).all()


def test_dandi_000006_nwb_2_0_2_fixture(dandi_000006):
    s = read_session(dandi_000006)
    assert s.metadata["nwb_version"] == "2.0.2"
    assert s.metadata["subject"]["species"] == "Mus musculus"
    assert s.n_units == 1 and len(s.spike_times[0]) == 1679
    assert s.n_trials == 178
    assert set(s.trials["type"]) == {"lick left", "lick right"}  # byte strings decoded
    assert "brain_region: ALM" in s.units["location"].iloc[0]
    assert s.units["cell_type"].iloc[0] == "PTlower"
    assert s.behavior == {}  # its lick times are in acquisition, which is never read
    # event times in this file are relative to each trial's start_time
    mapper = ConditionMapper(by="type", align="cue_start_time", align_reference="start_time",
                             window=(-1.0, 1.0), bin_size=0.1, verbose=False)
    ds = mapper.build(s)
    assert ds.n_conditions == 2 and set(ds.conditions["type"]) == {"lick left", "lick right"}
    assert ds.counts.shape[1:] == (20, 1)
    assert ds.counts.sum() > 0
    spikes = s.spike_times[0]
    t0 = ds.align_time[0] - 1.0
    assert ds.counts[0, :, 0].sum() == np.sum((spikes >= t0) & (spikes < t0 + 2.0))


def test_describe_source_is_cheap_summary(mc_maze_nwb):
    info = describe_source(mc_maze_nwb)
    assert info["n_spikes"] > 0 and len(info["units"]) == 24
    assert {b["name"] for b in info["behavior"]} == {"hand_pos", "hand_vel", "cursor_pos",
                                                    "eye_pos"}
    hand = next(b for b in info["behavior"] if b["name"] == "hand_pos")
    assert hand["rate"] == pytest.approx(1000.0) and hand["shape"][1] == 2
    assert len(info["trials"]) == 72


@pytest.mark.parametrize("which,match", [
    ("not_hdf5", r"is not a readable HDF5/NWB file"),
    ("hdf5_not_nwb", r"is an HDF5 file but not an NWB file"),
    ("truncated", r"(truncated|not a readable HDF5/NWB file)"),
    ("no_units", r"no units table: nwb_jedi needs sorted spikes in /units"),
])
def test_bad_files_raise_one_clear_source_error(bad_files, which, match):
    with pytest.raises(SourceError, match=match) as err:
        read_session(bad_files[which])
    assert "\n" not in str(err.value)


def test_missing_file_and_no_trials(bad_files, tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_session(tmp_path / "missing.nwb")
    s = read_session(bad_files["no_trials"])
    assert s.n_units == 3 and s.trials.empty
    with pytest.raises(UserError, match="no trials table.*nwb-jedi info"):
        ConditionMapper(by="x", align="start_time", window=(0, 1), bin_size=0.1).build(s)


def test_unusual_columns_do_not_break_reading(tmp_path):
    """A trials column of TimeSeries references (compound dtype) and a 2-D unit column."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(session_description="x", identifier="x",
                  session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    series = TimeSeries(name="lever", data=np.arange(100.0), unit="V", rate=10.0)
    nwb.add_acquisition(series)
    nwb.add_unit_column("template", "2-D per-unit array")
    for u in range(2):
        nwb.add_unit(spike_times=[0.5 + u, 2.0], template=np.ones((3, 2)))
    for k in range(4):
        nwb.add_trial(start_time=k * 2.0, stop_time=k * 2.0 + 1.0, timeseries=[series])
    path = tmp_path / "unusual.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    s = read_session(path)
    assert s.n_units == 2 and "template" not in s.units.columns
    assert s.n_trials == 4
    first = s.trials["timeseries"].iloc[0]
    assert first[0][-1] == "lever"  # the reference became the series' name


def test_a_table_laid_out_against_nwb_is_one_clear_error(tmp_path):
    import shutil

    import h5py

    from nwb_jedi import datasets
    from nwb_jedi.errors import SourceError
    from nwb_jedi.io.read import read_session

    broken = tmp_path / "broken.nwb"
    shutil.copyfile(datasets.reaching_path(), broken)
    with h5py.File(broken, "a") as f:
        del f["units/spike_times_index"]  # a ragged column without its index
    with pytest.raises(SourceError, match="is not laid out as NWB expects"):
        read_session(broken)


def test_a_fitted_models_rates_are_not_behavior():
    """A file nwb_jedi wrote holds the model's predicted rates in its module: `info` and
    `read_session` do not offer them as a behavior series to decode or bin."""
    from pathlib import Path

    fitted = Path(__file__).parents[1] / "data" / "ndx_jedi_0.1.0_fit.nwb"
    with h5py.File(fitted, "r") as h5:
        assert "rates" in h5["processing/jedi"]  # what the older code listed as behavior
    assert describe_source(fitted)["behavior"] == []
