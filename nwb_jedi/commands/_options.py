"""Command-line options shared by subcommands that build a TrialDataset or a model."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Any, NoReturn

from nwb_jedi.data.presets import PRESET_ASSETS, PRESETS, preset
from nwb_jedi.errors import UserError

# Values such as "-0.25,0.45" (a window starting before the event) must not be taken for
# options; argparse only recognises plain negative numbers as values by default.
_NEGATIVE_VALUES = re.compile(r"^-\d*\.?\d+(e-?\d+)?(,-?\d*\.?\d+(e-?\d+)?)*$")

# In a log file (stderr not a terminal) a progress bar that redraws ten times a second floods
# the log; there it redraws at most this often (seconds).
LOG_PROGRESS_INTERVAL_S = 30


def make_friendly(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make a subcommand parser report bad arguments in one line and accept negative windows.

    argparse prints the whole usage before its error message; a user needs the one line that
    names the problem, plus where to read more.
    """
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = _NEGATIVE_VALUES

    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {message}; see `{parser.prog} --help`", file=sys.stderr)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]
    return parser


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or progress messages (results are still printed)")


def slow_progress_in_logs() -> None:
    """When stderr is not a terminal (a log file), let progress bars redraw only every
    `LOG_PROGRESS_INTERVAL_S` seconds.

    tqdm reads its ``TQDM_<ARG>`` defaults from the environment when it is imported (torch
    imports it), so the command line calls this before anything else; an explicit user
    setting wins.
    """
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_MININTERVAL", str(LOG_PROGRESS_INTERVAL_S))


def progress_enabled(quiet: bool) -> bool:
    """Whether to show progress bars (and slow them down in logs)."""
    if quiet:
        return False
    slow_progress_in_logs()
    return True


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--asset", metavar="PATH",
                        help="asset path inside a dandiset with several NWB files")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where streamed DANDI data are cached (default $NWB_JEDI_CACHE or "
                             "the platform cache dir)")


def add_mapper_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trials to conditions")
    group.add_argument("--preset", metavar="NAME",
                       help=f"mapper settings of a known dataset layout ({', '.join(PRESETS)}); "
                            f"explicit flags override them")
    group.add_argument("--condition-by", metavar="COLS",
                       help="trials-table column(s) defining conditions, comma-separated "
                            "(e.g. trial_type,trial_version)")
    group.add_argument("--align", metavar="EVENT",
                       help="trials-table column with the alignment event (e.g. move_onset_time)")
    group.add_argument("--align-reference", metavar="COL",
                       help="trials-table column added to the event times, for files whose "
                            "event times are relative to the trial start (e.g. start_time)")
    group.add_argument("--window", metavar="START,STOP",
                       help="window around the event in seconds (e.g. -0.25,0.45)")
    group.add_argument("--bin-ms", type=float, metavar="B", help="bin width in milliseconds")
    group.add_argument("--trial-filter", metavar="EXPR",
                       help="pandas query on the trials table (e.g. \"success == True\")")
    group.add_argument("--min-rate", type=float, metavar="HZ",
                       help="drop units firing below this mean rate")
    group.add_argument("--exclude-heldout", action="store_true", default=None,
                       help="drop units marked heldout (NLB)")


def mapper_kwargs(args: argparse.Namespace, default: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """ConditionMapper keyword arguments: `default`, then the preset, then explicit flags."""
    kwargs = dict(default or {})
    if getattr(args, "preset", None):
        kwargs.update(preset(args.preset))
    kwargs.update(_explicit_mapper_flags(args))
    if "window" in kwargs:
        _check_bins(kwargs["window"], kwargs.get("bin_size", 0.02))
    missing = [flag for flag, key in (("--condition-by", "by"), ("--align", "align"),
                                      ("--window", "window")) if key not in kwargs]
    if missing:
        raise UserError(f"say how trials map to conditions: give {', '.join(missing)} (or "
                        f"--preset NAME); `nwb-jedi info SOURCE` lists the trials columns")
    kwargs.setdefault("bin_size", 0.02)
    return kwargs


def _explicit_mapper_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The mapper settings given as flags, checked."""
    kwargs: dict[str, Any] = {}
    if args.condition_by:
        cols = [c.strip() for c in args.condition_by.split(",") if c.strip()]
        kwargs["by"] = cols[0] if len(cols) == 1 else cols
    for flag in ("align", "align_reference", "trial_filter"):
        if getattr(args, flag, None):
            kwargs[flag] = getattr(args, flag)
    if args.window:
        kwargs["window"] = parse_window(args.window)
    if args.bin_ms is not None:
        if args.bin_ms <= 0:
            raise UserError(f"--bin-ms must be positive, got {args.bin_ms:g}")
        kwargs["bin_size"] = args.bin_ms / 1000.0
    if args.min_rate is not None:
        if args.min_rate < 0:
            raise UserError(f"--min-rate must be >= 0 Hz, got {args.min_rate:g}")
        kwargs["min_rate_hz"] = args.min_rate
    if args.exclude_heldout:
        kwargs["exclude_heldout"] = True
    return kwargs


def _check_bins(window: tuple[float, float], bin_size: float) -> None:
    from nwb_jedi.data.binning import n_bins_for

    try:
        n_bins_for(window, bin_size)
    except ValueError as err:
        raise UserError(f"--window/--bin-ms: {err}") from None


def parse_window(text: str) -> tuple[float, float]:
    try:
        start, stop = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--window must be START,STOP in seconds (e.g. -0.25,0.45), got "
                        f"{text!r}") from None
    if not stop > start:
        raise UserError(f"--window stop must be after start, got {text!r}")
    return start, stop


def preset_asset(preset_name: str | None, source: str | None) -> str | None:
    """The asset pattern a preset implies for a DANDI SOURCE that names no asset, else None.

    Which SOURCE names a file is decided by the one SOURCE parser (`io.sources.parse_source`).
    """
    from nwb_jedi.io.sources import parse_source

    pattern = PRESET_ASSETS.get((preset_name or "").lower().replace("-", "_"))
    if pattern is None or source is None:
        return None
    parsed = parse_source(source)
    return pattern if parsed.kind == "dandi" and not parsed.asset_path else None


# ---------------------------------------------------------------------------------- model
# CLI flag -> (JEDI hyperparameter, type, unit factor from the flag to the hyperparameter,
# metavar, help).
# Defaults are not written here: they are read from the estimator's signature, their one source.
MODEL_OPTIONS: dict[str, tuple[str, type, float, str, str]] = {
    "--rank": ("rank", int, 1, "R", "rank R of each condition's connectivity J = M Uᵀ / N: higher "
               "lets each condition's dynamics be richer but needs more data; low rank is what "
               "keeps embeddings robust and makes spectra cheap"),
    "--embed-dim": ("embed_dim", int, 1, "D", "size of each condition's embedding: room to tell "
                    "conditions apart (a few per independent behavioral variable)"),
    "--hidden": ("hidden", int, 1, "H", "width of the hypernetwork's two hidden layers: how "
                 "nonlinear the map from embedding to weights may be"),
    "--tau-ms": ("tau", float, 1e-3, "MS", "time constant of the units in ms (at least the bin "
                 "width): longer gives slower, smoother dynamics"),
    "--trial-penalty": ("trial_penalty", float, 1, "X", "L2 penalty on per-trial embedding offsets "
                        "(with --trial-embeddings)"),
    "--noise": ("noise_std", float, 1, "SD", "standard deviation of the process noise during "
                "training (regularizes the dynamics; none when predicting)"),
    "--lr": ("lr", float, 1, "LR", "Adam learning rate of the hypernetwork and readout"),
    "--embed-lr": ("embed_lr", float, 1, "LR", "Adam learning rate of the embeddings"),
    "--weight-decay": ("weight_decay", float, 1, "X", "weight decay of the network parameters"),
    "--batch-size": ("batch_size", int, 1, "K", "trials per minibatch"),
    "--epochs": ("max_epochs", int, 1, "N", "most training epochs: a budget; the fit stops earlier "
                 "when the validation loss stops improving (--patience)"),
    "--patience": ("patience", int, 1, "N", "epochs without validation improvement before the "
                   "learning rate is lowered (and, after --n-decays lowerings, before the fit "
                   "stops and returns its best state)"),
    "--n-decays": ("n_decays", int, 1, "N", "how many times the learning rate is lowered on a "
                   "plateau before the next plateau ends the fit"),
    "--min-epochs": ("min_epochs", int, 1, "N", "no fit ends before this many epochs"),
    "--ema": ("ema", float, 1, "D", "decay of the moving average of the network's weights "
              "that is validated and kept (0: off)"),
    "--seed": ("seed", int, 1, "S", "seed of the split, initialization, minibatches and noise: the "
               "same command with the same seed gives the same model"),
}


def add_model_options(parser: argparse.ArgumentParser, estimator: type) -> None:
    """The estimator's hyperparameters as options, their defaults read from its signature."""
    defaults = estimator.default_params()
    group = parser.add_argument_group("model")
    for flag, (name, kind, factor, metavar, text) in MODEL_OPTIONS.items():
        default = defaults[name]
        shown = default / factor if factor != 1 else default
        group.add_argument(flag, dest=name, type=kind, default=None, metavar=metavar,
                           help=f"{text} (default {shown:g})")
    group.add_argument("--observation", choices=["poisson", "gaussian"], default=None,
                       help=f"Poisson likelihood on spike counts, or Gaussian on smoothed "
                            f"normalized rates (the paper's dRNN setting) (default "
                            f"{defaults['observation']})")
    group.add_argument("--trial-embeddings", action="store_true", default=None,
                       help="also learn a per-trial embedding offset (default: off)")
    group.add_argument("--device", default=None,
                       help=f"auto (CUDA when available), cpu or cuda (default "
                            f"{defaults['device']})")


# Hyperparameters that must be >= 0 (the other numbers must be > 0; counts >= 1).
_MAY_BE_ZERO = {"seed", "noise_std", "weight_decay", "trial_penalty", "n_decays", "min_epochs",
                "ema"}
MAX_SEED = 2**32 - 1


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The estimator keyword arguments the user gave (others keep the estimator's defaults),
    each checked under its flag's name."""
    kwargs = {}
    for flag, (name, _kind, factor, _metavar, _text) in MODEL_OPTIONS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if not math.isfinite(value) or value < 0 or (value == 0 and name not in _MAY_BE_ZERO):
            bound = (">= 0" if name in _MAY_BE_ZERO else
                     "a positive integer" if isinstance(value, int) else "positive")
            raise UserError(f"{flag} must be {bound}, got {value:g}")
        if name == "seed" and value > MAX_SEED:
            raise UserError(f"--seed must be at most {MAX_SEED}, got {value}")
        kwargs[name] = value * factor if factor != 1 else value
    for name in ("observation", "trial_embeddings", "device"):
        if getattr(args, name, None) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs
