"""Where a `TrialDataset` came from: a typed record that round-trips through JSON.

`Provenance` replaces the free keys that ``TrialDataset.metadata`` used to hold. Its dict form
(`Provenance.to_dict`) is exactly the old metadata layout, so files written before it still
load and the writers store it unchanged (as the ``dataset_metadata`` JSON of a fitted file):

``source``
    Where the session was read from (``kind``, ``path``, ``dandiset_id``, ...), or
    ``{"kind": "synthetic"}`` for simulated data.
``session``
    Session and subject metadata (``session_id``, ``identifier``, ...).
``mapper``
    The `ConditionMapper` settings that built the dataset (``ConditionMapper.to_settings``
    form, read back by ``ConditionMapper.from_settings``).
``report``
    The mapper's drop report (`MapperReport`).
any other key
    An extra, e.g. the ``phases`` of ``analysis.phases.split_phases``, the seeds of a
    synthetic dataset, or ``applied_model`` (the file, module and session of a model applied
    to these data with its network frozen, as ``nwb-jedi predict`` records; its quality is
    then judged as a transfer, `nwb_jedi.model.quality`). Files also store ``units`` next to
    these keys: where each unit was recorded (`nwb_jedi.data.units.unit_identity`).

`Provenance.from_dict` reads that form back and refuses malformed input with one clear
sentence, because it is read from files that anyone may have written.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from nwb_jedi.errors import UserError

#: Keys of the dict form that are fields of `Provenance`; every other key is an extra.
FIELDS = ("source", "session", "mapper", "report")


@dataclass
class MapperReport:
    """What `ConditionMapper.build` kept and dropped, and why."""

    n_trials_total: int = 0
    n_trials_kept: int = 0
    trials_dropped: dict[str, int] = field(default_factory=dict)
    n_units_total: int = 0
    n_units_kept: int = 0
    units_dropped: dict[str, int] = field(default_factory=dict)
    conditions_dropped: list[str] = field(default_factory=list)
    n_conditions: int = 0
    #: Trials of the table whose id another trial also has (told apart by position).
    duplicate_trial_ids: int = 0

    def summary(self) -> str:
        """One line: kept counts and every drop reason with its count."""
        drops = ", ".join(f"{n} {why}" for why, n in self.trials_dropped.items() if n)
        udrops = ", ".join(f"{n} {why}" for why, n in self.units_dropped.items() if n)
        duplicates = (f"; {self.duplicate_trial_ids} trials share their id with another trial"
                      if self.duplicate_trial_ids else "")
        return (f"kept {self.n_trials_kept}/{self.n_trials_total} trials in "
                f"{self.n_conditions} conditions and {self.n_units_kept}/{self.n_units_total} "
                f"units; trials dropped: {drops or 'none'}; units dropped: {udrops or 'none'}"
                f"{duplicates}")

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> MapperReport:
        """Read a report written by `as_dict`; raise UserError on anything else.

        Keys missing from older files take their defaults; unknown keys are refused.
        """
        if not isinstance(data, Mapping):
            raise _malformed("report", f"is of type {type(data).__name__}, not an object")
        unknown = sorted(str(k) for k in set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise _malformed("report", f"has unknown keys {unknown}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("trials_dropped", "units_dropped"):
                values[key] = _count_dict(f"report.{key}", value)
            elif key == "conditions_dropped":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise _malformed(f"report.{key}", "is not a list of strings")
                values[key] = list(value)
            else:
                values[key] = _count(f"report.{key}", value)
        return cls(**values)


@dataclass
class Provenance:
    """Where a dataset came from: source, session, mapper settings, drop report and extras.

    Attributes
    ----------
    source : dict
        Where the session was read from (``kind``, ``path``, ...); empty when unknown.
    session : dict
        Session and subject metadata; empty when unknown.
    mapper : dict or None
        ``ConditionMapper.to_settings()`` of the mapper that built the dataset.
    report : MapperReport or None
        What that mapper kept and dropped.
    extras : dict
        Anything else worth keeping (JSON-able values), e.g. ``phases``; its keys must not be
        one of ``source``, ``session``, ``mapper``, ``report``.
    """

    source: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    mapper: dict[str, Any] | None = None
    report: MapperReport | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        clash = sorted(k for k in self.extras if k in FIELDS)
        if clash:
            raise UserError(f"provenance extras may not be named {clash}: those are fields of "
                            f"Provenance; set them as fields or rename the extras")

    def to_dict(self) -> dict[str, Any]:
        """The dict form (a deep copy): fields that are set, then the extras."""
        out: dict[str, Any] = {}
        if self.source:
            out["source"] = self.source
        if self.session:
            out["session"] = self.session
        if self.mapper is not None:
            out["mapper"] = self.mapper
        if self.report is not None:
            out["report"] = self.report.as_dict()
        out.update(self.extras)
        return copy.deepcopy(out)

    @classmethod
    def from_dict(cls, data: Any) -> Provenance:
        """Read the dict form (e.g. the ``dataset_metadata`` JSON of a file).

        Raises
        ------
        UserError
            `data` is not a dict with string keys, or a field has the wrong type.
        """
        if isinstance(data, Provenance):
            return data.copy()
        if not isinstance(data, Mapping):
            raise _malformed("", f"is of type {type(data).__name__}, not an object")
        bad_keys = [k for k in data if not isinstance(k, str)]
        if bad_keys:
            raise _malformed("", f"has keys that are not strings ({bad_keys[:3]})")
        source = data.get("source")
        if isinstance(source, str):  # datasets before Provenance stored e.g. "synthetic"
            source = {"kind": source}
        report = data.get("report")
        return cls(
            source=_object("source", source),
            session=_object("session", data.get("session")),
            mapper=_object("mapper", data.get("mapper")) if data.get("mapper") is not None
            else None,
            report=MapperReport.from_dict(report) if report is not None else None,
            extras=copy.deepcopy({k: v for k, v in data.items() if k not in FIELDS}),
        )

    def copy(self) -> Provenance:
        """A deep copy (datasets derived from another get their own record)."""
        return copy.deepcopy(self)

    def with_extras(self, **extras: Any) -> Provenance:
        """A copy with these extras added (or replaced)."""
        out = self.copy()
        out.extras.update(copy.deepcopy(extras))
        out.__post_init__()
        return out


# ---------------------------------------------------------------------------------- checks
def _malformed(where: str, problem: str) -> UserError:
    name = f"dataset provenance field {where!r}" if where else "dataset provenance"
    return UserError(f"{name} {problem}; give the form Provenance.to_dict() writes (a file "
                     f"holding this is damaged or was not written by nwb_jedi)")


def _object(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _malformed(where, f"is of type {type(value).__name__}, not an object with string "
                                f"keys")
    return copy.deepcopy(dict(value))


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise _malformed(where, f"is {value!r}, not a count (an integer >= 0)")
    return int(value)


def _count_dict(where: str, value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _malformed(where, "is not an object of counts")
    return {k: _count(f"{where}.{k}", v) for k, v in value.items()}
