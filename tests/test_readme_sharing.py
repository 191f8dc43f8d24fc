"""The README's sharing loop works as written: every line of the bash block after
``<!-- sharing-loop -->`` runs in order in a fresh directory, and the Python block after
``<!-- pynapple -->`` runs on the fitted file.

- ``nwb-jedi`` lines run in-process; lines marked ``# needs internet`` read a DANDI-compatible
  server on 127.0.0.1 (``DANDI_API_URL``) instead of the archive. ``simulate`` and ``fit`` get
  small-setting flags appended (argparse lets the last occurrence win), as in test_readme.py.
- ``dandi`` lines run the real dandi CLI: ``download`` against the same server (the
  ``DANDI:<id>/<version>`` it names becomes that server's API URL of the version), ``organize``
  (with ``--jobs 1`` appended) and ``validate`` as written. ``upload`` needs the archive's
  upload API, which the test server does not have: in its place the test serves the organized
  files at their organized paths, which is what an upload makes of them.
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
SMALL = {
    "simulate": ["--units", "24", "--teacher-iters", "30", "--trials-per-condition", "4",
                 "--quiet"],
    "fit": ["--epochs", "3", "--hidden", "16", "--quiet"],
    "predict": ["--epochs", "2", "--quiet"],
}


def _block(marker: str, language: str) -> str:
    text = README.read_text()
    start = text.index(marker)
    return re.search(rf"```{language}\n(.*?)```", text[start:], re.S).group(1)


def _dandi(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dandi")
    command = [str(exe)] if exe.exists() else [shutil.which("dandi") or "dandi"]
    return subprocess.run([*command, *argv], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def archive(tmp_path, monkeypatch):
    with DandiTestServer() as server:
        server.add_version("000999", "draft", {})  # the user's (empty) dandiset
        monkeypatch.setenv("DANDI_API_URL", server.api_url)
        monkeypatch.setenv("DANDI_NO_ET", "1")
        monkeypatch.delenv("DANDI_API_KEY", raising=False)
        monkeypatch.setenv("NWB_JEDI_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        yield server


def _run_dandi(argv: list[str], server: DandiTestServer, workdir: Path) -> None:
    env = dict(os.environ)
    if argv[0] == "download":
        argv = [re.sub(r"^DANDI:(\d{6})/([^/]+)$",
                       lambda m: f"{server.api_url}/dandisets/{m[1]}/versions/{m[2]}/", a)
                for a in argv]
    elif argv[0] == "organize":
        argv = [*argv, "--jobs", "1"]
    elif argv[0] == "upload":
        root = workdir / argv[1].split("/")[0]
        files = {str(p.relative_to(root)): p for p in (workdir / argv[1]).rglob("*.nwb")}
        assert files, f"nothing to upload under {argv[1]}"
        server.add_version("000999", "draft", files)
        return
    done = _dandi(argv, env)
    assert done.returncode == 0, f"dandi {shlex.join(argv)}\n{done.stdout}\n{done.stderr}"


def test_the_sharing_loop_runs_as_written(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    lines = [line.strip() for line in _block("<!-- sharing-loop -->", "bash").splitlines()
             if line.strip()]
    assert [shlex.split(line, comments=True)[0] for line in lines] == [
        "nwb-jedi", "nwb-jedi", "dandi", "dandi", "dandi", "dandi", "nwb-jedi", "nwb-jedi"]
    for line in lines:
        argv = shlex.split(line, comments=True)
        if argv[0] == "dandi":
            _run_dandi(argv[1:], archive, tmp_path)
            continue
        argv = argv[1:] + SMALL.get(argv[1], [])
        assert main(argv) == 0, f"{line}\n{capsys.readouterr().err}"
    out = capsys.readouterr().out
    # The organized name the README shows is the one dandi organize chose.
    shared = re.search(r"DANDI:000999/draft/(\S+)", lines[-1]).group(1)
    assert (tmp_path / "000999" / shared).exists()
    assert f"DANDI:000999/draft/{shared}  (module 'jedi')" in out
    assert (tmp_path / "theirs.nwb").exists()
    assert archive.blob_bytes() > 0  # the shared model was streamed from the server


def test_what_pynapple_sees_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NWB_JEDI_CACHE", str(tmp_path / "cache"))
    assert main(["simulate", "--out", "session.nwb", *SMALL["simulate"]]) == 0
    assert main(["fit", "session.nwb", "--preset", "mc_maze", "--window", "-0.25,0.75",
                 "--out", "jedi_fit.nwb", *SMALL["fit"]]) == 0
    capsys.readouterr()
    namespace: dict = {}
    code = _block("<!-- pynapple -->", "python")
    exec(compile(code, f"{README}:pynapple", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    for kind in ("TsGroup", "IntervalSet", "TsdFrame"):
        assert kind in out
    rates = namespace["rates"]
    assert rates.shape == (50, 64, 24)  # bins x trials x neurons
    assert np.isfinite(rates.values).all()  # every bin of every trial was modelled
