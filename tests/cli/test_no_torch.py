"""`nwb-jedi show` and `nwb-jedi info` never import torch (their start-up time is mostly
imports): the real CLI runs in a fresh process that then reports whether torch was loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nwb_jedi

# The package under test first on the path, whatever the caller's PYTHONPATH says.
ROOT = Path(nwb_jedi.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, mc_maze_nwb) -> Path:
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.io.read import read_session
    from nwb_jedi.io.write import write_results
    from nwb_jedi.model.jedi import JEDI

    session = read_session(mc_maze_nwb, behavior=False)
    ds = ConditionMapper(by="trial_type", align="move_onset_time", window=(-0.1, 0.2),
                         bin_size=0.02, behavior=False, verbose=False).build(session)
    model = JEDI(hidden=16, embed_dim=3, rank=2, max_epochs=2, device="cpu").fit(ds.train)
    path = tmp_path_factory.mktemp("no_torch") / "fit.nwb"
    return Path(write_results(model, ds, path, source=session))


def _run(argv: list[str], then: str = "") -> tuple[int, str, str]:
    """`nwb-jedi ARGV` (then the statement `then`) in a new interpreter; stdout ends with
    whether torch was imported."""
    code = textwrap.dedent(f"""
        import sys
        from nwb_jedi.cli import main
        rc = main({argv!r})
        {then}
        print("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH")
        sys.exit(rc)
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


def test_show_never_imports_torch(model_file):
    rc, out, err = _run(["show", str(model_file)])
    assert rc == 0, err
    assert "Metrics" in out and "bits_per_spike" in out  # the summary was printed
    assert out.strip().splitlines()[-1] == "NO_TORCH"


def test_info_never_imports_torch(mc_maze_nwb):
    rc, out, err = _run(["info", str(mc_maze_nwb)])
    assert rc == 0, err
    assert "looks like conditions" in out
    assert out.strip().splitlines()[-1] == "NO_TORCH"


def test_the_check_sees_torch_when_a_model_is_loaded(model_file):
    """The control: loading the model itself does import torch, and the check reports it."""
    rc, out, err = _run(["show", str(model_file)],
                        then=f"from nwb_jedi.io.load import load_model; "
                             f"load_model({str(model_file)!r})")
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == "TORCH_IMPORTED"
