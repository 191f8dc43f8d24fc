"""`nwb-jedi datasets`: where the embedded data are, and how to fit them."""

from __future__ import annotations

import argparse

HELP = "list the datasets shipped with nwb_jedi (their paths, presets, licences)"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets", help=HELP,
        description="List the real datasets shipped inside the package: the path of each NWB "
                    "file (read it like any other: `nwb-jedi info PATH`), what it holds, the "
                    "preset that maps its trials to conditions, and its licence.",
        epilog="examples:\n  nwb-jedi datasets\n"
               "  nwb-jedi info \"$(nwb-jedi datasets --path)\"",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", action="store_true",
                        help="print only the path of each file, one per line (for scripts)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nwb_jedi.datasets import embedded

    for entry in embedded():
        if args.path:
            print(entry["path"])
            continue
        print(f"{entry['name']}: {entry['path']}")
        print(f"  {entry['description']}")
        print(f"  fit it: nwb-jedi fit  (the same as: nwb-jedi fit {entry['path']} "
              f"--preset {entry['preset']})")
        print(f"  licence: {entry['licence']}")
    return 0
