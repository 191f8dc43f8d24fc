"""The `nwb-jedi` command. Each subcommand lives in `nwb_jedi.commands.<name>`.

A subcommand module provides ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

from nwb_jedi._version import __version__
from nwb_jedi.errors import UserError

# Order is the order shown in `nwb-jedi --help`.
COMMANDS = ["info", "fit", "show", "analyze", "predict", "simulate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nwb-jedi",
        description="Fit one JEDI model of population dynamics across all conditions of NWB "
                    "spiking data (local files or DANDI), and share it inside NWB.",
    )
    parser.add_argument("--version", action="version", version=f"nwb-jedi {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"nwb_jedi.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for errors the user can fix)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, PermissionError, FileExistsError) as err:
        if os.environ.get("NWB_JEDI_DEBUG"):
            raise
        message = str(err) if isinstance(err, UserError) else _os_error_message(err)
        print(f"nwb-jedi: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nwb-jedi: interrupted", file=sys.stderr)
        return 130


def _os_error_message(err: OSError) -> str:
    where = f" {err.filename}" if getattr(err, "filename", None) else ""
    what = {FileNotFoundError: "no such file",
            PermissionError: "permission denied",
            FileExistsError: "already exists"}.get(type(err), err.strerror or str(err))
    return f"{what}:{where}; check the path" if where else str(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
