"""`nwb-jedi fit [SOURCE]`: read, map trials to conditions, fit JEDI, score, write NWB."""

from __future__ import annotations

import argparse
import os
import sys
import time

from nwb_jedi.commands import _fit_extras
from nwb_jedi.commands._options import (
    add_model_options,
    add_output_options,
    add_quiet_option,
    apply_threads,
    check_output_source,
    data_options,
    describe_settings,
    make_friendly,
    mapper_settings,
    model_kwargs,
    preset_asset,
    print_warning,
    progress_enabled,
)
from nwb_jedi.commands._sharing import add_sharing_options, sharing_kwargs
from nwb_jedi.errors import UserError, counted

EXAMPLES = """examples:
  nwb-jedi fit                                   # the embedded monkey reaching data
  nwb-jedi fit DANDI:000128/0.220113.0400 --preset mc_maze --plots figures
                                                 # the preset picks the *_desc-train_* file
  nwb-jedi fit session.nwb --condition-by trial_type --align go_cue_time --window -0.2,0.5
  nwb-jedi fit session.nwb --intervals epochs --condition-by tags --align start_time \\
      --window 0,1                               # a file whose trials are in another table
  nwb-jedi fit session.nwb --preset mc_maze --append --out session_with_jedi.nwb
  nwb-jedi fit session.nwb --preset mc_maze --checkpoint ckpt   # later: add --resume
  torchrun --nproc-per-node 4 -m nwb_jedi fit session.nwb --preset mc_maze

The summary compares the held-out bits/spike with the smoothed PSTH of the training trials
and warns when the fit is no better than each neuron's mean rate or clearly worse than that
PSTH, with the likely cause and what to try.
"""


HELP = "fit one JEDI model across all conditions and write it to NWB"


def register(subparsers) -> None:
    parser = make_friendly(subparsers.add_parser(
        "fit", help=HELP, parents=[data_options()],
        description="Fit one JEDI model across all conditions of a session and write the "
                    "fitted model and its results into an NWB file. With no SOURCE, fits the "
                    "embedded monkey PMd reaching data (Yu et al. 2009).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("source", nargs="?", metavar="SOURCE",
                        help="local .nwb file, DANDI:ID/VERSION[/PATH], dandiarchive.org URL, "
                             "dandi:// URL or a dandiset ID (default: embedded data)")
    from nwb_jedi.model.jedi import JEDI

    add_model_options(parser, JEDI)
    resume = parser.add_argument_group("checkpoints")
    resume.add_argument("--checkpoint", metavar="DIR",
                        help="save a resumable checkpoint to DIR every --checkpoint-every "
                             "epochs (default: none)")
    resume.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                        help="epochs between checkpoints (default 10)")
    resume.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --checkpoint DIR (default: a "
                             "new fit)")
    out = add_output_options(parser, "jedi_fit.nwb")
    out.add_argument("--plots", metavar="DIR",
                     help="also write figures (PNG) to DIR (default: none)")
    add_quiet_option(out)
    _fit_extras.add_options(parser)
    add_sharing_options(parser, "jedi-rank<R>")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Before torch/tqdm are imported: tqdm reads its environment defaults at import.
    progress = progress_enabled(args.quiet)
    from nwb_jedi.io.write import write_results
    from nwb_jedi.model.distributed import init_from_env, is_main_process
    from nwb_jedi.model.jedi import JEDI
    from nwb_jedi.model.quality import population_warning

    _check_arguments(args)
    extras = _fit_extras.FitExtras.from_args(args)  # --decode, --nlb: their own checks
    sharing = sharing_kwargs(args)  # a malformed --subject-age or --label fails at once
    model = JEDI(**model_kwargs(args), progress=progress)
    model._check_params()  # bad hyperparameters fail here, before any data is read
    model._resolve_device()  # as does an unusable --device
    apply_threads(args)
    # Under torchrun every rank runs this command; rank 0 alone writes files and prints.
    init_from_env("cuda" if str(model.device).startswith("cuda") else "cpu")
    main = is_main_process()
    source = _source(args)
    check_output_source(args.out, source, append=args.append, embedded=args.source is None)
    _check_outputs(args, source)
    quiet = args.quiet or not main
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    start = time.perf_counter()
    session, ds = _read_data(args, source, say, extras, progress=progress and main,
                             quiet=quiet, seed=model.seed)
    small = population_warning(ds.n_units, model.rank)
    if small and main and model.rank <= ds.n_units:  # (a larger rank is an error of the fit)
        print_warning(small)  # before the fit: the user may stop it

    model.progress = progress and main
    model.fit(ds.train, ds.val, checkpoint_dir=args.checkpoint,
              checkpoint_every=args.checkpoint_every, resume=args.resume)
    if not main:
        return 0
    if args.resume and model.resumed_from_epoch_ == 0:
        say(f"no checkpoint in {args.checkpoint} yet: started a new fit there")
    results = _results(model, ds)
    extra_lines = extras.after_fit(model, ds, results, say)  # adds their metrics to results
    write_results(model, ds, args.out, source=session, overwrite=args.overwrite,
                  results=results, append=args.append, **sharing)
    if args.plots:
        _write_plots(model, ds, results, args.plots)
    _print_summary(model, ds, results, args.out, time.perf_counter() - start, extra_lines)
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    """Checks that cost nothing, before reading data or fitting."""
    if args.resume and not args.checkpoint:
        raise UserError("--resume needs --checkpoint DIR (the directory of the checkpoint)")
    # Every output can be written, and none of them is the input (checked in the run, once
    # the source is known).
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every must be a positive integer, got "
                        f"{args.checkpoint_every}")


def _source(args: argparse.Namespace) -> str:
    from nwb_jedi import datasets

    return args.source if args.source is not None else datasets.reaching_path()


def _read_data(args: argparse.Namespace, source: str, say, extras, *, progress: bool,
               quiet: bool, seed: int):
    """The session and its TrialDataset, saying which settings built it."""
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.data.presets import preset
    from nwb_jedi.io.read import read_session

    layers = []
    if args.source is None:
        layers = [("the embedded data's preset yu2009", preset("yu2009"))]
        say("no SOURCE given: fitting the embedded monkey PMd reaching data (Yu et al. 2009)")
    settings, origins = mapper_settings(args, layers)
    asset = args.asset or preset_asset(args.preset, args.source)
    if asset and not args.asset:
        say(f"preset {args.preset}: fitting the asset matching {asset!r} (choose another with "
            f"--asset PATH)")
    # The fit models spikes only: the mapper resamples no behavior unless asked (--decode),
    # and the session is read with exactly the series used (on DANDI, 1 kHz behavior is most
    # of a file's bytes).
    kwargs = extras.mapper_kwargs({"behavior": False, **settings}, say)
    session = read_session(source, asset=asset, cache_dir=args.cache_dir, progress=progress,
                           intervals=args.intervals,
                           behavior=_series_to_read(kwargs["behavior"], extras))
    if args.intervals:
        say(f"trials: the interval table {args.intervals!r} (--intervals)")
    say(describe_settings(settings, origins))
    mapper = ConditionMapper(**kwargs, seed=seed, verbose=not quiet)
    ds = extras.prepare(session, mapper.build(session), seed, say)
    say(f"data: {ds}")
    _check_splits(ds)
    return session, ds


def _check_splits(ds) -> None:
    """A fit is scored on its held-out (test) trials: refuse data too few to have any."""
    counts = {name: int((ds.split == name).sum()) for name in ("train", "val", "test")}
    if counts["train"] and counts["test"]:
        return
    split = (f"train {counts['train']}, validation {counts['val']}, test {counts['test']}")
    if ds.n_trials >= 3 and ds.trials_per_condition().max() < 3:
        # The split holds trials out per condition: two trials give one to training and one
        # to validation, none to the test.
        raise UserError(f"no condition has the 3 trials it needs to hold one out for testing "
                        f"({counted(ds.n_trials, 'trial')} in "
                        f"{counted(ds.n_conditions, 'condition')}: {split}); map trials to "
                        f"fewer conditions (a coarser --condition-by) or keep more trials")
    raise UserError(f"{counted(ds.n_trials, 'trial')} are too few to fit and score a model "
                    f"({split}); keep more trials (loosen --trial-filter, or fit a longer "
                    f"session)")


def _series_to_read(binned, extras) -> bool | list[str]:
    """The behavior series `read_session` must read: those the mapper bins, and those the
    --decode/--nlb steps need (False: none)."""
    if binned is True:
        return True
    wanted = [*(binned or []), *extras.read_kwargs().get("behavior", [])]
    return list(dict.fromkeys(wanted)) or False


def _results(model, ds):
    """The results of every trial (one prediction), their quality warnings kept to print."""
    import warnings

    from nwb_jedi.errors import FitQualityWarning
    from nwb_jedi.model.results import compute_results

    with warnings.catch_warnings():
        # The summary prints them, after the scores they are about.
        warnings.simplefilter("ignore", FitQualityWarning)
        return compute_results(model, ds, splits=("test", "train"))


def _print_summary(model, ds, results, out: str, seconds: float,
                   extra_lines: list[str]) -> None:
    from nwb_jedi.model.quality import BASELINE, population_warning

    said = population_warning(ds.n_units, model.rank)  # printed before the fit
    test = results.metrics["test"]
    resumed = (f", resumed at epoch {model.resumed_from_epoch_}"
               if model.resumed_from_epoch_ else "")
    print(f"fitted JEDI on {counted(ds.n_trials, 'trial')}, "
          f"{counted(ds.n_conditions, 'condition')}, {counted(ds.n_units, 'neuron')} in "
          f"{counted(model.n_epochs_, 'epoch')}{resumed} ({seconds:.0f} s)")
    print(f"conditions: {_short_list(list(ds.conditions['label']))}")
    baseline = (f" (smoothed PSTH of the training trials: {test[BASELINE]:.3f})"
                if BASELINE in test else "")
    print(f"held-out trials: bits/spike {test['bits_per_spike']:.3f}{baseline}, "
          f"PSTH R² (smoothed) {test['psth_r2_smoothed']:.3f}, single-trial R² "
          f"{test['r2']:.3f}")
    print("\n".join([*extra_lines, f"wrote {os.path.abspath(out)}"]))
    for line in results.warnings:
        if line != said:
            print_warning(line)


def _check_outputs(args: argparse.Namespace, source: str) -> None:
    """--out, --plots and --checkpoint can be written, and --out is not the SOURCE."""
    from nwb_jedi.commands._paths import check_output_dir, check_output_file

    source = source if os.path.exists(source) else None
    check_output_file(args.out, "--out", overwrite=args.overwrite, inputs=[source])
    if args.plots:
        check_output_dir(args.plots, "--plots")
    if args.checkpoint:
        check_output_dir(args.checkpoint, "--checkpoint")


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
