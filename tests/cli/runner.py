"""Running `nwb-jedi` in-process, shared by the CLI tests."""

from __future__ import annotations

from nwb_jedi.cli import main

#: Model flags that make a real fit take seconds.
TINY = ["--epochs", "3", "--hidden", "16", "--embed-dim", "4"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `nwb-jedi ARGV` in-process; argparse errors exit via SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as stop:
        rc = stop.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err
