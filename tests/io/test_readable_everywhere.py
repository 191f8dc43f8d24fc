"""Fitted files are readable by the tools people use (issue 13, section 3): pynapple aligns the
fitted rates to events with `compute_perievent`; rows link to ``/intervals/trials`` and
``/units`` with DynamicTableRegions; the counts are an ndx-binned-spikes `BinnedAlignedSpikes`
that round-trips them exactly; provenance is in the core fields; files written by ndx-jedi 0.1
still load and take new modules."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.io.load import load_dataset, load_model, read_summary
from nwb_jedi.io.read import read_session
from nwb_jedi.io.write import write_results
from nwb_jedi.model.results import compute_results
from tests.io.fits import stored_rates, tiny

#: A fit written by nwb_jedi before ndx-jedi 0.2 (commit 28c0679: counts in JEDIBinnedCounts,
#: rates trial after trial), kept to prove such files still load.
OLD_FIT = Path(__file__).resolve().parents[1] / "data" / "ndx_jedi_0.1.0_fit.nwb"


@pytest.fixture(scope="module")
def on_grid(tmp_path_factory):
    """A fit whose trials' windows all lie on one grid: a synthetic dataset written in the
    MC_Maze layout (trials 1.5 s apart, move onset 0.25 s after the start, 20 ms bins)."""
    from nwb_jedi.io.simulated import write_synthetic_mc_maze

    rng = np.random.default_rng(5)
    labels = [("sine", float(i % 3)) for i in range(24)]
    source_ds = TrialDataset.from_arrays(rng.poisson(0.6, size=(24, 50, 6)), labels, 0.02,
                                         condition_names=["task", "value"])
    root = tmp_path_factory.mktemp("on_grid")
    source = write_synthetic_mc_maze(root / "synthetic.nwb", source_ds, seed=1)
    session = read_session(source, behavior=False)
    ds = ConditionMapper(by=["trial_type", "trial_version"], align="move_onset_time",
                         window=(-0.25, 0.75), bin_size=0.02, behavior=False,
                         verbose=False).build(session)
    model = tiny().fit(ds.train, ds.val)
    results = compute_results(model, ds)
    path = write_results(model, ds, root / "fit.nwb", source=session, results=results)
    return path, ds, results


# ---------------------------------------------------------------------------------- pynapple
def test_pynapple_aligns_the_rates_to_events_exactly(on_grid):
    import pynapple as nap

    path, ds, results = on_grid
    data = nap.load_file(str(path))
    rates, trials = data["rates"], data["trials"]
    assert isinstance(rates, nap.TsdFrame) and rates.shape[1] == ds.n_units
    onsets = nap.Ts(t=np.asarray(trials["move_onset_time"], dtype=float))
    peri = nap.compute_perievent(rates, onsets, window=(0.25, 0.75))
    # One column per trial, time relative to movement onset; the modelled bins are exact.
    assert peri.shape[1] == ds.n_trials
    rows = [int(np.argmin(np.abs(peri.t - t))) for t in ds.time]
    np.testing.assert_allclose(peri.t[rows], ds.time, atol=1e-9)
    for column, onset in enumerate(onsets.t):  # columns in the order of the events
        k = int(np.flatnonzero(ds.align_time == onset)[0])
        np.testing.assert_array_equal(peri.values[rows, column, :], results.rates[k])
        outside = np.setdiff1d(np.arange(len(peri.t)), rows)
        assert np.isnan(peri.values[outside, column, :]).all()


def test_rates_off_the_grid_phase_are_shifted_by_at_most_half_a_bin(maze_fit, written):
    """Movement onsets on a 1 ms clock do not share the phase of a 20 ms grid: each window
    sits at the nearest grid sample, the series stays regular (pynapple takes it), and the
    description says by how much the times moved."""
    import pynapple as nap
    from pynwb import NWBHDF5IO

    _, ds, _ = maze_fit
    with NWBHDF5IO(written["derived"], "r") as io:
        module = io.read().processing["jedi"]
        assert "shifted by at most" in module["rates"].description
        for k in range(ds.n_trials):
            ref = module["trials"]["rates"][k]
            shift = ref.timestamps - (ds.align_time[k] + ds.time)
            assert np.all(np.abs(shift) <= ds.bin_size / 2 + 1e-9)
            assert np.ptp(shift) < 1e-9  # a whole window moves together
    rates = nap.load_file(str(written["derived"]))["rates"]
    peri = nap.compute_perievent(rates, nap.Ts(t=ds.align_time), window=(0.1, 0.2))
    assert peri.shape[1] == ds.n_trials and np.isfinite(peri.values).any()


def test_the_grid_is_nan_outside_the_modelled_windows_and_costs_no_memory(on_grid):
    import h5py

    path, ds, results = on_grid
    np.testing.assert_array_equal(stored_rates(path), results.rates)
    with h5py.File(path, "r") as h5:
        data = h5["processing/jedi/rates/data"]
        values = data[()]
        assert np.isnan(data.fillvalue)
        modelled = ds.n_trials * ds.n_bins
        assert np.sum(~np.isnan(values[:, 0])) == modelled < len(values)


def test_overlapping_windows_fall_back_to_timestamps(tmp_path):
    """Windows longer than the gap between trials cannot share one series: the trials are
    stored back to back with timestamps, and the description says why."""
    from pynwb import NWBHDF5IO

    rng = np.random.default_rng(2)
    ds = TrialDataset.from_arrays(rng.poisson(1.0, size=(12, 10, 4)),
                                  [("a", i % 2) for i in range(12)], 0.02,
                                  condition_names=["task", "c"],
                                  align_time=1.0 + 0.1 * np.arange(12))  # 0.2 s windows
    model = tiny().fit(ds.train, ds.val)
    out = write_results(model, ds, tmp_path / "overlap.nwb")
    with NWBHDF5IO(out, "r") as io:
        rates = io.read().processing["jedi"]["rates"]
        assert "overlap" in rates.description and rates.timestamps is not None
    np.testing.assert_array_equal(stored_rates(out), model.predict_rates(ds))


# ---------------------------------------------------------------------------------- links
def test_trials_and_units_are_linked_by_regions(maze_fit, written):
    from pynwb import NWBHDF5IO

    _, ds, _ = maze_fit
    with NWBHDF5IO(written["derived"], "r") as io:
        nwb = io.read()
        module = nwb.processing["jedi"]
        trials = module["trials"]
        region = trials["trial"]
        assert region.table is nwb.trials
        np.testing.assert_array_equal(nwb.trials.id[:][region.data[:]], ds.trial_id)
        # split, condition and embedding of each trial, next to its row of /intervals/trials
        linked = trials.to_dataframe(index=True)
        assert list(linked["split"]) == list(ds.split)
        counts = module["binned_counts"]
        assert counts.units_region.table is nwb.units
        np.testing.assert_array_equal(nwb.units.id[:][counts.units_region.data[:]], ds.unit_id)


def test_counts_round_trip_exactly_through_binned_aligned_spikes(maze_fit, written):
    from ndx_binned_spikes import BinnedAlignedSpikes
    from pynwb import NWBHDF5IO

    _, ds, _ = maze_fit
    with NWBHDF5IO(written["derived"], "r") as io:
        module = io.read().processing["jedi"]
        counts = module["binned_counts"]
        assert isinstance(counts, BinnedAlignedSpikes)
        event = module["trials"]["event"].data[:]
        times = counts.event_timestamps[:]
        assert np.all(np.diff(times) >= 0)  # the type's rule: events in time order
        np.testing.assert_array_equal(times[event], ds.align_time)
        np.testing.assert_array_equal(counts.condition_indices[:][event], ds.condition)
        assert list(counts.condition_labels[:]) == list(ds.conditions["label"])
        assert counts.bin_width_in_ms == pytest.approx(20.0)
        assert counts.event_to_bin_offset_in_ms == pytest.approx(-100.0)
        data = counts.data[:]
        for k in range(ds.n_trials):  # exactly, trial by trial
            np.testing.assert_array_equal(data[:, event[k], :].T, ds.counts[k])


def test_provenance_is_in_the_core_fields(written):
    from pynwb import NWBHDF5IO

    from nwb_jedi import __version__

    for kind in ("minimal", "derived"):
        with NWBHDF5IO(written[kind], "r") as io:
            nwb = io.read()
            assert [list(p) for p in nwb.was_generated_by] == [["nwb_jedi", __version__]]
            assert nwb.source_script and nwb.source_script_file_name


# ---------------------------------------------------------------------------------- versions
def test_files_of_ndx_jedi_0_1_still_load():
    import h5py

    with h5py.File(OLD_FIT, "r") as h5:
        assert list(h5["specifications/ndx-jedi"]) == ["0.1.0"]
        assert h5["processing/jedi/binned_counts"].attrs["neurodata_type"] == "JEDIBinnedCounts"
        old_rates = h5["processing/jedi/rates/data"][()]
    model, ds = load_model(OLD_FIT), load_dataset(OLD_FIT)
    assert ds.counts.shape == (30, 15, 12) and read_summary(OLD_FIT)["data_shape"] == (30, 15, 12)
    # The rates stored then are what the loaded model predicts now, up to float32 rounding:
    # the recurrence is now computed by a fused kernel (tanh as 2σ(2x) − 1, issue 15).
    np.testing.assert_allclose(model.predict_rates(ds).reshape(-1, ds.n_units), old_rates,
                               rtol=1e-5, atol=1e-6)


def test_a_module_appended_to_a_0_1_file_loads_next_to_the_old_one(tmp_path):
    path = tmp_path / "old.nwb"
    shutil.copyfile(OLD_FIT, path)
    model, ds = load_model(OLD_FIT), load_dataset(OLD_FIT)
    write_results(model, ds, path, append=True, module_name="again")
    for module in ("jedi", "again"):
        np.testing.assert_array_equal(load_dataset(path, module).counts, ds.counts)
    np.testing.assert_array_equal(load_model(path, "again").predict_rates(ds),
                                  model.predict_rates(ds))
