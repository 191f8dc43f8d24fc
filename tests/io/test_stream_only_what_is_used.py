"""A fit streams only what it uses: through the loopback DANDI server, `nwb-jedi fit` of an
MC_Maze-layout file with units, trials and 1 kHz behavior reads the units and trials, never the
behavior series (most of the file's bytes)."""

from __future__ import annotations

import pytest

from nwb_jedi.cli import main
from nwb_jedi.io.read import read_session
from tests.cli.runner import TINY

MC_MAZE_PATH = "sub-sim/sub-sim_ses-maze_desc-train_behavior+ecephys.nwb"
#: The issue's bound: a fit streams at most this fraction of an MC_Maze-layout file.
MAX_FIT_FRACTION = 0.25


@pytest.fixture
def maze_on_dandi(dandi_api, mc_maze_nwb):
    """The MC_Maze-layout fixture (24 units, 72 trials, four 1 kHz behavior series) served at
    DANDI:000410/draft."""
    dandi_api.add_version("000410", "draft", {MC_MAZE_PATH: mc_maze_nwb})
    dandi_api.reset_counters()
    return dandi_api


def test_behavior_is_most_of_the_fixture(mc_maze_nwb):
    """The premise: the fixture's behavior series hold most of its bytes, so reading them
    would blow the bound."""
    import h5py

    with h5py.File(mc_maze_nwb, "r") as h5:
        behavior = sum(h5[f"processing/behavior/{name}/data"].id.get_storage_size()
                       for name in h5["processing/behavior"])
    assert behavior > 0.5 * mc_maze_nwb.stat().st_size


def test_fit_streams_at_most_a_quarter_of_the_file(maze_on_dandi, mc_maze_nwb, tmp_path,
                                                   capsys):
    out = tmp_path / "fit.nwb"
    rc = main(["fit", f"DANDI:000410/draft/{MC_MAZE_PATH}", "--preset", "mc_maze",
               "--out", str(out), "--quiet", *TINY])
    assert rc == 0, capsys.readouterr().err
    fraction = maze_on_dandi.blob_bytes() / mc_maze_nwb.stat().st_size
    print(f"fit streamed {maze_on_dandi.blob_bytes()} of {mc_maze_nwb.stat().st_size} bytes "
          f"({fraction:.1%})")
    assert 0 < fraction <= MAX_FIT_FRACTION


def test_reading_every_behavior_series_streams_most_of_it(maze_on_dandi, mc_maze_nwb):
    """The control: the same file read with all its behavior streams far more than the bound,
    so the test above measures the choice of series and not a small file."""
    session = read_session(f"DANDI:000410/draft/{MC_MAZE_PATH}", behavior=True)
    assert set(session.behavior) == {"hand_pos", "hand_vel", "cursor_pos", "eye_pos"}
    assert maze_on_dandi.blob_bytes() > 0.8 * mc_maze_nwb.stat().st_size


def test_one_named_series_is_read_alone(maze_on_dandi, mc_maze_nwb):
    """What decoding asks for (e.g. hand_vel) is read without the other series."""
    session = read_session(f"DANDI:000410/draft/{MC_MAZE_PATH}", behavior=["hand_vel"])
    assert list(session.behavior) == ["hand_vel"]
    assert maze_on_dandi.blob_bytes() < 0.6 * mc_maze_nwb.stat().st_size
