"""The `nwb-jedi` command. Each subcommand lives in `nwb_jedi.commands.<name>`.

A subcommand module provides ``HELP`` (its one-line summary) and ``register(subparsers)``, which
adds its parser and sets ``func`` to a callable taking the parsed arguments and returning an exit
status. Only the subcommand being run registers its options: `fit` reads its defaults from the
JEDI estimator's signature (which imports torch), and `nwb-jedi show` or `info` should not pay
for that.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib import import_module

from nwb_jedi._version import __version__
from nwb_jedi.commands._options import make_friendly, slow_progress_in_logs
from nwb_jedi.commands._text import printable
from nwb_jedi.errors import UserError

# Order is the order shown in `nwb-jedi --help`.
COMMANDS = ["info", "fit", "show", "analyze", "predict", "simulate", "datasets"]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; `command` (default: every one) gets its full set of options, the
    others only their name and summary."""
    parser = argparse.ArgumentParser(
        prog="nwb-jedi",
        description="Fit one JEDI model of population dynamics across all conditions of NWB "
                    "spiking data (local files or DANDI), and share it inside NWB.",
    )
    parser.add_argument("--version", action="version", version=f"nwb-jedi {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = import_module(f"nwb_jedi.commands.{name}")
        if command is None or command == name:
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=module.HELP)
    # Every command reports a bad argument in one line (and takes negative windows), the same
    # way, whichever module registered it.
    # Unknown options reach the main parser: point to the named command's help.
    make_friendly(parser, help_command=f"nwb-jedi {command}" if command else None)
    for sub in subparsers.choices.values():
        make_friendly(sub)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named in `argv` (the first argument that is one), or None."""
    return next((arg for arg in argv if arg in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for errors the user can fix)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    slow_progress_in_logs()  # before building parsers: `fit`'s imports torch, hence tqdm
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    default_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return status
    except BrokenPipeError:
        # `nwb-jedi info FILE | head -1`: the reader has what it wanted. Exit quietly, as a
        # program killed by SIGPIPE does, with nothing left to flush into the closed pipe.
        _silence_stdout()
        return 141
    except (UserError, OSError) as err:
        if os.environ.get("NWB_JEDI_DEBUG"):
            raise
        message = str(err) if isinstance(err, UserError) else _os_error_message(err)
        # Messages quote names and values read from files: no control character is sent.
        print(f"nwb-jedi: error: {printable(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nwb-jedi: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = default_format


_PYTHON_FORMAT = warnings.formatwarning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """The package's own warnings as the CLI's one warning line (not Python's file:line and
    source line); other libraries' warnings as Python prints them. Only the printed form
    changes: code that records warnings (pytest.warns, catch_warnings) sees them as raised."""
    if getattr(category, "__module__", "").startswith("nwb_jedi"):
        return f"nwb-jedi: warning: {printable(str(message))}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout file descriptor (tests capture it)
        pass


def _os_error_message(err: OSError) -> str:
    where = f" {err.filename}" if getattr(err, "filename", None) else ""
    if isinstance(err, FileExistsError):
        return (f"already exists:{where}; pass --overwrite to replace it or choose another "
                f"output (another process may have written it while this one ran)")
    what = {FileNotFoundError: "no such file",
            PermissionError: "permission denied"}.get(type(err), err.strerror or str(err))
    return f"{what}:{where}; check the path" if where else f"{what} ({type(err).__name__})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
