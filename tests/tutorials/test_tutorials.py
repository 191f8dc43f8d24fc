"""Every tutorial runs as a script (small settings) and writes non-trivial PNG figures.

Tutorial 2 reads DANDI:000128 through a DANDI-compatible server on 127.0.0.1 that serves a
synthetic file in the MC_Maze layout at the real asset path, so the script runs unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.io.dandi_server import DandiTestServer

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
MC_MAZE_VERSION = "0.220113.0400"
MC_MAZE_ASSET = "sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"

EXPECTED = {
    "01_quickstart.py": ("01_quickstart", ["embeddings", "eigenvalues", "psth", "training"]),
    "02_dandi_mc_maze.py": ("02_dandi_mc_maze", ["embeddings", "psth", "eigenvalues"]),
    "03_synthetic_ground_truth.py": ("03_synthetic", ["rates_true_vs_recovered",
                                                      "jacobian_radius_teacher_vs_jedi",
                                                      "fixed_points_teacher_vs_jedi"]),
    "04_sharing_models.py": ("04_sharing", ["embeddings_other_session",
                                            "psth_other_session"]),
}


@pytest.fixture(scope="module")
def mc_maze_server(mc_maze_nwb):
    with DandiTestServer() as server:
        server.add_version("000128", MC_MAZE_VERSION, {MC_MAZE_ASSET: mc_maze_nwb})
        yield server


def test_every_tutorial_is_tested():
    assert sorted(p.name for p in TUTORIALS.glob("[0-9]*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_tutorial_runs_and_writes_figures(script, tmp_path, request):
    env = {**os.environ, "NWB_JEDI_TUTORIAL_FAST": "1", "NWB_JEDI_TUTORIAL_OUT": str(tmp_path),
           "NWB_JEDI_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    if script.startswith("02"):
        server = request.getfixturevalue("mc_maze_server")
        env.update(DANDI_API_URL=server.api_url, DANDI_NO_ET="1")
        env.pop("DANDI_API_KEY", None)
    proc = subprocess.run([sys.executable, str(TUTORIALS / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder, figures = EXPECTED[script]
    for name in figures:
        png = tmp_path / folder / f"{name}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
        assert len(data) > 15_000, f"{png} is nearly empty ({len(data)} bytes)"
    if script.startswith("02"):  # really streamed from the server
        assert sum(server.bytes_served.values()) > 0
    if script.startswith("04"):  # the scores come with the baseline that gives them meaning
        assert "(smoothed PSTH of its training trials: " in proc.stdout
        assert "FitQualityWarning" not in proc.stderr  # said once, as a line of the output
