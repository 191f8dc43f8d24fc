"""`nwb-jedi analyze FILE`: fixed points, spectra, embeddings and fit figures of a fitted model."""

from __future__ import annotations

import argparse
import os
import sys

from nwb_jedi._files import atomic_write_text
from nwb_jedi.commands._options import add_quiet_option, make_friendly
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi analyze jedi_fit.nwb                        # figures into jedi_fit_analysis/
  nwb-jedi analyze jedi_fit.nwb --out figures --fixed-point-conditions 8
  nwb-jedi analyze DANDI:000999/draft/sub-x/sub-x_ses-y-jedi-rank6.nwb --out figures
"""

#: Figures written, in order (file name -> what it shows).
FIGURES = {
    "embeddings.png": "condition embeddings (PCA)",
    "eigenvalues.png": "eigenvalues of each condition's connectivity J",
    "jacobian_spectra.png": "Jacobian eigenvalues along each condition's trajectory",
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
    parser.add_argument("--fixed-point-conditions", type=int, default=4, metavar="N",
                        help="search fixed points in the first N conditions (default 4; "
                             "about a second each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fixed-point search")
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
    report = analysis_report(model, ds, fixed_point_conditions=args.fixed_point_conditions,
                             seed=args.seed, log=say)
    say("figures ...")
    written = write_figures(report, out)
    lines = report.summary_lines(args.file)
    lines.append(f"figures in {os.path.abspath(out)}: {', '.join(written)}")
    summary = "\n".join(lines)
    atomic_write_text(os.path.join(out, "summary.txt"), summary + "\n")
    print(summary)
    return 0


def _check_arguments(args: argparse.Namespace) -> str:
    """Refuse bad arguments before anything is read; return the output directory."""
    if args.fixed_point_conditions < 0:
        raise UserError(f"--fixed-point-conditions must be 0 or more, got "
                        f"{args.fixed_point_conditions}")
    from nwb_jedi.io.sources import parse_source

    if parse_source(args.file).kind == "local" and not os.path.exists(args.file):
        raise UserError(f"no such file: {args.file}; give an NWB file written by nwb-jedi fit, "
                        f"or where it is shared on DANDI (DANDI:ID/VERSION/PATH)")
    out = args.out or _default_out(args.file)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a directory for the figures")
    return out


def _default_out(file: str) -> str:
    """FILE's name + _analysis: next to a local FILE, in the working directory for a DANDI
    one (named after its asset, or its dandiset when the SOURCE names no asset)."""
    from nwb_jedi.io.sources import parse_source

    parsed = parse_source(file)
    if parsed.kind == "local":
        return os.path.splitext(file)[0] + "_analysis"
    name = os.path.basename(parsed.asset_path or "") or f"dandi_{parsed.dandiset}"
    return os.path.splitext(name)[0] + "_analysis"


def write_figures(report, out: str) -> list[str]:
    """Draw the report's figures into directory `out` and return the names of the `FIGURES`
    now there, in order. The fixed-point figure is drawn only when fixed points were searched,
    the training curves only when the model recorded them."""
    from nwb_jedi.analysis import plots

    def path(name: str) -> str:
        return os.path.join(out, name)

    plots.plot_embeddings(report.embeddings, path("embeddings.png"),
                          conditions=report.conditions)
    plots.plot_eigenvalues(report.j_spectra, path("eigenvalues.png"),
                           conditions=report.labels[:plots.MAX_SPECTRUM_PANELS])
    plots.plot_eigenvalues(report.jacobian_spectra, path("jacobian_spectra.png"),
                           title="Jacobian eigenvalues along the trajectory")
    if report.fixed_points:
        plots.plot_fixed_points(report.trajectories, report.fixed_points,
                                path("fixed_points.png"))
    plots.plot_psth(report.rates, report.scored, path("psth.png"))
    if report.has_history:
        plots.plot_training(report.history, path("training.png"))
    return [name for name in FIGURES if os.path.exists(path(name))]
