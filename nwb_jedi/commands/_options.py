"""Command-line options shared by subcommands that build a TrialDataset or a model."""

from __future__ import annotations

import argparse
from typing import Any

from nwb_jedi.data.presets import PRESETS, preset
from nwb_jedi.errors import UserError


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--asset", metavar="PATH",
                        help="asset path inside a dandiset with several NWB files")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where streamed DANDI data are cached (default $NWB_JEDI_CACHE or "
                             "the platform cache dir)")


def add_mapper_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trials to conditions")
    group.add_argument("--preset", choices=sorted(PRESETS),
                       help="mapper settings of a known dataset layout; flags override them")
    group.add_argument("--condition-by", metavar="COLS",
                       help="trials-table column(s) defining conditions, comma-separated "
                            "(e.g. trial_type,trial_version)")
    group.add_argument("--align", metavar="EVENT",
                       help="trials-table column with the alignment event (e.g. move_onset_time)")
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
    if args.condition_by:
        cols = [c.strip() for c in args.condition_by.split(",") if c.strip()]
        kwargs["by"] = cols[0] if len(cols) == 1 else cols
    if args.align:
        kwargs["align"] = args.align
    if args.window:
        kwargs["window"] = parse_window(args.window)
    if args.bin_ms is not None:
        if args.bin_ms <= 0:
            raise UserError(f"--bin-ms must be positive, got {args.bin_ms:g}")
        kwargs["bin_size"] = args.bin_ms / 1000.0
    if args.trial_filter:
        kwargs["trial_filter"] = args.trial_filter
    if args.min_rate is not None:
        kwargs["min_rate_hz"] = args.min_rate
    if args.exclude_heldout:
        kwargs["exclude_heldout"] = True
    missing = [flag for flag, key in (("--condition-by", "by"), ("--align", "align"),
                                      ("--window", "window")) if key not in kwargs]
    if missing:
        raise UserError(f"say how trials map to conditions: give {', '.join(missing)} (or "
                        f"--preset NAME); `nwb-jedi info SOURCE` lists the trials columns")
    kwargs.setdefault("bin_size", 0.02)
    return kwargs


def parse_window(text: str) -> tuple[float, float]:
    try:
        start, stop = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--window must be START,STOP in seconds (e.g. -0.25,0.45), got "
                        f"{text!r}") from None
    if not stop > start:
        raise UserError(f"--window stop must be after start, got {text!r}")
    return start, stop
