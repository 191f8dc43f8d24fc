# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 3. Synthetic ground truth: does JEDI recover the dynamics that made the spikes?
#
# With real recordings we never know the true dynamics. Here we make data where we do: a
# *teacher* recurrent network is trained on two cognitive tasks (`sine`: produce a sine wave
# of a cued frequency; `memorypro`: remember a direction through a delay, then report it),
# and its units become our "recorded neurons" with Poisson spikes. Each (task, value) pair is
# a condition. We then fit JEDI to the spikes alone and compare what it learned with the
# teacher:
#
# 1. firing rates: JEDI's predicted rates vs the teacher's true (noiseless) rates;
# 2. local dynamics: eigenvalues of the Jacobian along each condition's trajectory;
# 3. fixed points and their stability.
#
# The same data can be written as an NWB file with `nwb-jedi simulate --tasks sine,memorypro
# --out synthetic.nwb` and fitted with `nwb-jedi fit synthetic.nwb --preset mc_maze --window
# -0.25,0.75`. Figures go to `$NWB_JEDI_TUTORIAL_OUT`; `NWB_JEDI_TUTORIAL_FAST=1` uses a small,
# briefly trained teacher (then the numbers are only a smoke test).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from nwb_jedi import (
    JEDI,  # noqa: E402
    metrics,  # noqa: E402
)
from nwb_jedi.analysis.dynamics import autograd_jacobian  # noqa: E402
from nwb_jedi.analysis.fixedpoints import find_fixed_points, fixed_points  # noqa: E402
from nwb_jedi.analysis.spectra import jacobian_spectrum  # noqa: E402
from nwb_jedi.synthetic import get_teacher, make_dataset  # noqa: E402

FAST = os.environ.get("NWB_JEDI_TUTORIAL_FAST", "0") == "1"
OUT = Path(os.environ.get("NWB_JEDI_TUTORIAL_OUT", "tutorial_output")) / "03_synthetic"
OUT.mkdir(parents=True, exist_ok=True)
TASKS = ("sine", "memorypro")
N_UNITS = 40 if FAST else 100
TEACHER = {"max_iters": 60} if FAST else {}

# %% [markdown]
# ## Make the data
#
# `make_dataset` trains the teacher once (it is cached on disk) and returns a `TrialDataset`
# whose `ground_truth` holds the teacher's weights and true rates.

# %%
teacher = get_teacher(TASKS, n_units=N_UNITS, seed=0, **TEACHER)
ds = make_dataset(TASKS, trials_per_condition=6 if FAST else 20, seed=0, teacher=teacher)
gt = ds.ground_truth
print(ds)
print("teacher solves:", teacher.info["performance"])

# %% [markdown]
# ## Fit JEDI to the spikes

# %%
model = JEDI(rank=5, embed_dim=8, hidden=32 if FAST else 128,
             max_epochs=40 if FAST else 500, seed=0)
model.fit(ds.train, ds.val)
test = ds.test
rates = model.predict_rates(test)
r2 = metrics.rate_r2(rates, test.ground_truth["trial_rates"])
print(f"held-out trials: R² of predicted vs true rates = {r2:.3f}")

# %% [markdown]
# ## 1. Rates: recovered vs true
#
# Solid: the teacher's noiseless rate for a condition; dashed: JEDI's prediction for the same
# condition (averaged over its held-out trials).

# %%
labels = list(ds.conditions["label"])
show = [labels.index(lab) for lab in ("sine/2.0", "memorypro/90.0") if lab in labels]
neurons = np.argsort(-gt["rates"].mean(axis=(0, 1)))[:3]
fig, axes = plt.subplots(1, len(neurons), figsize=(4 * len(neurons), 3), squeeze=False)
for ax, n in zip(axes[0], neurons, strict=True):
    for color, c in zip(("C0", "C3"), show, strict=False):
        sel = test.condition == c
        ax.plot(ds.time, gt["rates"][c, :, n], color=color, label=f"{labels[c]} true")
        if sel.any():
            ax.plot(ds.time, rates[sel, :, n].mean(0), color=color, ls="--",
                    label=f"{labels[c]} JEDI")
    ax.set_title(f"neuron {n}")
    ax.set_xlabel("time (s)")
axes[0, 0].set_ylabel("rate (Hz)")
axes[0, 0].legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "rates_true_vs_recovered.png", dpi=110)
plt.close(fig)

# %% [markdown]
# ## 2. Local dynamics: Jacobian eigenvalues along each condition's trajectory
#
# The teacher steps every 10 ms; JEDI every 20 ms bin. So we compare the largest eigenvalue
# modulus of the Jacobian of one *bin* of each: for the teacher, the product of the Jacobians
# of its two 10 ms steps, along its noiseless trajectory under the condition's inputs; for
# JEDI, its condition's map along its own noiseless trajectory. A modulus near 1 means a slow,
# persistent direction; below 1, decay; above 1, local expansion.

# %%
W = teacher.W.astype(np.float64)
alpha = teacher.alpha
steps_per_bin = int(round(ds.bin_size / teacher.dt))
mt = teacher.multitask  # re-run the teacher at its own 10 ms resolution
conds = list(zip(gt["condition_task"], gt["condition_value"], strict=True))
step_inputs, _, _ = mt.batch(conds, teacher.dt, ds.n_bins * ds.bin_size)
states, _ = teacher.run(step_inputs)  # (C, T_steps, N), state after each step


def teacher_bin_radius(c: int) -> np.ndarray:
    """Largest |eigenvalue| of the teacher's 20 ms map along condition c, per bin."""
    x_prev = np.vstack([np.zeros((1, teacher.n_units)), states[c, :-1]]).astype(np.float64)
    eye = np.eye(teacher.n_units)
    radius = []
    for j in range(ds.n_bins):
        jac = eye
        for s in range(j * steps_per_bin, (j + 1) * steps_per_bin):
            step_jac = (1 - alpha) * eye + alpha * W * (1 - np.tanh(x_prev[s]) ** 2)[None, :]
            jac = step_jac @ jac
        radius.append(np.abs(np.linalg.eigvals(jac)).max())
    return np.asarray(radius)


teacher_radius = np.array([teacher_bin_radius(c) for c in range(len(labels))])
model_radius = np.array([np.abs(jacobian_spectrum(model, c, n_steps=ds.n_bins).eigenvalues)
                         .max(axis=1) for c in range(len(labels))])
corr = np.corrcoef(teacher_radius.ravel(), model_radius.ravel())[0, 1]
print(f"spectral radius along trajectories: teacher {teacher_radius.mean():.3f}, "
      f"JEDI {model_radius.mean():.3f} (mean); correlation over conditions x bins {corr:.2f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for color, c in zip(("C0", "C3"), show, strict=False):
    axes[0].plot(ds.time, teacher_radius[c], color=color, label=f"{labels[c]} teacher")
    axes[0].plot(ds.time, model_radius[c], color=color, ls="--", label=f"{labels[c]} JEDI")
axes[0].set_xlabel("time (s)")
axes[0].set_ylabel("largest |eigenvalue| (20 ms map)")
axes[0].legend(fontsize=7)
axes[1].scatter(teacher_radius.ravel(), model_radius.ravel(), s=6, alpha=0.5)
lims = [min(teacher_radius.min(), model_radius.min()), max(teacher_radius.max(),
                                                           model_radius.max())]
axes[1].plot(lims, lims, color="0.6", lw=1)
axes[1].set_xlabel("teacher")
axes[1].set_ylabel("JEDI")
axes[1].set_title(f"all conditions and bins (r = {corr:.2f})", fontsize=9)
fig.tight_layout()
fig.savefig(OUT / "jacobian_radius_teacher_vs_jedi.png", dpi=110)
plt.close(fig)

# %% [markdown]
# ## 3. Fixed points
#
# The teacher is driven by inputs that change within a trial; JEDI gives each condition an
# autonomous network. We compare the teacher under the (static) input of the condition's
# *last* time step — the response period — with JEDI's network for that condition: how many
# fixed points, their stability, and the eigenvalues of the 20 ms map at them. This is an
# approximate comparison: JEDI's autonomous network summarises the whole trial.

# %%
def teacher_bin_step(u):
    step = teacher.step_fn(u)

    def bin_step(x: torch.Tensor) -> torch.Tensor:
        for _ in range(steps_per_bin):
            x = step(x.to(torch.float32)).to(torch.float64)
        return x

    return bin_step


rng = np.random.default_rng(0)
rows = []
fig, axes = plt.subplots(1, len(show), figsize=(4 * len(show), 3.6), squeeze=False)
theta = np.linspace(0, 2 * np.pi, 200)
for ax, c in zip(axes[0], show, strict=True):
    step = teacher_bin_step(step_inputs[c, -1])
    init = states[c][rng.integers(0, states.shape[1], 64)] + 0.1 * rng.standard_normal(
        (64, teacher.n_units))
    found_teacher = find_fixed_points(step, init, jacobian=autograd_jacobian(step), tol=1e-8)
    found_model = fixed_points(model, c, n_initial=64, n_steps=ds.n_bins)
    for name, found, color in (("teacher", found_teacher, "k"), ("JEDI", found_model, "C3")):
        kinds = {k: int(np.sum(found.stability == k)) for k in ("stable", "saddle", "unstable")}
        rows.append((labels[c], name, len(found), kinds))
        if len(found):
            ev = found.eigenvalues[0]
            ax.scatter(ev.real, ev.imag, s=12, color=color, alpha=0.7,
                       label=f"{name}: {len(found)} fixed point(s)")
    ax.plot(np.cos(theta), np.sin(theta), color="0.7", lw=0.8)
    ax.set_aspect("equal")
    ax.set_title(f"{labels[c]}: eigenvalues at the slowest fixed point", fontsize=8)
    ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "fixed_points_teacher_vs_jedi.png", dpi=110)
plt.close(fig)
for label, name, n, kinds in rows:
    print(f"{label:16s} {name:8s} {n} fixed point(s): {kinds}")
