"""Write a binned synthetic dataset (`nwb_jedi.synthetic.make_dataset`) as an NWB file in the
NLB MC_Maze layout, so the same commands that fit public data fit data with known ground truth.

Layout of the written file
--------------------------
Trials are laid end to end on a 1 ms grid, separated by `gap` seconds. Trial ``k`` covers the
synthetic trial's bins exactly: ``[start_time, start_time + duration)``. MC_Maze trials table
columns:

- ``trial_type``: the task name (``sine``, ``memorypro``, ``dm``), ``trial_version``: the
  index of the condition within its task, ``condition_value``: the condition's value (sine
  frequency in Hz, memory-pro direction in degrees, decision coherence);
- ``move_onset_time``: ``start_time + lead`` (``lead`` = 0.25 s, the start of the ``mc_maze``
  preset's window), so ``--preset mc_maze --window -0.25,<duration - 0.25>`` bins every trial
  exactly as the synthetic dataset did; ``go_cue_time`` and ``target_on_time`` sit at the trial
  start, ``success`` is True, ``split`` is the synthetic dataset's split.

Spikes: a bin's count ``c`` becomes ``c`` spikes on distinct 1 ms slots of the bin, drawn
uniformly (one spike per unit and millisecond, as in the NLB files), so binning the file at
the dataset's bin size gives back exactly its counts. No unit is held out.

Behavior: ``processing/behavior/teacher_output`` is the teacher's task output (its readout,
what the task trained it to produce; one column per output channel, named in the series'
``description``), one sample per bin at the bin's centre, the mean of the teacher's steps in the
bin (``ground_truth["trial_outputs"]``). Binning the file at the dataset's bin size gives it
back exactly, so decoding it (``nwb-jedi fit ... --decode teacher_output``) has a ground truth.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.io.layouts import write_mc_maze_layout

LEAD_S = 0.25  # move_onset_time - start_time: the mc_maze preset's window start
OUTPUT_SERIES = "teacher_output"  # the behavior series holding the teacher's task output
RESOLUTION_S = 0.001  # spike times on a 1 ms grid, as in the NLB files

_CHUNK_CELLS = 1 << 18  # (trial, bin, unit) cells per vectorized draw, bounds the memory


def counts_to_spike_times(counts: np.ndarray, starts: np.ndarray, bin_size: float,
                          rng: np.random.Generator) -> list[np.ndarray]:
    """Spike times (s) per unit whose binning reproduces `counts` exactly.

    Parameters
    ----------
    counts : ndarray (K, T, N)
        Spike counts per trial, bin and unit.
    starts : ndarray (K,)
        Start time of each trial's first bin, on the 1 ms grid.
    bin_size : float
        Bin width in seconds, a whole number of milliseconds.
    rng : numpy Generator
        Draws the millisecond slot of each spike within its bin.

    Returns
    -------
    list of N sorted float64 arrays
    """
    slots = int(round(bin_size / RESOLUTION_S))
    if slots < 1 or abs(slots * RESOLUTION_S - bin_size) > 1e-9:
        raise UserError(f"bin size {bin_size:g} s is not a whole number of milliseconds; "
                        f"choose e.g. 0.01 or 0.02 s")
    counts = np.asarray(counts)
    if counts.max(initial=0) > slots:
        raise UserError(f"a bin holds {int(counts.max())} spikes of one unit but only {slots} "
                        f"1 ms slots; lower the rates or use wider bins")
    n_trials, n_bins, n_units = counts.shape
    k, j, u = np.nonzero(counts)
    c = counts[k, j, u].astype(np.int64)
    times, units = [], []
    for lo in range(0, len(c), _CHUNK_CELLS):
        sl = slice(lo, lo + _CHUNK_CELLS)
        # The c smallest of `slots` random keys pick c distinct slots, uniformly.
        order = np.argsort(rng.random((len(c[sl]), slots)), axis=1)
        take = np.arange(slots)[None, :] < c[sl, None]
        cell = np.repeat(np.arange(len(c[sl])), c[sl])
        slot = order[take]
        ms = (np.round(starts[k[sl]] / RESOLUTION_S).astype(np.int64) + j[sl] * slots)[cell] + slot
        times.append(ms * RESOLUTION_S)
        units.append(u[sl][cell])
    times_all = np.concatenate(times) if times else np.zeros(0)
    units_all = np.concatenate(units) if units else np.zeros(0, dtype=np.int64)
    return [np.sort(np.round(times_all[units_all == n], 3)) for n in range(n_units)]


def synthetic_trials_table(ds: TrialDataset, gap: float = 0.5, first_start: float = 1.0
                           ) -> pd.DataFrame:
    """The MC_Maze-style trials table of a synthetic dataset (see the module docstring)."""
    duration = ds.n_bins * ds.bin_size
    step = round(duration + gap, 3)
    starts = np.round(first_start + step * np.arange(ds.n_trials), 3)
    cond = ds.conditions
    task_col = "task" if "task" in cond.columns else cond.columns[0]
    value_col = "value" if "value" in cond.columns else None
    task = cond[task_col].astype(str).to_numpy()
    version = np.zeros(len(cond), dtype=np.int64)
    for name in np.unique(task):  # condition index within its task
        version[task == name] = np.arange(np.sum(task == name))
    rows = ds.condition
    table = pd.DataFrame({
        "start_time": starts,
        "stop_time": np.round(starts + duration, 3),
        "move_onset_time": np.round(starts + LEAD_S, 3),
        "go_cue_time": starts,
        "target_on_time": starts,
        "trial_type": task[rows],
        "trial_version": version[rows],
    })
    if value_col is not None:
        table["condition_value"] = cond[value_col].to_numpy(dtype=float)[rows]
    table["success"] = np.ones(ds.n_trials, dtype=bool)
    if ds.split is not None:
        table["split"] = np.asarray(ds.split).astype(str)
    return table


def write_synthetic_mc_maze(path: str | os.PathLike, ds: TrialDataset, *, seed: int = 0,
                            gap: float = 0.5, description: str | None = None,
                            experimenter: list[str] | str | None = None,
                            overwrite: bool = True) -> str:
    """Write a synthetic `TrialDataset` as an NWB file in the NLB MC_Maze layout.

    Parameters
    ----------
    path : str or path
        Output file (written to a temporary name, then renamed).
    ds : TrialDataset
        From `nwb_jedi.synthetic.make_dataset` (conditions with ``task`` and ``value``
        columns); any dataset with integer counts works.
    seed : int
        Seeds the placement of spikes within their bins.
    gap : float
        Seconds between trials.
    description : str, optional
        Session description (default: what was simulated).
    experimenter : list of str, optional
        Who ran the simulation, as "Last, First" (default: none).

    overwrite : bool
        Replace an existing file; with False a file at `path` (even one that another process
        wrote meanwhile) is never replaced (FileExistsError).

    The file says it is simulated (session description, subject, keywords; see
    `nwb_jedi.io.layouts.write_mc_maze_layout`) and passes ``dandi validate``.

    Returns
    -------
    str
        The path written.
    """
    if ds.n_bins * ds.bin_size <= LEAD_S:
        raise UserError(f"trials of {ds.n_bins * ds.bin_size:g} s are too short for the "
                        f"MC_Maze layout (move onset at {LEAD_S} s); simulate longer trials")
    trials = synthetic_trials_table(ds, gap=gap)
    rng = np.random.default_rng(seed)
    spikes = counts_to_spike_times(ds.counts, trials["start_time"].to_numpy(), ds.bin_size, rng)
    meta = ds.metadata or {}
    description = description or (
        f"Simulated ground-truth spiking data from a teacher RNN trained on "
        f"{', '.join(meta.get('tasks', []))} (nwb_jedi.synthetic.make_dataset, seed "
        f"{meta.get('seed')}, teacher seed {meta.get('teacher_seed')}), in the NLB MC_Maze "
        f"layout: trial_type = task, trial_version = condition within the task, "
        f"move_onset_time = trial start + {LEAD_S} s.")
    return write_mc_maze_layout(path, spikes, trials, behavior=None,
                                heldout=np.zeros(ds.n_units, dtype=bool),
                                locations=["teacher RNN"] * ds.n_units,
                                session_id="synthetic-ground-truth", description=description,
                                timeseries=_teacher_output(ds, trials),
                                experimenter=experimenter, overwrite=overwrite)


def _teacher_output(ds: TrialDataset, trials: pd.DataFrame) -> dict[str, tuple] | None:
    """The teacher's task output as one behavior series (see the module docstring)."""
    truth = ds.ground_truth or {}
    outputs = truth.get("trial_outputs")
    if outputs is None:
        return None
    outputs = np.asarray(outputs, dtype=np.float64)
    centres = trials["start_time"].to_numpy()[:, None] + (np.arange(ds.n_bins) + 0.5) * \
        ds.bin_size
    names = [str(n) for n in np.asarray(truth.get("output_names", []))]
    text = (f"The teacher RNN's task output (columns: {', '.join(names) or 'outputs'}; "
            f"arbitrary units), one sample per {ds.bin_size * 1e3:g} ms bin at its centre: the "
            f"mean of the teacher's steps in the bin, the ground truth for decoding.")
    return {OUTPUT_SERIES: (np.round(centres.ravel(), 6),
                            outputs.reshape(-1, outputs.shape[-1]), "a.u.", text)}
