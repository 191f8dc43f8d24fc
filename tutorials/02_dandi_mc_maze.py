# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 2. Fitting a DANDI dataset: MC_Maze, streamed
#
# MC_Maze (DANDI:000128, Churchland, Kaufman et al.; the Neural Latents Benchmark release) holds
# 182 neurons from monkey motor and premotor cortex during ~2,300 reaches through 108
# maze conditions. `nwb_jedi` reads it straight from the archive: only the parts of the file
# that are needed (spike times, trials table) are streamed, and they are cached on disk so a
# second run does not download them again.
#
# The `mc_maze` preset holds the benchmark's settings: one condition per
# (`trial_type`, `trial_version`) pair, aligned on `move_onset_time`, −250…+450 ms, successful
# trials only, held-out neurons excluded. The same fit from a terminal is
#
# ```bash
# nwb-jedi fit DANDI:000128/0.220113.0400 --preset mc_maze --plots figures
# ```
#
# This script needs network access to dandiarchive.org. (The test suite runs it unchanged
# against a DANDI-compatible server on 127.0.0.1 serving a small synthetic file in the same
# layout, by setting `DANDI_API_URL`.) Figures go to `$NWB_JEDI_TUTORIAL_OUT`;
# `NWB_JEDI_TUTORIAL_FAST=1` uses small settings.

# %%
import os
from pathlib import Path

import nwb_jedi
from nwb_jedi import JEDI, ConditionMapper
from nwb_jedi.analysis import plots
from nwb_jedi.analysis.spectra import condition_spectra
from nwb_jedi.data.presets import preset

FAST = os.environ.get("NWB_JEDI_TUTORIAL_FAST", "0") == "1"
OUT = Path(os.environ.get("NWB_JEDI_TUTORIAL_OUT", "tutorial_output")) / "02_dandi_mc_maze"
OUT.mkdir(parents=True, exist_ok=True)

SOURCE = "DANDI:000128/0.220113.0400"  # dandiset 000128, published version 0.220113.0400
ASSET = "sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"

# %% [markdown]
# ## Stream the session
#
# A DANDI source is a dandiset id with a version (pin the version: the draft can change).
# A dandiset with several files needs the asset's path inside it.

# %%
session = nwb_jedi.read_session(SOURCE, asset=ASSET)
print(session)

# %% [markdown]
# ## Map trials to conditions with the preset, and fit
#
# Explicit settings override the preset, e.g. `ConditionMapper(**{**preset("mc_maze"),
# "window": (-0.2, 0.5)})`.

# %%
mapper = ConditionMapper(**preset("mc_maze"), seed=0)
ds = mapper.build(session)
print(ds)

model = JEDI(rank=6, embed_dim=8, hidden=32 if FAST else 128,
             max_epochs=20 if FAST else 500, seed=0)
model.fit(ds.train, ds.val)
scores = model.evaluate(ds.test)
print(f"held-out trials: bits/spike {scores['bits_per_spike']:.3f}, "
      f"PSTH R² (smoothed) {scores['psth_r2_smoothed']:.3f}, "
      f"single-trial R² {scores['r2']:.3f}")

# %% [markdown]
# ## Figures
#
# Embeddings coloured by maze (`trial_type`): conditions in the same maze share targets and
# barriers, so their dynamics, and embeddings, tend to be close.

# %%
plots.plot_embeddings(model, OUT / "embeddings.png", color_by="trial_type",
                      annotate=len(model.conditions_) <= 20)
plots.plot_psth(model.predict_rates(ds.test), ds.test, OUT / "psth.png")
plots.plot_eigenvalues(condition_spectra(model, conditions=list(model.conditions_["label"][:8])),
                       OUT / "eigenvalues.png")

# %% [markdown]
# ## Share the fit
#
# The derived NWB file keeps the session's metadata and a link to its source, so anyone can
# `nwb-jedi show` it, `load_model` it, or upload it to DANDI next to the raw data.

# %%
path = nwb_jedi.write_results(model, ds, OUT / "mc_maze_jedi.nwb", source=session,
                              overwrite=True, metrics={"test": scores})
print(f"wrote {path}")
