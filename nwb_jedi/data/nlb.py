"""The Neural Latents Benchmark's MC_Maze family: its settings, and the targets of its metrics
built from a `Session` (which has the 1 ms spike times and raw behavior the benchmark starts
from).

Everything here follows ``nlb_tools`` (``make_tensors.PARAMS``, ``NWBDataset``,
``make_eval_target_tensors``) so that the numbers the package reports under NLB's names are the
benchmark's:

- **Bins** sit on a session-wide grid: ``nlb_tools`` bins 1 ms spike counts from time 0 and
  sums them into bins whose left edges are multiples of the bin width, and a trial's window is
  the bins whose left edge lies in ``[event + start, event + stop)``. `nlb_window_starts` gives
  those windows' first edges (the event time plus the window start, rounded *up* to the grid).
- **PSTH targets** (`smoothed_psth`): every trial's 1 ms spike counts smoothed with NLB's
  Gaussian window (``scipy.signal.windows.gaussian(int(6 * sd), sd)``, normalized, convolved in
  ``"same"`` mode: 70 ms for MC_Maze, 50 ms for MC_Maze Large/Medium/Small), summed into the
  bins and averaged over all trials of each condition. ``nlb_tools`` smooths the whole
  session at once; smoothing each window with a margin of one kernel length on both sides
  gives the same numbers, without holding the session at 1 ms in memory.
- **Behavior** (`nlb_behavior`): ``nlb_tools`` puts the 1 kHz series on the session's 1 ms
  grid, fills gaps linearly, low-pass filters and decimates it to the bins
  (``scipy.signal.decimate(..., n=500, ftype="fir")``) and reads it `lag` seconds after the
  rates (100 ms for MC_Maze, 120 ms for the scaled sets). `lagged_behavior` is the package's
  simpler version for any series (the mean of the samples in each lagged bin).

No file is read here: `nwb_jedi.io.read.read_session` gives the Session.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nwb_jedi.data.binning import bin_spikes, resample_behavior
from nwb_jedi.data.dataset import TrialDataset, condition_means
from nwb_jedi.data.session import BehaviorSeries, Session
from nwb_jedi.errors import UserError

RESOLUTION = 0.001  # s; NLB bins spikes at 1 ms before anything else


@dataclass(frozen=True)
class NLBDataset:
    """One dataset of the MC_Maze family, as ``nlb_tools.make_tensors.PARAMS`` defines it.

    Attributes
    ----------
    name : str
        NLB's name (``mc_maze``, ``mc_maze_large``, ...): the submission's group name (with
        ``_20`` appended for 20 ms bins).
    dandiset : str
        Its DANDI archive identifier.
    session : str
        The ``ses-`` part of its file names.
    lag : float
        Seconds by which the decoded behavior follows the rates.
    psth_sd : float
        Standard deviation (s) of the Gaussian smoothing 1 ms spikes for the PSTH targets.
    smoothing_sd, smoothing_alpha : float
        NLB's spike smoothing baseline: kernel sd (s) and the Poisson GLM's L2 penalty
        (``examples/baselines/smoothing/run_smoothing.py``).
    align, window, forward, condition_by, behavior
        Alignment event, window around it (s), forward-prediction length (s), the trial
        columns that define a condition, and the decoded behavior series.
    """

    name: str
    dandiset: str
    session: str
    lag: float
    psth_sd: float
    smoothing_sd: float
    smoothing_alpha: float
    align: str = "move_onset_time"
    window: tuple[float, float] = (-0.25, 0.45)
    forward: float = 0.2
    condition_by: tuple[str, ...] = ("trial_type", "trial_version")
    behavior: str = "hand_vel"


NLB_DATASETS: dict[str, NLBDataset] = {
    "mc_maze": NLBDataset("mc_maze", "000128", "full", lag=0.1, psth_sd=0.07,
                          smoothing_sd=0.05, smoothing_alpha=0.01),
    "mc_maze_large": NLBDataset("mc_maze_large", "000138", "large", lag=0.12, psth_sd=0.05,
                                smoothing_sd=0.04, smoothing_alpha=0.1),
    "mc_maze_medium": NLBDataset("mc_maze_medium", "000139", "medium", lag=0.12, psth_sd=0.05,
                                 smoothing_sd=0.06, smoothing_alpha=0.1),
    "mc_maze_small": NLBDataset("mc_maze_small", "000140", "small", lag=0.12, psth_sd=0.05,
                                smoothing_sd=0.06, smoothing_alpha=0.1),
}

#: Bin widths the benchmark scores, and the suffix of the submission's group name for each.
NLB_BIN_SUFFIX = {0.005: "", 0.02: "_20"}


def nlb_dataset(name: str) -> NLBDataset:
    """The MC_Maze-family dataset called `name` (UserError naming the choices otherwise)."""
    key = str(name).lower().replace("-", "_")
    if key not in NLB_DATASETS:
        raise UserError(f"unknown NLB dataset {name!r}; choose one of {', '.join(NLB_DATASETS)}")
    return NLB_DATASETS[key]


def identify(source: Mapping[str, Any] | None) -> NLBDataset | None:
    """Which MC_Maze-family dataset a session comes from, or None when it cannot be told.

    From the ``ses-`` part of its file name (``ses-full``, ``ses-large``, ...) or else its
    DANDI identifier (`Session.source` holds both).
    """
    source = source or {}
    names = " ".join(str(source.get(k) or "") for k in ("asset_path", "path", "url"))
    found = re.search(r"ses-(full|large|medium|small)(?:[_./]|$)", names)
    if found:
        return next(d for d in NLB_DATASETS.values() if d.session == found.group(1))
    dandiset = str(source.get("dandiset") or "")
    return next((d for d in NLB_DATASETS.values() if d.dandiset == dandiset), None)


def submission_group(dataset: NLBDataset, bin_size: float) -> str:
    """The submission's group name: the dataset's, with ``_20`` for 20 ms bins."""
    for width, suffix in NLB_BIN_SUFFIX.items():
        if math.isclose(bin_size, width, rel_tol=1e-9):
            return dataset.name + suffix
    raise UserError(f"the benchmark scores 5 ms or 20 ms bins, not {bin_size * 1e3:g} ms; fit "
                    f"with --bin-ms 5 or --bin-ms 20")


# ---------------------------------------------------------------------------------- bins
def nlb_window_starts(events: np.ndarray, start: float, bin_size: float) -> np.ndarray:
    """First bin edge of each NLB window: ``event + start`` rounded up to the session-wide grid
    of `bin_size` (bins whose left edge is a multiple of the bin width, from time 0)."""
    edges = (np.asarray(events, dtype=np.float64) + start) / bin_size
    # 1e-6 of a bin: times on the 1 ms grid are represented within far less than that.
    return np.ceil(edges - 1e-6) * bin_size


def nlb_align_times(events: np.ndarray, window: tuple[float, float],
                    bin_size: float) -> np.ndarray:
    """Event times moved later by less than one bin so that ``event + window[0]`` falls on the
    session-wide bin grid: with them as alignment, a mapper bins exactly NLB's windows."""
    return nlb_window_starts(events, window[0], bin_size) - window[0]


def _window_starts(ds: TrialDataset) -> np.ndarray:
    """Absolute time of each trial's first bin edge."""
    return np.asarray(ds.align_time, dtype=np.float64) + ds.time[0] - ds.bin_size / 2


def _ms(value: float, what: str) -> int:
    ms = int(round(value / RESOLUTION))
    if abs(ms * RESOLUTION - value) > 1e-9:
        raise UserError(f"{what} ({value * 1e3:g} ms) is not a whole number of milliseconds; "
                        f"NLB's targets start from 1 ms bins")
    return ms


# ---------------------------------------------------------------------------------- PSTHs
def nlb_kernel(sd: float) -> np.ndarray:
    """NLB's smoothing window for 1 ms data: ``gaussian(int(6 * sd_ms), sd_ms)``, normalized."""
    from scipy.signal import windows

    sd_ms = sd / RESOLUTION
    window = windows.gaussian(int(6 * sd_ms), sd_ms, sym=True)
    return window / window.sum()


def _unit_rows(session: Session, unit_id: np.ndarray) -> np.ndarray:
    """Rows of the session's units for the dataset's unit ids."""
    rows = {str(u): i for i, u in enumerate(np.asarray(session.unit_ids))}
    missing = [str(u) for u in np.asarray(unit_id) if str(u) not in rows]
    if missing:
        raise UserError(f"{len(missing)} unit(s) of the dataset are not in the session (e.g. "
                        f"{missing[0]}); build the targets from the session the dataset came "
                        f"from")
    return np.array([rows[str(u)] for u in np.asarray(unit_id)])


def smoothed_psth(session: Session, ds: TrialDataset, sd: float, *, chunk: int = 64,
                  events: np.ndarray | None = None) -> np.ndarray:
    """NLB's PSTH targets for the conditions of `ds`, in Hz, shape (C, T, N).

    Each trial's spikes are counted in 1 ms bins, smoothed with NLB's Gaussian window
    (`nlb_kernel`), summed into the dataset's bins and averaged over every trial of `ds` of
    each condition (all splits: NLB's PSTHs average all trials of a condition). Rows of
    conditions without trials are NaN. Attach the result as ``ds.nlb_psth`` to have scores
    report NLB's ``psth_r2_nlb``.

    Parameters
    ----------
    session : Session
        The session `ds` was built from (its 1 ms spike times).
    ds : TrialDataset
        The trials and bins (a whole number of milliseconds, starting on the 1 ms grid).
    sd : float
        Kernel standard deviation in seconds (`NLBDataset.psth_sd`: 0.07 for MC_Maze, 0.05 for
        its scaled versions).
    chunk : int
        Trials smoothed at a time (bounds the memory: chunk x window ms x neurons floats).
    events : array (K,), optional
        Reproduce ``nlb_tools``' grouping of bins: it averages the bins of a condition's trials
        by their time from each trial's event *rounded up to the bin grid*, and keeps the
        first T of those times. With 5 ms bins this is the bins' position in the window; with
        20 ms bins and MC_Maze's window (250 ms before the event, not a whole number of bins)
        it mixes neighbouring bins of trials whose events fall differently on the grid. Give
        the trials' event times (``move_onset_time``) to reproduce the benchmark's targets.
    """
    kernel = nlb_kernel(sd)
    width = _ms(ds.bin_size, "the bin size")
    margin = len(kernel)  # beyond the kernel's reach on both sides: as smoothing the session
    n_ms = ds.n_bins * width
    starts = _window_starts(ds)
    off_grid = np.abs(np.round(starts / RESOLUTION) * RESOLUTION - starts) > 1e-9
    if off_grid.any():
        _ms(float(starts[off_grid][0]), "a window start")
    rows = _unit_rows(session, ds.unit_id)
    spikes = [session.spike_times[r] for r in rows]
    binned = np.zeros(ds.counts.shape, dtype=np.float64)
    for lo in range(0, ds.n_trials, chunk):
        part = slice(lo, lo + chunk)
        counts = bin_spikes(spikes, starts[part] - margin * RESOLUTION, n_ms + 2 * margin,
                            RESOLUTION)
        smoothed = _convolve_same(counts.astype(np.float64), kernel)[:, margin:margin + n_ms]
        binned[part] = smoothed.reshape(len(smoothed), ds.n_bins, width, -1).sum(axis=2)
    if events is None:
        return condition_means(binned / ds.bin_size, ds.condition, ds.n_conditions)
    # Each bin's time from the event rounded up to the grid, in whole milliseconds.
    edges = starts[:, None] + np.arange(ds.n_bins)[None, :] * ds.bin_size
    offsets = np.round((edges - nlb_window_starts(events, 0.0, ds.bin_size)[:, None])
                       / RESOLUTION).astype(np.int64)
    return _grouped_psth(binned / ds.bin_size, offsets, ds.condition, ds.n_conditions)


def _grouped_psth(values: np.ndarray, offsets: np.ndarray, condition: np.ndarray,
                  n_conditions: int) -> np.ndarray:
    """Per condition: the mean of the bins of equal offset, the first T offsets in order."""
    n_bins = values.shape[1]
    out = np.full((n_conditions, n_bins, values.shape[2]), np.nan)
    for c in np.unique(condition):
        trials = condition == c
        keys = offsets[trials].ravel()
        flat = values[trials].reshape(-1, values.shape[2])
        unique, index = np.unique(keys, return_inverse=True)
        sums = np.zeros((len(unique), flat.shape[1]))
        np.add.at(sums, index, flat)
        means = sums / np.bincount(index)[:, None]
        out[c, : min(n_bins, len(unique))] = means[:n_bins]
    return out


def _convolve_same(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``scipy.signal.convolve(x, kernel, "same")`` along axis 1 of (K, T, N) (even kernels
    keep scipy's alignment)."""
    from scipy.signal import fftconvolve

    full = fftconvolve(values, kernel[None, :, None], mode="full", axes=1)
    first = (len(kernel) - 1) // 2
    return full[:, first:first + values.shape[1]]


def condition_trial_indices(ds: TrialDataset, scored: np.ndarray) -> list[np.ndarray]:
    """For each row of ``ds.conditions``: indices, among the `scored` trials (in order), of
    that condition's trials (NLB's ``eval_cond_idx``)."""
    scored = np.asarray(scored, dtype=bool)
    condition = ds.condition[scored]
    return [np.flatnonzero(condition == c) for c in range(ds.n_conditions)]


# ---------------------------------------------------------------------------------- behavior
def lagged_behavior(series: BehaviorSeries, ds: TrialDataset, lag: float = 0.0) -> np.ndarray:
    """A behavior series in the dataset's bins, `lag` seconds later, shape (K, T, D).

    Each bin gets the mean of the series' samples in ``[edge + lag, edge + lag + bin)``
    (`nwb_jedi.data.binning.resample_behavior`); NaN outside the series. This is the package's
    resampling; `nlb_behavior` is the benchmark's (anti-aliasing filter, then decimation).
    """
    return resample_behavior(series.timestamps, series.data, _window_starts(ds) + lag,
                             ds.n_bins, ds.bin_size)


def nlb_behavior(series: BehaviorSeries, window_starts: np.ndarray, n_bins: int,
                 bin_size: float, lag: float, end: float | None = None) -> np.ndarray:
    """A behavior series as ``nlb_tools`` makes its decoding targets, shape (K, n_bins, D).

    The samples are put on the session's 1 ms grid from time 0 to `end` (exclusive; NLB's is
    the end of the units' observation intervals, see `session_end`; default: just after the
    last sample), gaps filled by linear interpolation (constant beyond the ends), the series is
    decimated to `bin_size` with ``scipy.signal.decimate(x, q, n=500, ftype="fir")`` (the
    bins' left edges; NaN where the grid had no sample), and each window reads the bins from
    ``start + lag`` on.

    Raises
    ------
    UserError
        Sample times off the 1 ms grid (NLB drops such series).
    """
    from scipy.signal import decimate

    q = _ms(bin_size, "the bin size")
    ticks = np.round(np.asarray(series.timestamps) / RESOLUTION)
    if np.any(np.abs(ticks * RESOLUTION - series.timestamps) > 1e-7):
        raise UserError(f"behavior series {series.name!r} is not sampled on a 1 ms grid, so "
                        f"NLB's targets cannot be made from it")
    last = int(round(end / RESOLUTION)) if end is not None else int(ticks.max()) + 1
    grid = np.full((last, series.data.shape[1]), np.nan)
    inside = (ticks >= 0) & (ticks < last)
    grid[ticks[inside].astype(np.int64)] = series.data[inside]
    missing = np.isnan(grid)
    filled = grid.copy()
    positions = np.arange(last)
    for d in range(grid.shape[1]):
        ok = ~missing[:, d]
        if ok.any() and not ok.all():
            filled[:, d] = np.interp(positions, positions[ok], grid[ok, d])
    decimated = decimate(filled, q, n=500, ftype="fir", axis=0) if q > 1 else filled
    decimated[missing[::q]] = np.nan
    first = np.round((np.asarray(window_starts) + lag) / bin_size).astype(np.int64)
    index = first[:, None] + np.arange(n_bins)[None, :]
    out = np.full((len(first), n_bins, grid.shape[1]), np.nan)
    ok = (index >= 0) & (index < len(decimated))
    out[ok] = decimated[index[ok]]
    return out


def session_end(session: Session) -> float:
    """End of the session's 1 ms grid as ``nlb_tools`` lays it out: the end of the units'
    observation intervals, or of the last trial when that is later (or when there are none)."""
    ends = [float(np.max(o[:, 1])) for o in (session.obs_intervals or []) if len(o)]
    end = max(ends) if ends else -np.inf
    if len(session.trials) and "stop_time" in session.trials:
        end = max(end, float(np.nanmax(session.trials["stop_time"].to_numpy(dtype=float))))
    if not np.isfinite(end):
        end = session.recording_span()[1]
    return float(end)


# ---------------------------------------------------------------------------------- targets
@dataclass
class NLBTargets:
    """NLB's evaluation data of one dataset (``make_eval_target_tensors``'s inner dict).

    Counts per bin; ``eval_cond_idx`` lists, per PSTH row, the evaluation trials of that
    condition. `as_dict` gives the mapping `nwb_jedi.metrics.nlb_evaluate` reads.
    """

    eval_spikes_heldout: np.ndarray
    train_behavior: np.ndarray
    eval_behavior: np.ndarray
    eval_spikes_heldin_forward: np.ndarray | None = None
    eval_spikes_heldout_forward: np.ndarray | None = None
    psth: np.ndarray | None = None
    eval_cond_idx: Sequence[np.ndarray] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class SnappedAlign:
    """A `ConditionMapper` ``align`` callable: an event column moved onto NLB's bin grid
    (`nlb_align_times`), so that the mapper bins exactly the benchmark's windows."""

    def __init__(self, column: str, window: tuple[float, float], bin_size: float):
        self.column, self.window, self.bin_size = column, tuple(window), float(bin_size)
        self.__name__ = f"{column} on NLB's {bin_size * 1e3:g} ms grid"

    def __call__(self, trials) -> np.ndarray:
        if self.column not in trials.columns:
            raise UserError(f"the trials table has no {self.column!r} column, so this is not an "
                            f"MC_Maze-family file")
        return nlb_align_times(trials[self.column].to_numpy(dtype=np.float64), self.window,
                               self.bin_size)


def nlb_mapper_settings(dataset: NLBDataset, bin_size: float) -> dict[str, Any]:
    """`ConditionMapper` settings of the benchmark's trials: its conditions, event and window,
    its split column's 'train' and 'val' trials (no other filter), every neuron."""
    return {"by": list(dataset.condition_by), "align": dataset.align, "window": dataset.window,
            "bin_size": bin_size, "split": "split", "trial_filter": "split in ['train', 'val']",
            "exclude_heldout": False}


@dataclass
class NLBTrials:
    """The benchmark's trials of a session, binned on its windows.

    Attributes
    ----------
    window : TrialDataset
        NLB's 'train' and 'val' trials (split as in the file), every neuron, on NLB's windows.
    extended : TrialDataset
        The same trials with the window extended by the forward-prediction length.
    heldout : bool ndarray (N,)
        NLB's held-out neurons (the units' ``heldout`` column).
    """

    window: TrialDataset
    extended: TrialDataset
    heldout: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """NLB's training trials (split 'train')."""
        return self.window.split == "train"

    @property
    def evaluation(self) -> np.ndarray:
        """NLB's evaluation trials of a train file (split 'val')."""
        return self.window.split == "val"


def nlb_trials(session: Session, dataset: NLBDataset, bin_size: float, *,
               like: TrialDataset | None = None) -> NLBTrials:
    """Bin the benchmark's trials of `session` on its windows (see `NLBTrials`).

    Parameters
    ----------
    session : Session
    dataset : NLBDataset
    bin_size : float
        5 or 20 ms (`submission_group` refuses others).
    like : TrialDataset, optional
        A dataset of the same trials (e.g. the one a model was fitted on): refuse to go on
        when NLB's windows keep other trials (a window moved onto the grid or extended past
        the recording).
    """
    from nwb_jedi.data.conditions import ConditionMapper

    submission_group(dataset, bin_size)
    settings = nlb_mapper_settings(dataset, bin_size)
    settings["align"] = SnappedAlign(dataset.align, dataset.window, bin_size)
    built = []
    for stop in (dataset.window[1], dataset.window[1] + dataset.forward):
        ds = ConditionMapper(**{**settings, "window": (dataset.window[0], stop)},
                             behavior=False, verbose=False).build(session)
        if like is not None and not np.array_equal(np.asarray(ds.trial_id).astype(str),
                                                   np.asarray(like.trial_id).astype(str)):
            raise UserError("NLB's windows (moved onto its bin grid, and extended by the "
                            "forward-prediction bins) keep other trials than the fitted "
                            "dataset; the benchmark needs every 'train' and 'val' trial")
        built.append(ds)
    window, extended = built
    if not np.array_equal(window.trial_id, extended.trial_id):
        raise UserError("extending NLB's windows by the forward-prediction bins drops trials "
                        "at the end of the recording; the benchmark needs every trial")
    if "heldout" not in window.units.columns:
        raise UserError("the units table has no 'heldout' column, so NLB's held-out neurons "
                        "are unknown; this is not a benchmark file")
    heldout = window.units["heldout"].fillna(False).to_numpy(dtype=bool)
    if not heldout.any() or heldout.all():
        raise UserError("the units' 'heldout' column marks no held-out (or no held-in) neuron, "
                        "so this is not an NLB benchmark file; fit it without --nlb")
    if not np.any(window.split == "val"):
        raise UserError("the file has no NLB 'val' trials to evaluate; a benchmark train file "
                        "has a split column with 'train' and 'val' trials")
    return NLBTrials(window, extended, heldout)


def nlb_targets(session: Session, dataset: NLBDataset, trials: NLBTrials) -> NLBTargets:
    """NLB's evaluation data (``make_eval_target_tensors`` of a train file: 'train' trials to
    train the decoder, 'val' trials to evaluate), equal to ``nlb_tools``' own.

    Parameters
    ----------
    session : Session
        The recording (1 ms spikes; the decoded behavior series, ``hand_vel``).
    dataset : NLBDataset
        Which benchmark dataset (lag, PSTH kernel, behavior series).
    trials : NLBTrials
        From `nlb_trials`: every trial of the window dataset is a PSTH trial.
    """
    if dataset.behavior not in session.behavior:
        raise UserError(f"the session has no behavior series {dataset.behavior!r} (it has "
                        f"{', '.join(session.behavior) or 'none'}); read it with "
                        f"read_session(..., behavior=[{dataset.behavior!r}])")
    ds, heldout = trials.window, trials.heldout
    train, evaluated = trials.train, trials.evaluation
    behavior = nlb_behavior(session.behavior[dataset.behavior], _window_starts(ds), ds.n_bins,
                            ds.bin_size, dataset.lag, end=session_end(session))
    counts = ds.counts.astype(np.float64)
    # NLB's PSTHs list the held-in neurons, then the held-out ones (as submissions do).
    order = np.r_[np.flatnonzero(~heldout), np.flatnonzero(heldout)]
    psth = smoothed_psth(session, ds, dataset.psth_sd,
                         events=ds.trials[dataset.align].to_numpy(dtype=np.float64))
    extra = trials.extended.counts[evaluated][:, ds.n_bins:].astype(np.float64)
    return NLBTargets(eval_spikes_heldout=counts[evaluated][..., heldout],
                      train_behavior=behavior[train], eval_behavior=behavior[evaluated],
                      psth=psth[:, :, order] * ds.bin_size,
                      eval_cond_idx=condition_trial_indices(ds, evaluated),
                      eval_spikes_heldin_forward=extra[..., ~heldout],
                      eval_spikes_heldout_forward=extra[..., heldout])


# ---------------------------------------------------------------------------------- baselines
def smoothing_kernel(sd: float, bin_size: float) -> np.ndarray:
    """The Gaussian window of NLB's spike smoothing baseline for binned counts:
    ``gaussian(int(6 * sd / bin), int(sd / bin))`` in whole milliseconds, normalized
    (``examples/baselines/smoothing/run_smoothing.py``; note the standard deviation truncated
    to whole bins)."""
    from scipy.signal import windows

    sd_ms, bin_ms = round(sd * 1e3, 6), round(bin_size * 1e3, 6)
    std = int(sd_ms / bin_ms)
    if std < 1:
        raise UserError(f"a smoothing sd of {sd * 1e3:g} ms is less than one "
                        f"{bin_size * 1e3:g} ms bin; choose at least the bin width")
    window = windows.gaussian(int(6 * sd_ms / bin_ms), std, sym=True)
    return window / window.sum()


def smooth_binned(counts: np.ndarray, sd: float, bin_size: float) -> np.ndarray:
    """Binned counts (K, T, N) smoothed along time as NLB's smoothing baseline does: each
    trial on its own, zero beyond its window (``np.convolve(x, window, "same")``)."""
    kernel = smoothing_kernel(sd, bin_size)
    return _convolve_same(np.asarray(counts, dtype=np.float64), kernel)
