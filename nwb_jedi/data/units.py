"""Are these the model's neurons? Matching units across sessions by more than their ids.

A JEDI model's units are recorded neurons. Applied to another file, its unit ids must name the
same neurons; ids are often small integers (0, 1, ..., or 1001 for the first unit of a probe),
so two sessions share them by accident. `match_units` compares what the files say about each
unit beyond its id: the subject, the session, and the electrode metadata that `io.read` reads
into ``Session.units`` (``location``: brain area; ``electrode_group``), which
`ConditionMapper.build` records with the dataset (`unit_identity`, the provenance extra
``units``) and so with every fitted model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nwb_jedi.errors import UserError

__all__ = ["IDENTITY_COLUMNS", "UnitMatch", "match_units", "unit_identity"]

#: Units-table columns that say where a unit was recorded (besides its id).
IDENTITY_COLUMNS = ("location", "electrode_group")


def unit_identity(units: pd.DataFrame | None) -> dict[str, list[str]]:
    """The columns of a units table that say where each unit was recorded, as JSON values.

    Parameters
    ----------
    units : DataFrame or None
        One row per unit (``Session.units``, ``TrialDataset.units``).

    Returns
    -------
    dict column -> list of str
        Only the `IDENTITY_COLUMNS` present with at least one value; missing values are "".
    """
    if units is None:
        return {}
    out = {}
    for column in IDENTITY_COLUMNS:
        if column in units.columns:
            values = ["" if _missing(v) else str(v) for v in units[column]]
            if any(values):
                out[column] = values
    return out


@dataclass
class UnitMatch:
    """How a file's units match a model's.

    Attributes
    ----------
    level : str
        ``"same"`` (the model's own session), ``"confirmed"`` (another session; every shared
        id agrees in its recording metadata), ``"warning"`` (some ids agree, some not), or
        ``"ids_only"`` (nothing but bare ids match: another subject, no metadata to compare,
        or metadata that differ for every unit).
    message : str
        One sentence for the user (empty for ``"same"``).
    """

    level: str
    message: str = ""

    @property
    def refused(self) -> bool:
        """Whether the model should not be applied without the user's explicit say-so."""
        return self.level == "ids_only"


def match_units(model_ids: Sequence, model_identity: Mapping[str, Sequence[str]] | None,
                model_session: Mapping[str, Any] | None, data_ids: Sequence,
                data_units: pd.DataFrame | None, data_session: Mapping[str, Any] | None,
                where: str = "the data") -> UnitMatch:
    """Compare a model's units with a file's, by id and by what the files say about them.

    Parameters
    ----------
    model_ids : sequence
        The model's unit ids (``model.unit_id_``).
    model_identity : dict, optional
        `unit_identity` of the model's units, in the order of `model_ids` (the provenance
        extra ``units`` of its dataset); None or empty when the file does not have it.
    model_session, data_session : dict, optional
        Session metadata (``session_id``, ``identifier``, ``subject``: {``subject_id``}) of
        the model's data and of the new data.
    data_ids : sequence
        Unit ids of the new data, before any unit filter.
    data_units : DataFrame, optional
        The new data's units table (``Session.units``; ``describe_source(...)["units"]``).
    where : str
        Names the new data in messages (e.g. its SOURCE).

    Returns
    -------
    UnitMatch

    Raises
    ------
    UserError
        Some of the model's unit ids are not in the data at all.
    """
    model_keys = [str(u) for u in np.asarray(model_ids)]
    data_keys = [str(u) for u in np.asarray(data_ids)]
    row_of = {u: i for i, u in enumerate(data_keys)}
    missing = [u for u in model_keys if u not in row_of]
    if missing:
        raise UserError(f"the units of {where} do not match the model's: the model has "
                        f"{len(model_keys)} units, the data {len(data_keys)}, "
                        f"{len(model_keys) - len(missing)} ids in common (e.g. unit "
                        f"{missing[0]} is missing); a JEDI model's units are recorded neurons, "
                        f"so it applies only to sessions with the same units")
    if _same(_session_name(model_session), _session_name(data_session)):
        return UnitMatch("same")
    model_subject, data_subject = _subject(model_session), _subject(data_session)
    sessions = (f"{where} is session {_session_name(data_session) or '(unnamed)'}, the "
                f"model's is {_session_name(model_session) or '(unnamed)'}")
    if model_subject and data_subject and model_subject != data_subject:
        return UnitMatch("ids_only", f"{sessions}, of another subject ({data_subject}, the "
                                     f"model's {model_subject}): another animal's units "
                                     f"cannot be the model's neurons, whatever their ids")
    rows = [row_of[u] for u in model_keys]
    agree, disagree, columns = _compare(model_identity or {}, data_units, rows, model_keys)
    if not columns:
        return UnitMatch("ids_only", f"{sessions}, and neither says where its units were "
                                     f"recorded ({'/'.join(IDENTITY_COLUMNS)}), so the units "
                                     f"match by bare ids only, which sessions share by "
                                     f"accident")
    what = "/".join(columns)
    if not agree:
        unit, here, there = disagree[0]
        return UnitMatch("ids_only", f"{sessions}, and the {what} of every unit differs (e.g. "
                                     f"unit {unit}: {here!r} here, {there!r} in the model's "
                                     f"session), so the ids match by accident")
    if disagree:
        unit, here, there = disagree[0]
        return UnitMatch("warning", f"{sessions}; the {what} differs for {len(disagree)} of "
                                    f"{len(model_keys)} units (e.g. unit {unit}: "
                                    f"{here!r} here, {there!r} in the model's session), so "
                                    f"their ids likely match by accident")
    return UnitMatch("confirmed", f"{sessions}; its {len(model_keys)} units match the model's "
                                  f"by id and {what}")


def _compare(model_identity: Mapping[str, Sequence[str]], data_units: pd.DataFrame | None,
             rows: list[int], model_keys: list[str]
             ) -> tuple[list[str], list[tuple[str, str, str]], list[str]]:
    """(ids that agree, (id, data value, model value) of those that differ, columns compared).
    """
    data_identity = unit_identity(data_units)
    columns = [c for c in IDENTITY_COLUMNS if c in model_identity and c in data_identity
               and len(model_identity[c]) == len(model_keys)]
    agree, disagree = [], []
    for i, unit in enumerate(model_keys):
        here = " / ".join(data_identity[c][rows[i]] for c in columns)
        there = " / ".join(str(model_identity[c][i]) for c in columns)
        (agree.append(unit) if here == there else disagree.append((unit, here, there)))
    return agree, disagree, columns


def _session_name(session: Mapping[str, Any] | None) -> str:
    if not isinstance(session, Mapping):
        return ""
    return str(session.get("session_id") or session.get("identifier") or "")


def _subject(session: Mapping[str, Any] | None) -> str:
    subject = session.get("subject") if isinstance(session, Mapping) else None
    return str(subject.get("subject_id") or "") if isinstance(subject, Mapping) else ""


def _same(a: str, b: str) -> bool:
    return bool(a) and a == b


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
