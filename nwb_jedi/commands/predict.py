"""`nwb-jedi predict FILE SOURCE --out OUT`: apply a shared JEDI model to another session.

The network (hypernetwork and readout) stays frozen; only the condition embeddings of the new
session are inferred, on its training trials (validation trials for early stopping). The
model is scored on the held-out trials and everything is written to a derived NWB file.

Before anything slow (loading torch, reading spikes, inferring), the command checks that the
SOURCE's units are the model's neurons (`nwb_jedi.data.units.match_units`: ids, subject,
session and where each unit was recorded) and says where each mapper setting comes from (the
model's stored settings, a preset or a flag).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

from nwb_jedi.commands._options import (
    add_output_options,
    add_quiet_option,
    apply_threads,
    check_output_source,
    check_threads,
    data_options,
    describe_settings,
    explain_setting_error,
    mapper_settings,
    print_warning,
    progress_enabled,
)
from nwb_jedi.commands._sharing import add_sharing_options, sharing_kwargs
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi predict jedi_fit.nwb other_session.nwb --out other_jedi.nwb
  nwb-jedi predict jedi_fit.nwb DANDI:000128/0.220113.0400 --window -0.2,0.5 --out out.nwb
  nwb-jedi predict jedi_fit.nwb other_session.nwb --trial-filter '' --out out.nwb
                                      # clear the trial filter stored with the model
  nwb-jedi predict DANDI:000999/draft/sub-x/sub-x_ses-y-jedi-rank6.nwb my_session.nwb \
      --out mine.nwb                  # a model shared on DANDI

The mapper settings are the model's (printed with where each came from); flags override
them and an empty value clears one. The SOURCE's units must be the model's: the same ids,
and, for another session, the same subject and recording sites (location, electrode group);
when nothing but bare ids match, pass --force to apply the model anyway.
"""

HELP = "apply a shared JEDI model to another session"

MODEL = "the model"  # origin of the settings stored with the model


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help=HELP, parents=[data_options()],
        description="Apply a JEDI model stored in an NWB file to another session with the "
                    "same neurons: build its trials with the model's mapper settings (flags "
                    "override them), infer condition embeddings with the network frozen, "
                    "score on held-out trials and write a derived NWB file.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="NWB file holding the model")
    parser.add_argument("source", metavar="SOURCE",
                        help="local .nwb file, DANDI:ID/VERSION[/PATH] or dandiarchive.org URL")
    parser.add_argument("--module-name", metavar="NAME",
                        help="processing module holding the model (default: the only one)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="budget for inferring embeddings (default: the model's)")
    parser.add_argument("--force", action="store_true",
                        help="apply the model even when the SOURCE's units match its neurons "
                             "by bare ids only (another subject or session, no matching "
                             "recording sites) (default: refuse)")
    out = add_output_options(parser, None)
    add_quiet_option(out)
    add_sharing_options(parser, "the model's label + -predict, e.g. jedi-rank6-predict")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    progress = progress_enabled(args.quiet)
    from nwb_jedi.commands._paths import check_output_file
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.data.provenance import Provenance
    from nwb_jedi.io.load import read_summary

    check_output_source(args.out, args.source, append=args.append)
    # Before any reading: the output can be written and is neither of the inputs (even with
    # --overwrite, `predict M S --out M` must never replace the model).
    source = args.source if os.path.exists(args.source) else None
    check_output_file(args.out, "--out", overwrite=args.overwrite, inputs=[args.file, source])
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    check_threads(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    # Cheap first (h5py, metadata only): the stored settings, then the units.
    sharing = sharing_kwargs(args)  # a malformed --subject-age or --label fails at once
    summary = read_summary(args.file, args.module_name, cache_dir=args.cache_dir)
    provenance = Provenance.from_dict(summary.get("dataset_metadata", {}))
    stored = {"bin_size": summary["config"].get("bin_size"), **(provenance.mapper or {})}
    settings, origins = mapper_settings(args, [(MODEL, stored)])
    # Inferring embeddings uses spikes only: no behavior is resampled or read (older fits
    # stored behavior=True, which would stream every behavior series of a DANDI source).
    settings["behavior"] = False
    # The user's own --trial-filter may use pandas' whole query language; one read from the
    # file is parsed into a whitelisted form and never evaluated (from_settings).
    own_filter = args.trial_filter or None
    try:
        # from_settings refuses malformed stored settings, and callables not given again.
        mapper = ConditionMapper.from_settings(
            _without_filter(settings) if own_filter else settings, verbose=not args.quiet)
    except UserError as err:
        raise explain_setting_error(err, origins, MODEL) from None
    if own_filter:
        mapper.trial_filter = own_filter
    say(describe_settings(settings, origins))
    intervals = args.intervals or provenance.source.get("trials_table")
    if intervals and not args.intervals:
        say(f"trials: the interval table {intervals!r} ({MODEL}; override with --intervals)")
    check_source_units(args, summary, provenance, say)

    apply_threads(args)
    ds, session, fitted = _infer(args, mapper, origins, intervals, summary, progress, say)
    results, scored, held = _score(args, summary, session, ds, fitted, say)
    path = _write(args, fitted, ds, session, results, sharing)
    for line in results.warnings:
        print_warning(line)
    if scored is not None and not scored.any():
        print_warning(f"no {held} trial was left to score; nothing here says how well the "
                      f"model fits these data")
    print(path)
    return 0


def _without_filter(settings: dict) -> dict:
    """The settings without their trial filter (the user gives one of their own)."""
    callables = {k: v for k, v in (settings.get("callables") or {}).items()
                 if k != "trial_filter"}
    out = {**settings, "trial_filter": None}
    if callables:
        out["callables"] = callables
    else:
        out.pop("callables", None)
    return out


def check_source_units(args: argparse.Namespace, summary: dict, provenance, say) -> None:
    """Refuse, warn or note how the SOURCE's units match the model's, before anything slow."""
    from nwb_jedi.data.units import match_units
    from nwb_jedi.io.read import describe_source

    described = describe_source(args.source, asset=args.asset, cache_dir=args.cache_dir)
    identity = provenance.extras.get("units")
    match = match_units(summary["config"].get("unit_id", []),
                        identity if isinstance(identity, dict) else None,
                        provenance.session or summary.get("session"),
                        described["units"]["id"].to_numpy(), described["units"],
                        described["metadata"], where=args.source)
    if match.refused and not args.force:
        raise UserError(f"{match.message}; pass --force to apply the model anyway")
    if match.refused or match.level == "warning":
        print_warning(match.message + (" (applied anyway: --force)" if match.refused else ""))
    elif match.message:
        say(match.message)


def _infer(args, mapper, origins, intervals, summary, progress, say):
    """Read the SOURCE, build its trials with the model's mapper, infer its embeddings."""
    from nwb_jedi.io.load import load_model
    from nwb_jedi.io.read import read_session

    model = load_model(args.file, args.module_name, cache_dir=args.cache_dir)
    session = read_session(args.source, asset=args.asset, cache_dir=args.cache_dir,
                           progress=progress, intervals=intervals, behavior=mapper.behavior)
    try:
        ds = mapper.build(session)
    except UserError as err:
        raise explain_setting_error(err, origins, MODEL) from None
    check_units(model.unit_id_, ds.unit_id, args.source)
    # Recorded with the data, so a file written here says its network was fitted elsewhere
    # (and its quality is judged as a transfer).
    ds.provenance = ds.provenance.with_extras(applied_model={
        "file": os.path.abspath(args.file), "module": summary["module"],
        "session_id": _fitted_session_id(summary)})
    model.progress = progress
    say(f"inferring {ds.n_conditions} condition embeddings from {int(np.sum(ds.split == 'train'))}"
        f" training trials (network frozen)")
    fitted = model.infer_embeddings(ds.train, val=ds.val if np.any(ds.split == "val") else None,
                                    max_epochs=args.epochs)
    return ds, session, fitted


def _score(args, summary, session, ds, fitted, say):
    """Results of every trial; the held-out split scored without the trials the network saw.

    Returns (results, the scored mask or None without held-out trials, the split's name).
    """
    import warnings

    from nwb_jedi.errors import FitQualityWarning
    from nwb_jedi.metrics import score_rates
    from nwb_jedi.model.quality import psth_baseline_comparison
    from nwb_jedi.model.results import compute_results, quality_warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitQualityWarning)  # judged below, on honest scores
        results = compute_results(fitted, ds)
    held = "test" if np.any(ds.split == "test") else "val"
    scored = ds.split == held
    if not scored.any():
        return results, None, held
    seen = _trials_the_network_saw(args.file, args.module_name, summary, session, ds,
                                   args.cache_dir)
    if (scored & seen).any():
        # The same session as the model's fit: trials the network was trained on would
        # flatter the score, so they are left out of it (their embeddings still count).
        say(f"same session as the model's fit: {int(np.sum(scored & seen))} of the "
            f"{int(scored.sum())} {held} trials were used to train the network and are not "
            f"scored")
        scored &= ~seen
    metrics = {split: dict(values) for split, values in results.metrics.items()}
    if scored.any():
        metrics[held] = {**score_rates(results.rates[scored], ds.subset(scored)),
                         **psth_baseline_comparison(results.rates, ds, scored)}
        s = metrics[held]
        say(f"held-out ({held}) trials: bits/spike {s['bits_per_spike']:.3f}, PSTH R² "
            f"(smoothed) {s['psth_r2_smoothed']:.3f}")
    else:
        metrics.pop(held, None)
    results = dataclasses.replace(results, metrics=metrics,
                                  warnings=quality_warnings(fitted, ds, metrics))
    return results, scored, held


def _write(args, fitted, ds, session, results, sharing) -> str:
    from nwb_jedi.io.dandi_metadata import default_label
    from nwb_jedi.io.write import write_results

    sharing = {"label": f"{default_label(fitted.get_state()[0])}-predict", **sharing}
    return write_results(fitted, ds, args.out, source=session, overwrite=args.overwrite,
                         results=results, append=args.append, **sharing)


def _trials_the_network_saw(path, module_name, summary, session, ds,
                            cache_dir=None) -> np.ndarray:
    """Mask of the trials of `ds` that trained (or early-stopped) the model's network (the
    rule: `nwb_jedi.analysis.evaluation.trials_seen_in_training`)."""
    from nwb_jedi.analysis.evaluation import trials_seen_in_training
    from nwb_jedi.io.load import load_dataset

    fitted_session = _fitted_session_id(summary)
    session_id = session.metadata.get("session_id")
    trial_ids, split = [], []
    if fitted_session and fitted_session == session_id:
        # Only then can the trials overlap, so only then are the fitted trials worth reading.
        fitted = load_dataset(path, module_name, cache_dir=cache_dir)
        trial_ids, split = fitted.trial_id, fitted.split
    return trials_seen_in_training(fitted_session, trial_ids, split, session_id, ds.trial_id)


def _fitted_session_id(summary: dict) -> str | None:
    """The session the model was fitted on, as its provenance records it (a derived file's
    own session_id carries a label, `<session>-jedi-rank6`, for `dandi organize`)."""
    from nwb_jedi.data.provenance import Provenance

    recorded = Provenance.from_dict(summary.get("dataset_metadata", {})).session
    return recorded.get("session_id") or (summary.get("session") or {}).get("session_id")


def check_units(model_units: np.ndarray, data_units: np.ndarray, source: str) -> None:
    """Refuse data whose neurons are not exactly the model's, saying how they differ."""
    model_ids = [str(u) for u in np.asarray(model_units)]
    data_ids = [str(u) for u in np.asarray(data_units)]
    if model_ids == data_ids:
        return
    common = len(set(model_ids) & set(data_ids))
    raise UserError(f"the units of {source} do not match the model's: the model has "
                    f"{len(model_ids)} units, the data {len(data_ids)}, {common} ids in "
                    f"common; a JEDI model's units are recorded neurons, so it applies only to "
                    f"sessions with the same units (same ids, same unit filters)")
