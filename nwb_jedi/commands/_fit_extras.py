"""`nwb-jedi fit` options beyond fitting: behavior decoding (``--decode``) and a Neural Latents
Benchmark submission (``--nlb``).

`fit` calls these in order: `add_options` (registration), `FitExtras.from_args` (checks that
cost nothing, before reading), `read_kwargs` / `mapper_kwargs` (what to read and bin),
`prepare` (the dataset: NLB splits and PSTH targets), `after_fit` (decode, write the
submission and evaluate it locally; adds the metrics to the results before they are written;
returns the lines to print).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from nwb_jedi.errors import UserError

NLB_EVAL_SPLIT = "nlb_eval"  # the metrics table's split name for the local NLB evaluation
DEFAULT_DECODE_SMOOTH_S = 0.05  # smoothed-spike reference when the data are not NLB's


def add_options(parser: argparse.ArgumentParser) -> None:
    """The ``--decode`` and ``--nlb`` options of `fit`."""
    group = parser.add_argument_group("behavior decoding and the Neural Latents Benchmark")
    group.add_argument("--decode", metavar="SERIES",
                       help="decode this behavior series (e.g. hand_vel, or teacher_output in "
                            "`nwb-jedi simulate` files) from the fitted rates with NLB's ridge "
                            "decoder (trained on the training trials, R² on the test trials), "
                            "next to the same decoder on smoothed spikes (default: none)")
    group.add_argument("--decode-lag-ms", type=float, metavar="MS",
                       help="the behavior follows the rates by this lag (default: NLB's for "
                            "hand_vel of MC_Maze-family files, 100 or 120 ms; else 0)")
    group.add_argument("--nlb", metavar="FILE",
                       help="also write a Neural Latents Benchmark submission (HDF5) for the "
                            "NLB 'val' trials of an MC_Maze-family train file (needs --preset "
                            "mc_maze; 5 or 20 ms bins), and score it locally as nlb_tools does "
                            "(default: none)")
    group.add_argument("--nlb-dataset", metavar="NAME",
                       help="mc_maze, mc_maze_large, mc_maze_medium or mc_maze_small (default: "
                            "from the file's ses- name or dandiset)")


@dataclass
class FitExtras:
    """What `fit` was asked beyond fitting, and what the steps learn on the way."""

    decode: str | None = None
    decode_lag: float | None = None
    nlb_path: str | None = None
    nlb_name: str | None = None
    overwrite: bool = False
    # learnt while running
    dataset: Any = None  # nwb_jedi.data.nlb.NLBDataset
    session: Any = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FitExtras:
        """Check the options (before any data is read)."""
        extras = cls(decode=args.decode, nlb_path=args.nlb, nlb_name=args.nlb_dataset,
                     overwrite=bool(args.overwrite))
        if args.decode_lag_ms is not None:
            if not args.decode:
                raise UserError("--decode-lag-ms needs --decode SERIES")
            if not math.isfinite(args.decode_lag_ms):
                raise UserError(f"--decode-lag-ms must be a number of milliseconds, got "
                                f"{args.decode_lag_ms}")
            extras.decode_lag = args.decode_lag_ms / 1000.0
        if args.nlb_dataset and not args.nlb:
            raise UserError("--nlb-dataset needs --nlb FILE")
        if args.nlb:
            _check_nlb_args(args)
        return extras

    # -------------------------------------------------------------- reading and binning
    def read_kwargs(self) -> dict[str, Any]:
        """`read_session` arguments: the behavior series these steps need, by name."""
        wanted = [self.decode] if self.decode else []
        if self.nlb_path:
            wanted.append("hand_vel")
        return {"behavior": list(dict.fromkeys(wanted))} if wanted else {}

    def mapper_kwargs(self, kwargs: dict[str, Any], say) -> dict[str, Any]:
        """The mapper's settings: the decoded series binned with the spikes; for ``--nlb``,
        NLB's trials (its split column's train and val trials), every neuron."""
        kwargs = dict(kwargs)
        if self.decode:
            kwargs["behavior"] = [self.decode]
        if self.nlb_path:
            from nwb_jedi.data.nlb import NLB_DATASETS, nlb_mapper_settings

            _check_nlb_mapper(kwargs)
            kwargs.update(nlb_mapper_settings(NLB_DATASETS["mc_maze"], kwargs["bin_size"]))
            say("--nlb: fitting NLB's 'train' trials with every neuron (held-out ones "
                "included); its 'val' trials are the evaluation trials (only their held-in "
                "neurons reach the model)")
        return kwargs

    def prepare(self, session, ds, seed: int, say):
        """The dataset to fit: NLB's splits for ``--nlb``, NLB's PSTH targets (``nlb_psth``)
        for MC_Maze-family data."""
        from nwb_jedi.data import nlb

        self.session = session
        if self.decode and self.decode not in session.behavior:
            raise UserError(f"no behavior series named {self.decode!r} in the file; run "
                            f"`nwb-jedi info SOURCE` to list them")
        window = ds.n_bins * ds.bin_size
        if self.decode_lag is not None and abs(self.decode_lag) >= window - 1e-9:
            # The behavior would be read from outside the trial's own window: another trial's
            # or none, never what these rates drive.
            raise UserError(f"--decode-lag-ms {self.decode_lag * 1e3:g} is not shorter than the "
                            f"trials' {window * 1e3:g} ms window; use a lag of tens of ms (NLB's "
                            f"MC_Maze sets use 100 and 120 ms)")
        self.dataset = nlb.nlb_dataset(self.nlb_name) if self.nlb_name else \
            nlb.identify(session.source)
        if self.nlb_path:
            if self.dataset is None:
                raise UserError("cannot tell which MC_Maze-family dataset this is from its "
                                "name; give --nlb-dataset (mc_maze, mc_maze_large, "
                                "mc_maze_medium or mc_maze_small)")
            ds = _nlb_splits(ds, seed)
        if self.dataset is not None and _on_1ms_grid(ds):
            say(f"NLB PSTH targets ({self.dataset.name}: 1 ms spikes smoothed at "
                f"{self.dataset.psth_sd * 1e3:g} ms)")
            ds.nlb_psth = nlb.smoothed_psth(session, ds, self.dataset.psth_sd)
        return ds

    # -------------------------------------------------------------- after the fit
    def after_fit(self, model, ds, results, say) -> list[str]:
        """Decode and/or write and score the NLB submission; the metrics go into
        ``results.metrics``; returns the lines `fit` prints."""
        lines = []
        nlb_psth = results.metrics.get("test", {}).get("psth_r2_nlb")
        if nlb_psth is not None:
            lines.append(f"held-out trials: NLB's PSTH R² ({self.dataset.name}'s targets) "
                         f"{nlb_psth:.3f}")
        if self.decode:
            lines += self._decode(ds, results)
        if self.nlb_path:
            lines += self._nlb(model, ds, results, say)
        return lines

    def _decode(self, ds, results) -> list[str]:
        from nwb_jedi.analysis.evaluation import decoding, smoothed_spike_rates
        from nwb_jedi.data import nlb

        name = self.decode
        lag = self.decode_lag
        if lag is None:
            lag = self.dataset.lag if self.dataset is not None and \
                name == self.dataset.behavior else 0.0
        behavior = ds.behavior[name] if lag == 0 else nlb.lagged_behavior(
            self.session.behavior[name], ds, lag)
        test = ds.split == "test"
        if not test.any():
            raise UserError("--decode scores the test trials, and this split has none")
        sd = self.dataset.smoothing_sd if self.dataset is not None else \
            DEFAULT_DECODE_SMOOTH_S
        try:
            scores = decoding({"model": results.rates,
                               "smoothed": smoothed_spike_rates(ds.counts, ds.bin_size, sd)},
                              behavior, ds.bin_size, ds.split == "train", test)
        except ValueError as err:  # e.g. the series does not cover the trials' windows
            raise UserError(f"cannot decode {name}: {err}") from None
        results.metrics.setdefault("test", {})
        results.metrics["test"][f"decode_r2_{name}"] = scores["model"]
        results.metrics["test"][f"decode_r2_{name}_smoothed_spikes"] = scores["smoothed"]
        line = (f"decoding {name} (lag {lag * 1e3:g} ms, NLB's ridge decoder, test trials): "
                f"R² {scores['model']:.3f} from JEDI's rates, {scores['smoothed']:.3f} from "
                f"spikes smoothed at {sd * 1e3:g} ms")
        if scores["model"] < scores["smoothed"]:
            line += " (JEDI's rates decode worse than smoothed spikes)"
        return [line]

    def _nlb(self, model, ds, results, say) -> list[str]:
        from nwb_jedi.analysis.evaluation import nlb_submission_rates
        from nwb_jedi.data import nlb
        from nwb_jedi.io.nlb import write_submission
        from nwb_jedi.metrics import nlb_evaluate
        from nwb_jedi.model.baselines import SmoothingGLM

        spec = self.dataset
        group = nlb.submission_group(spec, ds.bin_size)
        trials = nlb.nlb_trials(self.session, spec, ds.bin_size, like=ds)
        train = trials.window.subset(trials.train)
        evaluation = trials.window.subset(trials.evaluation)
        extended = trials.extended.subset(trials.evaluation)
        say(f"NLB submission {group}: {evaluation.n_trials} evaluation trials, "
            f"{int(trials.heldout.sum())} held-out neurons")
        arrays = nlb_submission_rates(model, train, evaluation, trials.heldout, extended)
        write_submission(self.nlb_path, group, arrays, overwrite=self.overwrite)
        targets = nlb.nlb_targets(self.session, spec, trials).as_dict()
        scores = nlb_evaluate(targets, arrays)
        smoothing = SmoothingGLM(heldout=trials.heldout, smooth_sd=spec.smoothing_sd,
                                 alpha=spec.smoothing_alpha).fit(train)
        reference = nlb_evaluate(targets, nlb_submission_rates(smoothing, train, evaluation,
                                                               trials.heldout))
        names = {"co-bps": "co_bps", "vel R2": "vel_r2", "psth R2": "psth_r2_nlb",
                 "fp-bps": "fp_bps"}
        results.metrics[NLB_EVAL_SPLIT] = {names[k]: v for k, v in scores.items()}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        base = ", ".join(f"{k} {v:.3f}" for k, v in reference.items())
        lines = [f"NLB {group}, local evaluation on its 'val' trials (nlb_tools' metrics): "
                 f"{shown}", f"NLB's spike smoothing baseline on the same trials: {base}"]
        if scores["co-bps"] < reference["co-bps"]:
            lines.append("JEDI's co-bps is below the spike smoothing baseline's")
        lines.append(f"wrote NLB submission {os.path.abspath(self.nlb_path)}")
        return lines


# ---------------------------------------------------------------------------------- checks
def _check_nlb_args(args: argparse.Namespace) -> None:
    from nwb_jedi.data.nlb import nlb_dataset

    if (args.preset or "").lower().replace("-", "_") != "mc_maze":
        raise UserError("--nlb writes MC_Maze-family submissions: give --preset mc_maze")
    if args.trial_filter:
        raise UserError("--nlb evaluates NLB's own trials (its split column), so "
                        "--trial-filter cannot be used with it")
    if args.nlb_dataset:
        nlb_dataset(args.nlb_dataset)
    from nwb_jedi.commands._paths import check_output_file, same_file

    if same_file(args.nlb, args.out):
        raise UserError("--nlb and --out must be different files")
    source = args.source if args.source and os.path.exists(args.source) else None
    check_output_file(args.nlb, "--nlb", overwrite=bool(args.overwrite), inputs=[source])


def _check_nlb_mapper(kwargs: dict[str, Any]) -> None:
    """NLB's windows, conditions and bins, or one sentence saying what differs."""
    from nwb_jedi.data.nlb import NLB_BIN_SUFFIX, NLB_DATASETS

    spec = NLB_DATASETS["mc_maze"]  # the family shares these
    by = kwargs.get("by")
    by = [by] if isinstance(by, str) else list(by or [])
    changed = [flag for flag, differs in (
        ("--condition-by", by != list(spec.condition_by)),
        ("--align", kwargs.get("align") != spec.align),
        ("--window", tuple(kwargs.get("window", ())) != spec.window),
        ("--align-reference", bool(kwargs.get("align_reference")))) if differs]
    if changed:
        raise UserError(f"--nlb needs NLB's trials and windows: conditions "
                        f"{','.join(spec.condition_by)}, aligned to {spec.align}, window "
                        f"{spec.window[0]:g},{spec.window[1]:g}; drop {' and '.join(changed)}")
    if not any(np.isclose(kwargs.get("bin_size", 0), b) for b in NLB_BIN_SUFFIX):
        raise UserError(f"the benchmark scores 5 ms or 20 ms bins, not "
                        f"{kwargs.get('bin_size', 0) * 1e3:g} ms; use --bin-ms 5 or 20")


def _nlb_splits(ds, seed: int):
    """NLB's 'val' trials become the test split; a seeded, condition-stratified 15% of its
    'train' trials become the validation split (early stopping)."""
    from nwb_jedi.data.dataset import stratified_split

    nlb_split = ds.split.copy()
    if not np.any(nlb_split == "val"):
        raise UserError("the file has no NLB 'val' trials to evaluate; --nlb needs a train "
                        "file of the benchmark (split column with train and val)")
    split = np.where(nlb_split == "val", "test", "train").astype("<U5")
    train = np.flatnonzero(nlb_split == "train")
    split[train] = stratified_split(ds.condition[train], (0.85, 0.15, 0.0), seed)
    out = ds.subset(np.arange(ds.n_trials))
    out.split = split
    out.provenance.extras["nlb"] = {"evaluation_trials": "NLB split 'val' (split 'test' here)",
                                    "validation": "15% of NLB split 'train', by condition"}
    return out


def _on_1ms_grid(ds) -> bool:
    """Whether NLB's PSTH targets can be made: bins and windows on the 1 ms grid."""
    starts = np.asarray(ds.align_time) + ds.time[0] - ds.bin_size / 2
    return bool(ds.n_trials) and abs(round(ds.bin_size * 1e3) - ds.bin_size * 1e3) < 1e-6 and \
        np.all(np.abs(np.round(starts * 1e3) - starts * 1e3) < 1e-6)
