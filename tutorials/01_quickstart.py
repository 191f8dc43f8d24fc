# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 1. Quick start: one model for all reach targets
#
# `nwb_jedi` ships a small real dataset: 61 neurons recorded in monkey dorsal premotor cortex
# (PMd) while the monkey prepared reaches to 7 targets (Yu et al. 2009, via DataHigh). It is an
# ordinary NWB file, so everything below works the same on your own files.
#
# JEDI fits **one** model to all conditions at once: each condition (here: each reach
# target) gets a small learned *embedding*; a hypernetwork turns the embedding into the weights
# of a low-rank recurrent network whose units are the recorded neurons. Similar conditions end
# up with similar embeddings, and each condition's network can be analysed like any dynamical
# system.
#
# This script writes its figures to `$NWB_JEDI_TUTORIAL_OUT` (default `tutorial_output/`).
# Set `NWB_JEDI_TUTORIAL_FAST=1` for a quick run with small settings (used by the tests).

# %%
import os
from pathlib import Path

import numpy as np

import nwb_jedi
from nwb_jedi import JEDI, ConditionMapper, datasets
from nwb_jedi.analysis import plots
from nwb_jedi.analysis.spectra import condition_spectra
from nwb_jedi.data.presets import preset

FAST = os.environ.get("NWB_JEDI_TUTORIAL_FAST", "0") == "1"
OUT = Path(os.environ.get("NWB_JEDI_TUTORIAL_OUT", "tutorial_output")) / "01_quickstart"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Read the session and map trials to conditions
#
# `read_session` reads the units, the trials table and behavior of any NWB file (a path, a
# DANDI id or a DANDI URL). A `ConditionMapper` says which trials-table column defines the
# conditions, which event to align on and which window to keep. The `yu2009` preset holds the
# settings of the embedded data: condition = `reach_target`, the 400 ms of the delay period
# (100-500 ms after target onset), 20 ms bins.

# %%
session = nwb_jedi.read_session(datasets.reaching_path())
print(preset("yu2009"))
mapper = ConditionMapper(**preset("yu2009"), seed=0)
ds = mapper.build(session)
print(ds)

# %% [markdown]
# ## Fit
#
# Trials are split into train / validation / test (stratified by condition). Training stops
# early when the validation loss stops improving.

# %%
model = JEDI(rank=4, embed_dim=8, hidden=32 if FAST else 128,
             max_epochs=30 if FAST else 500, seed=0)
model.fit(ds.train, ds.val)
scores = model.evaluate(ds.test)
print(f"{model.n_epochs_} epochs; held-out bits/spike {scores['bits_per_spike']:.3f}, "
      f"PSTH R² (smoothed) {scores['psth_r2_smoothed']:.3f}")

# %% [markdown]
# ## Look at the embeddings and the dynamics
#
# Each point is one reach target's embedding (first two principal components). Each
# condition's connectivity `J` is low rank; its nonzero eigenvalues, drawn against the unit
# circle, summarise the condition's recurrent dynamics (close to 1: slow, persistent modes).
# The figure functions draw results computed beforehand (`condition_spectra(model)`,
# `model.predict_rates(ds.test)`), and take `ax=` to draw into axes of your own.

# %%
plots.plot_embeddings(model, OUT / "embeddings.png")
plots.plot_eigenvalues(condition_spectra(model), OUT / "eigenvalues.png")
plots.plot_psth(model.predict_rates(ds.test), ds.test, OUT / "psth.png")
plots.plot_training(model, OUT / "training.png")
for label in ds.conditions["label"][:3]:
    print(label, np.round(model.eigenvalues(label), 3))

# %% [markdown]
# ## Write everything into NWB and read it back
#
# `write_results` writes a new NWB file holding the session's metadata, the modelled units and
# trials, the fitted model (plain arrays, no pickle), predicted rates, embeddings and metrics.
# `load_model` rebuilds the model from that file alone — the way a colleague would use it.

# %%
path = OUT / "quickstart_jedi.nwb"
nwb_jedi.write_results(model, ds, path, source=session, overwrite=True,
                       metrics={"test": scores})
reloaded = nwb_jedi.load_model(path)
same = np.array_equal(reloaded.predict_rates(ds.test), model.predict_rates(ds.test))
print(f"wrote {path}; the reloaded model predicts identical rates: {same}")
assert same
