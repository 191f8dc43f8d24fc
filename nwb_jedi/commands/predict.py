"""`nwb-jedi predict FILE SOURCE --out OUT`: apply a shared JEDI model to another session.

The network (hypernetwork and readout) stays frozen; only the condition embeddings of the new
session are inferred, on its training trials (validation trials for early stopping). The
model is scored on the held-out trials and everything is written to a derived NWB file.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from nwb_jedi.commands._options import add_mapper_options, add_source_options, mapper_kwargs
from nwb_jedi.commands._sharing import add_sharing_options, sharing_kwargs
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi predict jedi_fit.nwb other_session.nwb --out other_jedi.nwb
  nwb-jedi predict jedi_fit.nwb DANDI:000128/0.220113.0400 --window=-0.2,0.5 --out out.nwb
  nwb-jedi predict DANDI:000999/draft/sub-x/sub-x_ses-y-jedi-rank6.nwb my_session.nwb --out mine.nwb
"""

HELP = "apply a shared JEDI model to another session"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help=HELP,
        description="Apply a JEDI model stored in an NWB file to another session with the "
                    "same neurons: build its trials with the model's mapper settings (flags "
                    "override them), infer condition embeddings with the network frozen, "
                    "score on held-out trials and write a derived NWB file.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE",
                        help="NWB file holding the model: a local path, or where it is shared "
                             "on DANDI (DANDI:ID/VERSION/PATH, dandiarchive.org or dandi:// URL)")
    parser.add_argument("source", metavar="SOURCE",
                        help="local .nwb file, DANDI:ID/VERSION[/PATH] or dandiarchive.org URL")
    add_source_options(parser)
    add_mapper_options(parser)
    parser.add_argument("--module-name", metavar="NAME",
                        help="processing module holding the model (when there are several)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="budget for inferring embeddings (default: the model's)")
    parser.add_argument("--out", required=True, metavar="OUT", help="output NWB file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_sharing_options(parser, "the model's label + -predict, e.g. jedi-rank6-predict")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.data.provenance import Provenance
    from nwb_jedi.io.dandi_metadata import default_label
    from nwb_jedi.io.load import load_model, read_summary
    from nwb_jedi.io.read import read_session
    from nwb_jedi.io.write import write_results

    if os.path.exists(args.out) and not args.overwrite:
        raise UserError(f"{args.out} already exists; pass --overwrite to replace it or choose "
                        f"another --out")
    sharing = sharing_kwargs(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    model = load_model(args.file, args.module_name, cache_dir=args.cache_dir)
    summary = read_summary(args.file, args.module_name, cache_dir=args.cache_dir)
    # The fitted mapper exactly as stored with the model (ConditionMapper.to_settings form),
    # with the flags the user gave on top; from_settings refuses malformed stored settings.
    stored = Provenance.from_dict(summary.get("dataset_metadata", {})).mapper or {}
    default = {"bin_size": model.bin_size_, **stored}
    # Inferring embeddings uses spikes only: no behavior is resampled or read (older fits
    # stored behavior=True, which would stream every behavior series of a DANDI source).
    settings = {**mapper_kwargs(args, default), "behavior": False}
    mapper = ConditionMapper.from_settings(settings, verbose=not args.quiet)
    session = read_session(args.source, asset=args.asset, cache_dir=args.cache_dir,
                           progress=not args.quiet, behavior=mapper.behavior)
    ds = mapper.build(session)
    check_units(model.unit_id_, ds.unit_id, args.source)
    model.progress = not args.quiet
    say(f"inferring {ds.n_conditions} condition embeddings from {int(np.sum(ds.split == 'train'))}"
        f" training trials (network frozen)")
    fitted = model.infer_embeddings(ds.train, val=ds.val if np.any(ds.split == "val") else None,
                                    max_epochs=args.epochs)
    sharing.setdefault("label", f"{default_label(fitted.get_state()[0])}-predict")
    path = write_results(fitted, ds, args.out, source=session, overwrite=args.overwrite,
                         **sharing)
    held = "test" if np.any(ds.split == "test") else "val"
    scored = ds.split == held
    seen = _trials_the_network_saw(args.file, args.module_name, summary, session, ds,
                                   args.cache_dir)
    if (scored & seen).any():
        # The same session as the model's fit: trials the network was trained on would
        # flatter the score, so they are left out of it (their embeddings still count).
        say(f"same session as the model's fit: {int(np.sum(scored & seen))} of the "
            f"{int(scored.sum())} {held} trials were used to train the network and are not "
            f"scored")
        scored &= ~seen
    if scored.any():
        scores = fitted.evaluate(ds.subset(scored))
        say(f"held-out ({held}) trials: bits/spike {scores['bits_per_spike']:.3f}, "
            f"PSTH R² {scores['psth_r2']:.3f}")
    print(path)
    return 0


def _trials_the_network_saw(path, module_name, summary, session, ds,
                            cache_dir=None) -> np.ndarray:
    """Mask of the trials of `ds` that trained (or early-stopped) the model's network (the
    rule: `nwb_jedi.analysis.evaluation.trials_seen_in_training`)."""
    from nwb_jedi.analysis.evaluation import trials_seen_in_training
    from nwb_jedi.data.provenance import Provenance
    from nwb_jedi.io.load import load_dataset

    # The fitted session as the model's provenance records it: a derived file's own
    # session_id carries a label (`<session>-jedi-rank6`, for `dandi organize`).
    recorded = Provenance.from_dict(summary.get("dataset_metadata", {})).session
    fitted_session = recorded.get("session_id") or (summary.get("session") or {}).get(
        "session_id")
    session_id = session.metadata.get("session_id")
    trial_ids, split = [], []
    if fitted_session and fitted_session == session_id:
        # Only then can the trials overlap, so only then are the fitted trials worth reading.
        fitted = load_dataset(path, module_name, cache_dir=cache_dir)
        trial_ids, split = fitted.trial_id, fitted.split
    return trials_seen_in_training(fitted_session, trial_ids, split, session_id, ds.trial_id)


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
