"""Small real NWB recordings written with pynwb, with the metadata a test chooses: subject,
session, unit ids and the brain area of each unit's electrode, and trials in a TimeIntervals
table named as asked (``trials``, or only ``epochs`` and other tables)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd


def write_recording(path: Path, *, session_id: str, subject_id: str, unit_ids, locations,
                    n_trials: int = 36, seed: int = 0, trials_table: str = "trials",
                    drop_columns: tuple[str, ...] = ()) -> Path:
    """A recording of len(unit_ids) units over `n_trials` 1 s trials of 3 conditions
    (``stim`` = 0, 1, 2; each unit's rate depends on it and on time), written with pynwb.

    `trials_table`: "trials", or another name (e.g. "epochs", "blocks") for a file with no
    trials table whose trials sit in that interval table. `drop_columns`: trials columns to
    leave out (e.g. "block").
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="test recording", identifier=f"{session_id}-{seed}",
                  session_start_time=datetime(2021, 3, 1, tzinfo=timezone.utc),
                  session_id=session_id,
                  subject=Subject(subject_id=subject_id, species="Mus musculus", sex="U",
                                  age="P90D"))
    device = nwb.create_device(name="probe")
    groups = {}
    for area in dict.fromkeys(locations):
        groups[area] = nwb.create_electrode_group(name=f"shank {area}", description="shank",
                                                  location=area, device=device)
    for area in locations:
        nwb.add_electrode(group=groups[area], location=area)
    start = 1.0 + 1.5 * np.arange(n_trials)
    stim = np.arange(n_trials) % 3
    trials = pd.DataFrame({"start_time": start, "stop_time": start + 1.0,
                           "stim": stim, "cue_time": start + 0.2,
                           "block": np.where(np.arange(n_trials) < n_trials // 2, 1, 2)})
    trials = trials.drop(columns=list(drop_columns))
    for u, unit in enumerate(unit_ids):
        spikes = []
        for k in range(n_trials):
            rate = 10 + 15 * (1 + np.sin(2 * np.pi * (np.arange(50) / 50 + stim[k] / 3 + u / 7)))
            counts = rng.poisson(rate * 0.02)
            spikes.append(start[k] + 0.02 * (np.repeat(np.arange(50), counts)
                                             + rng.random(counts.sum())))
        nwb.add_unit(id=int(unit), spike_times=np.sort(np.concatenate(spikes)),
                     electrodes=[u])
    table = nwb.trials if trials_table == "trials" else None
    if trials_table != "trials":
        table = TimeIntervals(name=trials_table, description=f"trials kept as {trials_table}")
        nwb.add_time_intervals(table)
    for column in trials.columns:
        if column not in ("start_time", "stop_time"):
            if trials_table == "trials":
                nwb.add_trial_column(name=column, description=column)
            else:
                table.add_column(name=column, description=column)
    for row in trials.itertuples(index=False):
        values = row._asdict()
        if trials_table == "trials":
            nwb.add_trial(**values)
        else:
            table.add_interval(**values)
    with NWBHDF5IO(os.fspath(path), "w") as io:
        io.write(nwb)
    return path
