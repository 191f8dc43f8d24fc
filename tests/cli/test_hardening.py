"""Issue 11 through the command line, as a user runs it: a stored filter never runs code and a
file's parameters never come from other files (items 1, 2), outputs are checked before any work
(9), `--out` without `--overwrite` is exclusive between real concurrent processes (12), inputs are
never replaced (13), no traceback for bad seeds, long names or a closed pipe (14), control
characters from files are escaped (15), a kill during the final write leaves nothing behind the
next run (16), and a FIFO never hangs a command (17)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi._files import TMP_MARK
from tests.cli.runner import TINY, run_cli

MAPPER = dict(by="trial_type", align="move_onset_time", window=(-0.1, 0.2), bin_size=0.02,
              behavior=False, verbose=False)
MAZE_FIT = ["--preset", "mc_maze", "--window", "-0.2,0.4", *TINY, "--quiet"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, mc_maze_nwb) -> Path:
    """A JEDI model of the MC_Maze-layout fixture, written by write_results."""
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.io.read import read_session
    from nwb_jedi.io.write import write_results
    from nwb_jedi.model.jedi import JEDI

    session = read_session(mc_maze_nwb, behavior=False)
    ds = ConditionMapper(**MAPPER).build(session)
    model = JEDI(hidden=16, embed_dim=3, rank=2, max_epochs=2, device="cpu", progress=False)
    path = tmp_path_factory.mktemp("hardening") / "fit.nwb"
    write_results(model.fit(ds.train, ds.val), ds, path, source=session)
    return path


def _copy(model_file: Path, tmp_path: Path, name: str = "model.nwb") -> Path:
    path = tmp_path / name
    shutil.copyfile(model_file, path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("nwb-jedi: error: ") or ": error: " in lines[0], err
    return lines[0]


def _cli(argv: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nwb_jedi", *argv], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


# ------------------------------------------------------------------ 1. a stored filter
def test_predict_never_runs_a_stored_filter(model_file, mc_maze_nwb, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    path = _copy(model_file, tmp_path)
    with h5py.File(path, "a") as h5:
        module = h5["processing/jedi"]
        group = module["modelled_data" if "modelled_data" in module else "binned_counts"]
        metadata = json.loads(group["dataset_metadata"].asstr()[()])
        metadata["mapper"]["trial_filter"] = (f"@sys.modules['os'].system('touch {marker}') "
                                              f"== 0 or trial_type == 'x'")
        del group["dataset_metadata"]
        group["dataset_metadata"] = json.dumps(metadata)
    out = tmp_path / "out.nwb"
    rc, _, err = run_cli(["predict", str(path), str(mc_maze_nwb), "--out", str(out), "--quiet",
                          "--epochs", "1"], capsys)
    assert rc == 2
    line = _one_error_line(err)
    assert "stored trial_filter" in line and "give the filter yourself with --trial-filter" in line
    assert not marker.exists() and not out.exists()
    # The user's own filter, given as the message says, is theirs to evaluate.
    rc, _, err = run_cli(["predict", str(path), str(mc_maze_nwb), "--out", str(out), "--quiet",
                          "--epochs", "1", "--trial-filter", "success == True"], capsys)
    assert rc == 0, err
    assert not marker.exists() and out.exists()


# ------------------------------------------------------------------ 2. bytes of other files
def test_predict_never_copies_another_files_bytes(model_file, mc_maze_nwb, tmp_path, capsys):
    secret = tmp_path / "secret.bin"
    gain = np.array([11.0, 22.0, 33.0, 44.0, 55.0] * 100, dtype=np.float32)
    path = _copy(model_file, tmp_path)
    with h5py.File(path, "a") as h5:
        group = h5["processing/jedi/model"]
        name = next(n for n, o in group.items() if o.attrs.get("tensor_name") == "readout.gain")
        attrs = dict(group[name].attrs)
        shape = group[name].shape
        secret.write_bytes(gain[:shape[0]].tobytes())
        del group[name]
        new = group.create_dataset(name, shape=shape, dtype=np.float32,
                                   external=[(str(secret), 0, 4 * shape[0])])
        new.attrs.update(attrs)
    out = tmp_path / "out.nwb"
    rc, _, err = run_cli(["predict", str(path), str(mc_maze_nwb), "--out", str(out), "--quiet",
                          "--epochs", "1"], capsys)
    assert rc == 2 and "keeps its bytes in another file" in _one_error_line(err)
    assert not out.exists()


# ------------------------------------------------------------------ 9. outputs checked first
@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """A directory this process cannot write to (a read-only file system as root)."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    try:
        (path / "probe").touch()
    except OSError:
        yield path
    else:  # root ignores permission bits; /sys is read-only even for root
        (path / "probe").unlink()
        try:
            Path("/sys/nwb-jedi-probe").touch()
        except OSError:
            yield Path("/sys")
        else:  # pragma: no cover - no unwritable directory on this machine
            pytest.skip("no unwritable directory available")
    path.chmod(0o755)


@pytest.fixture
def no_reading(monkeypatch):
    """Fail the test if a command reads its data (the checks must come first)."""
    import nwb_jedi.io.read

    def refuse(*args, **kwargs):
        raise AssertionError("the data were read before the outputs were checked")

    monkeypatch.setattr(nwb_jedi.io.read, "read_session", refuse)


def test_unusable_outputs_are_found_before_reading_data(read_only_dir, no_reading, tmp_path,
                                                       capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["--out", str(read_only_dir / "fit.nwb")], "--out .*fit.nwb cannot be written: it is "
                                                    "not writable"),
        (["--checkpoint", str(a_file / "ckpt")], r"--checkpoint .*a_file/ckpt is under a file "
                                                 r"\(.*a_file\); give a directory"),
        (["--plots", str(read_only_dir / "figures")], "--plots .*figures cannot be written: it "
                                                      "is not writable"),
        (["--out", str(tmp_path / ("x" * 300 + ".nwb"))], r"--out .* cannot be written: the "
                                                          r"name x{40}\.\.\. is 304 characters"),
    ]
    for args, message in cases:
        rc, _, err = run_cli(["fit", *args, *TINY, "--quiet"], capsys)
        assert rc == 2
        assert __import__("re").search(message, _one_error_line(err)), (args, err)


def test_analyze_checks_a_too_long_name_first(model_file, tmp_path, capsys):
    path = _copy(model_file, tmp_path, "x" * 250 + ".nwb")  # 254 characters: a valid name
    rc, _, err = run_cli(["analyze", str(path), "--quiet"], capsys)
    assert rc == 2
    assert "_analysis cannot be written: the name" in _one_error_line(err)


# ------------------------------------------------------------------ 6. sizes up front
def test_a_tiny_bin_on_a_long_window_is_refused_with_its_size(capsys, monkeypatch):
    monkeypatch.setenv("NWB_JEDI_MAX_ARRAY_GB", "1")
    rc, _, err = run_cli(["fit", "--bin-ms", "0.001", *TINY, "--quiet"], capsys)
    assert rc == 2
    line = _one_error_line(err)
    assert __import__("re").search(r"the binned counts would take [\d.]+ GB \(\d+ trials x "
                                   r"400000 bins of 0.001 ms x 61 units, float32\), more than "
                                   r"the 1 GB allowed; use larger bins \(--bin-ms\)", line), line


# ------------------------------------------------------------------ 12. concurrent writers
def _concurrent(argv: list[str], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-m", "nwb_jedi", *argv], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return sorted(results, key=lambda p: p.returncode)


@pytest.mark.parametrize("command", ["fit", "simulate"])
def test_two_concurrent_runs_never_both_write_one_out(command, mc_maze_nwb, tmp_path):
    out = tmp_path / "same.nwb"
    argv = ([command, str(mc_maze_nwb), *MAZE_FIT, "--out", str(out)] if command == "fit" else
            [command, "--tasks", "sine", "--units", "8", "--trials-per-condition", "2",
             "--teacher-iters", "3", "--cache-dir", str(tmp_path / "cache"), "--quiet", "--out",
             str(out)])
    winner, loser = _concurrent(argv, tmp_path)
    assert winner.returncode == 0, winner.stderr
    assert loser.returncode == 2, loser.stderr
    line = _one_error_line(loser.stderr)
    assert "already exists" in line and "--overwrite" in line
    assert not list(tmp_path.glob(f".same.nwb{TMP_MARK}*"))
    with h5py.File(out, "r") as h5:  # the winner's file, whole
        assert "units" in h5


# ------------------------------------------------------------------ 13. inputs protected
def test_predict_never_replaces_its_inputs(model_file, mc_maze_nwb, tmp_path, capsys):
    model = _copy(model_file, tmp_path)
    source = tmp_path / "session.nwb"
    shutil.copyfile(mc_maze_nwb, source)
    before = (_sha(model), _sha(source))
    for out in (model, source, tmp_path / "." / "model.nwb"):
        rc, _, err = run_cli(["predict", str(model), str(source), "--out", str(out),
                              "--overwrite", "--quiet"], capsys)
        line = _one_error_line(err)
        assert rc == 2 and ("is the input" in line or "is the SOURCE file" in line), line
    assert (_sha(model), _sha(source)) == before


def test_fit_never_replaces_its_source(mc_maze_nwb, tmp_path, capsys, no_reading):
    source = tmp_path / "session.nwb"
    shutil.copyfile(mc_maze_nwb, source)
    rc, _, err = run_cli(["fit", str(source), *MAZE_FIT, "--out", str(source), "--overwrite"],
                         capsys)
    line = _one_error_line(err)
    assert rc == 2 and "is the SOURCE file, which is never overwritten" in line, line


# ------------------------------------------------------------------ 14. no tracebacks
@pytest.mark.parametrize("argv", [
    ["analyze", "{model}", "--seed", "-1"],
    ["simulate", "--seed", "-1", "--out", "x.nwb"],
    ["simulate", "--teacher-seed", str(2**64), "--out", "x.nwb"],  # torch: "Overflow when ..."
    ["fit", "--seed", "-1"],
    ["fit", "--seed", str(2**64)],
])
def test_bad_seeds_are_one_line(model_file, argv, capsys):
    argv = [a.replace("{model}", str(model_file)) for a in argv]
    rc, _, err = run_cli(argv, capsys)
    assert rc == 2
    assert "seed" in _one_error_line(err)


def test_a_closed_stdout_pipe_is_a_quiet_exit(mc_maze_nwb):
    # `nwb-jedi info FILE | head -1`: the reader is gone before the output is written.
    proc = subprocess.Popen([sys.executable, "-m", "nwb_jedi", "info", str(mc_maze_nwb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""  # no traceback, no "Exception ignored"


# ------------------------------------------------------------------ 15. control characters
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"


def test_show_and_info_escape_control_characters_from_files(tmp_path, capsys):
    from nwb_jedi.data.dataset import TrialDataset
    from nwb_jedi.io.write import write_results
    from nwb_jedi.model.jedi import JEDI

    rng = np.random.default_rng(0)
    labels = [f"left{ESCAPES}", "right\nforged line"] * 6
    ds = TrialDataset.from_arrays(rng.poisson(1.0, (12, 5, 3)), labels, 0.02,
                                  metadata={"session": {"session_description": f"d{ESCAPES}",
                                                        "session_id": f"s{ESCAPES}"}})
    model = JEDI(hidden=8, embed_dim=2, rank=1, max_epochs=2, device="cpu", progress=False)
    path = tmp_path / "escapes.nwb"
    write_results(model.fit(ds.train, ds.val), ds, path)
    rc, out, err = run_cli(["show", str(path)], capsys)
    assert rc == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "left\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m" in out
    assert "right\\nforged line" in out and "\nforged line" not in out


def test_info_escapes_control_characters_from_files(tmp_path, capsys):
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description=f"session{ESCAPES}", identifier="escapes",
                  session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
                  lab=f"lab{ESCAPES}")
    nwb.add_trial_column(f"target{ESCAPES}", "a column whose name holds escapes")
    for k in range(6):
        nwb.add_trial(start_time=float(k), stop_time=k + 0.5, **{f"target{ESCAPES}": f"t{k % 2}"})
    nwb.add_unit(spike_times=[0.1, 0.2])
    path = tmp_path / "escapes.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    rc, out, err = run_cli(["info", str(path)], capsys)
    assert rc == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "session\\x1b]0;pwned" in out and "lab\\x1b" in out and "target\\x1b" in out


# ------------------------------------------------------------------ 16. killed mid-write
def test_a_kill_during_the_final_write_is_cleaned_by_the_next_run(mc_maze_nwb, tmp_path):
    out = tmp_path / "fit.nwb"
    argv = [sys.executable, "-m", "nwb_jedi", "fit", str(mc_maze_nwb), *MAZE_FIT, "--out",
            str(out)]
    for _attempt in range(3):  # the final write takes a fraction of a second: catch it there
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        leftovers = []
        while proc.poll() is None and not leftovers:
            leftovers = list(tmp_path.glob(f".fit.nwb{TMP_MARK}{proc.pid}.*"))
            time.sleep(0.002)
        if leftovers:
            os.kill(proc.pid, signal.SIGSTOP)  # frozen mid-write: what we see is what it left
            written = out.exists()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if not written:
                break
        proc.wait()
        out.unlink(missing_ok=True)
    else:  # pragma: no cover - the write was never caught in three runs
        pytest.fail("could not catch the final write")
    assert not out.exists() and [p.exists() for p in leftovers] == [True]
    proc = _cli(["fit", str(mc_maze_nwb), *MAZE_FIT, "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and not leftovers[0].exists()
    assert not list(tmp_path.glob(f"*{TMP_MARK}*"))


# ------------------------------------------------------------------ 17. FIFOs
@pytest.mark.parametrize("argv", [["info", "{fifo}"], ["show", "{fifo}"],
                                  ["fit", "{fifo}", "--preset", "mc_maze"],
                                  ["analyze", "{fifo}"]])
def test_a_fifo_never_hangs_a_command(tmp_path, argv):
    fifo = tmp_path / "session.nwb"
    os.mkfifo(fifo)
    proc = _cli([a.replace("{fifo}", str(fifo)) for a in argv], timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "is a FIFO (named pipe), not a file" in _one_error_line(proc.stderr)
