"""`nwb-jedi info`: what it prints for real files, and exit 2 with one line for each bad input."""

import subprocess
import sys

import pytest

from nwb_jedi import datasets
from nwb_jedi.cli import main


def test_info_mc_maze_layout(mc_maze_nwb, capsys):
    assert main(["info", str(mc_maze_nwb)]) == 0
    out = capsys.readouterr().out
    assert "24 units" in out and "heldout" in out
    assert "PMd (12)" in out and "M1 (12)" in out
    assert "72 trials" in out
    assert "looks like conditions: trial_type (2), trial_version (3)" in out
    events = next(line for line in out.splitlines() if line.startswith("looks like event"))
    for name in ("move_onset_time", "go_cue_time", "target_on_time"):
        assert name in events
    assert "rt" not in events.split(": ")[1].split(", ")
    assert "target_pos" in out and "ragged int16" in out
    assert "hand_pos" in out and "1000 Hz" in out and "/processing/behavior/hand_vel" in out
    # Issue 13: simulated files claim no species as recorded (NCBI "synthetic construct").
    assert "species=http://purl.obolibrary.org/obo/NCBITaxon_32630" in out


def test_info_perich_layout_and_old_schema(perich_nwb, dandi_000006, capsys):
    assert main(["info", str(perich_nwb)]) == 0
    out = capsys.readouterr().out
    assert "target_id (8)" in out and "result (2)" in out
    assert "/processing/behavior/Velocity/cursor_vel" in out and "100 Hz" in out
    assert main(["info", str(dandi_000006)]) == 0
    out = capsys.readouterr().out
    assert "NWB 2.0.2" in out and "type (2)" in out and "'lick left'" in out
    assert "cue_start_time" in out.split("looks like event times:")[1]


@pytest.mark.parametrize("which,message", [
    ("not_hdf5", "is not a readable HDF5/NWB file"),
    ("hdf5_not_nwb", "is an HDF5 file but not an NWB file"),
    ("truncated", "not a readable HDF5/NWB file"),
    ("no_units", "has no units table: nwb_jedi needs sorted spikes in /units"),
])
def test_info_bad_files_exit_2_with_one_line(bad_files, which, message, capsys):
    assert main(["info", str(bad_files[which])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nwb-jedi: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_info_no_trials_shows_units_then_exits_2(bad_files, capsys):
    assert main(["info", str(bad_files["no_trials"])]) == 2
    captured = capsys.readouterr()
    assert "3 units" in captured.out and "trials:" in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "has no trials table" in err


def test_info_missing_file(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.nwb")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_info_real_subprocess():
    ok = subprocess.run([sys.executable, "-m", "nwb_jedi", "info", datasets.reaching_path()],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "61 units" in ok.stdout and "reach_target (7)" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "nwb_jedi", "info", __file__],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("nwb-jedi: error: ") and len(bad.stderr.splitlines()) == 1
