"""What a stored model state may ask for, checked before any torch module is built.

A model's state (``get_state()``: a JSON config and named arrays) is read from files that
anyone may have written. Its config decides the size of the module `from_state` builds, so a
few bytes of JSON (rank 131072, hidden 10**6, n_units 10**9) could make the loader allocate
gigabytes or die inside torch. `check_state` looks at the config and the stored arrays first:

- the structure: every field has the type the estimators write (a malformed history or
  parameter is one clear `ModelFileError`, never a TypeError later);
- the bounds: sizes far beyond any recording (`LIMITS`), rank at most the number of units,
  unique condition labels (models match conditions by label);
- the size: the parameters the config implies must actually be stored. For each format, the
  largest tensor the config implies (`implied_parameters`, a lower bound of what the estimator
  stores) may not exceed the number of values the file stores, so the module built next is
  never larger than the data that came with it.

No torch here: the check runs before torch allocates anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from nwb_jedi.errors import ModelFileError

__all__ = ["LIMITS", "check_state", "implied_parameters"]

#: Upper bounds of the config's sizes: far beyond any real recording or model.
LIMITS = {
    "n_units": 100_000,
    "n_conditions": 100_000,
    "n_bins": 10_000_000,
    "trial_offset_ids": 10_000_000,
    "hidden": 65_536,
    "embed_dim": 4_096,
    "tensors": 256,
    "history_epochs": 10_000_000,
}


def _damaged(text: str) -> ModelFileError:
    return ModelFileError(f"the model config {text}; the file is damaged or not a nwb_jedi model")


# Longest list a parameter may hold (one value per neuron).
MAX_LIST = 1_000_000


def _count(config: Mapping, key: str, low: int, high: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not low <= value <= high:
        raise _damaged(f"has {key} = {value!r}, not an integer from {low} to {high:,}")
    return int(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def _plain(value: Any) -> bool:
    # A flat list of scalars too: the held-out neuron mask of the co-smoothing baselines.
    return _scalar(value) or (isinstance(value, list) and len(value) <= MAX_LIST
                              and all(_scalar(v) for v in value))


def _check_params(params: Any, n_units: int) -> dict[str, Any]:
    if not isinstance(params, Mapping) or not all(
            isinstance(k, str) and _plain(v) for k, v in params.items()):
        raise _damaged("has params that are not a mapping of names to plain values")
    rank = params.get("rank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)
                             or not 1 <= rank <= n_units):
        raise _damaged(f"has rank {rank!r}; a model of {n_units} units has a rank from 1 to "
                       f"{n_units} (or None)")
    for key in ("hidden", "embed_dim"):
        if key in params:
            _count(params, key, 1, LIMITS[key])
    return dict(params)


def _check_conditions(table: Any) -> int:
    if not isinstance(table, Mapping) or not isinstance(table.get("columns"), list) \
            or not isinstance(table.get("rows"), list):
        raise _damaged("has no conditions table with columns and rows")
    columns, rows = table["columns"], table["rows"]
    if "label" not in columns or not all(isinstance(c, str) for c in columns):
        raise _damaged("has a conditions table without a 'label' column")
    if len(rows) > LIMITS["n_conditions"]:
        raise _damaged(f"has {len(rows):,} conditions (at most {LIMITS['n_conditions']:,})")
    if not all(isinstance(r, list) and len(r) == len(columns) and all(map(_plain, r))
               for r in rows):
        raise _damaged("has conditions rows that do not match its columns")
    labels = [str(r[columns.index("label")]) for r in rows]
    if len(set(labels)) != len(labels):
        raise _damaged("names two conditions with the same label")
    return len(rows)


def _check_history(history: Any) -> None:
    if history is None:
        return
    if not isinstance(history, Mapping) or not all(
            isinstance(k, str) and isinstance(v, list) for k, v in history.items()):
        raise _damaged("has a training history that is not a mapping of names to lists")
    for key, values in history.items():
        if len(values) > LIMITS["history_epochs"] or not all(
                v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                for v in values):
            raise _damaged(f"has a training history {key!r} that is not a list of numbers")


def _check_units(config: Mapping, n_units: int) -> None:
    unit_id = config.get("unit_id")
    if not isinstance(unit_id, list) or len(unit_id) != n_units or not all(
            isinstance(u, str | int | float) and not isinstance(u, bool) for u in unit_id):
        raise _damaged(f"does not list the ids of its {n_units} units")
    bin_size = config.get("bin_size")
    if isinstance(bin_size, bool) or not isinstance(bin_size, int | float) \
            or not (math.isfinite(bin_size) and bin_size > 0):
        raise _damaged(f"has bin_size {bin_size!r}, not a positive number of seconds")


def implied_parameters(format_name: str, params: Mapping[str, Any], n_units: int,
                       n_conditions: int, n_bins: int, n_trial_offsets: int) -> int:
    """The number of values in the largest tensors that a model of this config must store
    (a lower bound of its state's size; 0 for a format not known here).

    JEDI: the hypernetwork's output layer (hidden x the RNN's weights) and the embeddings;
    PerConditionRNN / SharedRNN: each RNN's connectivity; PSTHBaseline: the PSTHs.
    """
    rank = params.get("rank")
    connectivity = 2 * n_units * rank if rank else n_units * n_units
    if format_name == "nwb_jedi.JEDI":
        embed_dim = int(params.get("embed_dim") or 1)
        hidden = int(params.get("hidden") or 1)
        return hidden * (connectivity + 2 * n_units) + (n_conditions + n_trial_offsets) * embed_dim
    if format_name == "nwb_jedi.PerConditionRNN":
        return n_conditions * connectivity
    if format_name == "nwb_jedi.SharedRNN":
        return connectivity
    if format_name == "nwb_jedi.PSTHBaseline":
        return n_conditions * n_bins * n_units
    return 0


def _stored_values(tensors: Any) -> int:
    if not isinstance(tensors, Mapping) or not all(isinstance(k, str) for k in tensors):
        raise ModelFileError("the model's tensors are not a mapping of names to arrays; the file "
                             "is damaged")
    if len(tensors) > LIMITS["tensors"]:
        raise ModelFileError(f"the model stores {len(tensors)} tensors (at most "
                             f"{LIMITS['tensors']}); the file is damaged or hostile")
    return int(sum(int(np.size(t)) for t in tensors.values()))


def check_state(config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
    """Refuse a stored model state whose config is malformed, out of bounds, or implies more
    parameters than are stored, before anything is built from it.

    Parameters
    ----------
    config : mapping
        The JSON config of ``get_state()`` (with the fit state), as read from a file.
    tensors : mapping of str to ndarray
        The stored arrays.

    Raises
    ------
    ModelFileError
        One sentence naming the field that is wrong.
    """
    if not isinstance(config, Mapping):
        raise ModelFileError("the model config is not a mapping; the file is damaged")
    n_units = _count(config, "n_units", 1, LIMITS["n_units"])
    params = _check_params(config.get("params", {}), n_units)
    _check_units(config, n_units)
    n_conditions = _check_conditions(config.get("conditions"))
    n_bins = 0 if config.get("n_bins") is None else _count(config, "n_bins", 1, LIMITS["n_bins"])
    offsets = config.get("trial_offset_ids", [])
    if not isinstance(offsets, list) or len(offsets) > LIMITS["trial_offset_ids"]:
        raise _damaged(f"has trial_offset_ids that are not a list of at most "
                       f"{LIMITS['trial_offset_ids']:,} ids")
    _check_history(config.get("history"))
    versions = config.get("versions", {})
    if not isinstance(versions, Mapping) or not all(
            isinstance(k, str) and _plain(v) for k, v in versions.items()):
        raise _damaged("has versions that are not a mapping of package names to versions")
    stored = _stored_values(tensors)
    implied = implied_parameters(str(config.get("format")), params, n_units, n_conditions,
                                 n_bins, len(offsets))
    if implied > stored:
        shown = ", ".join(f"{k}={params[k]}" for k in ("rank", "hidden", "embed_dim")
                          if k in params)
        raise ModelFileError(f"the model config ({shown}, {n_units} units, {n_conditions} "
                             f"conditions) implies at least {implied:,} parameters, but the "
                             f"file stores {stored:,} values; the file is damaged or hostile")
