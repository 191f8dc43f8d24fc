"""Command-line options shared by subcommands that build a TrialDataset or a model."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from nwb_jedi.data.presets import PRESET_ASSETS, PRESETS, preset
from nwb_jedi.errors import UserError

# Values such as "-0.25,0.45" (a window starting before the event) must not be taken for
# options; argparse only recognises plain negative numbers as values by default.
_NEGATIVE_VALUES = re.compile(r"^-\d*\.?\d+(e-?\d+)?(,-?\d*\.?\d+(e-?\d+)?)*$")

# In a log file (stderr not a terminal) a progress bar that redraws ten times a second floods
# the log; there it redraws at most this often (seconds).
LOG_PROGRESS_INTERVAL_S = 30


def make_friendly(parser: argparse.ArgumentParser,
                  help_command: str | None = None) -> argparse.ArgumentParser:
    """Make a subcommand parser report bad arguments in one line and accept negative windows.

    argparse prints the whole usage before its error message; a user needs the one line that
    names the problem, plus where to read more (`help_command`'s help; default the parser's).
    """
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = _NEGATIVE_VALUES
    where = help_command or parser.prog

    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {message}; see `{where} --help`", file=sys.stderr)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]
    return parser


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or progress messages; results and warnings "
                             "about them are still printed (default: progress shown)")


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
                        help="asset path inside a dandiset with several NWB files (default: "
                             "the one the SOURCE or --preset names; several: you are asked)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where streamed DANDI data are cached (default $NWB_JEDI_CACHE or "
                             "the platform cache dir)")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads torch may use (default: torch's, one per core). "
                             "Fits whose per-step tensors are small (e.g. the embedded data) "
                             "run on one thread on purpose, because there more threads only "
                             "add synchronization (6 ms vs 8 us per step measured on 2 "
                             "cores); --threads N overrides that too")


def check_threads(args: argparse.Namespace) -> None:
    """Refuse a --threads below 1 (without importing torch)."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be a positive integer, got {threads}")


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's intra-op threads from --threads, when given (imports torch)."""
    check_threads(args)
    if getattr(args, "threads", None) is not None:
        from nwb_jedi._runtime import set_threads

        set_threads(args.threads)


def data_options() -> argparse.ArgumentParser:
    """The options that `fit` and `predict` share (SOURCE reading, trials to conditions,
    threads), as one parent parser: both commands take them with the same names, forms and
    checks (``parents=[data_options()]``)."""
    parent = argparse.ArgumentParser(add_help=False)
    add_source_options(parent)
    add_mapper_options(parent)
    add_threads_option(parent)
    return parent


def _rate_value(text: str) -> float | str:
    """--min-rate's value: a number, or "" (clears a stored or preset value)."""
    if not text.strip():
        return ""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of Hz: {text!r}") from None


def add_mapper_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "trials to conditions",
        "An empty value (--trial-filter '') clears a preset's or a model's stored setting.")
    group.add_argument("--preset", metavar="NAME",
                       help=f"mapper settings of a known dataset layout ({', '.join(PRESETS)}); "
                            f"explicit flags override them (default: none; yu2009 for the "
                            f"embedded data)")
    group.add_argument("--intervals", metavar="NAME",
                       help="use this interval table of the file (e.g. epochs) as the trials, "
                            "for files without a trials table; `nwb-jedi info SOURCE` lists "
                            "them (default: the trials table)")
    group.add_argument("--condition-by", metavar="COLS",
                       help="trials-table column(s) defining conditions, comma-separated "
                            "(e.g. trial_type,trial_version) (default: the preset's; "
                            "required without one)")
    group.add_argument("--align", metavar="EVENT",
                       help="trials-table column with the alignment event (e.g. "
                            "move_onset_time) (default: the preset's; required without one)")
    group.add_argument("--align-reference", metavar="COL",
                       help="trials-table column added to the event times, for files whose "
                            "event times are relative to the trial start (e.g. start_time) "
                            "(default: none, event times are absolute)")
    group.add_argument("--window", metavar="START,STOP",
                       help="window around the event in seconds (e.g. -0.25,0.45): the "
                            "stretch of each trial that is modelled (default: the preset's; "
                            "required without one)")
    group.add_argument("--bin-ms", type=float, metavar="B",
                       help="bin width in milliseconds: narrower bins resolve faster "
                            "dynamics but hold fewer spikes each (noisier counts) and mean "
                            "more recurrent steps per trial (slower fits); 10-20 ms suits "
                            "most cortical data (default 20, or the preset's)")
    group.add_argument("--trial-filter", metavar="EXPR",
                       help="pandas query on the trials table (e.g. \"success == True\") "
                            "(default: none, or the preset's)")
    group.add_argument("--min-rate", type=_rate_value, metavar="HZ",
                       help="drop units firing below this mean rate (default: keep every "
                            "unit)")
    group.add_argument("--exclude-heldout", action="store_true", default=None,
                       help="drop units marked heldout (NLB) (default: off; on with the "
                            "mc_maze and area2_bump presets)")


#: --flag of each mapper setting a flag can give.
MAPPER_FLAGS = {"by": "--condition-by", "align": "--align", "align_reference":
                "--align-reference", "window": "--window", "bin_size": "--bin-ms",
                "trial_filter": "--trial-filter", "min_rate_hz": "--min-rate",
                "exclude_heldout": "--exclude-heldout"}


def mapper_kwargs(args: argparse.Namespace, default: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """ConditionMapper keyword arguments: `default`, then the preset, then explicit flags."""
    return mapper_settings(args, [("the embedded data's defaults", default or {})])[0]


def mapper_settings(args: argparse.Namespace, layers: Sequence[tuple[str, Mapping[str, Any]]]
                    ) -> tuple[dict[str, Any], dict[str, str]]:
    """ConditionMapper settings and where each came from.

    Parameters
    ----------
    args : Namespace
        The parsed mapper options.
    layers : sequence of (origin, settings)
        Settings below the flags, lowest first (e.g. ``("the model", stored)``); the
        ``--preset`` comes above them and explicit flags above all. An empty flag value
        removes a setting (``--trial-filter ''``).

    Returns
    -------
    (settings, origins)
        The settings, and for each one (and for each one cleared) a short phrase saying
        where it came from (``"the model"``, ``"preset mc_maze"``, ``"--window"``,
        ``"cleared by --trial-filter ''"``).
    """
    kwargs: dict[str, Any] = {}
    origins: dict[str, str] = {}
    stack = list(layers)
    if getattr(args, "preset", None):
        stack.append((f"preset {args.preset}", preset(args.preset)))
    for origin, settings in stack:
        for key, value in settings.items():
            kwargs[key] = value
            origins[key] = origin
    for key, value in _explicit_mapper_flags(args).items():
        flag = MAPPER_FLAGS[key]
        if value is _CLEAR:
            kwargs.pop(key, None)
            origins[key] = f"cleared by {flag} ''"
        else:
            kwargs[key] = value
            origins[key] = flag
    if "window" in kwargs:
        _check_bins(kwargs["window"], kwargs.get("bin_size", 0.02))
    missing = [flag for flag, key in (("--condition-by", "by"), ("--align", "align"),
                                      ("--window", "window")) if key not in kwargs]
    if missing:
        raise UserError(f"say how trials map to conditions: give {', '.join(missing)} (or "
                        f"--preset NAME); `nwb-jedi info SOURCE` lists the trials columns")
    if "bin_size" not in kwargs:
        kwargs["bin_size"] = 0.02
        origins["bin_size"] = "the default"
    return kwargs, origins


def describe_settings(settings: Mapping[str, Any], origins: Mapping[str, str]) -> str:
    """One line: each mapper setting that is set, with where it came from, and each one an
    empty flag cleared."""
    keys = [k for k in MAPPER_FLAGS if k in settings or k in origins]
    keys += [k for k in settings if k not in MAPPER_FLAGS]
    parts = []
    for key in keys:
        value = settings.get(key)
        if key not in settings:
            parts.append(f"{key} {origins[key]}")
        elif value is not None:
            shown = f"{value * 1e3:g} ms" if key == "bin_size" else json.dumps(value)
            parts.append(f"{key}={shown} ({origins.get(key, 'the default')})")
    return "mapper settings: " + ", ".join(parts)


def explain_setting_error(err: UserError, origins: Mapping[str, str], source: str = "the model"
                          ) -> UserError:
    """`err` (from building a dataset) with the origin of the setting it names, when that
    setting came from `source`: the user did not type it and needs to know where it is from and
    how to change it."""
    message = str(err)
    for key, flag in MAPPER_FLAGS.items():
        words = _SETTING_WORDS.get(key, (key,))
        if origins.get(key) == source and any(word in message for word in words):
            return UserError(f"{message} ({key} came from {source}'s stored settings; "
                             f"override it with {flag} VALUE"
                             + (f" or clear it with {flag} ''" if key in _CLEARABLE else "")
                             + ")")
    return err


# Words an error message uses for a setting (ConditionMapper's messages).
_SETTING_WORDS = {"by": ("condition column", "`by`"), "align": ("alignment column", "align "),
                  "align_reference": ("align_reference",), "window": ("window",),
                  "trial_filter": ("trial_filter",), "bin_size": ("bin",),
                  "min_rate_hz": ("rate <",), "exclude_heldout": ("heldout",)}
_CLEARABLE = ("align_reference", "trial_filter", "min_rate_hz")
_CLEAR = object()  # an empty flag value: remove the setting


def _explicit_mapper_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The mapper settings given as flags, checked (`_CLEAR` for an empty value)."""
    kwargs: dict[str, Any] = _text_flags(args)
    if args.window is not None:
        kwargs["window"] = parse_window(args.window)
    if args.bin_ms is not None:
        if not math.isfinite(args.bin_ms) or args.bin_ms <= 0:
            raise UserError(f"--bin-ms must be positive, got {args.bin_ms:g}")
        kwargs["bin_size"] = args.bin_ms / 1000.0
    if args.min_rate == "":
        kwargs["min_rate_hz"] = _CLEAR
    elif args.min_rate is not None:
        if not math.isfinite(args.min_rate) or args.min_rate < 0:
            raise UserError(f"--min-rate must be >= 0 Hz, got {args.min_rate:g}")
        kwargs["min_rate_hz"] = args.min_rate
    if args.exclude_heldout:
        kwargs["exclude_heldout"] = True
    return kwargs


def _text_flags(args: argparse.Namespace) -> dict[str, Any]:
    """--condition-by, --align, --align-reference and --trial-filter, checked."""
    kwargs: dict[str, Any] = {}
    if args.condition_by is not None:
        cols = [c.strip() for c in args.condition_by.split(",") if c.strip()]
        if not cols:
            raise UserError("--condition-by is empty; name the trials column(s) that define "
                            "the conditions")
        kwargs["by"] = cols[0] if len(cols) == 1 else cols
    for flag in ("align", "align_reference", "trial_filter"):
        value = getattr(args, flag, None)
        if value is None:
            continue
        if not value.strip():
            if flag == "align":
                raise UserError("--align is empty; name the trials column of the alignment "
                                "event")
            kwargs[flag] = _CLEAR
        else:
            kwargs[flag] = value
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
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise UserError(f"--window must be two finite numbers of seconds (e.g. -0.25,0.45), got "
                        f"{text!r}")
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


# ---------------------------------------------------------------------------------- output
def add_output_options(parser: argparse.ArgumentParser, default: str | None
                       ) -> argparse._ArgumentGroup:
    """--out, --overwrite and --append (the group, for a command's own output options)."""
    out = parser.add_argument_group("output")
    out.add_argument("--out", default=default, required=default is None, metavar="FILE",
                     help="output NWB file" + (f" (default {default})" if default else
                                               " (required)"))
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (default: refuse)")
    out.add_argument("--append", action="store_true",
                     help="instead of a new derived file, add the results as a processing "
                          "module to a copy of the local SOURCE file, written at --out (the "
                          "source itself is never modified) (default: a derived file)")
    return out


def check_output_source(out: str, source: str | os.PathLike, *, append: bool,
                        embedded: bool = False) -> None:
    """Refuse an --out that would overwrite the SOURCE (with or without --append, which
    writes the source's content and the results into another file), and --append where it
    cannot work."""
    from nwb_jedi.io.sources import parse_source

    parsed = parse_source(source)
    local = parsed.kind == "local" and parsed.path is not None
    same = local and os.path.exists(out) and os.path.exists(parsed.path) and \
        os.path.samefile(out, parsed.path)
    if append and not local:
        raise UserError(f"--append adds the results to a local NWB file, but {source} is a "
                        f"DANDI source; download it first (dandi download) or leave out "
                        f"--append to write a derived file")
    if same and embedded:
        raise UserError(f"--out {out} is the embedded data file inside the package; write "
                        f"the results elsewhere (--out FILE)")
    if same:
        raise UserError(f"--out {out} is the SOURCE file, which is never overwritten: write "
                        f"the results to another file (--out OTHER.nwb), or a copy of the "
                        f"source with the results added (--append --out OTHER.nwb)")


def print_warning(line: str) -> None:
    """A warning line on stderr, printed even with --quiet (results are never silent)."""
    print(f"nwb-jedi: warning: {line}", file=sys.stderr)


# ---------------------------------------------------------------------------------- model
# CLI flag -> (JEDI hyperparameter, type, unit factor from the flag to the hyperparameter,
# metavar, help).
# Defaults are not written here: they are read from the estimator's signature, their one source.
MODEL_OPTIONS: dict[str, tuple[str, type, float, str, str]] = {
    "--rank": ("rank", int, 1, "R", "rank R of each condition's connectivity J = M Uᵀ / N: higher "
               "lets each condition's dynamics be richer but needs more data (and time per "
               "step); low rank is what keeps embeddings robust and makes spectra cheap"),
    "--embed-dim": ("embed_dim", int, 1, "D", "size of each condition's embedding: room to tell "
                    "conditions apart (a few per independent behavioral variable); larger needs "
                    "more trials per condition to pin each embedding down"),
    "--hidden": ("hidden", int, 1, "H", "width of the hypernetwork's two hidden layers: how "
                 "nonlinear the map from embedding to weights may be; wider fits more but trains "
                 "slower and overfits sooner"),
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


def seed_value(text: str) -> int:
    """argparse type of a seed: an integer from 0 to `MAX_SEED` (what numpy and torch accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give an integer from 0 to "
                                         f"{MAX_SEED}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: give an integer from 0 "
                                         f"to {MAX_SEED}")
    return value


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
