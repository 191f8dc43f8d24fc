"""io/nwbfile: the one way files are built (units and trials from whole columns, compression,
atomic save), read back with plain pynwb."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nwb_jedi.errors import UserError
from nwb_jedi.io import nwbfile as nwbfile_mod
from nwb_jedi.io.nwbfile import (
    MIN_COMPRESSED_SIZE,
    add_trials,
    add_units,
    compressed,
    new_nwbfile,
    save_nwbfile,
)

START = datetime(2021, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def _new(**kw):
    return new_nwbfile(session_description="test", session_start_time=START, **kw)


def _read(path: Path):
    from pynwb import NWBHDF5IO

    io = NWBHDF5IO(str(path), "r")
    return io, io.read()


def test_new_file_has_a_fresh_identifier_subject_and_no_empty_fields():
    a = _new(session_id="s1", lab=None, subject={"subject_id": "m1", "species": "Mus musculus",
                                                 "sex": "F", "age": "P90D"})
    b = _new()
    assert a.identifier != b.identifier
    assert a.session_id == "s1" and a.lab is None
    assert a.subject.subject_id == "m1" and b.subject is None


def test_units_from_whole_columns_keep_spike_times_exactly(tmp_path):
    rng = np.random.default_rng(0)
    # Values with every bit of float64 in use: a copy must not round them.
    spikes = [np.sort(rng.uniform(0, 100, size=n)) for n in (5, 0, 1000)]
    intervals = [np.array([[0.0, 50.123456789012345], [60.0, 100.0]]), np.array([[0.0, 1.0]]),
                 np.array([[0.5, 99.5]])]
    nwb = _new()
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="shank", description="shank", location="CA1",
                                       device=device)
    for _ in range(4):
        nwb.add_electrode(group=group, location="CA1")
    add_units(nwb, spikes, ids=[7, 3, 11], obs_intervals=intervals,
              electrodes=[[0], [1, 2], [3]], resolution=1e-4,
              columns={"heldout": (np.array([True, False, True]), "held out"),
                       "source_unit_id": (["a", "b", "c"], "source ids")},
              descriptions={"spike_times": "copied spikes"}, description="three units")
    path = save_nwbfile(nwb, tmp_path / "units.nwb")
    io, out = _read(path)
    with io:
        units = out.units
        assert units.description == "three units" and units.resolution == 1e-4
        assert list(units.id[:]) == [7, 3, 11]
        assert list(units.colnames) == ["spike_times", "obs_intervals", "electrodes",
                                        "heldout", "source_unit_id"]
        assert units["spike_times"].target.description == "copied spikes"
        assert units["obs_intervals"].target.description == \
            "the observation intervals for each unit"  # pynwb's default
        for k in range(3):
            got = np.asarray(units["spike_times"][k])
            assert got.dtype == np.float64 and np.array_equal(got, spikes[k])
            assert np.array_equal(np.asarray(units["obs_intervals"][k]), intervals[k])
        assert list(units["heldout"][:]) == [True, False, True]
        assert list(units["source_unit_id"][:]) == ["a", "b", "c"]
        assert len(units["electrodes"][1]) == 2  # rows 1 and 2 of the electrodes table


def _trials() -> pd.DataFrame:
    return pd.DataFrame({
        "start_time": [0.0, 2.0, 4.0], "stop_time": [1.0, 3.0, 5.0],
        "target": [1, 2, 1], "success": [True, False, True], "label": ["a", "b", "c"],
        "mixed_numbers": pd.Series([1, 2.5, 3], dtype=object),
        "pos": [np.zeros((0, 2), np.int16), np.ones((2, 2), np.int16),
                np.arange(6, dtype=np.int16).reshape(3, 2)],
    })


def test_trials_from_a_dataframe_with_ragged_columns_and_descriptions(tmp_path):
    nwb = _new()
    skipped = add_trials(nwb, _trials(), descriptions={"target": "target index"},
                         default_description="{name} of the trial", ids=[10, 20, 30],
                         description="three trials")
    assert skipped == []
    io, out = _read(save_nwbfile(nwb, tmp_path / "trials.nwb"))
    with io:
        trials = out.trials
        assert trials.description == "three trials" and list(trials.id[:]) == [10, 20, 30]
        assert trials["start_time"].description == "Start time of epoch, in seconds"
        assert trials["target"].description == "target index"
        assert trials["label"].description == "label of the trial"
        frame = trials.to_dataframe()
        assert frame["target"].tolist() == [1, 2, 1]
        assert frame["success"].tolist() == [True, False, True]
        assert frame["label"].tolist() == ["a", "b", "c"]
        assert frame["mixed_numbers"].tolist() == [1.0, 2.5, 3.0]
        for k, expected in enumerate(_trials()["pos"]):
            got = np.asarray(trials["pos"][k])
            assert got.dtype == np.int16 and np.array_equal(got.reshape(-1, 2), expected)


@pytest.mark.parametrize("column", [
    [np.array(["x"]), np.array(["y", "z"]), np.array([], dtype=str)],  # ragged text
    [np.zeros(2), np.zeros((2, 3)), np.zeros(1)],  # ragged of mixed shapes
    [np.zeros(2), 1.0, "x"],  # arrays mixed with scalars
])
def test_columns_that_cannot_be_stored_are_refused_or_skipped(column):
    trials = _trials().assign(bad=column)
    with pytest.raises(UserError, match="trials column 'bad' cannot be stored"):
        add_trials(_new(), trials)
    nwb = _new()
    assert add_trials(nwb, trials.assign(id=[1, 2, 3]), skip_unstorable=True) == ["bad", "id"]
    assert "bad" not in nwb.trials.colnames and "pos" in nwb.trials.colnames


def test_compression_rule():
    from hdmf.backends.hdf5 import H5DataIO

    small = np.zeros(MIN_COMPRESSED_SIZE - 1)
    big = np.zeros(MIN_COMPRESSED_SIZE)
    assert compressed(small) is small
    assert compressed(big, enabled=False) is big
    wrapped = compressed(big)
    assert isinstance(wrapped, H5DataIO)
    assert wrapped.io_settings["compression"] == "gzip"
    assert wrapped.io_settings["compression_opts"] == 4 and wrapped.io_settings["shuffle"]


def test_save_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "out.nwb"
    save_nwbfile(_new(session_id="first"), out)
    before = out.read_bytes()

    def crash(nwbfile, path):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(nwbfile_mod, "write_nwb", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_nwbfile(_new(session_id="second"), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nwb"]
    monkeypatch.undo()
    with pytest.raises(FileExistsError):
        save_nwbfile(_new(), out, overwrite=False)
    assert out.read_bytes() == before
    nested = tmp_path / "new" / "dir" / "file.nwb"
    assert save_nwbfile(_new(), nested) == str(nested) and nested.exists()
