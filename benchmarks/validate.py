"""Validation of JEDI (issue 5): synthetic ground truth, real reaching data, phases, sweep.

Sections (each writes rows of ``benchmarks/results/validation.md`` and PNGs next to it):

1. ``synthetic``: one N = 200 multitask teacher (sine, memorypro, dm; 24 conditions). Held-out
   R² of JEDI's rates against the teacher's (pooled and per neuron), condition classification
   from label-free per-trial embeddings of held-out trials, Spearman(sine frequency, |Im λ|)
   for two definitions of λ, and JEDI's fixed points against the teacher's (static sine input),
   matched by the Hungarian algorithm in the space of the recorded neurons' firing rates.
2. ``reaching``: the embedded Yu et al. 2009 PMd data (7 targets x 30 trials, 20 ms bins).
   Held-out (test split) bits/spike and PSTH R² of JEDI, PerConditionRNN, SharedRNN and the
   PSTH (40 ms, and the best smoothed PSTH: its width chosen on validation trials);
   co-smoothing with 20% of neurons held out, against the PSTHs and the held-in GLMs, with
   JEDI's paired per-seed differences; leave-one-condition-out few-shot generalization (5
   trials of the unseen condition). Several seeds, mean ± sd.
3. ``phases``: one JEDI context per (condition, phase): memorypro epochs against the teacher's
   ground-truth Jacobians, and early vs late windows of the reaching data's whole trials.
4. ``single``: synthetic data with known single-trial variability (co-bps, fp-bps, decoding
   against the truth) and the flat-fit check on the real DANDI:000006 unit; then whether any
   JEDI fit of sections 1, 2 and 4 ends flat.
5. ``sweep`` (run separately with ``--sweep``): the hyperparameter sweep on *validation*
   splits that chose JEDI's defaults; writes ``benchmarks/results/sweep.md``.

The test split is used only for the final numbers, never to choose anything.

Run: ``python benchmarks/validate.py [--quick] [--sections synthetic,reaching,phases,single]``
or ``python benchmarks/validate.py --sweep``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nwb_jedi import JEDI, TrialDataset, metrics
from nwb_jedi._files import atomic_output, atomic_write_text
from nwb_jedi.analysis import evaluation, ground_truth
from nwb_jedi.analysis.spectra import stability_summary, top_modes

RESULTS = Path(__file__).parent / "results"

TASKS = ("sine", "memorypro", "dm")


# ---------------------------------------------------------------------- settings
@dataclasses.dataclass
class Settings:
    """Sizes of the validation; `quick()` shrinks everything for smoke tests."""

    n_units: int = 200                 # synthetic teacher size
    trials_per_condition: int = 20     # synthetic trials per condition
    max_epochs: int | None = None      # validation fits: None = the package default
    patience: int | None = None        # validation fits: None = the package default
    synthetic_epochs: int = 600        # budget of the synthetic sweep fits
    synthetic_patience: int = 60
    reaching_epochs: int = 500         # budget of the reaching sweep fits
    seeds: tuple[int, ...] = (0, 1, 2)
    shots: int = 5                     # few-shot trials of the unseen condition
    fp_initial: int = 128              # fixed-point search starts per condition
    fp_iters: int = 5000               # Adam steps before Newton polish (slow saddles need many)
    infer_epochs: int = 200            # budget of embedding inference
    sweep_seeds: tuple[int, ...] = (0, 1)
    teacher_iters: int | None = None   # None: the cached default teacher
    start_jitter: float = 0.5          # single-trial variability of the section-4 data
    trial_input: float = 0.5
    forecast_s: float = 0.2            # fp-bps: the last 200 ms of each trial (NLB's window)
    fixture_seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)

    @classmethod
    def quick(cls) -> Settings:
        return cls(n_units=40, trials_per_condition=6, max_epochs=15, patience=5,
                   synthetic_epochs=15, synthetic_patience=5, reaching_epochs=15, seeds=(0,),
                   fp_initial=16, fp_iters=100, infer_epochs=10, sweep_seeds=(0,),
                   teacher_iters=60, fixture_seeds=(0,))


def log(*parts) -> None:
    print(*parts, flush=True)


def mean_sd(values) -> str:
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return "—"  # a metric the model does not have (held-in GLMs: co-smoothing only)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


# ---------------------------------------------------------------------- data
def synthetic_data(settings: Settings, tasks=TASKS, seed: int = 0) -> TrialDataset:
    """The multitask synthetic dataset (teacher cached under ~/.cache/nwb_jedi)."""
    from nwb_jedi.synthetic import make_dataset

    kwargs = {} if settings.teacher_iters is None else {"max_iters": settings.teacher_iters}
    return make_dataset(tasks, n_units=settings.n_units,
                        trials_per_condition=settings.trials_per_condition, seed=seed, **kwargs)


def reaching_data() -> TrialDataset:
    """The embedded delay-period reaching data (its own fixed train/val/test split)."""
    from nwb_jedi.datasets import load_reaching

    return load_reaching()


def budget(settings: Settings) -> dict:
    """Training budget of the validation fits: the package defaults unless `settings` shrink it."""
    out = {}
    if settings.max_epochs is not None:
        out["max_epochs"] = settings.max_epochs
    if settings.patience is not None:
        out["patience"] = settings.patience
    return out


def jedi(settings: Settings, *, synthetic: bool, seed: int = 0, sweep: bool = False,
         **overrides) -> JEDI:
    """JEDI with the package defaults (explicit overrides aside).

    Validation fits use the defaults' budget too; sweep fits use the sweep's fixed budget
    (`reaching_epochs`, or `synthetic_epochs` with `synthetic_patience`), as recorded.
    """
    params: dict = dict(device="cpu", seed=seed)
    if sweep:
        params["max_epochs"] = settings.synthetic_epochs if synthetic else settings.reaching_epochs
        if synthetic:
            params["patience"] = settings.synthetic_patience
    else:
        params.update(budget(settings))
    params.update(overrides)
    return JEDI(**params)


# ---------------------------------------------------------------------- 1. synthetic
def synthetic_teacher(settings: Settings):
    """The cached multitask teacher behind `synthetic_data`."""
    from nwb_jedi.synthetic import get_teacher

    kwargs = {} if settings.teacher_iters is None else {"max_iters": settings.teacher_iters}
    return get_teacher(TASKS, n_units=settings.n_units, seed=0, **kwargs)


def compare_fixed_points(model: JEDI, ds: TrialDataset, teacher, settings: Settings,
                         seed: int = 0) -> pd.DataFrame:
    """JEDI's fixed points vs the teacher's, per sine condition (the settings' search budget)."""
    table = ground_truth.compare_fixed_points(model, ds, teacher, n_initial=settings.fp_initial,
                                              max_iters=settings.fp_iters, seed=seed)
    for row in table.itertuples():
        log(f"fixed points sine {row.frequency_hz:g} Hz: teacher {row.teacher_n}, JEDI "
            f"{row.jedi_n}, matched distance {row.rms_distance_hz:.2f} Hz RMS "
            f"({row.distance_over_spread:.2f} of the trajectory spread)")
    return table


def classify_held_out(model: JEDI, test: TrialDataset, settings: Settings,
                      condition_rates: np.ndarray) -> dict:
    """Condition (and task) of held-out trials from label-free per-trial embeddings; and, as
    the ceiling of classifying single trials by likelihood, the same with the teacher's own
    noiseless `condition_rates` (C, T, N) in place of JEDI's networks."""
    cls = evaluation.classify_trials(model, test, max_epochs=settings.infer_epochs,
                                     group_by="task")
    teacher = np.stack([metrics.poisson_log_likelihood(rates * test.bin_size, test.counts)
                        .sum(axis=(1, 2)) for rates in condition_rates], axis=1)
    return {"teacher_likeliest_condition": float(np.mean(teacher.argmax(1) == test.condition)),
            "nearest_training": cls["nearest_training"], "per_task": cls["per_group"],
            "cv_centroid": cls["cv_centroid"], "chance": cls["chance"],
            "likeliest_condition": cls["likeliest_condition"],
            "task_accuracy": cls["group_accuracy"], "embeddings": cls["embeddings"],
            "truth": cls["truth"]}


def run_synthetic(settings: Settings, out: Path) -> dict:
    """Section 1: fit JEDI (package defaults) on the multitask set, score it on test trials."""
    from nwb_jedi.analysis import plots
    from nwb_jedi.analysis.spectra import condition_spectra

    start = time.perf_counter()
    ds = synthetic_data(settings)
    log(f"synthetic: {ds}")
    model = jedi(settings, synthetic=True).fit(ds.train, ds.val)
    log(f"  fit {model.n_epochs_} epochs in {model.fit_seconds_:.0f} s")
    test = ds.test
    pred = model.predict_rates(test)
    gt = test.ground_truth
    clean = ds.ground_truth["rates"][test.condition]
    result = {
        "r2_pooled": metrics.pooled_r2(pred, gt["trial_rates"]),
        "r2_per_neuron": metrics.rate_r2(pred, gt["trial_rates"]),
        "r2_clean_pooled": metrics.pooled_r2(pred, clean),
        "r2_clean_per_neuron": metrics.rate_r2(pred, clean),
        "r2_per_task": {t: metrics.pooled_r2(pred[gt["trial_task"] == t],
                                             gt["trial_rates"][gt["trial_task"] == t])
                        for t in TASKS},
        "epochs": model.n_epochs_,
        "bps": model.score(test),
    }
    # The condition PSTHs' R² against the same rates: what JEDI's R² is to be compared with.
    result["psth_r2"] = {name: metrics.pooled_r2(psth.predict_rates(test), gt["trial_rates"])
                         for name, psth in psth_baselines(ds.train, ds.val).items()}
    # A condition-level model cannot predict trial-to-trial variability (the teacher's input
    # noise); per-trial embeddings inferred from each test trial's own spikes (network frozen)
    # can. Scored against the teacher's rates, never against those spikes.
    per_trial = model.infer_embeddings(test, per_trial=True, max_epochs=settings.infer_epochs)
    pred_trial = per_trial.predict_rates(test)
    result["r2_inferred_pooled"] = metrics.pooled_r2(pred_trial, gt["trial_rates"])
    result["r2_inferred_per_neuron"] = metrics.rate_r2(pred_trial, gt["trial_rates"])
    log(f"  held-out R² pooled {result['r2_pooled']:.3f}, per neuron "
        f"{result['r2_per_neuron']:.3f}")
    result["classification"] = classify_held_out(model, test, settings, ds.ground_truth["rates"])
    log(f"  classification: nearest training embedding "
        f"{result['classification']['nearest_training']:.3f}, CV "
        f"{result['classification']['cv_centroid']:.3f}")
    result["fixed_points"] = compare_fixed_points(model, ds, synthetic_teacher(settings),
                                                  settings)
    result["spearman"] = ground_truth.sine_spearman(model, result["fixed_points"])
    result["stability"] = stability_summary(model)
    log(f"  Spearman leading {result['spearman']['rho_leading']:.3f}, max |Im| "
        f"{result['spearman']['rho_max_imag']:.3f}")
    plots.plot_embeddings(model, out / "synthetic_embeddings.png", color_by="task",
                          embeddings=result["classification"]["embeddings"],
                          labels=test.conditions["task"].to_numpy()[test.condition])
    sine_rows = [i for i, t in enumerate(model.conditions_["task"]) if t == "sine"]
    plots.plot_eigenvalues(condition_spectra(model, sine_rows),
                           out / "synthetic_sine_eigenvalues.png",
                           title="JEDI: eigenvalues of J per sine frequency")
    plot_spearman(result["spearman"], out / "synthetic_sine_frequency.png")
    first = {"seed": settings.seeds[0], "r2_pooled": result["r2_pooled"], "bps": result["bps"],
             **{k: result["classification"][k] for k in SEED_CLASSIFICATION},
             **{k: result["spearman"][k] for k in SEED_SPEARMAN}}
    result["seeds"] = synthetic_seeds(settings, ds, first)
    result["seconds"] = time.perf_counter() - start
    return result


SEED_SPEARMAN = ("rho_max_imag", "rho_leading", "rho_step_jacobian")
SEED_CLASSIFICATION = ("nearest_training", "likeliest_condition")


def synthetic_seeds(settings: Settings, ds: TrialDataset, first: dict) -> pd.DataFrame:
    """Held-out R² and bits/spike, classification and the spectral Spearman correlations of
    one JEDI fit per seed on the same data (`first`: the row of the first seed, already fitted
    and scored): how much one fit's numbers depend on its seed."""
    rows = [first]
    for seed in settings.seeds[1:]:
        model = jedi(settings, synthetic=True, seed=seed).fit(ds.train, ds.val)
        sp = ground_truth.sine_spearman(model)
        cls = evaluation.classify_trials(model, ds.test, max_epochs=settings.infer_epochs)
        rows.append({"seed": seed,
                     "r2_pooled": metrics.pooled_r2(model.predict_rates(ds.test),
                                                    ds.test.ground_truth["trial_rates"]),
                     "bps": model.score(ds.test),
                     **{k: cls[k] for k in SEED_CLASSIFICATION},
                     **{k: sp[k] for k in SEED_SPEARMAN}})
        log(f"  seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()
                                          if k != "seed"))
    return pd.DataFrame(rows)


def plot_spearman(sp: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(sp["frequencies"], sp["max_abs_imag"], "o-",
            label=f"max |Im λ| (ρ = {sp['rho_max_imag']:.2f})")
    ax.plot(sp["frequencies"], sp["leading_abs_imag"], "s--",
            label=f"|Im λ| of largest |λ| (ρ = {sp['rho_leading']:.2f})")
    ax.set_xlabel("sine frequency (Hz)")
    ax.set_ylabel("|Im λ| of J")
    ax.legend(fontsize=7)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


# ---------------------------------------------------------------------- 2. reaching
BEST_PSTH = "PSTH, smoothing chosen on val"


def psth_baselines(train: TrialDataset, val: TrialDataset) -> dict:
    """The PSTH with the package's smoothing (40 ms) and the best smoothed PSTH (its width
    chosen on the validation trials), fitted on `train`."""
    from nwb_jedi.model.baselines import PSTHBaseline

    return {"PSTHBaseline": PSTHBaseline().fit(train, val),
            BEST_PSTH: evaluation.best_smoothed_psth(train, val)}


def baselines(settings: Settings, seed: int, train: TrialDataset, val: TrialDataset) -> dict:
    """The baselines; the RNNs with JEDI's family, hyperparameters and budget."""
    from nwb_jedi.model.baselines import PerConditionRNN, SharedRNN

    same = rnn_settings(settings, seed)
    return {"PerConditionRNN": PerConditionRNN(**same), "SharedRNN": SharedRNN(**same),
            **psth_baselines(train, val)}


def rnn_settings(settings: Settings, seed: int) -> dict:
    """The RNN baselines get JEDI's (default) rank, τ, noise, learning rate and budget."""
    defaults = JEDI().get_params()
    same = {k: defaults[k] for k in ("rank", "tau", "noise_std", "lr", "max_epochs", "patience",
                                     "batch_size", "grad_clip")}
    return {**same, **budget(settings), "device": "cpu", "seed": seed}


def few_shot(ds: TrialDataset, settings: Settings, seed: int) -> pd.DataFrame:
    """Leave-one-condition-out few-shot generalization (`evaluation.few_shot`) of JEDI, a
    PerConditionRNN (JEDI's family and budget) and the PSTH, from `shots` trials."""
    from nwb_jedi.model.baselines import PerConditionRNN, PSTHBaseline

    models = {"JEDI": jedi(settings, synthetic=False, seed=seed),
              "PerConditionRNN": PerConditionRNN(**rnn_settings(settings, seed)),
              "PSTHBaseline": PSTHBaseline()}
    table = evaluation.few_shot(ds, models, shots=settings.shots, seed=seed,
                                max_epochs=settings.infer_epochs)
    return pd.DataFrame({"model": table["model"], "seed": seed,
                         "fewshot_bps": table["bits_per_spike"],
                         "fewshot_psth_r2_smoothed": table["psth_r2_smoothed"]})


def run_reaching(settings: Settings, out: Path) -> dict:
    """Section 2: held-out metrics, co-smoothing and few-shot, over seeds."""
    from nwb_jedi.analysis import plots
    from nwb_jedi.analysis.spectra import condition_spectra

    start = time.perf_counter()
    ds = reaching_data()
    log(f"reaching: {ds}")
    train, val, test = ds.train, ds.val, ds.test
    rows, fewshot = [], []
    for seed in settings.seeds:
        heldout = metrics.heldout_unit_mask(ds.n_units, 0.2, seed=seed)
        models = {"JEDI": jedi(settings, synthetic=False, seed=seed),
                  **baselines(settings, seed, train, val)}
        for name, model in models.items():
            t0 = time.perf_counter()
            model.fit(train, val)
            score = model.evaluate(test)
            row = {"model": name, "seed": seed, "bps": score["bits_per_spike"],
                   "psth_r2_smoothed": score["psth_r2_smoothed"], "r2": score["r2"],
                   **evaluation.co_smoothing(model, test, heldout,
                                             max_epochs=settings.infer_epochs),
                   "fit_s": time.perf_counter() - t0}
            rows.append(row)
            log(f"  seed {seed} {name}: {row['bps']:.4f} bits/spike, PSTH R² "
                f"{row['psth_r2_smoothed']:.3f}, co-bps {row['co_bps']:.4f}")
            if seed == settings.seeds[0] and name == "JEDI":
                plots.plot_psth(model.predict_rates(test), test,
                                out / "reaching_psth_jedi.png")
                plots.plot_embeddings(model, out / "reaching_embeddings.png")
                plots.plot_eigenvalues(condition_spectra(model), out / "reaching_eigenvalues.png",
                                       title="JEDI on PMd reaching: eigenvalues of J")
                plots.plot_training(model.history_, out / "reaching_training.png")
        # Co-smoothing baselines given what JEDI is given: the test trials' held-in neurons.
        for name, model in evaluation.heldin_baselines(heldout).items():
            t0 = time.perf_counter()
            model.fit(train, val)
            rows.append({"model": name, "seed": seed, "bps": np.nan,
                         "psth_r2_smoothed": np.nan, "r2": np.nan,
                         **evaluation.co_smoothing(model, test, heldout),
                         "fit_s": time.perf_counter() - t0})
            log(f"  seed {seed} {name}: co-bps {rows[-1]['co_bps']:.4f}")
        fewshot.append(few_shot(ds, settings, seed))
        log(fewshot[-1].to_string(index=False))
    return {"table": pd.DataFrame(rows), "fewshot": pd.concat(fewshot, ignore_index=True),
            "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------- 4. single trials
FIXTURE = Path(__file__).parents[1] / "tests" / "data" / "sub-anm369963_ses-20170228.nwb"


def single_trial_data(settings: Settings, seed: int) -> TrialDataset:
    """The multitask set with known single-trial variability: every trial starts at its own
    point of its condition's dynamics and receives its own smooth input."""
    from nwb_jedi.synthetic import make_dataset

    kwargs = {} if settings.teacher_iters is None else {"max_iters": settings.teacher_iters}
    return make_dataset(TASKS, n_units=settings.n_units,
                        trials_per_condition=settings.trials_per_condition, seed=seed,
                        start_jitter=settings.start_jitter, trial_input=settings.trial_input,
                        **kwargs)


def _both(rates: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Training-trial and test-trial rates of each source, one array per source."""
    return {name: np.concatenate([train, test]) for name, (train, test) in rates.items()}


def single_trial_seed(settings: Settings, seed: int) -> list[dict]:
    """One seed of section 4: JEDI, the PSTH and the held-in GLMs against the truth."""
    ds = single_trial_data(settings, seed)
    train, val, test = ds.train, ds.val, ds.test
    truth_test = test.ground_truth["trial_rates"]
    heldout = metrics.heldout_unit_mask(ds.n_units, 0.2, seed=seed)
    n_forecast = int(round(settings.forecast_s / ds.bin_size))
    observed = evaluation.first_bins(test, test.n_bins - n_forecast)
    model = jedi(settings, synthetic=True, seed=seed).fit(train, val)
    psths = psth_baselines(train, val)
    psth, best_psth = psths["PSTHBaseline"], psths[BEST_PSTH]
    single = model.infer_embeddings(test, per_trial=True, refit_conditions=False,
                                    max_epochs=settings.infer_epochs).predict_rates(test)
    rates = {"JEDI": model.predict_rates(test), "JEDI, contexts of each test trial": single,
             "PSTHBaseline": psth.predict_rates(test), BEST_PSTH: best_psth.predict_rates(test),
             "truth": truth_test}
    rows = [{"model": name, "seed": seed,
             "bps": metrics.bits_per_spike(r, test.counts, test.bin_size),
             "r2_vs_truth": metrics.pooled_r2(r, truth_test)} for name, r in rates.items()]
    by_name = {row["model"]: row for row in rows}
    by_name["JEDI"].update(evaluation.co_smoothing(model, test, heldout,
                                                   max_epochs=settings.infer_epochs))
    for name, baseline in psths.items():
        by_name[name].update(evaluation.co_smoothing(baseline, test, heldout))
    by_name["truth"]["co_bps"] = metrics.bits_per_spike(truth_test, test.counts, test.bin_size,
                                                        units=heldout)
    # Not a co-smoothing score: the held-out neurons were seen by this inference. It bounds
    # what the contexts can express, whatever they are inferred from.
    by_name["JEDI, contexts of each test trial"]["co_bps"] = metrics.bits_per_spike(
        single, test.counts, test.bin_size, units=heldout)
    for name, glm in evaluation.heldin_baselines(heldout).items():
        rows.append({"model": name, "seed": seed,
                     **evaluation.co_smoothing(glm.fit(train, val), test, heldout)})
    by_name["JEDI"].update(evaluation.forward_prediction(model, observed, test,
                                                         max_epochs=settings.infer_epochs))
    for name, baseline in psths.items():
        by_name[name].update(evaluation.forward_prediction(baseline, observed, test))
    by_name["truth"]["fp_bps"] = metrics.fp_bps(truth_test[:, -n_forecast:],
                                                test.counts[:, -n_forecast:], test.bin_size)
    # Decoding the teacher's task output (what `nwb-jedi simulate` files carry as the behavior
    # series `teacher_output`), NLB's ridge decoder trained on the training trials.
    behavior = np.concatenate([train.ground_truth["trial_outputs"],
                               test.ground_truth["trial_outputs"]])
    is_test = np.r_[np.zeros(train.n_trials, bool), np.ones(test.n_trials, bool)]
    jedi_train = model.predict_rates(train)  # training trials keep their fitted contexts
    decoded = evaluation.decoding(_both({
        "JEDI": (jedi_train, rates["JEDI"]),
        "JEDI, contexts of each test trial": (jedi_train, single),
        "PSTHBaseline": (psth.predict_rates(train), rates["PSTHBaseline"]),
        BEST_PSTH: (best_psth.predict_rates(train), rates[BEST_PSTH]),
        "SmoothedSpikes": (evaluation.smoothed_spike_rates(train.counts, train.bin_size),
                           evaluation.smoothed_spike_rates(test.counts, test.bin_size)),
        "truth": (train.ground_truth["trial_rates"], truth_test)}),
        behavior, ds.bin_size, ~is_test, is_test)
    for name, r2 in decoded.items():
        if name not in by_name:
            rows.append(by_name.setdefault(name, {"model": name, "seed": seed}))
        by_name[name]["decode_r2"] = r2
    log(f"  seed {seed}: " + "; ".join(
        f"{row['model']} " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                                       if k not in ("model", "seed")) for row in rows))
    return rows


def fixture_fits(settings: Settings) -> pd.DataFrame:
    """The real DANDI:000006 ALM unit (correct trials, cue-aligned), package defaults at rank
    1, one fit per seed: does any end flat (held-out bits/spike <= 0)?"""
    from nwb_jedi import ConditionMapper, read_session
    from nwb_jedi.model.baselines import PSTHBaseline

    mapper = ConditionMapper(by="type", align="cue_start_time", align_reference="start_time",
                             window=(-0.5, 1.0), bin_size=0.02,
                             trial_filter="response == 'correct'", verbose=False)
    ds = mapper.build(read_session(FIXTURE))
    psth = PSTHBaseline().fit(ds.train).score(ds.test)
    rows = []
    for seed in settings.fixture_seeds:
        model = jedi(settings, synthetic=False, seed=seed, rank=1).fit(ds.train, ds.val)
        rows.append({"seed": seed, "bps": model.score(ds.test), "psth_bps": psth,
                     "best_epoch": model.history_["epoch"][
                         int(np.nanargmin(model.history_["val_loss"]))],
                     "epochs": model.n_epochs_})
        log(f"  DANDI:000006 seed {seed}: {rows[-1]['bps']:.3f} bits/spike (PSTH {psth:.3f})")
    return pd.DataFrame(rows)


def run_single_trials(settings: Settings) -> dict:
    """Section 4: single-trial metrics on synthetic data with known single-trial variability
    (co-bps, fp-bps, decoding against the truth) and the flat-fit check on real data."""
    start = time.perf_counter()
    rows = [row for seed in settings.seeds for row in single_trial_seed(settings, seed)]
    return {"table": pd.DataFrame(rows), "fixture": fixture_fits(settings),
            "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------- 3. phases
MEMORYPRO_PHASES = (("stimulus", 0.1, 0.3), ("delay", 0.5, 0.7), ("response", 0.75, 0.95))


def phase_middle(phase: str) -> float:
    """Time (s from the trial start) in the middle of a memorypro phase window."""
    window = {name: (a, b) for name, a, b in MEMORYPRO_PHASES}[phase]
    return float(np.mean(window))


def run_memorypro_phases(settings: Settings, out: Path) -> pd.DataFrame:
    """One JEDI context per (angle, phase) of memorypro; Jacobian spectra vs the teacher's."""
    from nwb_jedi.analysis import plots
    from nwb_jedi.analysis.phases import split_phases
    from nwb_jedi.analysis.spectra import condition_spectra, jacobian_spectrum

    ds = synthetic_data(settings)
    net = synthetic_teacher(settings)
    mp = ds.subset(ds.ground_truth["trial_task"] == "memorypro")
    phased = split_phases(mp, MEMORYPRO_PHASES)
    model = jedi(settings, synthetic=True).fit(phased.train, phased.val)
    score = model.evaluate(phased.test)
    log(f"memorypro phases: {model.n_epochs_} epochs, test R² vs teacher "
        f"{score['r2_true']:.3f}")
    gt = ds.ground_truth
    n_win = phased.n_bins
    rows = []
    for row, cond in enumerate(model.conditions_.itertuples()):
        c = list(ds.conditions["label"]).index(cond.label.rsplit("/", 1)[0])
        first = int(round(dict((n, a) for n, a, _ in MEMORYPRO_PHASES)[cond.phase]
                          / ds.bin_size))
        states = torch.as_tensor(gt["condition_states"][c, first:first + n_win],
                                 dtype=torch.float64)
        u = ground_truth.teacher_input(net, "memorypro", cond.value, phase_middle(cond.phase))
        _, jac = ground_truth.teacher_map(gt, u)
        teacher_ev = np.linalg.eigvals(jac(states).numpy())
        jedi_ev = jacobian_spectrum(model, row, n_steps=n_win).eigenvalues
        t_re, t_hz = top_modes(teacher_ev, net.dt)
        j_re, j_hz = top_modes(jedi_ev, model.bin_size_)
        lam = model.eigenvalues(row)
        rows.append({"phase": cond.phase, "angle": cond.value, "teacher_top3_re": t_re,
                     "jedi_top3_re": j_re, "teacher_top3_hz": t_hz, "jedi_top3_hz": j_hz,
                     "jedi_J_leading_modulus": float(np.abs(lam[0])),
                     "jedi_J_max_abs_imag": float(np.abs(lam.imag).max())})
    table = pd.DataFrame(rows)
    plots.plot_eigenvalues(condition_spectra(model, [i for i, a in enumerate(
                               model.conditions_["value"]) if a in (0.0, 180.0)]),
                           out / "memorypro_phase_eigenvalues.png",
                           title="JEDI memorypro contexts: eigenvalues of J per phase")
    summary = table.groupby("phase", sort=False).mean(numeric_only=True).drop(columns="angle")
    summary["test_r2_true"] = score["r2_true"]
    return summary.reset_index()


REACHING_PHASE_MS = 300


def reaching_phase_data() -> TrialDataset:
    """Whole reaching trials (ex2: 2 targets x 56), cut into two equal windows.

    ``early``: the first 300 ms after target onset (target shown, before the movement: a
    preparation period); ``late``: the last 300 ms of the trial, which the source describes
    as running through the movement (no go-cue or movement-onset times are stored, so this
    window is "around/through the movement", not a verified execution epoch).
    """
    from nwb_jedi.datasets import reaching_mapper, reaching_path
    from nwb_jedi.io.read import read_session

    session = read_session(reaching_path())
    w = REACHING_PHASE_MS / 1000
    common = dict(trial_filter={"subset": "ex2_whole"})
    early = reaching_mapper(align="target_on_time", window=(0.0, w), **common).build(session)
    late = reaching_mapper(align="stop_time", window=(-w, 0.0), **common).build(session)
    if not (np.array_equal(early.trial_id, late.trial_id)
            and np.array_equal(early.split, late.split)):
        raise RuntimeError("early and late windows disagree on trials or splits")
    target = early.conditions["label"].astype(str).to_numpy()
    labels = [(t, "early") for t in target[early.condition]] + \
        [(t, "late") for t in target[late.condition]]
    return TrialDataset.from_arrays(
        np.concatenate([early.counts, late.counts]), labels, early.bin_size,
        trial_ids=[f"{t}/early" for t in early.trial_id] + [f"{t}/late" for t in late.trial_id],
        unit_ids=early.unit_id, split=np.concatenate([early.split, late.split]),
        condition_names=("target", "phase"))


def run_reaching_phases(settings: Settings, out: Path) -> pd.DataFrame:
    """Early vs late windows of whole reaching trials: J and Jacobian spectra per phase."""
    from nwb_jedi.analysis import plots
    from nwb_jedi.analysis.phases import summarize_phase_spectra
    from nwb_jedi.analysis.spectra import condition_spectra, jacobian_spectrum, spectrum_table

    ds = reaching_phase_data()
    rows = []
    for seed in settings.seeds:
        model = jedi(settings, synthetic=False, seed=seed).fit(ds.train, ds.val)
        score = model.evaluate(ds.test)
        summary = summarize_phase_spectra(spectrum_table(model))
        for phase in summary.index:
            conds = [i for i, p in enumerate(model.conditions_["phase"]) if p == phase]
            re_hz = [top_modes(jacobian_spectrum(model, i, n_steps=ds.n_bins).eigenvalues,
                               model.bin_size_) for i in conds]
            rows.append({"phase": phase, "seed": seed, **summary.loc[phase].to_dict(),
                         "jac_top3_re": float(np.mean([r for r, _ in re_hz])),
                         "jac_top3_hz": float(np.mean([h for _, h in re_hz])),
                         "test_bps": score["bits_per_spike"]})
        if seed == settings.seeds[0]:
            plots.plot_eigenvalues(condition_spectra(model),
                                   out / "reaching_phase_eigenvalues.png",
                                   title="JEDI on whole reaches: eigenvalues of J, early vs late")
    table = pd.DataFrame(rows)
    log(table.to_string(index=False))
    return table


# ---------------------------------------------------------------------- 4. sweep
SWEEP_BASE = dict(embed_dim=8, hidden=128, rank=4, tau=0.05, noise_std=0.05, lr=2e-3,
                  embed_lr=1e-2)
# The defaults chosen from this sweep (now JEDI's), as a change of the base.
CHOSEN = {"tau": 0.1, "rank": 6, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02, "patience": 100}
SWEEP_VARIANTS: list[dict] = [
    {},
    {"tau": 0.02}, {"tau": 0.1}, {"tau": 0.2},
    {"rank": 2}, {"rank": 8},
    {"embed_dim": 4}, {"embed_dim": 16},
    {"hidden": 64}, {"hidden": 256},
    {"lr": 1e-2, "embed_lr": 3e-2}, {"lr": 5e-3, "embed_lr": 2e-2},
    {"noise_std": 0.0}, {"noise_std": 0.1},
    # second round: combinations of the best single changes of both data sets
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2},
    {"tau": 0.2, "lr": 1e-2, "embed_lr": 3e-2},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "rank": 2},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "hidden": 64},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.0},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02},
    # third round
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02, "patience": 100},
    {"tau": 0.1, "lr": 5e-3, "embed_lr": 2e-2, "rank": 8},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02, "rank": 6},
    {"lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.0},
    # the chosen defaults
    CHOSEN,
]
SYNTHETIC_VARIANTS: list[dict] = [
    {"lr": 1e-2, "embed_lr": 3e-2},
    {"lr": 1e-2, "embed_lr": 3e-2, "rank": 8},
    {"lr": 1e-2, "embed_lr": 3e-2, "tau": 0.1},
    {"lr": 1e-2, "embed_lr": 3e-2, "hidden": 256},
    {"lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.0},
    {"lr": 5e-3, "embed_lr": 2e-2},
    {},
    # second round
    {"tau": 0.2, "lr": 1e-2, "embed_lr": 3e-2},
    {"tau": 0.1, "lr": 5e-3, "embed_lr": 2e-2},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "rank": 2},
    # third round
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.0},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.0, "max_epochs": 1200},
    # fourth round
    {"tau": 0.1, "lr": 5e-3, "embed_lr": 2e-2, "rank": 8},
    {"lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.0, "max_epochs": 1500, "patience": 100},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02, "max_epochs": 1500,
     "patience": 100},
    {"tau": 0.1, "lr": 1e-2, "embed_lr": 3e-2, "noise_std": 0.02, "rank": 6},
    # the chosen defaults
    CHOSEN,
]


def describe(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items()) or "base"


def sweep_reaching(settings: Settings, variants=SWEEP_VARIANTS) -> pd.DataFrame:
    """Fit each variant on the reaching train split, score on the *val* split."""
    from nwb_jedi.model.baselines import PSTHBaseline

    ds = reaching_data()
    psth = PSTHBaseline().fit(ds.train).evaluate(ds.val)
    rows = [{"data": "reaching", "variant": "PSTHBaseline (reference, not JEDI)", "seed": 0,
             "val_bits_per_spike": psth["bits_per_spike"],
             "val_psth_r2": psth["psth_r2_smoothed"],
             "epochs": 0, "seconds": 0.0}]
    for variant in variants:
        params = {**SWEEP_BASE, **variant}
        for seed in settings.sweep_seeds:
            start = time.perf_counter()
            model = jedi(settings, synthetic=False, seed=seed, sweep=True, **params).fit(
                ds.train, ds.val)
            score = model.evaluate(ds.val)
            rows.append({"data": "reaching", "variant": describe(variant), "seed": seed,
                         "val_bits_per_spike": score["bits_per_spike"],
                         "val_psth_r2": score["psth_r2_smoothed"], "epochs": model.n_epochs_,
                         "seconds": time.perf_counter() - start})
            log(f"sweep reaching {describe(variant)} seed {seed}: "
                f"{score['bits_per_spike']:.4f} bits/spike, PSTH R² (smoothed) "
                f"{score['psth_r2_smoothed']:.3f}")
    return pd.DataFrame(rows)


def sweep_synthetic(settings: Settings, variants=SYNTHETIC_VARIANTS) -> pd.DataFrame:
    """Fit each variant on the synthetic train split, score R² vs teacher on the *val* split."""
    ds = synthetic_data(settings)
    rows = []
    for variant in variants:
        params = {**SWEEP_BASE, **variant}
        start = time.perf_counter()
        model = jedi(settings, synthetic=True, seed=0, sweep=True, **params).fit(ds.train,
                                                                                 ds.val)
        score = model.evaluate(ds.val)
        rows.append({"data": "synthetic", "variant": describe(variant), "seed": 0,
                     "val_r2_true": score["r2_true"],
                     "val_r2_true_per_neuron": score["r2_true_per_neuron"],
                     "val_bits_per_spike": score["bits_per_spike"], "epochs": model.n_epochs_,
                     "seconds": time.perf_counter() - start})
        log(f"sweep synthetic {describe(variant)}: R² {score['r2_true']:.4f} "
            f"({model.n_epochs_} epochs, {time.perf_counter() - start:.0f} s)")
    return pd.DataFrame(rows)


def summarize_sweep(table: pd.DataFrame) -> pd.DataFrame:
    metrics_cols = [c for c in table.columns if c.startswith("val_")] + ["epochs", "seconds"]
    return table.groupby(["data", "variant"], sort=False)[metrics_cols].mean().reset_index()


def append_sweep(table: pd.DataFrame, path: Path) -> None:
    """Add sweep rows to a CSV (re-running a variant replaces its old rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pd.read_csv(path)
        keys = set(zip(table["variant"], table["seed"], strict=True))
        old = old[[k not in keys for k in zip(old["variant"], old["seed"], strict=True)]]
        table = pd.concat([old, table], ignore_index=True)
    atomic_write_text(path, table.to_csv(index=False))


def write_sweep(out: Path) -> Path:
    """sweep.md from the sweep CSVs in `out`."""
    tables = [pd.read_csv(p) for p in (out / "sweep_reaching.csv", out / "sweep_synthetic.csv")
              if p.exists()]
    lines = ["# Hyperparameter sweep (validation splits only)", "",
             f"Base: {describe(SWEEP_BASE)} (the defaults before this sweep); each row "
             "changes only what it names. Reaching (7 targets, 20 ms bins): mean over seeds "
             f"{list(Settings().sweep_seeds)} of *validation*-split bits/spike and PSTH R² "
             f"(at most {Settings().reaching_epochs} epochs, patience 40 unless named). "
             "Synthetic (3-task teacher, N = 200, seed 0): R² of predicted vs teacher rates on "
             "*validation* trials, pooled over neurons / mean of per-neuron R² (at most "
             f"{Settings().synthetic_epochs} epochs, patience {Settings().synthetic_patience} "
             "unless named). Later rounds combine the best single changes. No test trial was "
             "used.", ""]
    chosen, base = describe(CHOSEN), describe({})
    for table in tables:
        means = summarize_sweep(table).set_index("variant")
        metric = "val_r2_true" if "val_r2_true" in means else "val_bits_per_spike"
        if chosen in means.index and base in means.index:
            best = means[metric].drop(index=[i for i in means.index if "reference" in i]).max()
            lines += [f"{table['data'].iloc[0]}: chosen defaults ({chosen}) "
                      f"{metric} {means.loc[chosen, metric]:.4f} vs {means.loc[base, metric]:.4f} "
                      f"for the old defaults (best variant {best:.4f}).", ""]
    lines += ["Seconds are wall time on 2 shared CPU cores (other jobs running): not a speed "
              "measurement.", ""]
    for table in tables:
        lines += [markdown_table(summarize_sweep(table), ".4f"), ""]
    path = out / "sweep.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def markdown_table(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A pipe table (no tabulate dependency)."""
    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return "nan" if not np.isfinite(value) else format(value, floatfmt)
        return str(value)

    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--sweep", action="store_true", help="run the hyperparameter sweep")
    parser.add_argument("--sweep-data", default="reaching,synthetic")
    parser.add_argument("--sweep-only", default="", metavar="I,J",
                        help="run only these variant indices (results are appended to the CSVs)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    if args.sweep:
        which = args.sweep_data.split(",")
        only = [int(i) for i in args.sweep_only.split(",") if i]
        for data, variants, run in (("reaching", SWEEP_VARIANTS, sweep_reaching),
                                    ("synthetic", SYNTHETIC_VARIANTS, sweep_synthetic)):
            if data in which:
                chosen = [v for i, v in enumerate(variants) if not only or i in only]
                append_sweep(run(settings, chosen), args.out / f"sweep_{data}.csv")
        log(f"wrote {write_sweep(args.out)}")
        return 0
    sections = [x for x in args.sections.split(",") if x]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_all(settings, args.out, sections)
    path = write_report(results, settings, args.out, quick=args.quick)
    log(f"wrote {path}")
    return 0


SECTIONS = ("synthetic", "reaching", "phases", "single")


def run_all(settings: Settings, out: Path, sections=SECTIONS) -> dict:
    """Run the chosen sections; returns their results (see `write_report`)."""
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    results: dict = {}
    if "synthetic" in sections:
        results["synthetic"] = run_synthetic(settings, out)
    if "reaching" in sections:
        results["reaching"] = run_reaching(settings, out)
    if "phases" in sections:
        start = time.perf_counter()
        results["memorypro_phases"] = run_memorypro_phases(settings, out)
        results["reaching_phases"] = run_reaching_phases(settings, out)
        results["phases_seconds"] = time.perf_counter() - start
    if "single" in sections:
        results["single"] = run_single_trials(settings)
    return results


def _goal(value: float, goal: float) -> str:
    return f"{value:.3f} ({'meets' if value >= goal else 'below'} ≥ {goal:g})"


SINGLE_COLUMNS = ("bps", "r2_vs_truth", "co_bps", "co_bps_per_trial", "fp_bps", "decode_r2")
BASELINES = ("PSTHBaseline", BEST_PSTH, "SmoothingGLM", "PSTHResidualGLM")


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


PAIRED_BPS = ("PSTHBaseline", BEST_PSTH, "PerConditionRNN")
PAIRED_CO_BPS = ("PSTHBaseline", BEST_PSTH, "SmoothingGLM", "PSTHResidualGLM")


def reaching_paired(t: pd.DataFrame) -> pd.DataFrame:
    """JEDI minus each baseline, seed by seed (same held-out neurons and split): bits/spike,
    and co-bps of JEDI's per-trial contexts against each co-smoothing baseline; with whether
    the mean difference exceeds the seeds' spread (its sd)."""
    by_model = {name: group.set_index("seed") for name, group in t.groupby("model")}
    jedi = by_model["JEDI"]
    rows = []
    for metric, own, names in (("bps", "bps", PAIRED_BPS),
                               ("co_bps", "co_bps_per_trial", PAIRED_CO_BPS)):
        for name in names:
            if name not in by_model or own not in jedi:
                continue
            diff = (jedi[own] - by_model[name][metric]).dropna()
            mean, sd = diff.mean(), (diff.std(ddof=1) if len(diff) > 1 else np.nan)
            rows.append({"comparison": f"{own}: JEDI − {name}",
                         "per seed": ", ".join(f"{v:+.3f}" for v in diff),
                         "mean ± sd": f"{mean:+.3f} ± {sd:.3f}",
                         "above by more than the sd": bool(mean > sd) if sd == sd else False})
    return pd.DataFrame(rows)


def reaching_report(r: dict, settings: Settings) -> list[str]:
    """Section 2's paired differences and the goals of issue 12 on the PMd data."""
    t = r["table"]
    paired = reaching_paired(t)
    bps = t.groupby("model")["bps"].mean().dropna()
    win_bps = all(bps["JEDI"] > v for m, v in bps.items() if m != "JEDI")
    fsm = r["fewshot"].groupby("model")["fewshot_bps"].mean()
    win_fs = all(fsm["JEDI"] > v for m, v in fsm.items() if m != "JEDI")
    best_psth = max(bps.get("PSTHBaseline", -np.inf), bps.get(BEST_PSTH, -np.inf))
    co = paired[paired["comparison"].str.startswith("co_bps")]
    return [f"Paired differences, seed by seed (mean ± sd over seeds {list(settings.seeds)}):",
            "", markdown_table(paired), "",
            f"Goals (issue 12): held-out bits/spike at or above the better of the two PSTHs "
            f"(40 ms; width chosen on val) on the test trials: "
            f"{_met(bps['JEDI'] >= best_psth)} ({bps['JEDI']:.3f} vs {best_psth:.3f}); "
            f"co-bps above the PSTHs, the smoothing GLM and the residual GLM by more than "
            f"the seed spread: {_met(len(co) > 0 and bool(co['above by more than the sd'].all()))}"
            f"; few-shot above the nearest-condition PSTH (and every other model): "
            f"{_met(win_fs)}. JEDI beats every baseline on held-out bits/spike: "
            f"{_met(win_bps)} (means over seeds).", ""]


def flat_fit_report(results: dict) -> list[str]:
    """Whether any JEDI fit of sections 1, 2 and 4 ends flat (held-out bits/spike <= 0)."""
    scores = []
    if "synthetic" in results:
        scores += [("synthetic teacher", v) for v in results["synthetic"]["seeds"]["bps"]]
    for key, label in (("reaching", "PMd"), ("single", "single-trial synthetic")):
        if key in results:
            t = results[key]["table"]
            scores += [(label, v) for v in t.loc[t["model"] == "JEDI", "bps"]]
    if not scores:
        return []
    flat = [(label, v) for label, v in scores if not v > 0]
    summary = "; ".join(
        f"{label} {min(v for lab, v in scores if lab == label):.3f}"
        for label in dict.fromkeys(label for label, _ in scores))
    return ["## Flat fits", "",
            f"JEDI fits (package defaults) of sections 1, 2 and 4: {len(scores)} fits, "
            f"{len(flat)} end flat (held-out bits/spike <= 0); lowest held-out bits/spike "
            f"per dataset: {summary}. The real DANDI:000006 fits are in section 4.", ""]


def single_trial_report(single: dict, settings: Settings) -> list[str]:
    """Section 4 of validation.md: the table, the goals of issue 12 and the flat-fit check."""
    t = single["table"]
    agg = t.groupby("model", sort=False).agg(
        {c: (lambda v: mean_sd(v.dropna()) if v.notna().any() else "—")
         for c in SINGLE_COLUMNS if c in t}).reset_index()
    means = t.groupby("model").mean(numeric_only=True)
    # Per seed: how much of the gap between the best co-smoothing baseline and the truth JEDI
    # closes (the best baseline chosen per seed, on the test trials, as the goal states it).
    co = t.pivot(index="seed", columns="model", values="co_bps")
    best = co[[b for b in BASELINES if b in co]].max(axis=1)
    per_trial = t[t["model"] == "JEDI"].set_index("seed")["co_bps_per_trial"]
    gap = (per_trial - best) / (co["truth"] - best)
    seen = (co["JEDI, contexts of each test trial"] - best) / (co["truth"] - best)
    fixture = single["fixture"]
    flat = fixture[fixture["bps"] <= 0]
    psth = means.loc[["PSTHBaseline", BEST_PSTH]]
    return [
        f"## 4. Single trials (synthetic, known single-trial variability; N = {settings.n_units}, "
        "24 conditions)", "",
        f"The multitask teacher with every trial starting at its own point of its condition's "
        f"dynamics (`start_jitter={settings.start_jitter}`) and receiving its own smooth input "
        f"(`trial_input={settings.trial_input}`); a new dataset per seed, mean ± sd over seeds "
        f"{list(settings.seeds)}, test trials. `bps`: bits/spike; `r2_vs_truth`: pooled R² "
        "against the rates each trial's spikes were drawn from; `co_bps`: co-smoothing of 20% "
        "held-out neurons as in section 2; `fp_bps`: NLB forward prediction of the last "
        f"{settings.forecast_s * 1000:.0f} ms of every trial from the bins before it (JEDI "
        "infers each trial's contexts from them; the PSTH predicts from the condition); "
        "`decode_r2`: NLB's ridge decoder of the teacher's task output (the `teacher_output` "
        "series of `nwb-jedi simulate` files) from each set of rates, trained on the training "
        "trials. `JEDI, contexts of each test trial`: contexts inferred from all of the "
        "trial's spikes (network frozen): its `bps` scores the spikes it was inferred from, so "
        "it is not a held-out score, while its `r2_vs_truth` and `decode_r2` are (neither the "
        "true rates nor the behavior were seen; smoothed spikes use the trial's spikes too), "
        "and its `co_bps` scores held-out neurons the inference saw (the most the contexts "
        "can express); `truth`: the teacher's rates.", "",
        markdown_table(agg), "",
        f"Goals (issue 12): held-out bits/spike at or above the better of the two PSTHs "
        f"(40 ms; width chosen on val) on the test trials: "
        f"{_met(means.loc['JEDI', 'bps'] >= psth['bps'].max())} "
        f"({means.loc['JEDI', 'bps']:.3f} vs {psth['bps'].max():.3f}); rate R² "
        f"vs truth above the PSTHs': "
        f"{_met(means.loc['JEDI', 'r2_vs_truth'] > psth['r2_vs_truth'].max())}; "
        f"co-bps with contexts closing at least half of the gap between the best baseline and "
        f"the truth: {_met(gap.mean() >= 0.5)} ({mean_sd(gap)} of the gap; contexts "
        f"inferred with the held-out neurons seen: {mean_sd(seen)}).", "",
        f"Flat fits: the real DANDI:000006 ALM unit (correct trials, cue-aligned, 20 ms, rank "
        f"1, package defaults), seeds {list(settings.fixture_seeds)}: held-out bits/spike "
        + ", ".join(f"{v:.3f}" for v in fixture["bps"])
        + f" (PSTH {fixture['psth_bps'].iloc[0]:.3f}); "
        + (f"{len(flat)} of {len(fixture)} end flat (seeds {list(flat['seed'])}; the fit "
           "warns)" if len(flat) else "none ends flat") + ".", ""]


def write_report(results: dict, settings: Settings, out: Path, quick: bool = False) -> Path:
    """benchmarks/results/validation.md from the results of `run_all`."""
    defaults = {k: v for k, v in JEDI().get_params().items()
                if k in ("embed_dim", "hidden", "rank", "tau", "noise_std", "lr", "embed_lr",
                         "max_epochs", "patience", "batch_size")}
    lines = ["# JEDI validation", "",
             f"Generated by `python benchmarks/validate.py{' --quick' if quick else ''}` "
             f"(torch {torch.__version__}, CPU). JEDI uses the package defaults "
             f"({describe(defaults)}); the RNN baselines share its rank, τ, noise, learning "
             "rate and budget. All numbers are on held-out test trials unless stated; nothing "
             "was tuned on them.",
             ""]
    if quick:
        lines += ["**Quick mode: tiny settings, numbers are meaningless.**", ""]
    if "synthetic" in results:
        r = results["synthetic"]
        cls, sp = r["classification"], r["spearman"]
        lines += [
            "## 1. Synthetic multitask teacher (sine, memorypro, dm; "
            f"N = {settings.n_units}, 24 conditions)", "",
            "| metric | value |", "|---|---|",
            f"| R² vs teacher trial rates, pooled over neurons | {_goal(r['r2_pooled'], 0.95)} |",
            f"| R² vs teacher trial rates, mean of per-neuron R² | "
            f"{_goal(r['r2_per_neuron'], 0.95)} |",
            f"| R² vs noiseless condition rates, pooled / per neuron | "
            f"{r['r2_clean_pooled']:.3f} / {r['r2_clean_per_neuron']:.3f} |",
            f"| same, with per-trial embeddings inferred from each test trial's spikes, "
            f"pooled / per neuron | {r['r2_inferred_pooled']:.3f} / "
            f"{r['r2_inferred_per_neuron']:.3f} |",
            "| R² per task (pooled) | " + ", ".join(f"{t} {v:.3f}" for t, v in
                                                   r["r2_per_task"].items()) + " |",
            "| the PSTHs' R² vs teacher trial rates, pooled | " + ", ".join(
                f"{name} {v:.3f}" for name, v in r["psth_r2"].items()) + " |",
            f"| held-out bits/spike | {r['bps']:.3f} |",
            f"| condition from label-free per-trial embeddings, nearest training embedding | "
            f"{_goal(cls['nearest_training'], 0.99)} (chance {cls['chance']:.3f}) |",
            "| same, per task | " + ", ".join(f"{t} {v:.3f}" for t, v in
                                              cls["per_task"].items()) + " |",
            f"| same, 5-fold CV nearest centroid among test trials | {cls['cv_centroid']:.3f} |",
            f"| condition whose JEDI network explains the trial best (likelihood, no embedding "
            f"inferred) | {cls['likeliest_condition']:.3f} |",
            f"| same with the teacher's noiseless condition rates (the ceiling of classifying "
            f"by likelihood) | {cls['teacher_likeliest_condition']:.3f} |",
            f"| task from per-trial embeddings | {cls['task_accuracy']:.3f} |",
            f"| Spearman(freq, max |Im λ| of J_c) | {_goal(sp['rho_max_imag'], 0.9)} |",
            f"| Spearman(freq, |Im λ| of J_c's largest-modulus λ) | "
            f"{_goal(sp['rho_leading'], 0.9)} |",
        ]
        st = r["stability"]
        lines += [
            f"| Spearman(freq, oscillation frequency of the step Jacobian DF along the "
            f"trajectory) | {_goal(sp['rho_step_jacobian'], 0.9)} |",
            f"| J's leading \\|λ\\| (its stability boundary is Re λ = 1, not the unit circle) | "
            f"{st['J_leading_modulus'].min():.2f} to {st['J_leading_modulus'].max():.2f}; "
            f"largest Re λ {st['J_max_real'].max():.2f} |",
            f"| spectral radius of DF along the trajectories (boundary: the unit circle) | "
            f"{st['DF_max_radius'].min():.3f} to {st['DF_max_radius'].max():.3f}; inside "
            f"at every step in {int(st['DF_inside_unit_circle'].sum())} of {len(st)} "
            f"conditions |",
        ]
        if "rho_fixed_point" in sp:
            lines.append(f"| Spearman(freq, oscillation frequency at JEDI's fixed point) | "
                         f"{sp['rho_fixed_point']:.3f} |")
        seeds = r["seeds"]
        lines.append(f"| over JEDI seeds {list(seeds['seed'])} (same data), mean ± sd: R² "
                     f"pooled; classification, nearest training embedding and likeliest "
                     f"condition; Spearman max \\|Im λ\\|, leading, step Jacobian | "
                     + "; ".join(mean_sd(seeds[k]) for k in ("r2_pooled", *SEED_CLASSIFICATION,
                                                             *SEED_SPEARMAN))
                     + " |")
        lines += [f"| epochs / wall time (all seeds) | {r['epochs']} / {r['seconds']:.0f} s |",
                  "",
                  "Fixed points under the static sine input (teacher) and of each sine "
                  "condition's RNN (JEDI), matched by the Hungarian algorithm on the Euclidean "
                  "distance between the recorded neurons' firing rates at the fixed points. "
                  "`distance_over_spread`: matched distance / RMS distance of the teacher's "
                  "rate trajectory from its mean; `teacher_fp_to_mean_over_spread`: the same "
                  "for the distance from the teacher's fixed point to its mean rate (what "
                  "guessing 'the centre of the trajectory' would score). Unstable modes and "
                  "frequencies from the continuous-time Jacobian s = (λ − 1)/Δt.", "",
                  markdown_table(r["fixed_points"], ".2f"), ""]
    if "reaching" in results:
        r = results["reaching"]
        t = r["table"]
        agg = t.groupby("model", sort=False).agg(
            {c: (lambda v: mean_sd(v)) for c in ("bps", "psth_r2_smoothed", "r2", "co_bps")})
        if "co_bps_per_trial" in t:
            per_trial = t.dropna(subset=["co_bps_per_trial"]).groupby("model", sort=False)[
                "co_bps_per_trial"].agg(mean_sd)
            agg["co_bps_per_trial"] = per_trial.reindex(agg.index).fillna("—")
        fs = r["fewshot"].groupby("model", sort=False).agg(
            {"fewshot_bps": mean_sd, "fewshot_psth_r2_smoothed": mean_sd})
        agg = agg.join(fs, how="outer").reindex(  # few-shot-only rows (NearestConditionPSTH)
            [*agg.index, *fs.index.difference(agg.index)]).fillna("—").reset_index()
        lines += ["## 2. Monkey PMd reaching (Yu et al. 2009; 7 targets, 61 units, 20 ms bins)",
                  "",
                  f"Mean ± sd over seeds {list(settings.seeds)} (model seeds and held-out "
                  "neuron draws; the dataset's fixed split). `bps`: bits/spike on test trials; "
                  "`co_bps`: co-smoothing bits/spike of 20% held-out neurons (JEDI: embeddings "
                  "inferred from held-in neurons; `co_bps_per_trial` also infers each test "
                  "trial's own contexts (initial state, inputs) from them; "
                  "SmoothingGLM (NLB's smoothing baseline) and PSTHResidualGLM read the test "
                  "trials' held-in neurons too; the PSTH and RNN baselines predict from the "
                  "condition); `psth_r2_smoothed`: the package's own PSTH R² (not NLB's); "
                  f"`fewshot_*`: leave-one-condition-out, {settings.shots} trials of the unseen "
                  "condition, scored on its other trials, pooled over conditions "
                  "(NearestConditionPSTH: the PSTH of the training condition that best explains "
                  "the shots).", "",
                  markdown_table(agg), ""]
        lines += reaching_report(r, settings)
    if "memorypro_phases" in results:
        lines += ["## 3. Phases", "",
                  "memorypro (synthetic, ground truth): one JEDI context per (angle, phase "
                  "window of 200 ms). Columns: mean over the window's states and over angles "
                  "of the 3 continuous-time Jacobian modes with the largest real part "
                  "(`top3_re`, 1/s; `top3_hz` = |Im s|/2π), teacher vs JEDI; and JEDI's "
                  "J eigenvalues.", "",
                  markdown_table(results["memorypro_phases"]), ""]
    if "reaching_phases" in results:
        t = results["reaching_phases"]
        agg = t.groupby("phase", sort=False).agg(mean_sd).drop(columns="seed").reset_index()
        lines += [f"Reaching whole trials (ex2, 2 targets x 56): early = first "
                  f"{REACHING_PHASE_MS} ms after target onset, late = last {REACHING_PHASE_MS} "
                  "ms of the trial (through the movement per the source; no go-cue or "
                  "movement-onset times exist). J spectrum summary and Jacobian modes, mean "
                  "± sd over seeds.", "", markdown_table(agg), ""]
    if "single" in results:
        lines += single_trial_report(results["single"], settings)
    lines += flat_fit_report(results)
    if "reaching" in results:  # every seed's numbers, for anyone checking the means
        raw = results["reaching"]["table"].merge(results["reaching"]["fewshot"],
                                                 on=["model", "seed"], how="outer")
        atomic_write_text(out / "reaching_seeds.csv", raw.to_csv(index=False))
    path = out / "validation.md"
    atomic_write_text(path, "\n".join(lines))
    return path


if __name__ == "__main__":
    sys.exit(main())
