"""Benchmark: read_session + ConditionMapper.build vs raw h5py + numpy on an MC_Maze-sized file.

The file (182 units, ~3.6 M spikes, 2,295 trials, four 1 kHz behavior series, NLB MC_Maze
layout, uncompressed like the NLB files) is written once with pynwb and cached under
$NWB_JEDI_BENCH_DIR (default: <tmp>/nwb_jedi_bench). Both sides read the same datasets (units
spike_times/obs_intervals/heldout, every trials column, the four behavior series) from the same
warm file and bin with the NLB settings (conditions (trial_type, trial_version), align
move_onset_time, -250..450 ms, 5 ms bins, behavior to the same bins). The baseline bins with a
plain per-unit searchsorted on float edges (no edge guard) and resamples behavior by
interpolation at bin centers. Goal: ratio <= 1.5.

Usage::

    python benchmarks/bench_read.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from nwb_jedi.data.binning import bin_spikes
from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.io.layouts import simulate_reaching, write_mc_maze_layout
from nwb_jedi.io.read import read_session

N_UNITS, N_TRIALS = 182, 2295
WINDOW, BIN = (-0.25, 0.45), 0.005
BEHAVIOR = ("hand_pos", "hand_vel", "cursor_pos", "eye_pos")


def bench_file() -> Path:
    root = Path(os.environ.get("NWB_JEDI_BENCH_DIR",
                               Path(tempfile.gettempdir()) / "nwb_jedi_bench"))
    path = root / "mc_maze_sized_v1.nwb"
    if not path.exists():
        t = time.perf_counter()
        sim = simulate_reaching(n_units=N_UNITS, n_trials=N_TRIALS, n_conditions=108,
                                mean_rate_hz=5.8, seed=0)
        write_mc_maze_layout(path, sim.spike_times, sim.trials, sim.behavior,
                             heldout=sim.heldout, locations=sim.locations, compression=False)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f} s")
    return path


def raw_h5py_numpy(path: Path):
    """The baseline: read the same datasets with h5py, bin with plain numpy."""
    with h5py.File(path, "r") as f:
        units = f["units"]
        flat = units["spike_times"][()]
        ends = units["spike_times_index"][()]
        obs = units["obs_intervals"][()]
        obs_index = units["obs_intervals_index"][()]
        heldout = units["heldout"][()]
        trials = {name: f["intervals/trials"][name][()] for name in f["intervals/trials"]}
        behavior = {}
        for name in BEHAVIOR:
            group = f["processing/behavior"][name]
            behavior[name] = (group["timestamps"][()],
                              group["data"][()] * group["data"].attrs["conversion"])
    t_read = time.perf_counter()
    spikes = np.split(flat, ends[:-1])
    starts = trials["move_onset_time"] + WINDOW[0]
    n_bins = int(round((WINDOW[1] - WINDOW[0]) / BIN))
    edges = (starts[:, None] + np.arange(n_bins + 1)[None, :] * BIN).ravel()
    counts = np.empty((len(starts), n_bins, len(spikes)), dtype=np.float32)
    for u, s in enumerate(spikes):
        idx = np.searchsorted(s, edges).reshape(len(starts), n_bins + 1)
        counts[:, :, u] = np.diff(idx, axis=1)
    centers = (starts[:, None] + (np.arange(n_bins) + 0.5)[None, :] * BIN).ravel()
    resampled = {name: np.stack([np.interp(centers, ts, d[:, j]) for j in range(d.shape[1])],
                                axis=-1) for name, (ts, d) in behavior.items()}
    del obs, obs_index, heldout
    return counts, resampled, t_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = bench_file()
    mapper = ConditionMapper(by=["trial_type", "trial_version"], align="move_onset_time",
                             window=WINDOW, bin_size=BIN, verbose=False)
    raw_h5py_numpy(path)  # warm the OS page cache for both sides
    ours, raw, ours_read, raw_read, bin_only = [], [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        counts, _, t_read = raw_h5py_numpy(path)
        t1 = time.perf_counter()
        raw.append(t1 - t0)
        raw_read.append(t_read - t0)
        session = read_session(path)
        t2 = time.perf_counter()
        ds = mapper.build(session)
        t3 = time.perf_counter()
        ours.append(t3 - t1)
        ours_read.append(t2 - t1)
        starts = ds.align_time + WINDOW[0]
        t4 = time.perf_counter()
        bin_spikes(session.spike_times, starts, ds.n_bins, BIN)
        bin_only.append(time.perf_counter() - t4)
    n_spikes = session.n_spikes
    differ = int(np.sum(counts != ds.counts))
    print(f"file: {path.name}, {session.n_units} units, {n_spikes / 1e6:.2f} M spikes, "
          f"{session.n_trials} trials, {len(session.behavior)} behavior series")
    print(f"dataset: {ds}")
    print(f"raw h5py + numpy:          {min(raw):6.2f} s  (read {min(raw_read):.2f} s)")
    print(f"read_session + build:      {min(ours):6.2f} s  (read_session {min(ours_read):.2f} s,"
          f" build {min(ours) - min(ours_read):.2f} s)")
    print(f"bin_spikes alone:          {min(bin_only):6.3f} s  for {ds.counts.shape} bins")
    print(f"ratio (ours / raw):        {min(ours) / min(raw):6.2f}  (goal <= 1.5)")
    print(f"bins that differ from the unguarded float baseline: {differ} "
          f"(edge spikes the baseline moves to the previous bin)")


if __name__ == "__main__":
    main()
