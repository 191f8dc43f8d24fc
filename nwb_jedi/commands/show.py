"""`nwb-jedi show FILE`: a readable summary of a JEDI model stored in an NWB file."""

from __future__ import annotations

import argparse
import json

from nwb_jedi.commands._text import printable, printable_lines, printable_table
from nwb_jedi.errors import UserError

HELP = "summarize a JEDI model stored in an NWB file"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help=HELP,
        description="Print the source, conditions, metrics, configuration and software "
                    "versions of a JEDI model written by `nwb-jedi fit` or `predict`. Reads "
                    "with h5py only; nothing from the file is executed.",
        epilog="examples:\n  nwb-jedi show jedi_fit.nwb\n"
               "  nwb-jedi show jedi_fit.nwb --max-rows 50\n"
               "  nwb-jedi show DANDI:000999/draft/sub-x/sub-x_ses-y-jedi-rank6.nwb",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE",
                        help="NWB file written by nwb_jedi: a local path, or a DANDI asset "
                             "(DANDI:ID/VERSION/PATH, dandiarchive.org or dandi:// URL), of "
                             "which only the model's datasets are streamed")
    parser.add_argument("--module-name", metavar="NAME",
                        help="processing module holding the model (when there are several)")
    parser.add_argument("--max-rows", type=int, default=20,
                        help="most conditions to list (default 20)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where streamed DANDI data are cached (default $NWB_JEDI_CACHE or "
                             "the platform cache dir)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nwb_jedi.io.load import read_summary  # h5py only: show never imports torch

    if args.max_rows < 1:
        raise UserError(f"--max-rows must be a positive integer, got {args.max_rows}")
    print(printable_lines(format_summary(
        read_summary(args.file, args.module_name, cache_dir=args.cache_dir), args.max_rows)))
    return 0


def format_summary(info: dict, max_rows: int = 20) -> str:
    """The text `nwb-jedi show` prints for `read_summary` output."""
    config = info["config"]
    params = config.get("params", {})
    lines = [f"{info['path']}  (module '{info['module']}')"]
    if len(info["modules"]) > 1:
        others = [m for m in info["modules"] if m != info["module"]]
        lines.append(f"  other JEDI modules: {', '.join(others)}")
    session = info["session"]
    lines.append("")
    lines.append("Session")
    for key in ("session_id", "identifier", "session_start_time", "session_description"):
        if session.get(key):
            text = printable(session[key])
            if len(text) > 200:  # descriptions can be pages long; the file holds all of it
                text = text[:200].rstrip() + " ..."
            lines.append(f"  {key:<20} {text}")
    lines.append("")
    lines.append("Source of the modelled data")
    for key, value in info["source"].items():
        lines.append(f"  {printable(key):<20} {printable(value)}")
    meta = info.get("dataset_metadata", {})
    mapper = meta.get("mapper")
    if mapper:
        lines.append(f"  {'mapper':<20} {json.dumps(mapper)}")
    lines.append("")
    lines.append("Model")
    lines.append(f"  {'format':<20} {config.get('format')} v{config.get('format_version')}")
    lines.append(f"  {'neurons':<20} {config.get('n_units')}")
    lines.append(f"  {'bin size':<20} {config.get('bin_size', 0) * 1e3:g} ms")
    if "data_shape" in info:
        k, t, n = info["data_shape"]
        lines.append(f"  {'modelled data':<20} {k} trials x {t} bins x {n} neurons")
    lines.append(f"  {'parameters':<20} {info['n_parameters']:,}")
    history = config.get("history", {})
    if history.get("epoch"):
        lines.append(f"  {'epochs':<20} {len(history['epoch'])}")
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    lines.append(f"  {'hyperparameters':<20} {shown}")
    versions = config.get("versions", {})
    lines.append(f"  {'versions':<20} " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    conditions = info["conditions"]
    lines.append("")
    lines.append(f"Conditions ({len(conditions)})")
    if len(conditions):
        table = printable_table(conditions.head(max_rows)).to_string(index=False)
        lines.extend("  " + row for row in table.splitlines())
        if len(conditions) > max_rows:
            lines.append(f"  ... {len(conditions) - max_rows} more (--max-rows)")
    lines.append("")
    lines.append("Metrics")
    lines.extend(_metrics_lines(info["metrics"]))
    lines.extend(f"warning: {line}" for line in stored_warnings(info))
    return "\n".join(lines)


def stored_warnings(info: dict) -> list[str]:
    """What `nwb_jedi.model.quality` says about a stored model, from its stored metrics and
    config (the lines `fit`, `predict` and `compute_results` gave when it was written)."""
    from nwb_jedi.model.quality import fit_quality_warning, population_warning

    config = info["config"]
    metrics: dict[str, dict[str, float]] = {}
    table = info["metrics"]
    if len(table) and {"metric", "split", "value"} <= set(table.columns):
        for row in table.itertuples(index=False):
            metrics.setdefault(str(row.split), {})[str(row.metric)] = row.value
    params = config.get("params") or {}
    history = config.get("history")
    found = [population_warning(int(config.get("n_units") or 0), params.get("rank"))
             if config.get("n_units") and "rank" in params else None,
             fit_quality_warning(metrics, history=history if isinstance(history, dict) else None,
                                 max_epochs=params.get("max_epochs"),
                                 transfer="applied_model" in info.get("dataset_metadata", {}))]
    return [line for line in found if line]


def _metrics_lines(metrics) -> list[str]:
    """The metrics table, one row per metric and a column per split."""
    if not len(metrics):
        return ["  none stored"]
    if {"metric", "split", "value"} <= set(metrics.columns):
        wide = printable_table(metrics).pivot_table(index="metric", columns="split",
                                                    values="value", aggfunc="first", sort=False)
        table = wide.to_string(float_format=lambda v: f"{v:.4g}")
    else:  # not the table nwb_jedi writes: shown as it is
        table = printable_table(metrics).to_string(index=False)
    return ["  " + row for row in table.splitlines()]
