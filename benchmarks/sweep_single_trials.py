"""The sweep behind JEDI's single-trial defaults (issue 12), on validation trials only.

Each variant changes one setting of the per-trial contexts or of the training that serves them
(initial-state and input dimensions, their priors, the inputs' spacing, smoothed targets,
weight averaging, rank) and is scored by co-smoothing with per-trial contexts, the protocol the
defaults were chosen for:

- ``pmd``: the embedded PMd reaching data, its train split fitted and its *validation* trials
  scored, 20% of the neurons held out, one draw per seed (`pmd_seeds`): JEDI's co-bps minus the
  residual GLM's (`PSTHResidualGLM`, allowed the same held-in neurons), paired per draw; and
  JEDI's validation bits/spike.
- ``synthetic``: synthetic data with known single-trial variability (validate.py section 4's
  generator), a new dataset per seed (`synthetic_seeds`): the fraction of the gap between the
  residual GLM and the truth that JEDI's co-bps closes on validation trials.

No test trial is used. Writes ``benchmarks/results/sweep_single_trials.csv`` and ``.md``.

Run: ``python benchmarks/sweep_single_trials.py [--quick] [--data pmd,synthetic]``
(``--report-only`` rewrites the report from the CSV).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nwb_jedi import JEDI, TrialDataset, metrics
from nwb_jedi._files import atomic_write_text
from nwb_jedi.analysis import evaluation

RESULTS = Path(__file__).parent / "results"

#: One change from the defaults per row (the first row: the defaults themselves).
VARIANTS: list[dict] = [
    {},
    {"trial_states": 0}, {"trial_states": 16},
    {"trial_inputs": 0}, {"trial_inputs": 4},
    {"trial_penalty": 30.0}, {"trial_penalty": 300.0},
    {"input_penalty": 10.0}, {"input_penalty": 100.0},
    {"input_spacing": 0.1},
    {"target_smooth": 0.0}, {"target_smooth": 0.02},
    {"ema": 0.0},
    {"rank": 12},
]


@dataclasses.dataclass
class Settings:
    pmd_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    synthetic_seeds: tuple[int, ...] = (0, 1)
    n_units: int = 200                 # synthetic teacher size (validate.py's)
    trials_per_condition: int = 20
    start_jitter: float = 0.5
    trial_input: float = 0.5
    max_epochs: int | None = None      # None: the package default
    teacher_iters: int | None = None   # None: the cached default teacher

    @classmethod
    def quick(cls) -> Settings:
        return cls(pmd_seeds=(0,), synthetic_seeds=(0,), n_units=30, trials_per_condition=4,
                   max_epochs=3, teacher_iters=30)


def describe(variant: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in variant.items()) or "defaults"


def _jedi(settings: Settings, seed: int, variant: dict) -> JEDI:
    budget = {} if settings.max_epochs is None else {"max_epochs": settings.max_epochs}
    return JEDI(device="cpu", seed=seed, **budget, **variant)


def _per_trial_co_bps(model: JEDI, val: TrialDataset, heldout: np.ndarray) -> float:
    return evaluation.co_smoothing_bits_per_spike(model, val, heldout, per_trial=True)


def _residual_glm_co_bps(train: TrialDataset, val: TrialDataset, heldout: np.ndarray) -> float:
    glm = evaluation.heldin_baselines(heldout)["PSTHResidualGLM"].fit(train, val)
    return evaluation.co_smoothing(glm, val, heldout)["co_bps"]


def sweep_pmd(settings: Settings, variants=VARIANTS) -> pd.DataFrame:
    """Per variant and draw: JEDI's per-trial co-bps minus the residual GLM's, on PMd val."""
    from nwb_jedi.datasets import load_reaching

    ds = load_reaching()
    train, val = ds.train, ds.val
    masks = {s: metrics.heldout_unit_mask(ds.n_units, 0.2, seed=s) for s in settings.pmd_seeds}
    glm = {s: _residual_glm_co_bps(train, val, h) for s, h in masks.items()}
    rows = []
    for variant in variants:
        for seed, heldout in masks.items():
            start = time.perf_counter()
            model = _jedi(settings, seed, variant).fit(train, val)
            co = _per_trial_co_bps(model, val, heldout)
            rows.append({"data": "pmd", "variant": describe(variant), "seed": seed,
                         "val_co_bps": co, "val_co_bps_minus_residual_glm": co - glm[seed],
                         "val_bits_per_spike": model.score(val),
                         "seconds": time.perf_counter() - start})
        print(f"pmd {describe(variant)}: co-bps minus residual GLM "
              f"{np.mean([r['val_co_bps_minus_residual_glm'] for r in rows[-len(masks):]]):+.4f}",
              flush=True)
    return pd.DataFrame(rows)


def _single_trial_data(settings: Settings, seed: int) -> TrialDataset:
    from nwb_jedi.synthetic import make_dataset

    kwargs = {} if settings.teacher_iters is None else {"max_iters": settings.teacher_iters}
    return make_dataset(("sine", "memorypro", "dm"), n_units=settings.n_units,
                        trials_per_condition=settings.trials_per_condition, seed=seed,
                        start_jitter=settings.start_jitter, trial_input=settings.trial_input,
                        **kwargs)


def sweep_synthetic(settings: Settings, variants=VARIANTS) -> pd.DataFrame:
    """Per variant and dataset: the fraction of the residual-GLM-to-truth co-bps gap closed."""
    data = {s: _single_trial_data(settings, s) for s in settings.synthetic_seeds}
    reference = {}
    for seed, ds in data.items():
        heldout = metrics.heldout_unit_mask(ds.n_units, 0.2, seed=seed)
        truth = metrics.bits_per_spike(ds.val.ground_truth["trial_rates"], ds.val.counts,
                                       ds.val.bin_size, units=heldout)
        reference[seed] = (heldout, _residual_glm_co_bps(ds.train, ds.val, heldout), truth)
    rows = []
    for variant in variants:
        for seed, ds in data.items():
            heldout, glm, truth = reference[seed]
            start = time.perf_counter()
            model = _jedi(settings, seed, variant).fit(ds.train, ds.val)
            co = _per_trial_co_bps(model, ds.val, heldout)
            rows.append({"data": "synthetic", "variant": describe(variant), "seed": seed,
                         "val_co_bps": co, "val_gap_closed": (co - glm) / (truth - glm),
                         "val_bits_per_spike": model.score(ds.val),
                         "seconds": time.perf_counter() - start})
        print(f"synthetic {describe(variant)}: gap closed "
              f"{np.mean([r['val_gap_closed'] for r in rows[-len(data):]]):.3f}", flush=True)
    return pd.DataFrame(rows)


def _summary(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and sd over seeds of `metric` per variant, and its difference from the defaults
    seed by seed (same data, same held-out draw): mean and sd of that paired difference."""
    grouped = table.groupby("variant", sort=False)[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1)})
    by_seed = table.pivot(index="seed", columns="variant", values=metric)
    paired = by_seed.sub(by_seed["defaults"], axis=0)
    out["minus defaults"] = paired.mean().reindex(out.index)
    out["sd of that"] = paired.std(ddof=1).reindex(out.index)
    return out.reset_index()


def _better(summary: pd.DataFrame) -> set[str]:
    """Variants whose paired difference from the defaults exceeds its own sd."""
    rows = summary[(summary["variant"] != "defaults")
                   & (summary["minus defaults"] > summary["sd of that"])]
    return set(rows["variant"])


def write_report(tables: dict[str, pd.DataFrame], out: Path) -> Path:
    lines = ["# Single-trial defaults: sweep on validation trials", "",
             "Written by `python benchmarks/sweep_single_trials.py`. Each row changes one "
             "setting from the package defaults; no test trial is used.", ""]
    specs = {"pmd": ("val_co_bps_minus_residual_glm",
                     "PMd (embedded data): co-bps of JEDI with per-trial contexts on validation "
                     "trials minus the residual GLM's, paired per held-out draw"),
             "synthetic": ("val_gap_closed",
                           "Synthetic single-trial data: fraction of the gap between the "
                           "residual GLM's co-bps and the truth's that JEDI closes, validation "
                           "trials")}
    better_on = {}
    for key, table in tables.items():
        metric, title = specs[key]
        summary = _summary(table, metric)
        better_on[key] = _better(summary)
        seeds = sorted(table["seed"].unique().tolist())
        lines += [f"## {title} (seeds {seeds})", "",
                  "`mean`, `sd`: over seeds; `minus defaults`, `sd of that`: the variant's "
                  "difference from the defaults seed by seed.", "",
                  _markdown(summary), "",
                  "Above the defaults by more than the sd of the paired difference: "
                  + (", ".join(sorted(better_on[key])) or "none") + ".", ""]
    if len(better_on) > 1:
        both = set.intersection(*better_on.values())
        lines += ["Above the defaults on every data set: " + (", ".join(sorted(both)) or
                                                             "none") + ".", ""]
    path = out / "sweep_single_trials.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(f"{v:+.4f}" if isinstance(v, float) and c == "minus defaults"
                              else f"{v:.4f}" if isinstance(v, float) else str(v)
                              for c, v in row.items()) + " |"
            for _, row in table.iterrows()]
    return "\n".join([head, rule, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--data", default="pmd,synthetic")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the CSV of an earlier run")
    args = parser.parse_args(argv)
    if args.report_only:
        table = pd.read_csv(args.out / "sweep_single_trials.csv")
        tables = {key: group.reset_index(drop=True)
                  for key, group in table.groupby("data", sort=False)}
        print(f"wrote {write_report(tables, args.out)}")
        return 0
    settings = Settings.quick() if args.quick else Settings()
    which = [d for d in args.data.split(",") if d]
    unknown = set(which) - {"pmd", "synthetic"}
    if unknown:
        parser.error(f"unknown data {sorted(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for key, run in (("pmd", sweep_pmd), ("synthetic", sweep_synthetic)):
        if key in which:
            tables[key] = run(settings)
    table = pd.concat(tables.values(), ignore_index=True)
    atomic_write_text(args.out / "sweep_single_trials.csv", table.to_csv(index=False))
    print(f"wrote {write_report(tables, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
