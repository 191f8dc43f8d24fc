# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 4. Sharing models: fit once, apply to other recordings of the same neurons
#
# A JEDI fit written by `nwb_jedi` is an ordinary NWB file: the model's parameters are plain
# arrays next to the data they describe, readable with any HDF5 tool and loaded without
# unpickling or running code. A colleague can load the model and apply it to *other* trials of
# the same neurons (another block, another day of a chronic array): the hypernetwork and readout
# stay fixed and only the new conditions' embeddings are inferred. Where the new embeddings
# land, relative to the known ones, says which known conditions the new data resemble.
#
# Here the "other session" is the second block of the embedded PMd recording (`ex2_whole`:
# reaches to targets 1 and 2, recorded separately from the 7-target `ex1_delay` block that the
# model is fitted on). From a terminal the same steps are
#
# ```bash
# nwb-jedi fit --out shared.nwb
# nwb-jedi predict shared.nwb OTHER_SESSION.nwb --out other_jedi.nwb   # + mapper flags
# ```
#
# Figures go to `$NWB_JEDI_TUTORIAL_OUT`; `NWB_JEDI_TUTORIAL_FAST=1` uses small settings.

# %%
import os
import warnings
from pathlib import Path

import numpy as np

import nwb_jedi
from nwb_jedi import JEDI, datasets
from nwb_jedi.analysis import plots
from nwb_jedi.analysis.embedding import trial_embeddings
from nwb_jedi.errors import FitQualityWarning
from nwb_jedi.model.results import compute_results

FAST = os.environ.get("NWB_JEDI_TUTORIAL_FAST", "0") == "1"
OUT = Path(os.environ.get("NWB_JEDI_TUTORIAL_OUT", "tutorial_output")) / "04_sharing"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The author: fit and write the model into NWB

# %%
session = nwb_jedi.read_session(datasets.reaching_path())
ds = datasets.reaching_mapper(seed=0).build(session)
author_model = JEDI(rank=4, hidden=32 if FAST else 128, max_epochs=30 if FAST else 500,
                    seed=0).fit(ds.train, ds.val)
# The results are computed once; a fit no better than a trivial baseline raises a
# FitQualityWarning, printed here next to the numbers it is about.
with warnings.catch_warnings(record=True):
    warnings.simplefilter("always", FitQualityWarning)
    author_results = compute_results(author_model, ds)
held = author_results.metrics["test"]
print(f"author's fit, held-out trials: bits/spike {held['bits_per_spike']:.3f} (smoothed PSTH "
      f"of the training trials: {held['psth_baseline_bits_per_spike']:.3f})")
for line in author_results.warnings:
    print(f"warning: {line}")
shared = nwb_jedi.write_results(author_model, ds, OUT / "shared_model.nwb", source=session,
                                overwrite=True, results=author_results)
print(f"shared {shared}")

# %% [markdown]
# On this short delay-period window a smoothed PSTH is a strong baseline: the README's
# validation finds JEDI and the PSTH within about 0.005 bits/spike of each other over seeds.
# This rank-4 fit lands about 0.01 below it (with the full settings), more than two standard
# errors of the trial-by-trial difference, and the warning says so with the likely cause.

# %% [markdown]
# ## The colleague: load the model from the file alone
#
# `nwb-jedi show shared_model.nwb` prints what is inside; `load_model` rebuilds it.

# %%
model = nwb_jedi.load_model(shared)
print(model.conditions_)

# %% [markdown]
# ## Apply it to the other block
#
# The other block must have the same neurons (same unit ids) and the same bin size; its
# conditions may be new or known. `infer_embeddings` fits one embedding per condition of the
# new data with everything else frozen, and returns a model for those conditions.
# (`nwb-jedi predict` also checks that the units are the model's neurons: same subject and
# session, or the same recording sites; here it is the same session.)

# %%
other = datasets.reaching_mapper(trial_filter={"subset": "ex2_whole"}, seed=0).build(session)
print(other)
applied = model.infer_embeddings(other.train, val=other.val,
                                 max_epochs=30 if FAST else 300)

# %% [markdown]
# ## What the numbers mean
#
# A score means something only next to what a trivial model gets on the same trials:
#
# - **bits/spike** (NLB) is the log-likelihood gain, per spike, over predicting each neuron's
#   mean rate on the scored trials: 0 is no better than that, below 0 is worse;
# - the **smoothed PSTH of the other block's own training trials** (`PSTHBaseline`) is what
#   any model of these conditions should at least match on their held-out trials;
# - **PSTH R²** compares condition-averaged rates: below 0, the model's averages are further
#   from the data's than the data's own mean over time and conditions.
#
# `compute_results` scores every split once, adds the PSTH comparison to the held-out one
# and raises a `FitQualityWarning` (one line: what, likely cause, what to try) when the
# model is no better than either baseline; `nwb-jedi show` prints the same line from the file.
# Recording which model was applied (a provenance extra) makes it judge a transfer as one.

# %%
other.provenance = other.provenance.with_extras(
    applied_model={"file": str(shared), "session_id": session.metadata.get("session_id")})
with warnings.catch_warnings(record=True):  # printed below, with the numbers they are about
    warnings.simplefilter("always", FitQualityWarning)
    results = compute_results(applied, other)
test, train = results.metrics["test"], results.metrics["train"]
print(f"other block, held-out trials: bits/spike {test['bits_per_spike']:.3f} (smoothed PSTH "
      f"of its training trials: {test['psth_baseline_bits_per_spike']:.3f}), PSTH R² (smoothed) "
      f"{test['psth_r2_smoothed']:.3f}")
print(f"other block, the training trials the embeddings were inferred from: bits/spike "
      f"{train['bits_per_spike']:.3f}")
for line in results.warnings:
    print(f"warning: {line}")

# Are these the model's neurons? Their mean rates in the two blocks, neuron by neuron.
rate_fitted = ds.counts.mean(axis=(0, 1)) / ds.bin_size
rate_other = other.counts.mean(axis=(0, 1)) / other.bin_size
print(f"per-neuron mean rates, fitted block vs other block: correlation "
      f"{np.corrcoef(rate_fitted, rate_other)[0, 1]:.2f}, mean {rate_fitted.mean():.1f} vs "
      f"{rate_other.mean():.1f} Hz")

# %% [markdown]
# Here the transfer fails, and the numbers say so. With the full settings the held-out
# bits/spike is −0.120 and the PSTH R² −1.249, while the PSTH of the other block's own
# training trials reaches +0.234 bits/spike on the same trials; the trials the embeddings
# were fitted to score below 0 as well (−0.108), so this is not overfitting. The neurons are
# plausibly the same (their mean rates correlate across blocks, 0.83), but the blocks are two
# different recordings of the task (DataHigh's `ex1` and `ex2` files): in `ex1_delay` the
# window 100-500 ms after target onset is the delay period, where the network learnt its
# dynamics; `ex2_whole` holds whole trials from target onset through the movement, recorded
# separately, whose delays the file does not give and whose targets are not known to be
# `ex1`'s, so the same window need not hold the same part of the task (its PSTHs below peak
# where `ex1`'s do not). A new embedding moves the network among the dynamics it knows; it
# cannot learn new ones. What to try: fit a model on the other block itself (`nwb-jedi fit`
# with `--trial-filter "subset == 'ex2_whole'"`), or one model on both blocks, and compare
# held-out scores with the same baselines. A shared model transfers where the new data visit
# dynamics it has seen: other trials of the same conditions, or new conditions of the same
# task (the few-shot numbers in the README).

# %% [markdown]
# ## Compare the embeddings
#
# Distances from each new embedding to every known one (rows: other block; columns: the
# fitted model's conditions). If the two blocks' reaches to the same target engage the same
# dynamics, the nearest known embedding is that target's.

# %%
known = np.asarray(model.embeddings_)
new = np.asarray(applied.embeddings_)
dist = np.linalg.norm(new[:, None] - known[None], axis=-1)
known_labels = list(model.conditions_["label"])
for label, row in zip(applied.conditions_["label"], dist, strict=True):
    order = np.argsort(row)
    print(f"{label} (other block) nearest known: "
          + ", ".join(f"{known_labels[i]} ({row[i]:.2f})" for i in order[:3]))

# Per-trial embeddings of the other block, on the known conditions' principal axes.
per_trial = trial_embeddings(model, other.test, max_epochs=20 if FAST else 200)
plots.plot_embeddings(model, OUT / "embeddings_other_session.png", embeddings=per_trial,
                      labels=[f"{lab} (other)" for lab in other.test.condition_labels])
test_trials = other.split == "test"
plots.plot_psth(results.rates[test_trials], other.subset(test_trials),
                OUT / "psth_other_session.png")

# %% [markdown]
# ## Write the application as its own NWB file
#
# `write_results` records the applied model (the shared network plus the new embeddings) with
# the other block's data and the results computed above (scores and baseline included), so the
# whole chain stays reproducible and `nwb-jedi show` repeats the warning.

# %%
path = nwb_jedi.write_results(applied, other, OUT / "other_block_jedi.nwb", source=session,
                              overwrite=True, results=results)
print(f"wrote {path}")
