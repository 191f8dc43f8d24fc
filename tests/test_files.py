"""One atomic-write scheme: temporary files are renamed into place, removed on failure, and
leftovers of killed processes are cleaned by the next write."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nwb_jedi._files import (
    TMP_MARK,
    atomic_output,
    atomic_write_text,
    remove_stale_temporaries,
    temporary_name,
)


def test_atomic_output_renames_into_place_and_keeps_the_extension(tmp_path):
    target = tmp_path / "out.nwb"
    with atomic_output(target) as tmp:
        assert tmp.endswith(".nwb") and TMP_MARK in tmp
        assert os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as fh:
            fh.write("done")
    assert target.read_text() == "done"
    assert not list(tmp_path.glob(f"*{TMP_MARK}*"))


def test_a_failed_write_leaves_neither_output_nor_temporary(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert not list(tmp_path.glob(f"*{TMP_MARK}*"))


def test_exclusive_rename_never_replaces_a_file_that_appeared(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(FileExistsError), atomic_output(target, overwrite=False) as tmp:
        with open(tmp, "w") as fh:
            fh.write("mine")
        target.write_text("theirs")  # another process finished first
    assert target.read_text() == "theirs"
    assert not list(tmp_path.glob(f"*{TMP_MARK}*"))


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "out.nwb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".out.nwb{TMP_MARK}{dead}.abc.nwb"
    stale.write_text("killed mid-write")
    live = tmp_path / f".out.nwb{TMP_MARK}{os.getpid()}.def.nwb"
    live.write_text("being written")
    other = tmp_path / f".other.nwb{TMP_MARK}{dead}.abc.nwb"
    other.write_text("not ours to judge")
    assert remove_stale_temporaries(target) == [str(stale)]
    assert live.exists() and other.exists()
    atomic_write_text(target, "x")  # a write cleans the same way
    assert target.read_text() == "x"


def test_temporary_names_are_unique_and_hidden(tmp_path):
    a, b = temporary_name(tmp_path / "f.png"), temporary_name(tmp_path / "f.png")
    assert a != b and os.path.basename(a).startswith(".f.png")
