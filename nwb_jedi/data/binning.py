"""Exact, vectorized binning of spike times and resampling of behavior to the same bins.

Bins and the floating-point edge problem
----------------------------------------
A trial's window starts at ``t0`` and has ``n_bins`` half-open bins of width ``bin_size``: bin
``j`` is ``[t0 + j*bin_size, t0 + (j+1)*bin_size)``, so a spike at ``t`` lands in bin
``floor((t - t0) / bin_size)``. In many NWB files (the NLB sets among them) spike and event
times sit on a 1 ms grid, so many spikes lie exactly on a bin edge. In float64, ``t0 + j*bin``
and ``(t - t0) / bin`` are rounded, and a spike meant to sit *on* an edge can come out a few
ulps below it and fall into the previous bin. We guard the floor: every edge is treated as
``EDGE_TOLERANCE`` (1 ns) lower than its float value, so a time within 1 ns below an edge counts
as on the edge. 1 ns is ~10^4 times the float64 rounding error of times up to 10^5 s, and ~10^4
times finer than any spike-time resolution in use (30 kHz sampling = 33 us), so the guard
only ever repairs rounding and never moves a real spike.

Behavior resampling
-------------------
`resample_behavior` gives each bin the mean of the samples whose timestamps fall in the bin
(same half-open bins, same guard). A bin that holds no sample (bins narrower than the sampling
period, or gaps) gets the linear interpolation of the series at the bin center; a bin outside
the series' time range gets NaN. NaN samples are ignored in the means.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nwb_jedi._limits import array_limit, format_bytes
from nwb_jedi.errors import DataWarning, UserError

if TYPE_CHECKING:
    from nwb_jedi.data.session import Session

EDGE_TOLERANCE = 1e-9  # seconds; see the module docstring

# Above this many output cells the counts are accumulated with a sort instead of bincount,
# so memory stays proportional to the number of spikes, not to K*T*N int64 cells.
_BINCOUNT_MAX_CELLS = 1 << 24


def n_bins_for(window: tuple[float, float], bin_size: float) -> int:
    """Number of bins of `bin_size` in `window`; ValueError unless it is a whole number."""
    start, stop = float(window[0]), float(window[1])
    if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
        raise ValueError(f"window must be (start, stop) seconds with stop > start, got "
                         f"{window}")
    if not np.isfinite(bin_size) or bin_size <= 0:
        raise ValueError(f"bin_size must be a positive number of seconds, got {bin_size}")
    n = (stop - start) / bin_size
    n_round = int(round(n))
    if n_round < 1 or abs(n - n_round) > 1e-6:
        raise ValueError(f"the window {start:g}..{stop:g} s is not a whole number of "
                         f"{bin_size * 1e3:g} ms bins ({n:.4g}); change the window or the bin "
                         f"size")
    return n_round


def bin_spikes(spike_times: Sequence[np.ndarray], window_starts: np.ndarray, n_bins: int,
               bin_size: float, tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """Count spikes into K trial windows of `n_bins` bins -> (K, n_bins, N) float32.

    Parameters
    ----------
    spike_times : sequence of N sorted float64 arrays
        Spike times of each unit, seconds.
    window_starts : ndarray, shape (K,)
        Absolute time of the first edge of each trial's window (windows may overlap).
    n_bins : int
        Bins per trial.
    bin_size : float
        Bin width, seconds.
    tolerance : float
        Edge guard in seconds (see the module docstring).

    Returns
    -------
    ndarray, shape (K, n_bins, N), float32
        ``counts[k, j, u]`` = number of spikes of unit u in ``[t0_k + j*bin, t0_k + (j+1)*bin)``.
    """
    starts = np.asarray(window_starts, dtype=np.float64)
    n_trials, n_units = len(starts), len(spike_times)
    n_cells = n_trials * n_bins * n_units
    width = n_bins * bin_size
    # Trials in time order make each unit's window lookups one sorted searchsorted.
    flat_parts = []
    for u, spikes in enumerate(spike_times):
        spikes = np.asarray(spikes, dtype=np.float64)
        if not len(spikes):
            continue
        lo = np.searchsorted(spikes, starts - tolerance, side="left")
        hi = np.searchsorted(spikes, starts + width - tolerance, side="left")
        n_in = hi - lo
        total = int(n_in.sum())
        if not total:
            continue
        trial = np.repeat(np.arange(n_trials), n_in)
        # index of each selected spike: lo[trial] + running position within its trial
        offsets = np.arange(total) - np.repeat(np.cumsum(n_in) - n_in, n_in)
        t = spikes[lo[trial] + offsets]
        t0 = starts[trial]
        j = _guarded_bin(t, t0, bin_size, tolerance)
        np.clip(j, 0, n_bins - 1, out=j)  # window bounds were already applied with the guard
        flat_parts.append((trial * n_bins + j) * n_units + u)
    out = np.zeros(n_cells, dtype=np.float32)
    if flat_parts:
        flat = np.concatenate(flat_parts)
        if n_cells <= _BINCOUNT_MAX_CELLS:
            out[:] = np.bincount(flat, minlength=n_cells)
        else:
            cells, counts = np.unique(flat, return_counts=True)
            out[cells] = counts
    return out.reshape(n_trials, n_bins, n_units)


def _guarded_bin(t: np.ndarray, t0: np.ndarray, bin_size: float,
                 tolerance: float) -> np.ndarray:
    """floor((t - t0) / bin_size), with each edge t0 + j*bin_size lowered by `tolerance`."""
    j = np.floor((t - t0) / bin_size).astype(np.int64)
    # The division can round either way; fix the one-bin errors against the edges themselves.
    up = t >= t0 + (j + 1) * bin_size - tolerance
    j[up] += 1
    down = t < t0 + j * bin_size - tolerance
    j[down] -= 1
    return j


def bin_index(t: np.ndarray, t0: float | np.ndarray, bin_size: float,
              tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """Bin index of each time (may be < 0 or >= n_bins for times outside the window)."""
    t = np.asarray(t, dtype=np.float64)
    t0 = np.broadcast_to(np.asarray(t0, dtype=np.float64), t.shape)
    return _guarded_bin(t, t0, bin_size, tolerance)


def gaussian_smooth(values: np.ndarray, sd_bins: float, axis: int = 1) -> np.ndarray:
    """Gaussian smoothing along `axis` (time) with a kernel of `sd_bins` bins, in float64.

    The one smoother of the package (mapper rate views, Gaussian-observation targets, PSTHs,
    metrics). Each trial is smoothed on its own window; beyond the window's edges the nearest
    value is repeated (scipy ``mode="nearest"``), so an edge is not pulled toward zero.
    """
    from scipy.ndimage import gaussian_filter1d

    values = np.asarray(values, dtype=np.float64)
    if sd_bins is None or sd_bins <= 0:
        return values
    return gaussian_filter1d(values, sd_bins, axis=axis, mode="nearest")


def smoothing_matrix(n_bins: int, sd: float, bin_size: float) -> np.ndarray:
    """The (T, T) matrix S with ``S @ x == gaussian_smooth(x, sd / bin_size, axis=0)`` for any
    (T, ...) array x: `smooth_counts` as a product, so a minibatch can be smoothed when it is
    used instead of keeping a smoothed copy of the whole dataset (memory that grows with the
    file). Float64; the identity when `sd` is not positive."""
    eye = np.eye(n_bins)
    if sd is None or sd <= 0:
        return eye
    return gaussian_smooth(eye, sd / bin_size, axis=0)


def smooth_counts(counts: np.ndarray, sd: float, bin_size: float) -> np.ndarray:
    """`gaussian_smooth` of (K, T, N) counts along time with a kernel sd in seconds; float32."""
    if sd is None or sd <= 0:
        return np.asarray(counts, dtype=np.float32)
    return gaussian_smooth(counts, sd / bin_size).astype(np.float32)


def resample_behavior(timestamps: np.ndarray, data: np.ndarray, window_starts: np.ndarray,
                      n_bins: int, bin_size: float,
                      tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """Resample a (T, D) series to K trial windows of `n_bins` bins -> (K, n_bins, D).

    Each bin gets the mean of the samples inside it (NaN samples ignored); empty bins get the
    linear interpolation at the bin center; bins outside the series' time range get NaN.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    values = np.asarray(data, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    starts = np.asarray(window_starts, dtype=np.float64)
    k, d = len(starts), values.shape[1]
    edges = starts[:, None] + np.arange(n_bins + 1)[None, :] * bin_size - tolerance
    idx = np.searchsorted(ts, edges.ravel(), side="left").reshape(k, n_bins + 1)
    finite = np.isfinite(values)
    csum = np.zeros((len(ts) + 1, d))
    csum[1:] = np.cumsum(np.where(finite, values, 0.0), axis=0)
    cnum = np.zeros((len(ts) + 1, d))
    cnum[1:] = np.cumsum(finite, axis=0)
    sums = csum[idx[:, 1:]] - csum[idx[:, :-1]]  # (K, T, D)
    nums = cnum[idx[:, 1:]] - cnum[idx[:, :-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / nums
    empty = nums == 0
    if np.any(empty) and len(ts):
        centers = starts[:, None] + (np.arange(n_bins)[None, :] + 0.5) * bin_size
        for dim in range(d):
            ok = finite[:, dim]
            if not np.any(ok):
                continue
            interp = np.interp(centers, ts[ok], values[ok, dim], left=np.nan, right=np.nan)
            sel = empty[:, :, dim]
            out[:, :, dim][sel] = interp[sel]
    return out


def windows_within(starts: np.ndarray, stops: np.ndarray, intervals: np.ndarray,
                   tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """For each window [start, stop), whether it lies inside one of the (n, 2) `intervals`.

    Overlapping or touching intervals are merged first.
    """
    starts = np.asarray(starts, dtype=np.float64)
    stops = np.asarray(stops, dtype=np.float64)
    merged = merge_intervals(intervals)
    if not len(merged):
        return np.zeros(len(starts), dtype=bool)
    i = np.searchsorted(merged[:, 0], starts + tolerance, side="right") - 1
    ok = i >= 0
    i = np.clip(i, 0, None)
    return ok & (starts >= merged[i, 0] - tolerance) & (stops <= merged[i, 1] + tolerance)


def merge_intervals(intervals: np.ndarray) -> np.ndarray:
    """Sort (n, 2) intervals and merge those that overlap or touch."""
    arr = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    arr = arr[np.all(np.isfinite(arr), axis=1)]
    if not len(arr):
        return arr
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    out = [arr[0].copy()]
    for a, b in arr[1:]:
        if a <= out[-1][1] + EDGE_TOLERANCE:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append(np.array([a, b]))
    return np.array(out)


# ---------------------------------------------------------------------------------- size and grid
def check_binned_size(n_trials: int, n_bins: int, n_units: int, bin_size: float) -> None:
    """Refuse binned counts that would not fit the memory bound, before allocating them.

    The counts are float32, (trials, bins, units); the bound is
    `nwb_jedi._limits.max_array_bytes` (``$NWB_JEDI_MAX_ARRAY_GB``).

    Raises
    ------
    UserError
        The array would be larger than the bound; the message gives its size and the fix.
    """
    size = 4 * int(n_trials) * int(n_bins) * int(n_units)
    limit = array_limit(UserError)
    if size > limit:
        raise UserError(f"the binned counts would take {format_bytes(size)} ({n_trials} trials x "
                        f"{n_bins} bins of {bin_size * 1e3:g} ms x {n_units} units, float32), "
                        f"more than the {format_bytes(limit)} allowed; use larger bins "
                        f"(--bin-ms), a shorter window or fewer trials, or raise "
                        f"NWB_JEDI_MAX_ARRAY_GB")


#: Candidate spike-time grids (s), coarsest first, for files that state no resolution.
_GRIDS = (0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001)
#: Spikes sampled to infer the grid, and the fewest that make the inference worth anything.
_GRID_SAMPLE, _GRID_MIN_SPIKES = 20_000, 50


def spike_time_resolution(session: Session) -> float | None:
    """The grid spike times sit on: the file's ``resolution`` when it states one, else the
    coarsest of 10, 5, 2, 1, 0.5, 0.2, 0.1 ms that every sampled spike time lies on (None when
    spike times lie on none of them, e.g. 30 kHz sampling, or there are too few)."""
    if session.time_resolution:
        return float(session.time_resolution)
    sample = [s[: max(1, _GRID_SAMPLE // max(1, session.n_units))] for s in session.spike_times
              if len(s)]
    times = np.concatenate(sample) if sample else np.empty(0)
    times = times[np.isfinite(times)]
    if len(times) < _GRID_MIN_SPIKES:
        return None
    for grid in _GRIDS:
        steps = times / grid
        if np.all(np.abs(steps - np.round(steps)) < 1e-4):
            return grid
    return None


def warn_off_grid_bins(bin_size: float, resolution: float | None) -> None:
    """Warn when bins are not a whole number of spike-time steps.

    Spike times on a grid of `resolution` put ``floor(bin / resolution)`` or
    ``ceil(bin / resolution)`` possible spike times in each bin, alternating, so the counts
    show an alternating-bin artifact (x1.5 for 2.5 ms bins on 1 ms data). Above 1000 steps per
    bin the artifact is under 0.1% and not worth a warning.
    """
    if not resolution or resolution <= 0:
        return
    steps = bin_size / resolution
    whole = round(steps)
    if abs(steps - whole) < 1e-6 or steps > 1000:
        return
    low, high = int(np.floor(steps)), int(np.ceil(steps))
    suggestions = sorted({max(1, low), high})
    shown = " or ".join(f"{k * resolution * 1e3:g}" for k in suggestions)
    factor = f"x{high / low:.3g}" if low else "empty bins"
    warnings.warn(f"bins of {bin_size * 1e3:g} ms are not a whole number of the spike times' "
                  f"{resolution * 1e3:g} ms resolution, so consecutive bins can hold {low} or "
                  f"{high} possible spike times: the counts alternate ({factor}) for no "
                  f"biological reason; use a multiple of {resolution * 1e3:g} ms (--bin-ms "
                  f"{shown})", DataWarning, stacklevel=3)
