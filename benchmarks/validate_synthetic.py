"""Validate JEDI against synthetic ground truth (the paper's teacher-RNN experiment).

Fits JEDI to a multi-task synthetic dataset (one N = 200 teacher trained jointly on sine,
memorypro and dm; 24 conditions) and prints:

1. held-out trial R² of predicted vs teacher rates (paper: > 0.94), against the rates each
   held-out trial's spikes were drawn from and against the noiseless condition rates;
2. accuracy of classifying the condition of *held-out trials* from embeddings. JEDI's fitted
   ``embeddings_`` hold one vector per condition, so classifying them would be trivial. Instead
   every held-out trial is given its own label (its trial id, so no condition information goes
   in), and ``infer_embeddings`` fits one embedding per trial from its spikes alone, with the
   network frozen (`nwb_jedi.analysis.embedding.trial_embeddings`). Those per-trial embeddings
   are then classified (a) by the nearest training condition embedding and (b) by
   leave-one-out nearest-centroid among the held-out trials;
3. Spearman correlation between sine frequency and |Im λ| of the leading eigenvalue (largest
   modulus) of each sine condition's J (paper: imaginary parts grow with frequency), and also
   with the largest |Im λ| of the spectrum;
4. wall times.

Run: ``python benchmarks/validate_synthetic.py [--quick]`` (teacher is cached after the first
run; ``--quick`` uses fewer epochs for a smoke test).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nwb_jedi import JEDI
from nwb_jedi.analysis.embedding import classify_embeddings, nearest_embedding, trial_embeddings
from nwb_jedi.analysis.ground_truth import sine_spearman
from nwb_jedi.metrics import pooled_r2, rate_r2
from nwb_jedi.synthetic import get_teacher, make_dataset

TASKS = ("sine", "memorypro", "dm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke test)")
    parser.add_argument("--n-units", type=int, default=200)
    parser.add_argument("--trials", type=int, default=20, help="trials per condition")
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    epochs = 20 if args.quick else args.epochs

    t0 = time.perf_counter()
    teacher = get_teacher(TASKS, n_units=args.n_units, seed=0)
    t_teacher = time.perf_counter() - t0
    print(f"teacher: N={teacher.n_units}, rank {teacher.rank}, g={teacher.g}, "
          f"{'cached' if teacher.from_cache else 'trained'} ({t_teacher:.1f} s); "
          f"final loss {teacher.info['final_loss']:.4f} after {teacher.info['iterations']} "
          f"iterations; performance {teacher.info['performance']}")
    ds = make_dataset(TASKS, trials_per_condition=args.trials, seed=args.seed, teacher=teacher)
    print(ds)
    gt = ds.ground_truth

    t1 = time.perf_counter()
    model = JEDI(lr=1e-2, embed_lr=3e-2, max_epochs=epochs, patience=60, device="cpu",
                 seed=args.seed).fit(ds.train, ds.val)
    t_fit = time.perf_counter() - t1
    print(f"JEDI fit: {model.n_epochs_} epochs, {t_fit:.1f} s")

    test = ds.test
    pred = model.predict_rates(test)
    true_trial = test.ground_truth["trial_rates"]
    true_clean = gt["rates"][test.condition]
    task_of = test.ground_truth["trial_task"]
    print("held-out R² of predicted vs teacher rates (paper > 0.94), pooled over neurons / "
          "mean of per-neuron R²:")
    print(f"  vs the rates each trial's spikes were drawn from: {pooled_r2(pred, true_trial):.3f}"
          f" / {rate_r2(pred, true_trial):.3f}")
    print(f"  vs noiseless condition rates: {pooled_r2(pred, true_clean):.3f} / "
          f"{rate_r2(pred, true_clean):.3f}")
    print("  per task (pooled, vs trial rates): " + ", ".join(
        f"{task} {pooled_r2(pred[task_of == task], true_trial[task_of == task]):.3f}"
        for task in TASKS))
    print(f"score(test): {model.evaluate(test)}")

    t2 = time.perf_counter()
    trial_emb = trial_embeddings(model, test, max_epochs=max(epochs // 3, 10))
    t_infer = time.perf_counter() - t2
    truth = test.condition
    model_rows = {lab: i for i, lab in enumerate(model.conditions_["label"])}
    centroid_rows = [model_rows[lab] for lab in ds.conditions["label"]]
    nearest = nearest_embedding(trial_emb, model.embeddings_[centroid_rows])
    acc_nc = float(np.mean(nearest == truth))
    # Leave-one-out: as many folds as trials.
    acc_loo = classify_embeddings(trial_emb, truth, cv=len(truth))["accuracy"]
    task_truth = np.array([ds.conditions["task"].iloc[c] for c in truth])
    task_pred = np.array([ds.conditions["task"].iloc[c] for c in nearest])
    chance = 1 / ds.n_conditions
    print(f"condition from label-free per-trial embeddings of {test.n_trials} held-out trials "
          f"({t_infer:.1f} s to infer): nearest training embedding {acc_nc:.3f}, "
          f"leave-one-out nearest centroid {acc_loo:.3f} (chance {chance:.3f}); task "
          f"accuracy {np.mean(task_pred == task_truth):.3f}")

    sine = sine_spearman(model)
    print("sine frequency vs |Im λ| of leading eigenvalue: "
          + ", ".join(f"{f:g} Hz: {v:.3f}" for f, v in zip(sine["frequencies"],
                                                            sine["leading_abs_imag"],
                                                            strict=True)))
    print(f"Spearman rho (leading) = {sine['rho_leading']:.3f} (p = {sine['p_leading']:.3g}); "
          f"with max |Im λ| = {sine['rho_max_imag']:.3f} (p = {sine['p_max_imag']:.3g})")
    print(f"wall time: total {time.perf_counter() - t0:.1f} s (teacher {t_teacher:.1f}, fit "
          f"{t_fit:.1f}, inference {t_infer:.1f})")


if __name__ == "__main__":
    main()
