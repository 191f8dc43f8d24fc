"""Shared fixtures: small real NWB files (written with pynwb) in the MC_Maze and Perich layouts,
plus broken files for the error paths. Session-scoped: each file is written once per run."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(__file__).parent / "data"
DANDI_000006 = DATA_DIR / "sub-anm369963_ses-20170228.nwb"


@pytest.fixture(scope="session")
def dandi_000006() -> Path:
    """The real DANDI:000006 file shipped in tests/data (NWB 2.0.2, one unit, 178 trials)."""
    return DANDI_000006


@pytest.fixture(scope="session")
def mc_maze_sim():
    """The synthetic data behind `mc_maze_nwb` (ground truth for comparisons)."""
    from nwb_jedi.io.layouts import simulate_reaching

    return simulate_reaching(n_units=24, n_trials=72, n_conditions=6, seed=1)


@pytest.fixture(scope="session")
def mc_maze_nwb(tmp_path_factory, mc_maze_sim) -> Path:
    """A small NWB file in exactly the NLB MC_Maze layout (DESIGN appendix A)."""
    from nwb_jedi.io.layouts import write_mc_maze_layout

    path = tmp_path_factory.mktemp("mc_maze") / "sub-sim_ses-maze_desc-train_behavior+ecephys.nwb"
    sim = mc_maze_sim
    write_mc_maze_layout(path, sim.spike_times, sim.trials, sim.behavior, heldout=sim.heldout,
                         locations=sim.locations)
    return path


@pytest.fixture(scope="session")
def perich_nwb(tmp_path_factory) -> Path:
    """A small NWB file in the Perich/Miller center-out layout (DANDI 000688)."""
    from nwb_jedi.io.layouts import simulate_reaching, write_perich_layout

    sim = simulate_reaching(n_units=16, n_trials=48, n_conditions=8, seed=2)
    trials = sim.trials[["start_time", "stop_time", "target_on_time", "go_cue_time"]].copy()
    angle = np.arctan2(np.array([p[0][1] for p in sim.trials["target_pos"]]),
                       np.array([p[0][0] for p in sim.trials["target_pos"]]))
    trials["target_id"] = np.round(angle / (2 * np.pi / 8)).astype(np.int64) % 8
    trials["result"] = np.where(np.arange(len(trials)) % 12 == 5, "A", "R")
    ts, hand = sim.behavior["hand_pos"]
    cursor_cm = hand[::10] / 10.0  # 1 kHz mm -> 100 Hz cm
    path = tmp_path_factory.mktemp("perich") / "sub-C_ses-CO-20200101_behavior+ecephys.nwb"
    write_perich_layout(path, sim.spike_times, trials, cursor=(float(ts[0]), cursor_cm),
                        rate=100.0)
    return path


def _bare_nwb(path: Path, with_units: bool, with_trials: bool) -> Path:
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="fixture", identifier=f"fixture-{path.stem}",
                  session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    if with_units:
        for u in range(3):
            nwb.add_unit(spike_times=np.sort(np.random.default_rng(u).uniform(0, 10, 50)))
    if with_trials:
        for k in range(6):
            nwb.add_trial(start_time=k * 1.5, stop_time=k * 1.5 + 1.0)
    with NWBHDF5IO(os.fspath(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Files for every bad-input path: not HDF5, HDF5 not NWB, truncated, no units, no trials."""
    import h5py

    root = tmp_path_factory.mktemp("bad")
    files = {}
    files["not_hdf5"] = root / "notes.nwb"
    files["not_hdf5"].write_text("this is a text file, not NWB\n" * 20)
    files["hdf5_not_nwb"] = root / "plain.h5"
    with h5py.File(files["hdf5_not_nwb"], "w") as f:
        f["x"] = np.arange(10)
    files["no_units"] = _bare_nwb(root / "no_units.nwb", with_units=False, with_trials=True)
    files["no_trials"] = _bare_nwb(root / "no_trials.nwb", with_units=True, with_trials=False)
    full = _bare_nwb(root / "full.nwb", with_units=True, with_trials=True)
    data = full.read_bytes()
    files["truncated"] = root / "truncated.nwb"
    files["truncated"].write_bytes(data[: len(data) // 2])
    return files
