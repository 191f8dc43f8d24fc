"""`Session`: everything nwb_jedi needs from one recording, as plain numpy/pandas objects.

A Session never holds an open file handle, so it can be pickled, cached and handed to worker
processes. `nwb_jedi.io.read.read_session` builds one from an NWB file; tests and users can
build one by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(eq=False)
class BehaviorSeries:
    """One behavioral time series, in SI units.

    Attributes
    ----------
    name : str
        Name of the series in the file (e.g. ``hand_pos``).
    data : ndarray, shape (T, D), float64
        Samples with the file's ``conversion`` and ``offset`` applied (SI units).
    timestamps : ndarray, shape (T,), float64
        Sample times in seconds (built from ``starting_time`` and ``rate`` when the file
        stores no timestamps).
    unit : str
        Unit string from the file (the SI unit after conversion).
    path : str
        HDF5 path of the series in the source file.
    """

    name: str
    data: np.ndarray
    timestamps: np.ndarray
    unit: str = ""
    path: str = ""

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim == 1:
            self.data = self.data[:, None]
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        if self.data.shape[0] != self.timestamps.shape[0]:
            raise ValueError(f"behavior series {self.name!r} has {self.data.shape[0]} samples "
                             f"but {self.timestamps.shape[0]} timestamps")

    @property
    def rate(self) -> float | None:
        """Median sampling rate in Hz (None with fewer than 2 samples)."""
        if len(self.timestamps) < 2:
            return None
        step = float(np.median(np.diff(self.timestamps[: 10_000])))
        return 1.0 / step if step > 0 else None

    def __repr__(self) -> str:
        rate = self.rate
        rate_s = f", {rate:g} Hz" if rate else ""
        return f"BehaviorSeries({self.name!r}, shape {self.data.shape}, {self.unit!r}{rate_s})"


@dataclass(eq=False)
class Session:
    """Spikes, trials and behavior of one recording session.

    Attributes
    ----------
    unit_ids : ndarray, shape (N,)
        Identifiers of the units as in the source file.
    spike_times : list of N ndarrays
        Sorted spike times of each unit, float64 seconds.
    units : DataFrame
        One row per unit (same order as `unit_ids`): ``id``, ``location`` (brain area from the
        electrodes table when present), ``heldout`` when present, and other scalar columns.
    obs_intervals : list of N (n, 2) ndarrays, or None
        Observation intervals of each unit (s), when the file has them.
    trials : DataFrame
        Every column of the trials table; index = trial ids (named ``id``); ragged columns kept
        as lists of arrays, byte strings decoded. Empty when the file has no trials table.
    behavior : dict of str to BehaviorSeries
        Behavioral series found under ``processing``.
    metadata : dict
        Session and subject metadata (session_id, identifier, subject, nwb_version, ...).
    source : dict
        Where the data came from (`SourceInfo.as_dict()`).
    time_resolution : float or None
        Resolution of spike times in seconds (the file's ``resolution`` attribute), if known.
    """

    unit_ids: np.ndarray
    spike_times: list[np.ndarray]
    units: pd.DataFrame | None = None
    obs_intervals: list[np.ndarray] | None = None
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    behavior: dict[str, BehaviorSeries] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    time_resolution: float | None = None

    def __post_init__(self):
        self.unit_ids = np.asarray(self.unit_ids)
        self.spike_times = [np.asarray(s, dtype=np.float64) for s in self.spike_times]
        if len(self.spike_times) != len(self.unit_ids):
            raise ValueError(f"{len(self.unit_ids)} unit ids but {len(self.spike_times)} spike "
                             f"trains; give one spike-time array per unit")
        for uid, spikes in zip(self.unit_ids, self.spike_times, strict=True):
            # NaN and inf would pass every window check (or defeat the recording span) and
            # make the binning and rate filters silently wrong.
            bad = int(np.count_nonzero(~np.isfinite(spikes)))
            if bad:
                raise ValueError(f"unit {uid} has {bad} spike times that are NaN or infinite; "
                                 f"drop them (np.isfinite) before building the Session")
        if self.units is None:
            self.units = pd.DataFrame({"id": self.unit_ids})
        if len(self.units) != len(self.unit_ids):
            raise ValueError(f"units table has {len(self.units)} rows but there are "
                             f"{len(self.unit_ids)} units")
        if self.obs_intervals is not None:
            self.obs_intervals = [np.asarray(o, dtype=np.float64).reshape(-1, 2)
                                  for o in self.obs_intervals]
            if len(self.obs_intervals) != len(self.unit_ids):
                raise ValueError("obs_intervals must hold one (n, 2) array per unit")
        if self.trials is None:
            self.trials = pd.DataFrame()

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def n_spikes(self) -> int:
        return int(sum(len(s) for s in self.spike_times))

    def recording_span(self) -> tuple[float, float]:
        """(first, last) time seen in the session: spikes, trial bounds and obs_intervals.

        Returns (nan, nan) for a session with no spikes and no trials.
        """
        lo, hi = [], []
        for s in self.spike_times:
            if len(s):
                lo.append(s[0])
                hi.append(s[-1])
        for col in ("start_time", "stop_time"):
            if col in self.trials and len(self.trials):
                values = self.trials[col].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                if len(values):
                    lo.append(values.min())
                    hi.append(values.max())
        if self.obs_intervals is not None:
            for o in self.obs_intervals:
                if len(o):
                    lo.append(o[:, 0].min())
                    hi.append(o[:, 1].max())
        if not lo:
            return (float("nan"), float("nan"))
        return (float(np.min(lo)), float(np.max(hi)))

    def __repr__(self) -> str:
        ident = self.metadata.get("session_id") or self.metadata.get("identifier") or "?"
        beh = ", ".join(self.behavior) or "none"
        return (f"Session({ident!s}: {self.n_units} units, {self.n_spikes} spikes, "
                f"{self.n_trials} trials, behavior: {beh})")
