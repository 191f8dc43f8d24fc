"""Options for what DANDI reads from the files `fit` and `predict` write: the subject's age
(never invented: see `nwb_jedi.io.dandi_metadata`) and the label that names the file."""

from __future__ import annotations

import argparse
from typing import Any


def add_sharing_options(parser: argparse.ArgumentParser, default_label: str) -> None:
    """Add ``--subject-age`` and ``--label`` (in a "sharing on DANDI" group)."""
    group = parser.add_argument_group("sharing on DANDI")
    group.add_argument("--subject-age", metavar="AGE",
                       help="the subject's age as ISO 8601 (e.g. P90D, P7Y, or a range "
                            "P5Y/P8Y), when the source does not give one: `dandi validate` "
                            "requires it and nothing is invented (default: none; the file "
                            "is then written and a warning says what is missing)")
    group.add_argument("--label", metavar="TEXT",
                       help=f"names this output among others of the same session: the file's "
                            f"session_id becomes <source session>-<label>, which `dandi "
                            f"organize` puts in the file name (default {default_label})")


def sharing_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``subject`` and ``label`` keyword arguments of `write_results`, checked (call it before
    any work, so a malformed age fails at once)."""
    from nwb_jedi.io.dandi_metadata import check_age, clean_label

    kwargs: dict[str, Any] = {}
    if args.subject_age:
        kwargs["subject"] = {"age": check_age(args.subject_age)}
    if args.label:
        kwargs["label"] = clean_label(args.label)
    return kwargs
