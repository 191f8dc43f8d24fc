"""The `TrialDataset`: binned spike counts of many trials, each labelled with a condition.

This is the one data object that every model in the package consumes. It never knows about NWB;
`nwb_jedi.io` and `nwb_jedi.data.conditions` build it from files, `TrialDataset.from_arrays`
builds it from plain arrays.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nwb_jedi.data.provenance import Provenance
from nwb_jedi.errors import UserError

SPLIT_NAMES = ("train", "val", "test")


def _condition_table(labels: Sequence[Hashable], names: Sequence[str] | None):
    """Unique condition labels in a stable order, and each trial's index into them."""
    labels = list(labels)
    unique: list = []
    seen: dict = {}
    for lab in labels:
        key = _hashable(lab)
        if key not in seen:
            seen[key] = len(unique)
            unique.append(key)
    try:  # sorted order when the labels are comparable, so the table does not depend on trial order
        order = sorted(range(len(unique)), key=lambda i: unique[i])
    except TypeError:
        order = list(range(len(unique)))
    unique = [unique[i] for i in order]
    index = {lab: i for i, lab in enumerate(unique)}
    condition = np.array([index[_hashable(lab)] for lab in labels], dtype=np.int64)

    is_tuple = all(isinstance(u, tuple) for u in unique) and len(unique) > 0
    if is_tuple:
        width = len(unique[0])
        if any(len(u) != width for u in unique):
            raise ValueError("condition labels are tuples of different lengths; give each trial "
                             "a tuple with one value per condition column")
        cols = list(names) if names is not None else [f"condition_{i}" for i in range(width)]
        if len(cols) != width:
            raise ValueError(f"condition_names has {len(cols)} names but the labels have "
                             f"{width} values each")
        table = pd.DataFrame([list(u) for u in unique], columns=cols)
        table["label"] = [condition_label(u) for u in unique]
    else:
        col = names[0] if names else "condition"
        table = pd.DataFrame({col: unique})
        table["label"] = [str(u) for u in unique]
    repeated = table["label"][table["label"].duplicated()]
    if len(repeated):
        # Models match conditions by label: two conditions must never share one.
        raise UserError(f"conditions {sorted(set(repeated))[:3]} have values that differ only "
                        f"in type (e.g. 1 and '1'); give each condition column one type")
    return condition, table


def condition_label(values: Sequence) -> str:
    """The label of a condition defined by several values: ``"a/b"`` for ``("a", "b")``.

    A slash or backslash inside a value is escaped with a backslash, so that the label names
    one condition only: ``("a/b", "c")`` is ``a\\/b/c`` and ``("a", "b/c")`` is ``a/b\\/c``.
    """
    return "/".join(str(v).replace("\\", "\\\\").replace("/", "\\/") for v in values)


def _hashable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | np.ndarray):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    return value


def stratified_split(condition: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Assign each trial to train/val/test, stratified by condition, reproducibly.

    Every condition gets at least one training trial; with two trials the second goes to
    validation, with three or more each split gets its share rounded to whole trials.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1):
        raise ValueError(f"split must be three non-negative fractions (train, val, test) that "
                         f"sum to 1, got {tuple(fractions)}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(condition), dtype="<U5")
    for c in np.unique(condition):
        idx = np.flatnonzero(condition == c)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n))
        if fractions[1] > 0 and n_val == 0 and n >= 2:
            n_val = 1
        if fractions[2] > 0 and n_test == 0 and n >= 3:
            n_test = 1
        while n - n_val - n_test < 1:  # keep at least one training trial
            if n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        out[idx[: n - n_val - n_test]] = "train"
        out[idx[n - n_val - n_test: n - n_test]] = "val"
        out[idx[n - n_test:]] = "test"
    return out


@dataclass(eq=False, init=False)
class TrialDataset:
    """Binned spike counts of K trials x T bins x N neurons, with one condition per trial.

    Attributes
    ----------
    counts : ndarray, shape (K, T, N), float32
        Spike counts per bin.
    condition : ndarray, shape (K,), int64
        Index of each trial's condition into `conditions`.
    conditions : DataFrame
        One row per condition, with the values that define it and a string ``label``.
    trial_id, unit_id : ndarray
        Identifiers of the trials (K) and neurons (N), as in the source file.
    time : ndarray, shape (T,)
        Bin centers relative to the alignment event, in seconds.
    align_time : ndarray, shape (K,)
        Absolute time of each trial's alignment event in the session (NaN when unknown).
    bin_size : float
        Bin width in seconds.
    split : ndarray, shape (K,), str
        "train", "val" or "test" for every trial.
    behavior : dict of str to ndarray (K, T, D)
        Behavioral series resampled to the same bins.
    units : DataFrame
        Per-neuron metadata (one row per neuron, e.g. ``heldout``, ``location``).
    trials : DataFrame
        Per-trial metadata from the source trials table (one row per trial).
    provenance : Provenance
        Where the data came from: source, session, mapper settings, drop report, extras.
    ground_truth : dict or None
        For synthetic data: the teacher's noiseless rates, weights and inputs.
    nlb_psth : ndarray, shape (C, T, N), or None
        The Neural Latents Benchmark's PSTH targets, one row per row of `conditions`, in Hz:
        all trials of each condition from 1 ms spikes smoothed with the benchmark's kernel,
        then binned (`nwb_jedi.data.nlb.smoothed_psth` builds them from a session). When
        present, scores include NLB's ``psth_r2_nlb``. Subsets keep it (the conditions table
        stays whole); `select_units` keeps its neurons' columns.
    metadata : dict (read-only)
        The dict form of `provenance` (``provenance.to_dict()``). Kept for one release so
        code written against the old free-form metadata keeps working; use `provenance`.

    The constructor takes the attributes above as keywords; `provenance` may instead be given
    as ``metadata=`` (its dict form, as read from a file), also kept for one release.
    """

    counts: np.ndarray
    condition: np.ndarray
    conditions: pd.DataFrame
    trial_id: np.ndarray
    unit_id: np.ndarray
    time: np.ndarray
    align_time: np.ndarray
    bin_size: float
    split: np.ndarray
    behavior: dict[str, np.ndarray] = field(default_factory=dict)
    units: pd.DataFrame | None = None
    trials: pd.DataFrame | None = None
    ground_truth: dict[str, Any] | None = None
    provenance: Provenance = field(default_factory=Provenance)
    nlb_psth: np.ndarray | None = None

    def __init__(self, counts: np.ndarray, condition: np.ndarray, conditions: pd.DataFrame,
                 trial_id: np.ndarray, unit_id: np.ndarray, time: np.ndarray,
                 align_time: np.ndarray, bin_size: float, split: np.ndarray,
                 behavior: Mapping[str, np.ndarray] | None = None,
                 units: pd.DataFrame | None = None, trials: pd.DataFrame | None = None,
                 metadata: Mapping[str, Any] | None = None,
                 ground_truth: Mapping[str, Any] | None = None,
                 provenance: Provenance | None = None, nlb_psth: np.ndarray | None = None):
        if metadata is not None and provenance is not None:
            raise ValueError("give the dataset's provenance once: provenance= or its dict form "
                             "metadata=, not both")
        if provenance is None:
            provenance = Provenance.from_dict(metadata or {})
        elif not isinstance(provenance, Provenance):
            raise TypeError(f"provenance must be a Provenance, got {type(provenance).__name__}; "
                            f"build one with Provenance(...) or Provenance.from_dict")
        self.provenance = provenance
        self.counts = np.asarray(counts, dtype=np.float32)
        self.condition = np.asarray(condition, dtype=np.int64)
        self.conditions = conditions
        self.trial_id = np.asarray(trial_id)
        self.unit_id = np.asarray(unit_id)
        self.time = np.asarray(time, dtype=np.float64)
        self.align_time = np.asarray(align_time, dtype=np.float64)
        self.bin_size = float(bin_size)
        self.split = np.asarray(split).astype("<U5")
        self.behavior = behavior if behavior is not None else {}
        self.units = units if units is not None else pd.DataFrame(
            index=pd.RangeIndex(self.n_units))
        self.trials = trials if trials is not None else pd.DataFrame(
            index=pd.RangeIndex(self.n_trials))
        self.ground_truth = ground_truth
        self.nlb_psth = None if nlb_psth is None else np.asarray(nlb_psth, dtype=np.float64)
        self.validate()

    @property
    def metadata(self) -> dict[str, Any]:
        """The dict form of `provenance` (read-only; kept for one release, use `provenance`)."""
        return _MetadataView(self.provenance.to_dict())

    @metadata.setter
    def metadata(self, value: Mapping[str, Any]) -> None:
        self.provenance = Provenance.from_dict(value)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        counts: np.ndarray,
        conditions: Sequence[Hashable],
        bin_size: float,
        trial_ids: Sequence | None = None,
        unit_ids: Sequence | None = None,
        time: np.ndarray | None = None,
        split: Sequence[float] | Sequence[str] = (0.7, 0.15, 0.15),
        seed: int = 0,
        align_time: np.ndarray | None = None,
        behavior: Mapping[str, np.ndarray] | None = None,
        condition_names: Sequence[str] | None = None,
        units: pd.DataFrame | None = None,
        trials: pd.DataFrame | None = None,
        metadata: Mapping[str, Any] | None = None,
        ground_truth: Mapping[str, Any] | None = None,
        provenance: Provenance | None = None,
    ) -> TrialDataset:
        """Build a dataset from a K x T x N array of spike counts and K condition labels.

        Parameters
        ----------
        counts : array_like, shape (K, T, N)
            Non-negative spike counts.
        conditions : sequence of hashable, length K
            Each trial's condition label. Tuples become one column per element
            (named by `condition_names`).
        bin_size : float
            Bin width in seconds, > 0.
        trial_ids, unit_ids : sequence, optional
            Identifiers; default 0..K-1 and 0..N-1.
        time : array_like, shape (T,), optional
            Bin centers relative to the alignment event (s); default starts at bin_size / 2.
        split : (train, val, test) fractions or K strings
            Fractions give a split stratified by condition, drawn with `seed`; strings
            ("train"/"val"/"test") are used as given.
        seed : int
            Seed of the split.
        provenance : Provenance, optional
            Where the data came from; `metadata` (its dict form, kept for one release) is the
            alternative.

        Raises
        ------
        ValueError
            NaN, infinite or negative counts, mismatched lengths, a condition with fewer than
            2 trials, or a non-positive bin size.
        """
        counts = np.asarray(counts)
        if counts.ndim != 3:
            raise ValueError(f"counts must be a 3-D array (trials x bins x neurons), got shape "
                             f"{counts.shape}")
        if not np.issubdtype(counts.dtype, np.number) or np.issubdtype(counts.dtype,
                                                                        np.complexfloating):
            raise ValueError(f"counts must be numeric, got dtype {counts.dtype}")
        if not np.isfinite(bin_size) or bin_size <= 0:
            raise ValueError(f"bin_size must be a positive number of seconds, got {bin_size}")
        labels = list(conditions)
        n_trials, n_bins, n_units = counts.shape
        if len(labels) != n_trials:
            raise ValueError(f"conditions has {len(labels)} labels but counts has {n_trials} "
                             f"trials; give one condition label per trial")
        condition, table = _condition_table(labels, condition_names)
        if time is None:
            time = (np.arange(n_bins) + 0.5) * bin_size
        if isinstance(split, str):
            raise ValueError("split must be (train, val, test) fractions or one string per trial")
        split_arr = np.asarray(split)
        if split_arr.dtype.kind in "US" and split_arr.shape == (n_trials,):
            split_labels = split_arr.astype(str)
        else:
            _check_min_trials(condition, table)
            split_labels = stratified_split(condition, split_arr.astype(float), seed)
        return cls(
            counts=counts,
            condition=condition,
            conditions=table,
            trial_id=np.arange(n_trials) if trial_ids is None else np.asarray(trial_ids),
            unit_id=np.arange(n_units) if unit_ids is None else np.asarray(unit_ids),
            time=np.asarray(time, dtype=float),
            align_time=(np.full(n_trials, np.nan) if align_time is None
                        else np.asarray(align_time, dtype=float)),
            bin_size=bin_size,
            split=split_labels,
            behavior=dict(behavior or {}),
            units=units,
            trials=trials,
            metadata=metadata,
            ground_truth=dict(ground_truth) if ground_truth is not None else None,
            provenance=provenance,
        )

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first inconsistency found."""
        self._check_counts()
        self._check_shapes()
        self._check_labels()
        self._check_behavior()

    def _check_counts(self) -> None:
        if self.counts.ndim != 3:
            raise ValueError(f"counts must be 3-D (trials x bins x neurons), got shape "
                             f"{self.counts.shape}")
        if not np.all(np.isfinite(self.counts)):
            raise ValueError("counts contain NaN or infinite values; spike counts must be finite")
        if np.any(self.counts < 0):
            raise ValueError("counts contain negative values; spike counts must be >= 0")
        if not np.isfinite(self.bin_size) or self.bin_size <= 0:
            raise ValueError(f"bin_size must be a positive number of seconds, got "
                             f"{self.bin_size}")

    def _check_shapes(self) -> None:
        """Every per-trial, per-bin and per-neuron array matches the counts."""
        k, t, n = self.counts.shape
        for name, arr, size in [("condition", self.condition, k), ("trial_id", self.trial_id, k),
                                ("align_time", self.align_time, k), ("split", self.split, k),
                                ("unit_id", self.unit_id, n), ("time", self.time, t)]:
            if arr.shape != (size,):
                raise ValueError(f"{name} has shape {arr.shape} but the counts imply ({size},)")
        if len(self.units) != n:
            raise ValueError(f"units table has {len(self.units)} rows but there are {n} neurons")
        if len(self.trials) != k:
            raise ValueError(f"trials table has {len(self.trials)} rows but there are {k} trials")
        if self.nlb_psth is not None and self.nlb_psth.shape != (len(self.conditions), t, n):
            raise ValueError(f"nlb_psth has shape {self.nlb_psth.shape} but the dataset needs "
                             f"(conditions, bins, neurons) = {(len(self.conditions), t, n)}")

    def _check_labels(self) -> None:
        """Condition indices point into the conditions table; split labels are known."""
        if self.n_trials and (self.condition.min() < 0
                              or self.condition.max() >= len(self.conditions)):
            raise ValueError("condition indices point outside the conditions table")
        bad = set(np.unique(self.split)) - set(SPLIT_NAMES)
        if bad:
            raise ValueError(f"split labels must be train/val/test, got {sorted(bad)}")

    def _check_behavior(self) -> None:
        k, t = self.counts.shape[:2]
        for name, arr in self.behavior.items():
            if np.shape(arr)[:2] != (k, t):
                raise ValueError(f"behavior '{name}' has shape {np.shape(arr)}; expected "
                                 f"({k}, {t}, D)")

    # ------------------------------------------------------------------ views
    @property
    def n_trials(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_bins(self) -> int:
        return int(self.counts.shape[1])

    @property
    def n_units(self) -> int:
        return int(self.counts.shape[2])

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    @property
    def condition_labels(self) -> list[str]:
        """Each trial's condition as its string label."""
        labels = self.conditions["label"].to_numpy()
        return [str(labels[c]) for c in self.condition]

    def trials_per_condition(self) -> np.ndarray:
        """Number of trials of each row of `conditions` in this dataset."""
        return np.bincount(self.condition, minlength=self.n_conditions)

    def subset(self, indices: np.ndarray | Sequence[int]) -> TrialDataset:
        """A dataset of the chosen trials (integer indices or a boolean mask).

        The conditions table is kept whole, so condition indices mean the same thing in every
        subset of one dataset.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_trials,):
                raise ValueError(f"boolean mask has shape {idx.shape}, expected "
                                 f"({self.n_trials},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        return TrialDataset(
            counts=self.counts[idx],
            condition=self.condition[idx],
            conditions=self.conditions,
            trial_id=self.trial_id[idx],
            unit_id=self.unit_id,
            time=self.time,
            align_time=self.align_time[idx],
            bin_size=self.bin_size,
            split=self.split[idx],
            behavior={k: np.asarray(v)[idx] for k, v in self.behavior.items()},
            units=self.units,
            trials=self.trials.iloc[idx].reset_index(drop=True),
            provenance=self.provenance.copy(),
            ground_truth=_subset_ground_truth(self.ground_truth, idx, self.n_trials),
            nlb_psth=self.nlb_psth,
        )

    def select_units(self, indices: np.ndarray | Sequence[int]) -> TrialDataset:
        """A dataset with only the chosen neurons (integer indices or a boolean mask)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return TrialDataset(
            counts=self.counts[:, :, idx], condition=self.condition, conditions=self.conditions,
            trial_id=self.trial_id, unit_id=self.unit_id[idx], time=self.time,
            align_time=self.align_time, bin_size=self.bin_size, split=self.split,
            behavior=self.behavior, units=self.units.iloc[idx].reset_index(drop=True),
            trials=self.trials, provenance=self.provenance.copy(), ground_truth=self.ground_truth,
            nlb_psth=None if self.nlb_psth is None else self.nlb_psth[:, :, idx],
        )

    def _split(self, name: str) -> TrialDataset:
        return self.subset(self.split == name)

    @property
    def train(self) -> TrialDataset:
        """The training trials."""
        return self._split("train")

    @property
    def val(self) -> TrialDataset:
        """The validation trials."""
        return self._split("val")

    @property
    def test(self) -> TrialDataset:
        """The held-out test trials."""
        return self._split("test")

    def psth(self) -> np.ndarray:
        """Trial-averaged counts per condition, shape (C, T, N); NaN for absent conditions."""
        return condition_means(self.counts, self.condition, self.n_conditions)

    def __repr__(self) -> str:
        counts = {s: int(np.sum(self.split == s)) for s in SPLIT_NAMES}
        return (f"TrialDataset({self.n_trials} trials x {self.n_bins} bins x {self.n_units} "
                f"neurons, {self.n_conditions} conditions, bin {self.bin_size * 1e3:g} ms, "
                f"split {counts})")


def condition_means(values: np.ndarray, condition: np.ndarray, n_conditions: int) -> np.ndarray:
    """Average a (K, ...) array over the trials of each condition -> (C, ...), NaN when empty."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full((n_conditions,) + values.shape[1:], np.nan)
    sums = np.zeros_like(out)
    np.add.at(sums, condition, values)
    n = np.bincount(condition, minlength=n_conditions)
    present = n > 0
    out[present] = sums[present] / n[present].reshape((-1,) + (1,) * (values.ndim - 1))
    return out


def _check_min_trials(condition: np.ndarray, table: pd.DataFrame) -> None:
    n = np.bincount(condition, minlength=len(table))
    few = np.flatnonzero(n < 2)
    if len(few):
        names = ", ".join(repr(table["label"].iloc[i]) for i in few[:5])
        raise ValueError(f"{len(few)} condition(s) have fewer than 2 trials ({names}); drop "
                         f"them or merge conditions so each has at least 2 trials")


def _subset_ground_truth(gt, idx, n_trials):
    if gt is None:
        return None
    out = {}
    for key, val in gt.items():
        if isinstance(val, np.ndarray) and val.ndim >= 1 and val.shape[0] == n_trials \
                and key.startswith("trial_"):
            out[key] = val[idx]
        else:
            out[key] = val
    return out


class _MetadataView(dict):
    """`TrialDataset.metadata`: the dict form of the provenance, refusing changes.

    Writing to ``ds.metadata`` used to change the dataset's record; the record is now
    ``ds.provenance``, so a write here fails loudly instead of being lost silently.
    ``dict(ds.metadata)`` gives a changeable copy.
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError("TrialDataset.metadata is a read-only view of TrialDataset.provenance; "
                        "change ds.provenance (e.g. ds.provenance.extras[key] = value) instead")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):  # copies and pickles of the view are plain dicts
        return dict, (dict(self),)
