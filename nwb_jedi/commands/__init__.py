"""Subcommands of the `nwb-jedi` command line (see `nwb_jedi.cli`)."""
