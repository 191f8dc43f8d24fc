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
from pathlib import Path

import numpy as np

import nwb_jedi
from nwb_jedi import JEDI, datasets
from nwb_jedi.analysis import plots
from nwb_jedi.analysis.embedding import trial_embeddings

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
shared = nwb_jedi.write_results(author_model, ds, OUT / "shared_model.nwb", source=session,
                                overwrite=True)
print(f"shared {shared}")

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

# %%
other = datasets.reaching_mapper(trial_filter={"subset": "ex2_whole"}, seed=0).build(session)
print(other)
applied = model.infer_embeddings(other.train, val=other.val,
                                 max_epochs=30 if FAST else 300)
scores = applied.evaluate(other.test)
print(f"other block, held-out trials: bits/spike {scores['bits_per_spike']:.3f}, "
      f"PSTH R² (smoothed) {scores['psth_r2_smoothed']:.3f}")

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
plots.plot_psth(applied.predict_rates(other.test), other.test, OUT / "psth_other_session.png")

# %% [markdown]
# ## Write the application as its own NWB file
#
# `write_results` records the applied model (the shared network plus the new embeddings) with
# the other block's data, so the whole chain stays reproducible.

# %%
path = nwb_jedi.write_results(applied, other, OUT / "other_block_jedi.nwb", source=session,
                              overwrite=True, metrics={"test": scores})
print(f"wrote {path}")
