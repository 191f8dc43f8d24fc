"""`nwb-jedi simulate`: a synthetic ground-truth dataset written as NWB in the MC_Maze layout."""

from __future__ import annotations

import argparse
import os
import sys

from nwb_jedi.commands._options import (
    add_quiet_option,
    make_friendly,
    progress_enabled,
    seed_value,
)
from nwb_jedi.errors import UserError

EXAMPLES = """examples:
  nwb-jedi simulate --tasks sine,memorypro --out synthetic.nwb
  nwb-jedi simulate --tasks sine,memorypro,dm --units 100 --trials-per-condition 10 --seed 1 \\
      --out small.nwb
  nwb-jedi fit synthetic.nwb --preset mc_maze --window -0.25,0.75   # fit every 1 s trial
"""


HELP = "write a synthetic ground-truth dataset as NWB (MC_Maze layout)"


def register(subparsers) -> None:
    parser = make_friendly(subparsers.add_parser(
        "simulate", help=HELP,
        description="Train (or load from the cache) a teacher RNN on cognitive tasks, record "
                    "Poisson spikes of its units across every task condition, and write them "
                    "as an NWB file in the NLB MC_Maze layout. Teachers are cached "
                    "($NWB_JEDI_CACHE), so only the first run of a task set trains one (a "
                    "one-line progress bar shows it). "
                    "Why `nwb-jedi fit FILE --preset mc_maze` fits the file like a recording: "
                    "the file is written in the layout that preset reads. The preset's "
                    "condition columns hold the task (trial_type) and the condition within it "
                    "(trial_version; its value, e.g. the sine frequency, is in "
                    "condition_value); its alignment event, move_onset_time, sits 0.25 s after "
                    "each trial's start, where the preset's window begins (-0.25 s); every "
                    "trial passes its filter (success == True); and no unit is heldout. The "
                    "preset's window is 0.7 s long: add the --window the command prints to "
                    "fit whole trials.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--tasks", default="sine,memorypro", metavar="NAMES",
                        help="comma-separated tasks: sine, memorypro, dm (default sine,memorypro)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output NWB file")
    parser.add_argument("--units", type=int, default=200, metavar="N",
                        help="neurons = teacher units (default 200)")
    parser.add_argument("--trials-per-condition", type=int, default=20, metavar="K",
                        help="trials of every condition (default 20)")
    parser.add_argument("--bin-ms", type=float, default=20.0, metavar="B",
                        help="bin width of the simulated counts, a multiple of 10 ms "
                             "(default 20)")
    parser.add_argument("--seed", type=seed_value, default=0, metavar="S",
                        help="seed of the recording: readout, noise, spikes, split (default 0)")
    parser.add_argument("--teacher-seed", type=seed_value, default=0, metavar="S",
                        help="seed of the teacher network (default 0)")
    parser.add_argument("--teacher-iters", type=int, default=2000, metavar="N",
                        help="most training iterations of the teacher (default 2000)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="teacher cache (default $NWB_JEDI_CACHE or the platform cache dir)")
    parser.add_argument("--experimenter", action="append", metavar="'LAST, FIRST'",
                        help="who ran the simulation, recorded in the file (repeat for several; "
                             "default: none, the file names nwb_jedi in was_generated_by)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def _check_bin_ms(bin_ms: float) -> None:
    """Bins are whole multiples of the teacher's step: refused before any training."""
    from nwb_jedi.synthetic.teacher import DEFAULT_DT

    step_ms = DEFAULT_DT * 1000.0
    steps = bin_ms / step_ms if bin_ms > 0 else 0.0
    if not (steps >= 1 and abs(steps - round(steps)) < 1e-9):
        raise UserError(f"--bin-ms must be a whole multiple of the teacher's {step_ms:g} ms step "
                        f"(e.g. {step_ms:g}, {2 * step_ms:g} or {5 * step_ms:g}), got {bin_ms:g}")


def run(args: argparse.Namespace) -> int:
    progress = progress_enabled(args.quiet)  # before torch imports tqdm
    from nwb_jedi.io.layouts import check_experimenter
    from nwb_jedi.io.simulated import LEAD_S, write_synthetic_mc_maze
    from nwb_jedi.synthetic import TASKS, get_teacher, make_dataset

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise UserError(f"unknown task(s) {', '.join(unknown) or '(none given)'} in --tasks; "
                        f"choose from {', '.join(TASKS)}, comma-separated")
    from nwb_jedi.commands._paths import check_output_file

    check_output_file(args.out, "--out", overwrite=args.overwrite)
    for flag, value, low in (("--units", args.units, 2), ("--teacher-iters",
                                                          args.teacher_iters, 1),
                             ("--trials-per-condition", args.trials_per_condition, 2)):
        if value < low:
            raise UserError(f"{flag} must be at least {low}, got {value}")
    _check_bin_ms(args.bin_ms)
    experimenter = check_experimenter(args.experimenter)  # before any training
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))

    say(f"teacher RNN ({args.units} units, {'+'.join(tasks)}): from the cache, or trained now "
        f"(first run of these settings only)")
    teacher = get_teacher(tasks, n_units=args.units, seed=args.teacher_seed,
                          cache_dir=args.cache_dir, max_iters=args.teacher_iters,
                          verbose=progress)
    ds = make_dataset(tasks, trials_per_condition=args.trials_per_condition,
                      bin_size=args.bin_ms / 1000.0, seed=args.seed,
                      teacher_seed=args.teacher_seed, teacher=teacher)
    # Without --overwrite the final rename is exclusive: a file that appeared at --out while
    # the teacher trained (another process) is never replaced.
    write_synthetic_mc_maze(args.out, ds, seed=args.seed, experimenter=experimenter,
                            overwrite=args.overwrite)

    info = teacher.info
    duration = ds.n_bins * ds.bin_size
    print(f"simulated {ds.n_trials} trials of {duration:g} s, {ds.n_conditions} conditions "
          f"({', '.join(tasks)}), {ds.n_units} neurons, "
          f"{int(ds.counts.sum())} spikes")
    perf = ", ".join(f"{k} {v:.0%}" for k, v in info.get("performance", {}).items())
    loss = info.get("final_loss", float("nan"))
    # Not the progress bar's number: that is the last noisy training batch's loss.
    print(f"teacher: seed {args.teacher_seed}, loss {loss:.3f} on every condition without "
          f"noise, trials solved: {perf}")
    print(f"wrote {os.path.abspath(args.out)}")
    print(f"fit it with: nwb-jedi fit {args.out} --preset mc_maze "
          f"--window -{LEAD_S:g},{duration - LEAD_S:g}")
    return 0

