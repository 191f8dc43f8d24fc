"""`nwb-jedi info SOURCE`: what a file holds, and how its trials could map to conditions.

Reads only metadata, the units table without spike times, the trials table and the shapes of
behavior series, so it stays cheap on streamed DANDI files.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import pandas as pd

from nwb_jedi.commands._options import add_source_options
from nwb_jedi.commands._text import printable, printable_lines

MAX_CONDITION_VALUES = 40  # more distinct values than this does not look like a condition


HELP = "show units, trials columns and behavior of an NWB file"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help=HELP,
        description="Show the subject, session, units, the trials table's columns (which look "
                    "like conditions, which like event times), the other interval tables "
                    "(epochs, any TimeIntervals: `nwb-jedi fit --intervals NAME` uses one as "
                    "the trials) and the behavior series of an NWB file, local or on DANDI.",
        epilog="examples:\n  nwb-jedi info session.nwb\n"
               "  nwb-jedi info DANDI:000128/0.220113.0400 --asset "
               "sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE",
                        help="local .nwb file, DANDI:ID/VERSION[/PATH], dandiarchive.org URL, "
                             "dandi:// URL or a dandiset ID")
    add_source_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nwb_jedi.io.read import describe_source

    info = describe_source(args.source, asset=args.asset, cache_dir=args.cache_dir)
    # Everything shown comes from the file: no control character of it reaches the terminal.
    print(printable_lines(format_info(info)))
    if info["trials"] is None or len(info["trials"]) == 0:
        others = [t["name"] for t in info.get("intervals", []) if t["n_rows"]]
        if others:
            # Not a dead end: another interval table can serve as the trials.
            print(f"no trials table: fit one of the other interval tables as the trials, e.g. "
                  f"`nwb-jedi fit {args.source} --intervals {others[0]} --condition-by COLS "
                  f"--align start_time --window START,STOP`")
            return 0
        print(f"nwb-jedi: error: {args.source} has no trials table (intervals/trials) and no "
              f"other interval table, so its trials cannot be mapped to conditions; use a file "
              f"with a trials table", file=sys.stderr)
        return 2
    return 0


def format_info(info: dict[str, Any]) -> str:
    """The text `nwb-jedi info` prints."""
    meta = info["metadata"]
    lines = []
    src = info["source"]
    lines.append(_row("source", f"{src.get('path') or src.get('url') or '?'}"
                 + (f"  (DANDI {src['dandiset']}/{src.get('version')}: {src.get('asset_path')})"
                    if src.get("dandiset") else "")))
    ident = meta.get("session_id") or meta.get("identifier")
    lines.append(_row("session", f"{ident}  start {meta.get('session_start_time')}  "
                                 f"NWB {meta.get('nwb_version')}"))
    desc = str(meta.get("session_description") or "").strip()
    if desc:
        lines.append(_row("", f"{desc[:200]}{'...' if len(desc) > 200 else ''}"))
    for key in ("lab", "institution", "experimenter"):
        if meta.get(key):
            value = meta[key]
            lines.append(_row(key, ", ".join(value) if isinstance(value, list) else value))
    subject = meta.get("subject") or {}
    if subject:
        parts = [f"{k}={v}" for k, v in subject.items() if v not in ("", None)]
        lines.append(_row("subject", ", ".join(parts)))
    units = info["units"]
    n = len(units)
    text = f"{n} units, {info['n_spikes']} spikes"
    if "heldout" in units.columns:
        text += f", {int(units['heldout'].fillna(False).astype(bool).sum())} heldout"
    if "location" in units.columns:
        counts = units["location"].astype(str).value_counts()
        text += "; areas: " + ", ".join(f"{a} ({c})" for a, c in counts.items())
    lines.append(_row("units", text))
    trials = info["trials"]
    if trials is None or len(trials) == 0:
        lines.append(_row("trials", "none (no intervals/trials table)"))
    else:
        lines.extend(_trials_lines(trials))
    lines.extend(_interval_lines(info.get("intervals") or []))
    if info["behavior"]:
        lines.append(_row("behavior", f"{len(info['behavior'])} series"))
        for b in info["behavior"]:
            rate = f"{b['rate']:g} Hz" if b["rate"] else "irregular"
            lines.append(f"  {printable(b['name']):<20} {str(b['shape']):<14} "
                         f"{printable(b['unit'] or '?'):<10} {rate:<10} {printable(b['path'])}")
    else:
        lines.append(_row("behavior", "none under /processing"))
    return "\n".join(lines)


def _interval_lines(tables: list[dict[str, Any]]) -> list[str]:
    """The interval tables other than the trials (epochs, any TimeIntervals), which
    `nwb-jedi fit --intervals NAME` reads as the trials."""
    if not tables:
        return []
    lines = [_row("intervals", f"{len(tables)} other table(s); use one as the trials with "
                               f"--intervals NAME")]
    for table in tables:
        columns = ", ".join(table["columns"])
        lines.append(f"  {table['name']:<22} {table['n_rows']:>6} rows  "
                     f"{columns if len(columns) <= 60 else columns[:57] + '...'}")
    return lines


def _row(label: str, text: Any) -> str:
    return f"{label + ':' if label else '':<14}{printable(text)}"


def _trials_lines(trials: pd.DataFrame) -> list[str]:
    lines = [_row("trials", f"{len(trials)} trials, {trials.shape[1]} columns")]
    conditions, events = [], []
    for name in trials.columns:
        col = trials[name]
        kind = _column_kind(col)
        lines.append(f"  {printable(name):<22} {kind:<12} {printable(_examples(col))}")
        if looks_like_condition(col):
            conditions.append(f"{printable(name)} ({_n_unique(col)})")
        if looks_like_event_time(col, trials):
            events.append(printable(name))
    lines.append(f"looks like conditions: {', '.join(conditions) or 'none'}")
    lines.append(f"looks like event times: {', '.join(events) or 'none'}")
    return lines


def _is_ragged(col: pd.Series) -> bool:
    return col.dtype == object and len(col) > 0 and isinstance(col.iloc[0], np.ndarray | list)


def _column_kind(col: pd.Series) -> str:
    if _is_ragged(col):
        first = np.asarray(col.iloc[0])
        return f"ragged {first.dtype}"
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        return "str"
    return str(col.dtype)


def _n_unique(col: pd.Series) -> int:
    if _is_ragged(col):
        return len({tuple(np.asarray(v).ravel().tolist()) for v in col})
    return int(col.nunique(dropna=True))


def _examples(col: pd.Series, k: int = 4) -> str:
    if _is_ragged(col):
        values = [np.asarray(v).tolist() for v in col.iloc[:2]]
        text = ", ".join(str(v) for v in values)
    else:
        uniq = pd.unique(col.dropna())
        if not len(uniq):
            return "(all missing)"
        shown = [_fmt(v) for v in uniq[:k]]
        more = f", ... ({len(uniq)} distinct)" if len(uniq) > k else ""
        text = ", ".join(shown) + more
    return text if len(text) <= 70 else text[:67] + "..."


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def looks_like_condition(col: pd.Series) -> bool:
    """Few distinct values, repeated across trials, and not continuous times."""
    if _is_ragged(col) or len(col) < 4:
        return False
    if col.dtype.kind == "f":
        values = col.dropna().to_numpy()
        if len(values) == 0 or np.any(values != np.round(values)):
            return False
    n = _n_unique(col)
    return 2 <= n <= MAX_CONDITION_VALUES and n <= len(col) / 2


def looks_like_event_time(col: pd.Series, trials: pd.DataFrame) -> bool:
    """A float column named *_time(s), or whose values lie within each trial's start..stop."""
    if col.dtype.kind != "f":
        return False
    name = str(col.name)
    if name.endswith("_time") or name.endswith("_times"):
        return True
    if "start_time" in trials and "stop_time" in trials:
        values = col.to_numpy(dtype=float)
        ok = np.isfinite(values)
        if ok.sum() < max(1, len(values) // 2):
            return False
        start = trials["start_time"].to_numpy(dtype=float)[ok]
        stop = trials["stop_time"].to_numpy(dtype=float)[ok]
        inside = (values[ok] >= start) & (values[ok] <= stop)
        return bool(inside.mean() > 0.9)
    return False
