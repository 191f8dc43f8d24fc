"""Fitted rates on one regular time grid, NaN outside the modelled windows.

A fit models one window per trial (alignment time + bin centers). Stored back to back those
windows make an irregularly sampled series, which pynapple's ``compute_perievent`` (and any tool
that expects a sampling rate) refuses. Here the windows are placed on one grid of step = bin
size over the session, NaN elsewhere, so the series has a ``starting_time`` and a ``rate`` and
aligns to any event without hand work; each trial's samples are also listed in the trials
table (`TimeSeriesReference`: first sample, count), so nothing has to be searched.

Where the trials' windows do not share one phase of the grid (alignment events on a 1 ms clock,
20 ms bins), each window is placed at the nearest grid sample: its values are exact, its times
shifted by at most half a bin, and `RateGrid.max_shift` says by how much. Where two windows
would overlap on the grid (windows longer than the gap between trials), no single series can
hold both, and the caller keeps the trials back to back with timestamps instead.

Only the chunks that hold modelled samples are written; the others are left to HDF5's fill
value (NaN), so the padding costs neither memory nor disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

__all__ = ["RateGrid", "plan_grid", "GridRates"]

# Two sample times closer than this (s) are the same sample: alignment times are read from
# files as float64 seconds, so their grid offsets carry rounding error of ~1e-12 s.
_SAME_TIME_S = 1e-9
#: Rows per chunk of the written rates (with every neuron in the chunk).
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class RateGrid:
    """Where each trial's window sits on the grid.

    ``starting_time`` and ``step`` define the grid (sample i at starting_time + i * step),
    ``n_samples`` its length, ``starts`` the first sample of each trial's window (K,),
    ``shifts`` (K,) the grid time minus the modelled bin center of each trial's first bin (s),
    ``n_bins`` the samples per window and ``session_times`` whether the grid is on the session's
    clock (False: the trials have no session times and are laid back to back on a clock of
    their own).
    """

    starting_time: float
    step: float
    n_samples: int
    starts: np.ndarray
    shifts: np.ndarray
    n_bins: int
    session_times: bool

    @property
    def max_shift(self) -> float:
        """Largest distance (s) between a modelled bin center and its grid sample."""
        return float(np.max(np.abs(self.shifts), initial=0.0))

    @property
    def n_exact(self) -> int:
        """Trials whose bin centers lie exactly on the grid."""
        return int(np.sum(np.abs(self.shifts) <= _SAME_TIME_S))

    def describe(self) -> str:
        """One or two sentences for the series' description."""
        if not self.session_times:
            return ("The trials have no session times, so they are laid back to back on a "
                    "clock of their own (times are not session times).")
        text = ("Session times on a regular grid of one bin: each modelled trial's window is "
                "at its alignment time + bin centers, NaN between windows.")
        k = len(self.starts)
        if self.n_exact < k:
            text += (f" {k - self.n_exact} of {k} trials' windows are off the grid's phase and "
                     f"sit at the nearest grid sample, shifted by at most "
                     f"{self.max_shift * 1e3:.3g} ms (their exact times: align_time of the "
                     f"trials table + bin_centers of modelled_data).")
        return text


def plan_grid(align_time: np.ndarray, bin_centers: np.ndarray,
              bin_size: float) -> RateGrid | None:
    """Place every trial's window on one grid of step `bin_size`.

    Parameters
    ----------
    align_time : ndarray (K,)
        Session time of each trial's alignment event; all NaN when the trials have no session
        times (then they are laid back to back).
    bin_centers : ndarray (T,)
        Bin centers relative to the alignment event.
    bin_size : float
        Bin width (s), the grid's step.

    Returns
    -------
    RateGrid or None
        None when two windows would overlap on the grid.
    """
    align_time = np.asarray(align_time, dtype=np.float64)
    n_trials, n_bins = len(align_time), len(bin_centers)
    if n_trials == 0:
        return RateGrid(0.0, bin_size, 0, np.zeros(0, np.int64), np.zeros(0), n_bins, True)
    if not np.all(np.isfinite(align_time)):
        starts = np.arange(n_trials, dtype=np.int64) * n_bins
        return RateGrid(bin_size / 2, bin_size, n_trials * n_bins, starts, np.zeros(n_trials),
                        n_bins, False)
    first = align_time + float(bin_centers[0])  # first bin center of every trial
    origin = float(np.min(first))
    phase = _most_common_phase(first - origin, bin_size)
    # The grid passes through origin + phase; start it at or before the earliest window.
    starting_time = origin + phase - (bin_size if phase > _SAME_TIME_S else 0.0)
    starts = np.rint((first - starting_time) / bin_size).astype(np.int64)
    shifts = starting_time + starts * bin_size - first
    order = np.argsort(starts, kind="stable")
    if np.any(np.diff(starts[order]) < n_bins):
        return None
    n_samples = int(starts.max()) + n_bins
    return RateGrid(starting_time, bin_size, n_samples, starts, shifts, n_bins, True)


def _most_common_phase(offsets: np.ndarray, bin_size: float) -> float:
    """The phase (offset modulo the bin) shared by most trials, so most windows land exactly."""
    phase = np.mod(offsets, bin_size)
    phase[np.abs(phase - bin_size) <= _SAME_TIME_S] = 0.0
    rounded = np.round(phase / _SAME_TIME_S).astype(np.int64)
    values, counts = np.unique(rounded, return_counts=True)
    return float(phase[rounded == values[np.argmax(counts)]][0])


class GridRates(AbstractDataChunkIterator):
    """The rates as an hdmf data chunk iterator over the grid: yields only the row chunks
    that hold modelled samples; the rest of the dataset is HDF5's fill value (NaN).

    Built lazily from `rates` (K, T, N) and a `RateGrid`, so the padded series is never held in
    memory.
    """

    def __init__(self, rates: np.ndarray, grid: RateGrid) -> None:
        self.rates = rates
        self.grid = grid
        self.rows = int(min(CHUNK_ROWS, max(grid.n_samples, 1)))
        self.shape = (grid.n_samples, rates.shape[2])
        touched: set[int] = set()  # chunks overlapping at least one window
        for start in grid.starts:
            touched.update(range(start // self.rows,
                                 (start + grid.n_bins - 1) // self.rows + 1))
        self._chunks = iter(sorted(touched))
        self._order = np.argsort(grid.starts, kind="stable")
        self._sorted_starts = grid.starts[self._order]

    def __iter__(self) -> GridRates:
        return self

    def __next__(self) -> DataChunk:
        index = next(self._chunks)
        lo = index * self.rows
        hi = min(lo + self.rows, self.shape[0])
        block = np.full((hi - lo, self.shape[1]), np.nan, dtype=self.rates.dtype)
        # Windows that start before hi and end after lo (starts are sorted).
        first = np.searchsorted(self._sorted_starts, lo - self.grid.n_bins, side="right")
        last = np.searchsorted(self._sorted_starts, hi, side="left")
        for k in self._order[first:last]:
            start = int(self.grid.starts[k])
            a, b = max(start, lo), min(start + self.grid.n_bins, hi)
            block[a - lo:b - lo] = self.rates[k, a - start:b - start]
        return DataChunk(data=block, selection=np.s_[lo:hi, :])

    next = __next__

    def recommended_chunk_shape(self) -> tuple[int, int]:
        return (self.rows, self.shape[1])

    def recommended_data_shape(self) -> tuple[int, int]:
        return self.shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.rates.dtype)

    @property
    def maxshape(self) -> tuple[int, int]:
        return self.shape
