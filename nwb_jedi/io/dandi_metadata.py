"""The metadata of a derived file that DANDI reads: its subject and the session id that
``dandi organize`` turns into its file name.

Subject policy (no fact is invented):

- a derived file copies the source session's subject as it is; fields the source lacks stay
  missing unless the caller gives them (``write_results(subject=...)``, ``--subject-age``);
  a given field that contradicts the source is refused;
- the one value added is NWB's explicit "unknown" sex (``U``) when the source has none;
- when a field that ``dandi validate`` requires is still missing (subject, subject_id, species,
  age or date of birth), the file is written anyway and a `DandiMetadataWarning` says which
  field and how to give it. Old versions wrote ``age = "P0D/"`` ("age unknown") instead, which
  DANDI records as an age: no longer.

Naming: ``dandi organize`` names a file ``sub-<subject_id>_ses-<session_id>[_<modalities>]``
and, in dandi 0.81, never reads a description from an NWB file (its ``desc-`` entity stays
empty), so two fits of one session become ``..._obj-<crc32>.nwb``. A derived file's
``session_id`` is therefore the source's followed by a label (``<session>-jedi-rank6``, or the
caller's), so the organized names say what each file is. The source's own session id stays
in the modelled data's provenance (``dataset_metadata``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from nwb_jedi.errors import UserError

__all__ = ["DandiMetadataWarning", "SUBJECT_FIELDS", "check_age", "clean_label",
           "default_label", "derived_session_id", "dandi_gaps", "merge_subject",
           "warn_dandi_gaps"]

#: Subject fields a derived file may copy or be given (pynwb's Subject arguments).
SUBJECT_FIELDS = ("subject_id", "species", "sex", "age", "date_of_birth", "genotype",
                  "description", "strain", "weight")
_DURATION = re.compile(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?"
                       r"(\d+(\.\d+)?S)?)?")
_SEX = ("M", "F", "U", "O")


class DandiMetadataWarning(UserWarning):
    """A written file lacks metadata that ``dandi validate`` requires; the message says how
    to give it."""


def check_age(age: str) -> str:
    """`age` if it is an ISO 8601 duration (``P90D``, ``P2Y6M``) or a range of them
    (``P2Y/P5Y``, ``P2Y/`` for "at least 2 years"), as DANDI asks; UserError otherwise."""
    text = str(age).strip()
    parts = text.split("/")
    ok = (len(parts) == 1 and _DURATION.fullmatch(text)) or (
        len(parts) == 2 and any(parts) and all(not p or _DURATION.fullmatch(p) for p in parts))
    if not ok:
        raise UserError(f"subject age {age!r} is not an ISO 8601 duration; write e.g. P90D "
                        f"(90 days), P7Y (7 years) or a range such as P5Y/P8Y")
    return text


def merge_subject(source: Mapping[str, Any] | None,
                  given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The derived file's subject: the source's fields, plus `given` where the source has none.

    Raises
    ------
    UserError
        A given field is unknown, malformed (age, sex) or contradicts the source.
    """
    fields = {k: v for k, v in (source or {}).items() if k in SUBJECT_FIELDS and v not in
              (None, "")}
    for key, value in (given or {}).items():
        if key not in SUBJECT_FIELDS:
            raise UserError(f"unknown subject field {key!r}; use one of "
                            f"{', '.join(SUBJECT_FIELDS)}")
        if value in (None, ""):
            continue
        if key == "age":
            value = check_age(value)
        if key == "sex" and value not in _SEX:
            raise UserError(f"subject sex {value!r} is not one of {', '.join(_SEX)} (male, "
                            f"female, unknown, other)")
        if key in fields and str(fields[key]) != str(value):
            raise UserError(f"the source session says the subject's {key} is {fields[key]!r}, "
                            f"not {value!r}; a derived file keeps the source's subject (fix "
                            f"the source file instead)")
        fields[key] = value
    if not fields:
        return None
    fields.setdefault("sex", "U")  # NWB's explicit "unknown": not an invented fact
    return fields


def dandi_gaps(subject: Mapping[str, Any] | None) -> list[str]:
    """The subject fields ``dandi validate`` requires that `subject` lacks."""
    if not subject:
        return ["subject"]
    gaps = [key for key in ("subject_id", "species") if not subject.get(key)]
    if not subject.get("age") and not subject.get("date_of_birth"):
        gaps.append("age")
    return gaps


def warn_dandi_gaps(path: str, subject: Mapping[str, Any] | None) -> None:
    """Warn (`DandiMetadataWarning`) that `path` will fail ``dandi validate``, and how to fix
    it, when its subject lacks what DANDI requires."""
    gaps = dandi_gaps(subject)
    if not gaps:
        return
    how = []
    if "age" in gaps:
        how.append("its age with --subject-age (ISO 8601, e.g. P90D or P5Y/P8Y) or "
                   "write_results(subject={'age': ...})")
    others = [g for g in gaps if g != "age"]
    if others == ["subject"]:
        how.append("one with write_results(subject={'subject_id': ..., 'species': ..., "
                   "'age': ...})")
    elif others:
        how.append(f"{', '.join(others)} with write_results(subject={{...}})")
    what = ("the source session gives no subject" if gaps == ["subject"] else
            f"the source session's subject has no {' or '.join(gaps)}")
    warnings.warn(f"{what}, so `dandi validate` will refuse {path} (nothing is invented); "
                  f"give {'; and '.join(how)}", DandiMetadataWarning, stacklevel=3)


def default_label(config: Mapping[str, Any]) -> str:
    """``<model>-rank<R>`` from a fitted model's config, e.g. ``jedi-rank6``."""
    name = str(config.get("format") or "model").split(".")[-1]
    rank = (config.get("params") or {}).get("rank")
    return clean_label(f"{name}-rank{rank}" if rank is not None else name)


def clean_label(label: str) -> str:
    """`label` as a file-name part: lowercase letters, digits and single hyphens."""
    text = re.sub(r"[^a-z0-9]+", "-", str(label).lower()).strip("-")
    if not text:
        raise UserError(f"label {label!r} has no letters or digits; give a short label such as "
                        f"rank6-seed1")
    return text


def derived_session_id(source_session_id: str | None, label: str) -> str:
    """``<source session id>-<label>`` (the label alone when the source has no session id)."""
    return f"{source_session_id}-{label}" if source_session_id else label
