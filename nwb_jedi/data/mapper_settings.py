"""The settings of a `ConditionMapper` as plain JSON values, and reading them back.

`ConditionMapper.to_settings` writes them, `ConditionMapper.from_settings` reads them (through
`decode_settings`, which refuses anything malformed with one clear sentence: settings are read
from files). JSON has no tuples and JSON writers may sort object keys, so `by` is stored in list
forms: ``("reach_angle", 8)`` as ``["reach_angle", 8]`` (a list whose second item is not a
column name) and ``{"maze": None, "reach_angle": 8}`` as ``[["maze", None], ["reach_angle", 8]]``
(the pairs keep the order of the condition columns); other tuples (window, split fractions)
become lists. A callable cannot be stored: a dataset built with one records that setting as
None and the callable's name under ``"callables"``, and `decode_settings` refuses such settings
unless the setting is given again.

Settings are read from files that anyone may have written, so a query string among them
(``trial_filter``, ``unit_filter``) comes back as a `nwb_jedi.data.filters.StoredQuery`: parsed
into a whitelisted form and never handed to pandas' evaluator, or refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nwb_jedi.data.filters import StoredQuery
from nwb_jedi.errors import UserError

#: The settings that define a dataset, in the constructor's order (`verbose` only prints).
SETTINGS = ("by", "align", "window", "bin_size", "align_reference", "trial_filter",
            "unit_filter", "min_rate_hz", "exclude_heldout", "smooth_sd", "split", "seed",
            "behavior")
#: Settings without a default.
REQUIRED_SETTINGS = ("by", "align", "window", "bin_size")
#: The settings that may be callables, and what to give instead where a callable cannot go.
CALLABLE_ALTERNATIVES = {
    "by": "a column name, a list of names, a (column, bins) pair or a {column: bins} dict",
    "align": "the name of a trials-table column of event times",
    "trial_filter": "a pandas query string or a {column: values} dict",
    "unit_filter": "a pandas query string on the units table",
}


def to_plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays, tuples and sets turned into JSON's plain types.

    Parameters
    ----------
    value : any
        A setting's value; containers are converted recursively, other objects kept as they
        are (`decode_settings` then says whether the result can be read back).

    Returns
    -------
    any
        Lists instead of tuples, arrays and sets (sets sorted when their values compare),
        Python scalars instead of numpy scalars.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        try:
            return sorted(to_plain(v) for v in value)
        except TypeError:  # values of mixed types: any order selects the same trials
            return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def plain_by(by: Any) -> Any:
    """`by` in its stored form: a dict as a list of [column, bins] pairs, the rest `to_plain`.

    The pairs keep the order of the condition columns, which a JSON object loses when its
    writer sorts the keys.
    """
    if isinstance(by, Mapping):
        return [[column, to_plain(bins)] for column, bins in by.items()]
    return to_plain(by)


def decode_settings(settings: Any) -> dict[str, Any]:
    """`ConditionMapper` keyword arguments from stored settings (lists back to tuples).

    Parameters
    ----------
    settings : mapping
        Settings in `ConditionMapper.to_settings` form, as read from JSON, or keyword
        arguments as a preset holds them. Settings left out are not returned (the constructor's
        defaults apply).

    Returns
    -------
    dict
        The keyword arguments (without ``verbose``).

    Raises
    ------
    UserError
        Not a mapping, an unknown setting, a required one missing (by, align, window,
        bin_size), a value of the wrong type, or a setting recorded as a callable and not
        given again.
    """
    if not isinstance(settings, Mapping):
        raise UserError(f"mapper settings must be a dict of ConditionMapper settings, got "
                        f"{type(settings).__name__}")
    unknown = sorted(str(k) for k in settings if k not in _DECODERS and k != "callables")
    if unknown:
        raise UserError(f"unknown mapper setting(s) {', '.join(unknown)}; the settings are "
                        f"{', '.join(SETTINGS)}")
    _refuse_recorded_callables(settings)
    missing = [k for k in REQUIRED_SETTINGS if settings.get(k) is None]
    if missing:
        raise UserError(f"mapper settings lack {', '.join(missing)}; give them (how trials map "
                        f"to conditions and are binned)")
    return {k: _DECODERS[k](k, v) for k, v in settings.items() if k != "callables"}


def _refuse_recorded_callables(settings: Mapping[str, Any]) -> None:
    """A setting recorded as a callable must be given again as a plain value."""
    recorded = settings.get("callables") or {}
    if not isinstance(recorded, Mapping) or not all(
            k in CALLABLE_ALTERNATIVES and isinstance(v, str) for k, v in recorded.items()):
        raise UserError(f"mapper setting 'callables' must map {', '.join(CALLABLE_ALTERNATIVES)} "
                        f"to the names of the callables they were, got {recorded!r}")
    for name, function in recorded.items():
        if settings.get(name) is None:
            raise UserError(f"{name} was a callable ({function}) when the dataset was built, "
                            f"and a callable cannot be stored; give {name} again as "
                            f"{CALLABLE_ALTERNATIVES[name]}")


def _wrong(name: str, expected: str, value) -> UserError:
    return UserError(f"mapper setting {name!r} must be {expected}, got {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        bool(np.isfinite(value))


def _text(name: str, value, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _wrong(name, "a non-empty string" + (" or None" if optional else ""), value)
    return value


def _number(name: str, value, optional: bool = True) -> float | int | None:
    if value is None and optional:
        return None
    if not _is_number(value) or value < 0:
        raise _wrong(name, "a finite number >= 0" + (" or None" if optional else ""), value)
    return value


def _numbers(name: str, value, length: int | None = None) -> tuple:
    ok = isinstance(value, list | tuple) and all(_is_number(v) for v in value)
    if not ok or (length is not None and len(value) != length):
        size = f"{length} " if length is not None else ""
        raise _wrong(name, f"a list of {size}finite numbers", value)
    return tuple(value)


def _decode_by(name: str, value) -> Any:
    expected = ("a column name, a list of names, [column, bins], [[column, bins], ...] or a "
                "{column: bins} dict")
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
        return {k: _decode_bins(k, v) for k, v in value.items()}
    if not isinstance(value, list | tuple) or not value:
        raise _wrong(name, expected, value)
    if all(isinstance(v, str) for v in value):
        return list(value)
    if len(value) == 2 and isinstance(value[0], str):
        return (value[0], _decode_bins(value[0], value[1]))
    pairs = all(isinstance(v, list | tuple) and len(v) == 2 and isinstance(v[0], str)
                for v in value)
    if not pairs or len({v[0] for v in value}) != len(value):
        raise _wrong(name, expected + " (each column once)", value)
    return {v[0]: _decode_bins(v[0], v[1]) for v in value}


def _decode_bins(column: str, bins) -> Any:
    """None (the column as it is), a number of bins, or a list of bin edges."""
    if bins is None or (isinstance(bins, int) and not isinstance(bins, bool)):
        return bins
    return list(_numbers(f"by[{column!r}] bins", bins))


def _decode_bin_size(name: str, value) -> float:
    if not _is_number(value) or value <= 0:
        raise _wrong(name, "a positive number of seconds", value)
    return value


def _decode_query(name: str, value) -> StoredQuery | None:
    """None, or a query string parsed into its whitelisted form (never evaluated as code)."""
    text = _text(name, value)
    return None if text is None else StoredQuery(text, name)


def _decode_trial_filter(name: str, value) -> str | dict | None:
    """None, a query string (see `_decode_query`), or {column: a value or a list of values}."""
    if value is None or isinstance(value, str):
        return _decode_query(name, value)

    def plain_value(v) -> bool:
        return v is None or isinstance(v, str | bool) or _is_number(v)

    ok = isinstance(value, Mapping) and all(
        isinstance(k, str) and (plain_value(v) or (isinstance(v, list | tuple)
                                                   and all(plain_value(x) for x in v)))
        for k, v in value.items())
    if not ok:
        raise _wrong(name, "None, a query string or a {column: value or list of values} dict",
                     value)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}


def _decode_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise _wrong(name, "true or false", value)
    return value


def _decode_split(name: str, value) -> str | tuple:
    if isinstance(value, str) and value:
        return value
    if not isinstance(value, list | tuple):
        raise _wrong(name, "(train, val, test) fractions or the name of a split column", value)
    return _numbers(name, value, 3)


def _decode_seed(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(name, "an integer", value)
    return value


def _decode_behavior(name: str, value) -> bool | list[str]:
    if isinstance(value, bool):
        return value
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _wrong(name, "true, false or a list of behavior names", value)
    return list(value)


#: How `from_settings` reads each setting: a function (name, value) -> the constructor's value.
_DECODERS: dict[str, Callable[[str, Any], Any]] = {
    "by": _decode_by,
    "align": lambda name, value: _text(name, value, optional=False),
    "window": lambda name, value: _numbers(name, value, 2),
    "bin_size": _decode_bin_size,
    "align_reference": _text,
    "trial_filter": _decode_trial_filter,
    "unit_filter": _decode_query,
    "min_rate_hz": _number,
    "exclude_heldout": _decode_bool,
    "smooth_sd": _number,
    "split": _decode_split,
    "seed": _decode_seed,
    "behavior": _decode_behavior,
}
