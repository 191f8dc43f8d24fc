"""`nwb-jedi analyze FILE`: fixed points, spectra, embeddings and fit figures of a fitted model."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from nwb_jedi._files import atomic_write_text
from nwb_jedi.commands._options import add_quiet_option, make_friendly
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi analyze jedi_fit.nwb                        # figures into jedi_fit_analysis/
  nwb-jedi analyze jedi_fit.nwb --out figures --fixed-point-conditions 8
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


def register(subparsers) -> None:
    parser = make_friendly(subparsers.add_parser(
        "analyze", help="fixed points, spectra, embeddings and fit figures of a fitted file",
        description="Load the JEDI model and the data stored in an NWB file written by "
                    "`nwb-jedi fit` (or `write_results`), analyse each condition's dynamics "
                    "(eigenvalues of J, Jacobian spectra along the trajectory, fixed points), "
                    "the embedding geometry and the fit, print a short summary and write the "
                    "figures as PNG.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("file", metavar="FILE", help="NWB file holding a fitted JEDI model")
    parser.add_argument("--out", metavar="DIR",
                        help="directory for the figures and summary.txt (default: "
                             "FILE's name + _analysis)")
    parser.add_argument("--module-name", metavar="NAME",
                        help="processing module holding the model (when there are several)")
    parser.add_argument("--fixed-point-conditions", type=int, default=4, metavar="N",
                        help="search fixed points in the first N conditions (default 4; "
                             "about a second each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fixed-point search")
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nwb_jedi.analysis import plots
    from nwb_jedi.analysis.embedding import embedding_distances
    from nwb_jedi.analysis.fixedpoints import fixed_points
    from nwb_jedi.analysis.spectra import jacobian_spectrum
    from nwb_jedi.io.load import load_dataset, load_model

    if args.fixed_point_conditions < 0:
        raise UserError(f"--fixed-point-conditions must be 0 or more, got "
                        f"{args.fixed_point_conditions}")
    if not os.path.exists(args.file):
        raise UserError(f"no such file: {args.file}; give an NWB file written by nwb-jedi fit")
    out = args.out or os.path.splitext(args.file)[0] + "_analysis"
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a directory for the figures")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))

    model = load_model(args.file, args.module_name)
    ds = load_dataset(args.file, args.module_name)
    os.makedirs(out, exist_ok=True)
    labels = list(model.conditions_["label"].astype(str))
    n_steps = ds.n_bins
    lines = [f"{args.file}: JEDI with {len(labels)} conditions, {model.n_units_} neurons, "
             f"rank {model.rank}, embedding size {model.embed_dim}, {ds.n_bins} bins of "
             f"{ds.bin_size * 1e3:g} ms"]

    # Spectra: J's eigenvalues (the low-rank connectivity) and the Jacobian along the
    # trajectory (the local linear dynamics the data actually visit).
    say("spectra ...")
    leading = {lab: float(np.max(np.abs(model.eigenvalues(i)))) for i, lab in enumerate(labels)}
    jac = {lab: jacobian_spectrum(model, i, n_steps=n_steps).eigenvalues
           for i, lab in enumerate(labels)}
    jac_max = {lab: float(np.abs(ev).max()) if ev.size else float("nan")
               for lab, ev in jac.items()}
    lo, hi = min(leading, key=leading.get), max(leading, key=leading.get)
    lines.append(f"J leading |eigenvalue|: {leading[lo]:.3f} ({lo}) to {leading[hi]:.3f} ({hi})")
    lines.append(f"Jacobian spectral radius along trajectories: "
                 f"{min(jac_max.values()):.3f} to {max(jac_max.values()):.3f} "
                 f"(> 1: locally expanding)")
    plots.plot_eigenvalues(model, os.path.join(out, "eigenvalues.png"))
    plots.plot_eigenvalues({lab: ev.ravel() for lab, ev in jac.items()},
                           os.path.join(out, "jacobian_spectra.png"),
                           title="Jacobian eigenvalues along the trajectory")

    # Fixed points of the first conditions.
    chosen = list(range(min(args.fixed_point_conditions, len(labels))))
    if chosen:
        say(f"fixed points of {len(chosen)} condition(s) ...")
        found = {}
        for c in chosen:
            fps = fixed_points(model, c, n_initial=128, n_steps=n_steps, seed=args.seed)
            kinds = {k: int(np.sum(fps.stability == k)) for k in ("stable", "saddle", "unstable")}
            found[labels[c]] = ", ".join(f"{v} {k}" for k, v in kinds.items() if v) or "none"
        lines.append("fixed points: " + "; ".join(f"{k}: {v}" for k, v in found.items()))
        plots.plot_fixed_points(model, os.path.join(out, "fixed_points.png"), chosen,
                                n_steps=n_steps,
                                fixed_point_kwargs={"n_initial": 128, "seed": args.seed})

    # Embedding geometry.
    dist = embedding_distances(model)
    if len(labels) > 1:
        off = dist[~np.eye(len(labels), dtype=bool)]
        i, j = np.unravel_index(np.argmin(dist + np.diag(np.full(len(labels), np.inf))),
                                dist.shape)
        lines.append(f"embedding distances: median {np.median(off):.3f}; closest pair "
                     f"{labels[i]} / {labels[j]} ({dist[i, j]:.3f})")
    plots.plot_embeddings(model, os.path.join(out, "embeddings.png"))

    # The fit itself, on held-out trials when the file has them.
    test = ds.test if ds.test.n_trials else ds
    score = model.evaluate(test)
    which = "held-out" if test is not ds else "all"
    lines.append(f"{which} trials ({test.n_trials}): bits/spike {score['bits_per_spike']:.3f}, "
                 f"PSTH R² {score['psth_r2']:.3f}, single-trial R² {score['r2']:.3f}")
    plots.plot_psth(model, test, os.path.join(out, "psth.png"))
    if getattr(model, "history_", None) and len(model.history_.get("train_loss", [])):
        plots.plot_training(model, os.path.join(out, "training.png"))

    written = [name for name in FIGURES if os.path.exists(os.path.join(out, name))]
    lines.append(f"figures in {os.path.abspath(out)}: {', '.join(written)}")
    summary = "\n".join(lines)
    atomic_write_text(os.path.join(out, "summary.txt"), summary + "\n")
    print(summary)
    return 0
