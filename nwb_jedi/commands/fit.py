"""`nwb-jedi fit [SOURCE]`: read, map trials to conditions, fit JEDI, score, write NWB."""

from __future__ import annotations

import argparse
import os
import sys
import time

from nwb_jedi.commands._options import (
    add_mapper_options,
    add_model_options,
    add_quiet_option,
    add_source_options,
    make_friendly,
    mapper_kwargs,
    model_kwargs,
    preset_asset,
    progress_enabled,
)
from nwb_jedi.commands._sharing import add_sharing_options, sharing_kwargs
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi fit                                   # the embedded monkey reaching data
  nwb-jedi fit DANDI:000128/0.220113.0400 --preset mc_maze --plots figures
                                                 # the preset picks the *_desc-train_* file
  nwb-jedi fit session.nwb --condition-by trial_type --align go_cue_time --window -0.2,0.5
  nwb-jedi fit session.nwb --preset mc_maze --checkpoint ckpt   # later: add --resume
  torchrun --nproc-per-node 4 -m nwb_jedi fit session.nwb --preset mc_maze
"""


HELP = "fit one JEDI model across all conditions and write it to NWB"


def register(subparsers) -> None:
    parser = make_friendly(subparsers.add_parser(
        "fit", help=HELP,
        description="Fit one JEDI model across all conditions of a session and write the "
                    "fitted model and its results into an NWB file. With no SOURCE, fits the "
                    "embedded monkey PMd reaching data (Yu et al. 2009).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("source", nargs="?", metavar="SOURCE",
                        help="local .nwb file, DANDI:ID/VERSION[/PATH], dandiarchive.org URL, "
                             "dandi:// URL or a dandiset ID (default: embedded data)")
    add_source_options(parser)
    add_mapper_options(parser)
    from nwb_jedi.model.jedi import JEDI

    add_model_options(parser, JEDI)
    resume = parser.add_argument_group("checkpoints")
    resume.add_argument("--checkpoint", metavar="DIR",
                        help="save a resumable checkpoint to DIR every --checkpoint-every epochs")
    resume.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                        help="epochs between checkpoints (default 10)")
    resume.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --checkpoint DIR")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="jedi_fit.nwb", metavar="FILE",
                     help="output NWB file (default jedi_fit.nwb)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing output")
    out.add_argument("--plots", metavar="DIR", help="also write figures (PNG) to DIR")
    add_quiet_option(out)
    add_sharing_options(parser, "jedi-rank<R>")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Before torch/tqdm are imported: tqdm reads its environment defaults at import.
    progress = progress_enabled(args.quiet)
    from nwb_jedi import datasets
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.data.presets import preset
    from nwb_jedi.io.read import read_session
    from nwb_jedi.io.write import write_results
    from nwb_jedi.model.distributed import init_from_env, is_main_process
    from nwb_jedi.model.jedi import JEDI
    from nwb_jedi.model.results import compute_results

    if args.resume and not args.checkpoint:
        raise UserError("--resume needs --checkpoint DIR (the directory of the checkpoint)")
    sharing = sharing_kwargs(args)
    if args.plots and os.path.exists(args.plots) and not os.path.isdir(args.plots):
        raise UserError(f"--plots {args.plots} is a file; give a directory for the figures")
    # Checks that cost nothing come before reading data or fitting.
    if os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a directory; give a file name such as "
                        f"{os.path.join(args.out, 'jedi_fit.nwb')}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UserError(f"the directory of --out ({out_dir}) does not exist; create it first")
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every must be a positive integer, got "
                        f"{args.checkpoint_every}")
    model = JEDI(**model_kwargs(args), progress=progress)
    model._check_params()  # bad hyperparameters fail here, before any data is read
    model._resolve_device()  # as does an unusable --device
    # Under torchrun every rank runs this command; rank 0 alone writes files and prints.
    init_from_env("cuda" if str(model.device).startswith("cuda") else "cpu")
    main = is_main_process()
    if os.path.exists(args.out) and not args.overwrite:
        raise UserError(f"{args.out} already exists; pass --overwrite to replace it or choose "
                        f"another --out")
    quiet = args.quiet or not main
    progress = progress and main
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    start = time.perf_counter()

    source = args.source
    default = None
    if source is None:
        source = datasets.reaching_path()
        default = preset("yu2009")
        say("no SOURCE given: fitting the embedded monkey PMd reaching data (Yu et al. 2009)")
    asset = args.asset or preset_asset(args.preset, source)
    if asset and not args.asset:
        say(f"preset {args.preset}: fitting the asset matching {asset!r} (choose another with "
            f"--asset PATH)")
    # The fit models spikes only: the mapper resamples no behavior unless asked, and the
    # session is read with exactly the series the mapper will use (on DANDI, 1 kHz behavior is
    # most of a file's bytes).
    mapper = ConditionMapper(**{"behavior": False, **mapper_kwargs(args, default)},
                             seed=model.seed, verbose=not quiet)
    session = read_session(source, asset=asset, cache_dir=args.cache_dir, progress=progress,
                           behavior=mapper.behavior)
    ds = mapper.build(session)
    say(f"data: {ds}")

    model.progress = progress
    model.fit(ds.train, ds.val, checkpoint_dir=args.checkpoint,
              checkpoint_every=args.checkpoint_every, resume=args.resume)
    if not main:
        return 0
    if args.resume and model.resumed_from_epoch_ == 0:
        say(f"no checkpoint in {args.checkpoint} yet: started a new fit there")
    # One prediction of every trial gives the stored rates and the scores of both splits.
    results = compute_results(model, ds, splits=("test", "train"))
    write_results(model, ds, args.out, source=session, overwrite=args.overwrite,
                  results=results, **sharing)
    if args.plots:
        _write_plots(model, ds, results, args.plots)

    test = results.metrics["test"]
    resumed = (f", resumed at epoch {model.resumed_from_epoch_}"
               if model.resumed_from_epoch_ else "")
    print(f"fitted JEDI on {ds.n_trials} trials, {ds.n_conditions} conditions, "
          f"{ds.n_units} neurons in {model.n_epochs_} epochs{resumed} "
          f"({time.perf_counter() - start:.0f} s)")
    print(f"conditions: {_short_list(list(ds.conditions['label']))}")
    print(f"held-out trials: bits/spike {test['bits_per_spike']:.3f}, "
          f"PSTH R² {test['psth_r2']:.3f}, single-trial R² {test['r2']:.3f}")
    print(f"wrote {os.path.abspath(args.out)}")
    return 0


def _short_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _write_plots(model, ds, results, directory: str) -> None:
    """The fit's figures, drawn from the results already computed (nothing predicted again)."""
    from nwb_jedi.analysis import plots

    os.makedirs(directory, exist_ok=True)
    labels = ds.conditions["label"].astype(str).to_numpy()
    spectra = {labels[row]: values for row, values in results.eigenvalues.items()}
    plots.plot_embeddings(model, os.path.join(directory, "embeddings.png"))
    plots.plot_eigenvalues(spectra, os.path.join(directory, "eigenvalues.png"),
                           conditions=list(spectra)[:plots.MAX_SPECTRUM_PANELS])
    plots.plot_training(model, os.path.join(directory, "training.png"))
    test = ds.split == "test"
    plots.plot_psth(results.rates[test], ds.subset(test), os.path.join(directory, "psth.png"))
