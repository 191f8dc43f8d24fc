"""`ConditionMapper`: trials of a `Session` -> conditions, aligned windows, bins -> `TrialDataset`.

How `by` defines the conditions
-------------------------------
- ``"trial_type"``: one trials-table column; each distinct value is a condition.
- ``["trial_type", "trial_version"]`` (list or tuple of column names): each distinct
  combination is a condition; `TrialDataset.conditions` gets one column per name.
- ``("reach_angle", 8)`` or ``{"reach_angle": 8}``: a numeric column cut into 8 equal-width
  bins over its range, or ``{"reach_angle": edges}`` with explicit bin edges (half-open
  ``[e_i, e_i+1)``, the last bin closed). The condition value is the bin center. In a dict,
  ``None`` keeps a column as it is, so ``{"maze": None, "reach_angle": 8}`` mixes both.
- a callable ``f(trials: DataFrame) -> labels``: a sequence/Series of one label per trial, or
  a DataFrame (one column per condition variable). Rows labelled None/NaN are dropped.

Which trials are kept
---------------------
Dropped trials are counted per reason in ``mapper.report_`` (and the one-line summary is
logged and printed to stderr when ``verbose``), never dropped silently: no condition label,
``trial_filter``, not in the train/val/test values of a split column, NaN alignment event,
window outside the recording, window outside a kept unit's ``obs_intervals``, and conditions
left with fewer than 2 trials (dropped, not an error, because a split needs 2 per condition).

Settings
--------
`ConditionMapper.to_settings` gives every argument that defines the dataset as plain JSON
values; `ConditionMapper.from_settings` builds an equal mapper from them (also after a JSON
round trip). `build` records them in the dataset's provenance, which is how `nwb-jedi predict`
rebuilds a fitted model's mapper exactly. The stored forms (tuples, dict `by`, callables) are
described in `nwb_jedi.data.mapper_settings`.
"""

from __future__ import annotations

import copy
import logging
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nwb_jedi.data.binning import (
    EDGE_TOLERANCE,
    bin_spikes,
    check_binned_size,
    n_bins_for,
    resample_behavior,
    smooth_counts,
    spike_time_resolution,
    warn_off_grid_bins,
    windows_within,
)
from nwb_jedi.data.dataset import SPLIT_NAMES, TrialDataset
from nwb_jedi.data.filters import StoredQuery, evaluate_query
from nwb_jedi.data.mapper_settings import (
    CALLABLE_ALTERNATIVES,
    SETTINGS,
    decode_settings,
    plain_by,
    to_plain,
)
from nwb_jedi.data.provenance import MapperReport, Provenance
from nwb_jedi.data.session import Session
from nwb_jedi.errors import DataWarning, UserError

logger = logging.getLogger("nwb_jedi")


class ConditionMapper:
    """Map a Session's trials to conditions and bin aligned windows into a `TrialDataset`.

    Parameters
    ----------
    by : str, sequence of str, (column, bins) tuple, dict or callable
        How trials map to conditions (see the module docstring).
    align : str or callable
        Trials-table column with the alignment event time (s), or a callable on the trials
        DataFrame returning one time per trial.
    window : (start, stop)
        Window around the event in seconds, e.g. ``(-0.25, 0.45)``.
    bin_size : float
        Bin width in seconds; the window must hold a whole number of bins.
    align_reference : str, optional
        Column added to the event times, for files that store event times relative to the
        trial start (e.g. ``align="cue_start_time", align_reference="start_time"``).
    trial_filter : str, callable or dict, optional
        A pandas query string (``"success == True"``), a callable on the trials DataFrame
        returning a boolean mask, or ``{column: value or list of values}``.
    unit_filter : str or callable, optional
        A pandas query string on the units DataFrame, or a callable returning a boolean mask.
    min_rate_hz : float, optional
        Drop units whose mean rate over the recording (their obs_intervals when present) is
        below this.
    exclude_heldout : bool
        Drop units with ``heldout == True`` (NLB held-out neurons).
    smooth_sd : float, optional
        Gaussian smoothing of the counts, kernel sd in seconds (for rate views; the counts
        stop being integers).
    split : (train, val, test) fractions, or str
        Fractions for a seeded split stratified by condition, or the name of a trials column
        holding "train"/"val"/"test" (other values, e.g. NLB's "none", are dropped).
    seed : int
        Seed of the split.
    behavior : bool or list of str
        Resample all of the session's behavior series (True), none, or these names.
    verbose : bool
        Print the one-line report to stderr after `build`.
    """

    def __init__(self, by: Any, align: str | Callable, window: tuple[float, float],
                 bin_size: float, align_reference: str | None = None,
                 trial_filter: str | Callable | Mapping | None = None,
                 unit_filter: str | Callable | None = None, min_rate_hz: float | None = None,
                 exclude_heldout: bool = False, smooth_sd: float | None = None,
                 split: Sequence[float] | str = (0.7, 0.15, 0.15), seed: int = 0,
                 behavior: bool | Sequence[str] = True, verbose: bool = True):
        self.by = by
        self.align = align
        self.window = (float(window[0]), float(window[1]))
        self.bin_size = float(bin_size)
        self.n_bins = n_bins_for(self.window, self.bin_size)
        self.align_reference = align_reference
        self.trial_filter = trial_filter
        self.unit_filter = unit_filter
        self.min_rate_hz = min_rate_hz
        self.exclude_heldout = exclude_heldout
        self.smooth_sd = smooth_sd
        self.split = split
        self.seed = seed
        self.behavior = behavior
        self.verbose = verbose

    # ------------------------------------------------------------------ settings
    def to_settings(self) -> dict[str, Any]:
        """Every setting that defines the dataset, as plain JSON-able values.

        ``ConditionMapper.from_settings(json.loads(json.dumps(mapper.to_settings())))`` is an
        equal mapper: it builds the same dataset from the same session.

        Raises
        ------
        UserError
            A setting is a callable (a callable cannot be stored), or holds a value that JSON
            cannot carry back.
        """
        callables = self._callables()
        if callables:
            name, function = next(iter(callables.items()))
            raise UserError(f"{name} is a callable ({function}), which cannot be stored as "
                            f"settings; give {name} as {CALLABLE_ALTERNATIVES[name]} instead")
        settings = self._plain_settings()
        decode_settings(settings)  # refuse here what from_settings could not read back
        return settings

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, verbose: bool = True
                      ) -> ConditionMapper:
        """The mapper that `settings` (from `to_settings`, a file or a preset) describe.

        Lists stand for tuples (JSON has none); see the module docstring for the forms of `by`.
        Settings left out take the constructor's defaults.

        Raises
        ------
        UserError
            Not a dict, an unknown setting, a missing required one (by, align, window,
            bin_size), a value of the wrong type, a setting that was a callable when the
            dataset was built and is not given again, or a window that is not a whole number
            of bins.
        """
        kwargs = decode_settings(settings)
        try:
            return cls(**kwargs, verbose=verbose)
        except ValueError as err:  # the window is not a whole number of bins
            raise UserError(f"mapper settings: {err}") from None

    def _callables(self) -> dict[str, str]:
        """{setting: the callable's name} of the settings that are callables."""
        return {name: _describe(getattr(self, name)) for name in CALLABLE_ALTERNATIVES
                if _is_callable(getattr(self, name))}

    def _plain_settings(self, without: Sequence[str] = ()) -> dict[str, Any]:
        """The settings as plain values, in `to_settings` form; `without` become None."""
        settings = {name: None if name in without else to_plain(getattr(self, name))
                    for name in SETTINGS}
        if "by" not in without:
            settings["by"] = plain_by(self.by)
        return settings

    def _recorded_settings(self) -> dict[str, Any]:
        """What `build` records: `to_settings`, with callables named, never refused."""
        callables = self._callables()
        settings = self._plain_settings(without=list(callables))
        if callables:
            settings["callables"] = callables
        return settings

    def __repr__(self) -> str:
        return (f"ConditionMapper(by={_describe(self.by)}, align={_describe(self.align)}, "
                f"window={tuple(self.window)}, bin_size={self.bin_size:g})")

    # ------------------------------------------------------------------ build
    def build(self, session: Session) -> TrialDataset:
        """Turn `session` into a TrialDataset; the drop report is left in ``self.report_``.

        The steps: select trials (condition labels, filter, split column, alignment event),
        select units, drop trials whose window leaves the recording (or a kept unit's
        obs_intervals) and conditions left with fewer than 2 trials, bin, assemble.

        Raises
        ------
        UserError
            No trials table, a column that does not exist, no trials or units left after
            filtering (naming the filter that removed them), or bad filter expressions.
        """
        trials = session.trials
        if trials is None or len(trials) == 0:
            raise UserError("the session has no trials table (intervals/trials), so trials "
                            "cannot be mapped to conditions; run `nwb-jedi info SOURCE` to see "
                            "what the file holds")
        report = MapperReport(n_trials_total=len(trials), n_units_total=session.n_units)
        self.report_ = report
        _report_duplicate_ids(trials, report)
        selection = _Selection(trials, report)
        self._select_trials(selection)
        # units before the windows: the obs_intervals checks only concern the units we keep
        selection.units = self._unit_mask(session, report)
        self._select_windows(session, selection)
        _drop_rare_conditions(selection)
        _warn_windows_beyond_trials(selection, selection.align + self.window[0],
                                    selection.align + self.window[1], self.bin_size)
        report.n_trials_kept = int(selection.keep.sum())
        report.n_units_kept = int(selection.units.sum())
        check_binned_size(report.n_trials_kept, self.n_bins, report.n_units_kept, self.bin_size)
        warn_off_grid_bins(self.bin_size, spike_time_resolution(session))
        dataset = self._assemble(session, selection)
        report.n_conditions = dataset.n_conditions
        dataset.provenance.report = copy.deepcopy(report)
        logger.info("ConditionMapper: %s", report.summary())
        if self.verbose:
            print(f"nwb-jedi: {report.summary()}", file=sys.stderr)
        return dataset

    def _select_trials(self, selection: _Selection) -> None:
        """Label the trials, then drop unlabelled, filtered, unsplit and unaligned ones."""
        trials = selection.trials
        selection.labels, selection.names = self._labels(trials)
        selection.drop(np.array([not _is_missing(v) for v in selection.labels]),
                       "no condition label")
        if self.trial_filter is not None:
            selection.drop(self._filter_mask(trials),
                           f"trial_filter {_describe(self.trial_filter)}")
        if isinstance(self.split, str):
            if self.split not in trials.columns:
                raise UserError(f"split column {self.split!r} is not in the trials table; "
                                f"columns are: {_cols(trials)}")
            selection.split_values = np.array([str(v).strip().lower()
                                               for v in trials[self.split]])
            selection.drop(np.isin(selection.split_values, SPLIT_NAMES),
                           f"{self.split} not train/val/test")
        selection.align = self._align_times(trials)
        selection.drop(np.isfinite(selection.align), "NaN alignment event")

    def _select_windows(self, session: Session, selection: _Selection) -> None:
        """Drop trials whose window leaves the recording or a kept unit's obs_intervals."""
        win_start = selection.align + self.window[0]
        win_stop = selection.align + self.window[1]
        span = session.recording_span()
        inside = (win_start >= span[0] - EDGE_TOLERANCE) & (win_stop <= span[1] + EDGE_TOLERANCE)
        selection.drop(inside, "window outside the recording",
                       self._window_hint(selection, inside))
        if session.obs_intervals is not None:
            ok = np.ones(len(selection.trials), dtype=bool)
            idx = np.flatnonzero(selection.keep)
            for u in np.flatnonzero(selection.units):
                ok[idx] &= windows_within(win_start[idx], win_stop[idx],
                                          session.obs_intervals[u])
            selection.drop(ok, "window outside obs_intervals")

    def _window_hint(self, selection: _Selection, inside: np.ndarray) -> str:
        """When no window fits the recording: say if the events look relative to trial start."""
        trials, keep = selection.trials, selection.keep
        if not inside[keep].any() and "start_time" in trials:
            start = trials["start_time"].to_numpy(dtype=float)
            if np.nanmedian(selection.align[keep]) < np.nanmin(start):
                return (f"the {_describe(self.align)} values lie before every trial's "
                        f"start_time, so if they are relative to the trial start pass "
                        f"align_reference='start_time' (--align-reference start_time)")
        return ""

    def _assemble(self, session: Session, selection: _Selection) -> TrialDataset:
        """Bin the kept trials and units and put the dataset together."""
        idx = np.flatnonzero(selection.keep)
        units = np.flatnonzero(selection.units)
        win_start = selection.align[idx] + self.window[0]
        counts, behavior = self._bin(session, units, win_start)
        time = self.window[0] + (np.arange(self.n_bins) + 0.5) * self.bin_size
        trials = selection.trials
        split = selection.split_values[idx] if selection.split_values is not None else self.split
        provenance = Provenance(source=dict(session.source), session=dict(session.metadata),
                                mapper=self._recorded_settings())
        return TrialDataset.from_arrays(
            counts, [selection.labels[i] for i in idx], self.bin_size,
            trial_ids=trials.index.to_numpy()[idx], unit_ids=session.unit_ids[units],
            time=time, split=split, seed=self.seed, align_time=selection.align[idx],
            behavior=behavior, condition_names=selection.names,
            units=session.units.iloc[units].reset_index(drop=True),
            trials=trials.iloc[idx].reset_index(), provenance=provenance)

    def _bin(self, session: Session, units: np.ndarray, win_start: np.ndarray
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Spike counts (smoothed if asked) and the wanted behavior series, in the bins."""
        counts = bin_spikes([session.spike_times[u] for u in units], win_start, self.n_bins,
                            self.bin_size)
        if self.smooth_sd:
            counts = smooth_counts(counts, self.smooth_sd, self.bin_size)
        behavior = {}
        wanted = self.behavior
        for name, series in session.behavior.items():
            if wanted is False or (wanted is not True and name not in wanted):
                continue
            behavior[name] = resample_behavior(series.timestamps, series.data, win_start,
                                               self.n_bins, self.bin_size).astype(np.float32)
        return counts, behavior

    # ------------------------------------------------------------------ pieces
    def _labels(self, trials: pd.DataFrame) -> tuple[list, list[str] | None]:
        """One hashable label per trial (scalar or tuple) and the condition column names."""
        by = self.by
        if callable(by) and not isinstance(by, str):
            result = by(trials)
            if isinstance(result, pd.DataFrame):
                names = [str(c) for c in result.columns]
                return [_row_label(r) for r in result.itertuples(index=False)], names
            values = list(result)
            if len(values) != len(trials):
                raise UserError(f"the `by` callable returned {len(values)} labels for "
                                f"{len(trials)} trials; return one label per trial")
            name = getattr(result, "name", None) or getattr(by, "__name__", "condition")
            return [_scalar_label(v) for v in values], [str(name)]
        spec = _normalise_by(by)
        missing = [c for c in spec if c not in trials.columns]
        if missing:
            raise UserError(f"condition column(s) {missing} not in the trials table; columns "
                            f"are: {_cols(trials)}")
        columns = []
        for col, bins in spec.items():
            values = trials[col]
            columns.append(_bin_column(values, bins, col) if bins is not None
                           else [_scalar_label(v) for v in values])
        names = list(spec)
        if len(columns) == 1:
            return columns[0], names
        return [tuple(row) if not any(_is_missing(v) for v in row) else None
                for row in zip(*columns, strict=True)], names

    def _filter_mask(self, trials: pd.DataFrame) -> np.ndarray:
        """One boolean per trial, by position (trial ids may repeat)."""
        flt = self.trial_filter
        if isinstance(flt, str):
            return _query_mask(flt, trials, "trial_filter", "columns")
        if isinstance(flt, Mapping):
            mask = np.ones(len(trials), dtype=bool)
            for col, want in flt.items():
                if col not in trials.columns:
                    raise UserError(f"trial_filter column {col!r} is not in the trials table; "
                                    f"columns are: {_cols(trials)}")
                wanted = list(want) if isinstance(want, list | tuple | set) else [want]
                mask &= trials[col].isin(wanted).to_numpy()
            return mask
        if callable(flt):
            mask = np.asarray(flt(trials), dtype=bool)
            if mask.shape != (len(trials),):
                raise UserError(f"trial_filter returned shape {mask.shape}; return one boolean "
                                f"per trial ({len(trials)})")
            return mask
        raise UserError(f"trial_filter must be a query string, a dict or a callable, got "
                        f"{type(flt).__name__}")

    def _align_times(self, trials: pd.DataFrame) -> np.ndarray:
        if callable(self.align) and not isinstance(self.align, str):
            times = np.asarray(self.align(trials), dtype=np.float64)
            if times.shape != (len(trials),):
                raise UserError(f"the align callable returned shape {times.shape}; return one "
                                f"time per trial ({len(trials)})")
        else:
            times = self._time_column(trials, self.align, "alignment")
        if self.align_reference is not None:
            times = times + self._time_column(trials, self.align_reference, "align_reference")
        return times

    @staticmethod
    def _time_column(trials: pd.DataFrame, name: str, what: str) -> np.ndarray:
        if name not in trials.columns:
            times = [c for c in trials.columns if _is_time_column(trials[c])]
            raise UserError(f"{what} column {name!r} is not in the trials table; time columns "
                            f"are: {', '.join(times) or 'none'} (all columns: {_cols(trials)})")
        try:
            return trials[name].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{what} column {name!r} does not hold numbers (seconds); choose "
                            f"an event-time column") from None

    def _unit_mask(self, session: Session, report: MapperReport) -> np.ndarray:
        units = session.units
        keep = np.ones(session.n_units, dtype=bool)

        def drop(ok, reason):
            nonlocal keep
            report.units_dropped[reason] = int((keep & ~ok).sum())
            keep = keep & ok
            if not keep.any():
                raise UserError(f"no units left: {reason} removed all remaining units; loosen "
                                f"that setting")
        if self.exclude_heldout:
            if "heldout" in units.columns:
                drop(~units["heldout"].fillna(False).to_numpy(dtype=bool), "heldout")
            else:
                report.units_dropped["heldout"] = 0
        if self.min_rate_hz is not None:
            drop(_unit_rates(session) >= self.min_rate_hz,
                 f"rate < {self.min_rate_hz:g} Hz")
        if self.unit_filter is not None:
            flt = self.unit_filter
            if isinstance(flt, str):
                ok = _query_mask(flt, units.reset_index(drop=True), "unit_filter",
                                 "unit columns")
            else:
                ok = np.asarray(flt(units), dtype=bool)
            drop(ok, f"unit_filter {_describe(flt)}")
        return keep


# ---------------------------------------------------------------------------------- helpers
def _warn_windows_beyond_trials(selection: _Selection, win_start: np.ndarray,
                                win_stop: np.ndarray, bin_size: float) -> None:
    """Warn when kept trials' windows overlap each other (their spikes are counted twice) or
    run past their trials' stop_time by more than half a bin (their last bins are not the
    trial; half a bin spares times stored at low precision)."""
    idx = np.flatnonzero(selection.keep)
    if not len(idx):
        return
    order = idx[np.argsort(win_start[idx], kind="stable")]
    overlapping = int(np.sum(win_stop[order][:-1] > win_start[order][1:] + EDGE_TOLERANCE))
    length = win_stop[idx[0]] - win_start[idx[0]]
    if overlapping:
        warnings.warn(f"{overlapping} of {len(idx)} trials' windows overlap the next trial's "
                      f"window ({length:g} s long), so the same spikes are counted in both; "
                      f"shorten --window", DataWarning, stacklevel=3)
        return
    trials = selection.trials
    if "stop_time" not in trials:
        return
    stop = trials["stop_time"].to_numpy(dtype=float)[idx]
    beyond = win_stop[idx] - stop
    late = np.isfinite(beyond) & (beyond > max(EDGE_TOLERANCE, bin_size / 2))
    if late.any():
        warnings.warn(f"{int(late.sum())} of {len(idx)} trials' windows end after their "
                      f"trial's stop_time (by up to {np.max(beyond[late]):.3g} s), so their last "
                      f"bins hold spikes from between trials; shorten --window if that is not "
                      f"intended", DataWarning, stacklevel=3)


def _report_duplicate_ids(trials: pd.DataFrame, report: MapperReport) -> None:
    """Count (and warn about) trials whose id another trial also has.

    Every selection works by position, so such trials are still told apart; but their ids in
    the outputs are ambiguous, which a user should know.
    """
    duplicated = trials.index.duplicated(keep=False)
    report.duplicate_trial_ids = int(duplicated.sum())
    if report.duplicate_trial_ids:
        shown = ", ".join(str(v) for v in pd.unique(trials.index[duplicated])[:5])
        warnings.warn(f"{report.duplicate_trial_ids} trials of the trials table share their id "
                      f"with another trial (ids {shown}{', ...' if duplicated.sum() > 5 else ''});"
                      f" they are kept apart by their position, but the trial ids in the "
                      f"outputs are ambiguous: give the trials table unique ids",
                      DataWarning, stacklevel=4)


def _query_mask(query: str, table: pd.DataFrame, setting: str, what: str) -> np.ndarray:
    """Evaluate a query string on `table`: one boolean per row, by position.

    A `StoredQuery` (read from a file) is evaluated by `nwb_jedi.data.filters`, never by
    pandas; any other string is the user's own and goes to ``DataFrame.eval``. Both give the
    mask by position, so rows that share an index value are told apart.
    """
    if isinstance(query, StoredQuery):
        return evaluate_query(query, table)
    try:
        result = table.eval(query, engine="python")
    except Exception as err:  # pandas raises many types for a bad expression
        raise UserError(f"{setting} {query!r} could not be evaluated ({err}); {what} are: "
                        f"{_cols(table)}") from None
    if isinstance(result, pd.Series) and result.dtype.kind not in "biuf":
        result = result.fillna(False)  # nullable booleans: a missing value does not match
    mask = np.asarray(result)
    if mask.dtype.kind == "O" and all(isinstance(v, bool | np.bool_) for v in mask.ravel()):
        mask = mask.astype(bool)
    if mask.shape != (len(table),) or mask.dtype.kind != "b":
        raise UserError(f"{setting} {query!r} is not a condition that is true or false for each "
                        f"row (it gave {type(result).__name__}); write a comparison such as "
                        f"\"success == True\"")
    return mask


def _normalise_by(by) -> dict[str, Any]:
    """`by` as an ordered {column: bins or None}."""
    if isinstance(by, str):
        return {by: None}
    if isinstance(by, Mapping):
        return {str(k): v for k, v in by.items()}
    if isinstance(by, tuple) and len(by) == 2 and isinstance(by[0], str) and \
            not isinstance(by[1], str):
        return {by[0]: by[1]}
    if isinstance(by, list | tuple) and by and all(isinstance(c, str) for c in by):
        return {c: None for c in by}
    raise UserError(f"`by` must be a column name, a list of names, (column, bins), a dict or a "
                    f"callable, got {by!r}")


def _bin_column(values: pd.Series, bins, col: str) -> list:
    """Cut a numeric column into bins; label = bin center (None for NaN / outside edges)."""
    try:
        x = values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"condition column {col!r} is not numeric, so it cannot be binned; "
                        f"use it without bins") from None
    finite = x[np.isfinite(x)]
    if isinstance(bins, int | np.integer):
        if bins < 1 or not len(finite):
            raise UserError(f"cannot cut {col!r} into {bins} bins (need >= 1 bin and finite "
                            f"values)")
        edges = np.linspace(finite.min(), finite.max(), int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise UserError(f"bin edges for {col!r} must be increasing numbers, got {bins!r}")
    j = np.searchsorted(edges, x, side="right") - 1
    j[x == edges[-1]] = len(edges) - 2  # the last bin is closed
    centers = (edges[:-1] + edges[1:]) / 2
    return [float(np.round(centers[i], 6)) if np.isfinite(v) and 0 <= i < len(centers) else None
            for i, v in zip(j, x, strict=True)]


def _unit_rates(session: Session) -> np.ndarray:
    rates = np.zeros(session.n_units)
    span = session.recording_span()
    default = span[1] - span[0] if np.all(np.isfinite(span)) else np.nan
    for u, spikes in enumerate(session.spike_times):
        duration = default
        if session.obs_intervals is not None and len(session.obs_intervals[u]):
            o = session.obs_intervals[u]
            duration = float(np.sum(o[:, 1] - o[:, 0]))
        rates[u] = len(spikes) / duration if duration and duration > 0 else 0.0
    return rates


def _scalar_label(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray | list):
        return tuple(_scalar_label(v) for v in value)
    if _is_missing(value):
        return None
    return value


def _row_label(row) -> Any:
    values = tuple(_scalar_label(v) for v in row)
    if any(v is None for v in values):
        return None
    return values if len(values) > 1 else values[0]


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return False


def _is_time_column(series: pd.Series) -> bool:
    return series.dtype.kind == "f" and (str(series.name).endswith("_time")
                                         or str(series.name).endswith("_times"))


def _cols(df: pd.DataFrame) -> str:
    return ", ".join(str(c) for c in df.columns) or "none"


def _describe(value) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if callable(value):
        return getattr(value, "__name__", repr(value))
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def _is_callable(value) -> bool:
    return callable(value) and not isinstance(value, str)


# ---------------------------------------------------------------------------------- selection
@dataclass
class _Selection:
    """The trials and units `build` keeps, and what it learnt about each trial on the way."""

    trials: pd.DataFrame
    report: MapperReport
    keep: np.ndarray | None = None  # per trial
    labels: list | None = None
    names: list[str] | None = None
    split_values: np.ndarray | None = None
    align: np.ndarray | None = None
    units: np.ndarray | None = None  # per unit

    def __post_init__(self):
        if self.keep is None:
            self.keep = np.ones(len(self.trials), dtype=bool)

    def drop(self, mask_ok: np.ndarray, reason: str, hint: str = "") -> None:
        """Drop the kept trials where `mask_ok` is False, counting them under `reason`."""
        before = int(self.keep.sum())
        removed = self.keep & ~mask_ok
        dropped = self.report.trials_dropped
        dropped[reason] = dropped.get(reason, 0) + int(removed.sum())
        self.keep = self.keep & mask_ok
        if before and not self.keep.any():
            raise UserError(f"no trials left: {reason} removed all {before} remaining "
                            f"trials (of {len(self.trials)}); {hint or 'loosen that setting'}")


def _drop_rare_conditions(selection: _Selection) -> None:
    """Drop conditions left with fewer than 2 trials (a split needs 2 per condition)."""
    labels = selection.labels
    kept_labels = [labels[i] for i in np.flatnonzero(selection.keep)]
    counts = pd.Series(kept_labels).value_counts()
    rare = set(counts.index[counts < 2])
    if rare:
        selection.report.conditions_dropped = sorted(str(r) for r in rare)
        selection.drop(np.array([v not in rare for v in labels]), "condition with < 2 trials")
