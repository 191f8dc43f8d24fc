"""The README's commands work as written.

- The first fenced block (the set-up commands that `.ci/run` executes) is checked for its exact
  text; running it is `.ci/run`'s job.
- Every command of the CLI quick start (the ```bash block after ``<!-- quick-start-cli -->``)
  is run in order in a fresh directory, the first through the real `nwb-jedi` console script.
  Commands marked ``# needs internet`` run against a DANDI-compatible server on 127.0.0.1 that
  serves a synthetic MC_Maze-layout file at the real DANDI:000128 asset paths.
  To keep the suite fast, the test appends small-setting flags to the slow commands (argparse
  lets the last occurrence of a flag win; every flag of the README command is still parsed and
  used): `fit` gets ``--epochs 3 --hidden 16``, `simulate` a tiny teacher, `analyze` one
  condition's fixed points. The full-size `nwb-jedi fit` is the one `.ci/run` runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nwb_jedi.cli import main
from tests.io.dandi_server import DandiTestServer

README = Path(__file__).resolve().parents[1] / "README.md"
MC_MAZE = "DANDI:000128/0.220113.0400/"
TRAIN = "sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"
TEST = "sub-Jenkins/sub-Jenkins_ses-full_desc-test_ecephys.nwb"
SMALL = {
    "fit": ["--epochs", "3", "--hidden", "16", "--quiet"],
    "simulate": ["--units", "24", "--teacher-iters", "30", "--trials-per-condition", "4",
                 "--quiet"],
    "analyze": ["--fixed-point-conditions", "1", "--quiet"],
}


def fenced_blocks(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(1)) for m in re.finditer(r"```bash\n(.*?)```", text, re.S)]


def quick_start_commands() -> list[str]:
    text = README.read_text()
    marker = text.index("<!-- quick-start-cli -->")
    block = next(body for start, body in fenced_blocks(text) if start > marker)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_setup_block_is_unchanged():
    first = fenced_blocks(README.read_text())[0][1]
    assert first == ('python -m pip install torch==2.13.0 -e ".[test]" && nwb-jedi fit\n'
                     "python -m pytest -q\n")


def test_quick_start_covers_the_main_commands():
    commands = quick_start_commands()
    assert all(c.startswith("nwb-jedi ") for c in commands)
    used = {shlex.split(c, comments=True)[1] for c in commands}
    assert {"fit", "show", "analyze", "info", "simulate"} <= used
    assert any("needs internet" in c for c in commands)


@pytest.fixture
def mc_maze_dandi(mc_maze_nwb, tmp_path, monkeypatch):
    with DandiTestServer() as server:
        server.add_version("000128", "0.220113.0400", {TRAIN: mc_maze_nwb, TEST: mc_maze_nwb})
        monkeypatch.setenv("DANDI_API_URL", server.api_url)
        monkeypatch.setenv("DANDI_NO_ET", "1")
        monkeypatch.delenv("DANDI_API_KEY", raising=False)
        monkeypatch.setenv("NWB_JEDI_CACHE", str(tmp_path / "cache"))
        yield server


def test_quick_start_commands_run_as_written(mc_maze_dandi, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # As after the set-up command, whose main job already wrote jedi_fit.nwb here.
    (tmp_path / "jedi_fit.nwb").write_bytes(b"written by the set-up command")
    commands = quick_start_commands()
    for i, command in enumerate(commands):
        argv = shlex.split(command, comments=True)[1:]
        argv += SMALL.get(argv[0], [])
        if i == 0:  # the real console script, in a real process
            sibling = Path(sys.executable).with_name("nwb-jedi")
            exe = str(sibling) if sibling.exists() else shutil.which("nwb-jedi")
            assert exe, "the nwb-jedi console script is not installed"
            proc = subprocess.run([exe, *argv], capture_output=True, text=True,
                                  env=dict(os.environ), timeout=120)
            assert proc.returncode == 0, f"{command}\n{proc.stderr}"
            continue
        try:
            rc = main(argv)
        except SystemExit as stop:
            rc = stop.code
        captured = capsys.readouterr()
        assert rc == 0, f"{command}\n{captured.err}"
    assert (tmp_path / "jedi_fit.nwb").exists()
    assert (tmp_path / "figures" / "embeddings.png").exists()
    assert (tmp_path / "mc_maze_jedi.nwb").exists() and (tmp_path / "synthetic_jedi.nwb").exists()
    assert sum(mc_maze_dandi.bytes_served.values()) > 0  # the DANDI commands really streamed


def test_python_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's first Python block, executed as it is (it writes into the working dir)."""
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    exec(compile(code, str(README) + ":python", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "reach_jedi.nwb").exists() and (tmp_path / "embeddings.png").exists()
    assert "bits_per_spike" in capsys.readouterr().out
    assert namespace["model"].n_units_ == 61
    # The single-trial block continues the session (the loaded model, the same trials).
    single = re.search(r"### Single trials.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(single, str(README) + ":single-trials", "exec"), namespace)  # noqa: S102
    ds = namespace["ds"]
    assert namespace["rates"].shape == (ds.test.n_trials, ds.n_bins, ds.n_units)
    assert np.isfinite(namespace["rates"]).all()
