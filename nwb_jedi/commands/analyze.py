"""`nwb-jedi analyze FILE`: fixed points, spectra, embeddings and fit figures of a fitted model."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

from nwb_jedi._files import atomic_write_text
from nwb_jedi.commands._options import add_quiet_option, make_friendly, seed_value
from nwb_jedi.commands._text import printable_lines
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi analyze jedi_fit.nwb                        # figures into jedi_fit_analysis/
  nwb-jedi analyze jedi_fit.nwb --out figures --fixed-point-conditions all
  nwb-jedi analyze jedi_fit.nwb --fixed-point-conditions reach1,reach5
  nwb-jedi analyze DANDI:000999/draft/sub-x/sub-x_ses-y-jedi-rank6.nwb --out figures

Each spectrum is drawn against its own stability boundary: J's eigenvalues against the line
Re λ = 1 (the model is x' = -x + J tanh(x) + b), the step Jacobian's against the unit circle.
"""

#: Figures written, in order (file name -> what it shows).
FIGURES = {
    "embeddings.png": "condition embeddings on their principal axes",
    "eigenvalues.png": "eigenvalues of each condition's connectivity J against Re λ = 1",
    "jacobian_spectra.png": "eigenvalues of the step's Jacobian along each condition's "
                            "trajectory against the unit circle",
    "fixed_points.png": "trajectories and fixed points",
    "psth.png": "data PSTH vs model on held-out trials",
    "training.png": "training and validation loss",
}


HELP = "fixed points, spectra, embeddings and fit figures of a fitted file"


def register(subparsers) -> None:
    parser = make_friendly(subparsers.add_parser(
        "analyze", help=HELP,
        description="Load the JEDI model and the data stored in an NWB file written by "
                    "`nwb-jedi fit` (or `write_results`), analyse each condition's dynamics "
                    "(eigenvalues of J, Jacobian spectra along the trajectory, fixed points), "
                    "the embedding geometry and the fit, print a short summary and write the "
                    "figures as PNG.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("file", metavar="FILE",
                        help="NWB file holding a fitted JEDI model: a local path, or a DANDI "
                             "asset (DANDI:ID/VERSION/PATH, dandiarchive.org or dandi:// URL)")
    parser.add_argument("--out", metavar="DIR",
                        help="directory for the figures and summary.txt (default: "
                             "FILE's name + _analysis, in the working directory for a DANDI "
                             "FILE)")
    parser.add_argument("--module-name", metavar="NAME",
                        help="processing module holding the model (when there are several)")
    parser.add_argument("--fixed-point-conditions", default="auto", metavar="WHICH",
                        help="where to search fixed points (about a second per condition): "
                             "auto (every condition up to 24, else 24 spread evenly), all, a "
                             "number N (the first N; 0: none) or comma-separated condition "
                             "labels; the summary says which (default auto)")
    parser.add_argument("--seed", type=seed_value, default=0,
                        help="seed of the fixed-point search (default 0)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where streamed DANDI data are cached (default $NWB_JEDI_CACHE or "
                             "the platform cache dir)")
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nwb_jedi.analysis.report import analysis_report
    from nwb_jedi.io.load import load_dataset, load_model

    out = _check_arguments(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    model = load_model(args.file, args.module_name, cache_dir=args.cache_dir)
    ds = load_dataset(args.file, args.module_name, cache_dir=args.cache_dir)
    os.makedirs(out, exist_ok=True)
    report = analysis_report(model, ds, fixed_point_conditions=_fixed_point_conditions(args),
                             seed=args.seed, log=say)
    say("figures ...")
    written = write_figures(report, out, conditions=_described_conditions(args.file, report, ds))
    lines = report.summary_lines(args.file)
    lines.append(f"figures in {os.path.abspath(out)}: {', '.join(written)}")
    summary = "\n".join(lines)
    atomic_write_text(os.path.join(out, "summary.txt"), summary + "\n")
    print(printable_lines(summary))  # labels and names come from the file
    return 0


def _fixed_point_conditions(args: argparse.Namespace):
    """--fixed-point-conditions as `analysis_report` takes it: auto, all, N or labels."""
    text = str(args.fixed_point_conditions).strip()
    if text in ("auto", "all"):
        return text
    try:
        number = int(text)
    except ValueError:
        labels = [t.strip() for t in text.split(",") if t.strip()]
        if not labels:
            raise UserError("--fixed-point-conditions is empty; give auto, all, a number or "
                            "condition labels") from None
        return labels
    if number < 0:
        raise UserError(f"--fixed-point-conditions must be 0 or more, got {number}")
    return number


def _described_conditions(path: str, report, ds):
    """The model's condition table, with the numeric columns of the file's trials table that
    describe each condition (e.g. a simulated file's sine frequencies), for the labels of the
    embedding figure; the table alone when the file's trials cannot be read."""
    from nwb_jedi.analysis.embedding import condition_attributes
    from nwb_jedi.errors import SourceError
    from nwb_jedi.io.read import read_session

    try:
        trials = read_session(path, behavior=False).trials
    except SourceError:
        return report.conditions
    key = trials["source_trial_id"].astype(str) if "source_trial_id" in trials.columns \
        else pd.Series(trials.index.astype(str), index=trials.index)
    row = {k: i for i, k in enumerate(key)}
    order = [row.get(str(t)) for t in ds.trial_id]
    if not len(trials) or any(i is None for i in order):
        return report.conditions
    known = {label: i for i, label in enumerate(report.labels)}
    labels = ds.conditions["label"].astype(str).to_numpy()[ds.condition]
    keep = np.array([label in known for label in labels])
    rows = np.array([known[label] for label in labels[keep]], dtype=int)
    return condition_attributes(report.conditions, rows,
                                trials.iloc[np.asarray(order)[keep]].reset_index(drop=True))


def _check_arguments(args: argparse.Namespace) -> str:
    """Refuse bad arguments before anything is read; return the output directory."""
    _fixed_point_conditions(args)
    from nwb_jedi.io.sources import parse_source

    if parse_source(args.file).kind == "local" and not os.path.exists(args.file):
        raise UserError(f"no such file: {args.file}; give an NWB file written by nwb-jedi fit, "
                        f"or where it is shared on DANDI (DANDI:ID/VERSION/PATH)")
    from nwb_jedi.commands._paths import check_output_dir

    out = args.out or _default_out(args.file)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a directory for the figures")
    return check_output_dir(out, "--out")


def _default_out(file: str) -> str:
    """FILE's name + _analysis: next to a local FILE, in the working directory for a DANDI
    one (named after its asset, or its dandiset when the SOURCE names no asset)."""
    from nwb_jedi.io.sources import parse_source

    parsed = parse_source(file)
    if parsed.kind == "local":
        return os.path.splitext(file)[0] + "_analysis"
    name = os.path.basename(parsed.asset_path or "") or f"dandi_{parsed.dandiset}"
    return os.path.splitext(name)[0] + "_analysis"


def write_figures(report, out: str, conditions=None) -> list[str]:
    """Draw the report's figures into directory `out` and return the names of the `FIGURES`
    now there, in order. The fixed-point figure is drawn only when fixed points were searched,
    the training curves only when the model recorded them. `conditions` (default the
    report's) may add columns that label the embeddings (`condition_attributes`)."""
    from nwb_jedi.analysis import plots
    from nwb_jedi.analysis.embedding import embedding_labels

    def path(name: str) -> str:
        return os.path.join(out, name)

    table = report.conditions if conditions is None else conditions
    color_by, annotate_by = embedding_labels(table)
    plots.plot_embeddings(report.embeddings, path("embeddings.png"), conditions=table,
                          color_by=color_by, annotate_by=annotate_by)
    shown = report.labels[:plots.MAX_SPECTRUM_PANELS]
    plots.plot_eigenvalues(report.j_spectra, path("eigenvalues.png"), conditions=shown,
                           matrix="J")
    plots.plot_eigenvalues(report.jacobian_spectra, path("jacobian_spectra.png"),
                           conditions=shown, matrix="jacobian")
    if report.fixed_points:
        n = len(report.fixed_points)
        plots.plot_fixed_points(
            report.trajectories, report.fixed_points, path("fixed_points.png"),
            title=f"Noiseless trajectories (■ start) and fixed points of {n} of "
                  f"{len(report.labels)} conditions ({report.fixed_point_choice})\n● stable, "
                  f"× saddle, ○ unstable (eigenvalues of DF inside / across / outside |λ| = 1)")
    plots.plot_psth(report.rates, report.scored, path("psth.png"))
    if report.has_history:
        plots.plot_training(report.history, path("training.png"))
    return [name for name in FIGURES if os.path.exists(path(name))]
