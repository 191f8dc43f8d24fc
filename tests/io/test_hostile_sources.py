"""Issue 11, source NWB files read as they come: NaN and infinite spike times are dropped by unit
with a warning instead of breaking the window checks and rates (item 10), a units table without
rows and a dangling link are one clear SourceError (14), and a FIFO or a device is refused
instead of hanging (17). Files built with pynwb and h5py."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.errors import ModelFileError, SourceError
from nwb_jedi.io.load import load_model
from nwb_jedi.io.read import describe_source, read_session


def _nwb(path: Path, spike_times: list, n_trials: int = 20) -> Path:
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="hostile", identifier=path.stem,
                  session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    nwb.add_trial_column("target", "reach target")
    nwb.add_trial_column("go_time", "go cue (s)")
    for k in range(n_trials):
        nwb.add_trial(start_time=2.0 * k, stop_time=2.0 * k + 1.5, target=k % 2,
                      go_time=2.0 * k + 0.5)
    for spikes in spike_times:
        nwb.add_unit(spike_times=spikes)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _regular_spikes(rate: float = 20.0, end: float = 40.0) -> np.ndarray:
    return np.arange(0.0, end, 1.0 / rate) + 0.0123


# ------------------------------------------------------------------ 10. non-finite spike times
def test_non_finite_spike_times_are_dropped_by_unit_with_a_warning(tmp_path):
    nan_unit = np.r_[_regular_spikes(), np.nan, np.nan]
    inf_unit = np.r_[_regular_spikes(), np.inf]
    path = _nwb(tmp_path / "nan.nwb", [_regular_spikes(), nan_unit, inf_unit])
    with pytest.warns(UserWarning, match=r"dropped 3 spike times that are NaN or infinite "
                                         r"\(unit 1 \(2\), unit 2 \(1\)\)"):
        session = read_session(path)
    assert all(np.isfinite(s).all() and len(s) == 800 for s in session.spike_times)
    assert session.recording_span() == pytest.approx((0.0, 39.9623))
    # Before: inf stretched the recording span, so every unit's rate was 0 and --min-rate
    # dropped them all; NaN failed every window check ("window outside the recording").
    ds = ConditionMapper(by="target", align="go_time", window=(0.0, 0.5), bin_size=0.02,
                         min_rate_hz=5.0, verbose=False).build(session)
    assert ds.n_units == 3 and ds.n_trials == 20


# ------------------------------------------------------------------ 14. tables and links
def test_a_units_table_without_rows_is_one_clear_error(tmp_path):
    path = _nwb(tmp_path / "zero.nwb", [[0.1, 0.2]])
    with h5py.File(path, "a") as h5:  # empty the table, as a writer with no sorted units does
        for name, dtype in (("id", "i8"), ("spike_times", "f8"), ("spike_times_index", "i8")):
            attrs = dict(h5["units"][name].attrs)
            del h5["units"][name]
            new = h5["units"].create_dataset(name, shape=(0,), dtype=dtype, maxshape=(None,))
            new.attrs.update(attrs)
    with pytest.raises(SourceError, match="has a units table without any unit") as err:
        read_session(path)
    assert "zip()" not in str(err.value)
    assert len(describe_source(path)["units"]) == 0  # `info` still shows the file


def test_a_dangling_external_link_is_one_clear_error(tmp_path):
    path = _nwb(tmp_path / "dangling.nwb", [_regular_spikes()])
    with h5py.File(path, "a") as h5:
        del h5["units/spike_times"]
        h5["units/spike_times"] = h5py.ExternalLink(str(tmp_path / "gone.h5"), "/spikes")
    with pytest.raises(SourceError, match="could not be read .*; the file is truncated or "
                                          "damaged"):
        read_session(path)


# ------------------------------------------------------------------ 17. not a regular file
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_a_device_is_refused_not_opened(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "session.nwb"
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
        what = r"a FIFO \(named pipe\)"
    else:
        path, what = Path("/dev/zero"), "a character device"
    with pytest.raises(SourceError, match=f"is {what}, not a file; give the path of an NWB"):
        read_session(path)
    with pytest.raises(ModelFileError, match=f"is {what}, not a file"):
        load_model(path)
