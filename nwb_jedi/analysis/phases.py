"""Phase-specific contexts: one condition per (condition, phase window).

The paper fits separate contexts for task epochs (e.g. preparation vs execution in reaching, the
epochs of `memorypro`) and compares their spectra: execution eigenvalues near the unit circle,
preparation eigenvalues inside it with excursions along the real axis.

`split_phases` turns a TrialDataset into one where every trial is cut into its phase windows
and each piece becomes a trial of the condition ``(original condition, phase)``. A JEDI fit on it
then learns one embedding — hence one RNN and one spectrum — per (condition, phase).

Design choice: all phase windows must have the same length (number of bins), so the pieces fit
in one TrialDataset (one T) and one model; the windows may start anywhere (overlap allowed). For
phases of unequal natural length, choose a common window length (e.g. the shortest phase) and
place each window within its phase. Every piece keeps its source trial's train/val/test split, so
no trial leaks across splits through its phases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nwb_jedi.analysis.spectra import spectrum_table
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError

Phase = tuple[str, float, float]


def _window_bins(ds: TrialDataset, phases: Sequence[Phase]) -> list[tuple[str, int, int]]:
    if not phases:
        raise UserError("give at least one phase window as (name, start_s, stop_s)")
    names = [str(p[0]) for p in phases]
    if len(set(names)) != len(names):
        raise UserError(f"phase names must be unique, got {names}")
    tolerance = 1e-6 * ds.bin_size
    windows = []
    for name, start, stop in phases:
        if not stop > start:
            raise UserError(f"phase {name!r} ends ({stop} s) before it starts ({start} s); give "
                            f"(name, start_s, stop_s) with stop > start")
        # Bins whose centres fall in [start, stop).
        inside = np.flatnonzero((ds.time >= start - tolerance) & (ds.time < stop - tolerance))
        if len(inside) == 0:
            raise UserError(f"phase {name!r} ({start} to {stop} s) contains no bin centre of "
                            f"the trials (which span {ds.time[0]:g} to {ds.time[-1]:g} s)")
        first, n = int(inside[0]), len(inside)
        expected = int(round((stop - start) / ds.bin_size))
        if n != expected:
            raise UserError(f"phase {name!r} ({start} to {stop} s) needs {expected} bins but the "
                            f"trials only have {n} there; keep every window inside the trials "
                            f"({ds.time[0] - ds.bin_size / 2:g} to "
                            f"{ds.time[-1] + ds.bin_size / 2:g} s)")
        windows.append((str(name), first, n))
    lengths = {n for _, _, n in windows}
    if len(lengths) > 1:
        shown = ", ".join(f"{name}: {n}" for name, _, n in windows)
        raise UserError(f"all phase windows must have the same number of bins to share one "
                        f"model ({shown}); choose windows of equal duration")
    return windows


def split_phases(ds: TrialDataset, phases: Sequence[Phase],
                 phase_column: str = "phase") -> TrialDataset:
    """Cut every trial into phase windows; each (condition, phase) becomes a condition.

    Parameters
    ----------
    ds : TrialDataset
        Trials aligned so that the windows' times (relative to the alignment event, the same
        axis as ``ds.time``) mean the same in every trial.
    phases : sequence of (name, start_s, stop_s)
        Windows in seconds on ``ds.time``; a bin belongs to a window when its centre is in
        ``[start, stop)``. All windows must contain the same number of bins.
    phase_column : str
        Name of the column added to the conditions table.

    Returns
    -------
    TrialDataset
        ``K × P`` trials (trial-major: trial k's phases are consecutive) of the common window
        length. Conditions: the original columns plus `phase_column`, labelled
        ``"<label>/<phase>"``. Trial ids are ``"<trial_id>/<phase>"``; the trials table gains
        ``source_trial``, `phase_column` and ``phase_start``; ``time`` is relative to the window
        start, ``align_time`` is shifted to the window start; splits are inherited; behaviour
        and per-trial ground-truth series are cut to the window.
    """
    windows = _window_bins(ds, phases)
    n_phases, n = len(windows), windows[0][2]
    starts = {name: float(start) for name, start, _ in phases}
    if phase_column in ds.conditions.columns:
        raise UserError(f"the conditions already have a column {phase_column!r}; pass another "
                        f"phase_column")

    # Condition table: every (original condition, phase), condition-major.
    rows = []
    for c in range(ds.n_conditions):
        for name, _, _ in windows:
            row = ds.conditions.iloc[c].to_dict()
            row[phase_column] = name
            row["label"] = f"{row['label']}/{name}"
            rows.append(row)
    columns = [col for col in ds.conditions.columns if col != "label"] + [phase_column, "label"]
    conditions = pd.DataFrame(rows)[columns]

    k = ds.n_trials
    source = np.repeat(np.arange(k), n_phases)
    phase_index = np.tile(np.arange(n_phases), k)
    counts = np.concatenate([ds.counts[:, first:first + n][:, None]
                             for _, first, _ in windows], axis=1).reshape(k * n_phases, n,
                                                                          ds.n_units)

    def cut(value):
        if not (isinstance(value, np.ndarray) and value.ndim >= 2
                and value.shape[:2] == (k, ds.n_bins)):
            return value
        pieces = [value[:, first:first + n][:, None] for _, first, _ in windows]
        return np.concatenate(pieces, axis=1).reshape((k * n_phases, n) + value.shape[2:])

    ground_truth = None
    if ds.ground_truth is not None:
        ground_truth = {}
        for key, value in ds.ground_truth.items():
            if key.startswith("trial_") and isinstance(value, np.ndarray) and value.ndim >= 1 \
                    and value.shape[0] == k:
                cut_value = cut(value)
                ground_truth[key] = cut_value if cut_value is not value else value[source]
            else:
                ground_truth[key] = value
    names = [w[0] for w in windows]
    trials = ds.trials.iloc[source].reset_index(drop=True).copy()
    trials["source_trial"] = np.asarray(ds.trial_id)[source]
    trials[phase_column] = [names[p] for p in phase_index]
    trials["phase_start"] = [starts[names[p]] for p in phase_index]
    first_bin = windows[0][1]
    return TrialDataset(
        counts=counts,
        condition=ds.condition[source] * n_phases + phase_index,
        conditions=conditions,
        trial_id=np.array([f"{ds.trial_id[s]}/{names[p]}" for s, p in zip(source, phase_index,
                                                                            strict=True)]),
        unit_id=ds.unit_id,
        time=ds.time[first_bin:first_bin + n] - ds.time[first_bin] + ds.bin_size / 2,
        align_time=ds.align_time[source] + np.array([starts[names[p]] for p in phase_index]),
        bin_size=ds.bin_size,
        split=ds.split[source],
        behavior={key: cut(np.asarray(v)) for key, v in ds.behavior.items()},
        units=ds.units,
        trials=trials,
        provenance=ds.provenance.with_extras(phases=[list(p) for p in phases]),
        ground_truth=ground_truth,
    )


def phase_spectra(model, phase_column: str = "phase") -> pd.DataFrame:
    """Eigenvalues of J for every (condition, phase) of a model fitted on `split_phases` data.

    Returns a long table (one row per eigenvalue) with the condition columns, ``rank``,
    ``real``, ``imag`` and ``modulus``.
    """
    if phase_column not in model.conditions_.columns:
        raise UserError(f"the model's conditions have no {phase_column!r} column; fit it on data "
                        f"from split_phases")
    return spectrum_table(model)


def summarize_phase_spectra(table: pd.DataFrame, phase_column: str = "phase") -> pd.DataFrame:
    """Per phase: mean leading |λ|, mean |Im λ| and fraction of (near-)real eigenvalues."""
    table = table.assign(abs_imag=table["imag"].abs(),
                         is_real=table["imag"].abs() < 1e-6 * np.maximum(table["modulus"], 1))
    leading = table[table["rank"] == 0].groupby(phase_column, sort=False)["modulus"].mean()
    grouped = table.groupby(phase_column, sort=False)
    return pd.DataFrame({"leading_modulus": leading, "mean_modulus": grouped["modulus"].mean(),
                         "mean_abs_imag": grouped["abs_imag"].mean(),
                         "fraction_real": grouped["is_real"].mean()})
