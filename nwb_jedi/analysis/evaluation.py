"""Evaluation protocols that need a fitted model (the ones behind the README's numbers).

- `co_smoothing_bits_per_spike`, `co_smoothing`: Neural Latents Benchmark co-smoothing, the
  bits per spike of neurons the model's inference never saw.
- `few_shot`: leave-one-condition-out generalization from a few trials of an unseen condition.
- `classify_trials`: the condition of held-out trials from label-free per-trial embeddings.
- `trials_seen_in_training`: which trials of a dataset trained a model's network, so that a
  score never counts them.

Models are duck-typed: a model with ``infer_embeddings`` (JEDI) has a shared network that can
take new conditions or trials with the network frozen; any other model (the baselines of
`nwb_jedi.model.baselines`) is fitted per condition. The array-level metrics these protocols
report live in `nwb_jedi.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nwb_jedi.analysis.embedding import classify_embeddings, nearest_embedding, trial_embeddings
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.metrics import bits_per_spike, psth_r2_smoothed

__all__ = ["classify_trials", "co_smoothing", "co_smoothing_bits_per_spike", "few_shot",
           "trials_seen_in_training"]


def co_smoothing_bits_per_spike(model, ds, heldout: np.ndarray, *, per_trial: bool = False,
                                max_epochs: int | None = None) -> float:
    """Co-smoothing bits per spike (NLB protocol) of a fitted JEDI on the trials of `ds`.

    The model (fitted on training trials with all neurons) infers embeddings for `ds` from the
    held-in neurons only (``infer_embeddings(ds, unit_mask=~heldout)``: the network is frozen),
    then predicts every neuron; the score is the bits per spike of the held-out neurons, which
    the inference never saw.

    Parameters
    ----------
    model : fitted JEDI
    ds : TrialDataset
        Evaluation trials (held out from training).
    heldout : array of bool (N,)
        Neurons to score (see `heldout_unit_mask`).
    per_trial : bool
        Infer a per-trial embedding offset as well as the condition embeddings.
    max_epochs : int, optional
        Budget of the inference.
    """
    heldout = np.asarray(heldout, dtype=bool)
    if heldout.shape != (ds.n_units,) or not heldout.any() or heldout.all():
        raise ValueError("heldout must be a boolean mask over the neurons with at least one "
                         "held-out and one held-in neuron")
    inferred = model.infer_embeddings(ds, per_trial=per_trial, unit_mask=~heldout,
                                      max_epochs=max_epochs)
    rates = inferred.predict_rates(ds)
    return bits_per_spike(rates, ds.counts, ds.bin_size, units=heldout)


def co_smoothing(model, test: TrialDataset, heldout: np.ndarray, *,
                 max_epochs: int | None = None) -> dict[str, float]:
    """Bits/spike of the held-out neurons on test trials (NLB co-smoothing), for any model.

    A model with a shared network (``infer_embeddings``: JEDI) infers the test trials'
    embeddings from the held-in neurons only, per condition (``co_bps``) and per trial as well
    (``co_bps_per_trial``). Other models cannot use the held-in activity of new trials (their
    prediction is fixed by the condition), so theirs is the bits/spike of their prediction on
    the held-out neurons (``co_bps`` only).

    Parameters
    ----------
    model : fitted JEDI or baseline
    test : TrialDataset
        Trials none of the model's fitting saw.
    heldout : array of bool (N,)
        Neurons to score (see `nwb_jedi.metrics.heldout_unit_mask`).
    max_epochs : int, optional
        Budget of the inference.
    """
    heldout = np.asarray(heldout, dtype=bool)
    if not hasattr(model, "infer_embeddings"):
        return {"co_bps": bits_per_spike(model.predict_rates(test), test.counts, test.bin_size,
                                         units=heldout)}
    return {
        "co_bps": co_smoothing_bits_per_spike(model, test, heldout, max_epochs=max_epochs),
        "co_bps_per_trial": co_smoothing_bits_per_spike(model, test, heldout, per_trial=True,
                                                        max_epochs=max_epochs),
    }


# ---------------------------------------------------------------------- few-shot
def few_shot(ds: TrialDataset, models: Mapping[str, object], *, shots: int = 5, seed: int = 0,
             max_epochs: int | None = None) -> pd.DataFrame:
    """Leave-one-condition-out few-shot generalization.

    For each condition c with trials, `shots` of its training-split trials are drawn (one
    random generator seeded by `seed`, so every model gets the same shots), and every model is
    scored on *all other* trials of c, which none of its fits saw:

    - a model with a shared network (``infer_embeddings``: JEDI) is fitted on the train/val
      trials of the *other* conditions, then infers c's embedding from the shots with the
      network frozen (`max_epochs` is that inference's budget);
    - any other model is fitted on the shots alone: all but the last, which is its validation
      set, when it stops early (it has a ``patience`` parameter, e.g. `PerConditionRNN`), or
      all of them (e.g. `PSTHBaseline`).

    The estimators given are templates: each condition fits a fresh copy with the same
    parameters (``type(m)(**m.get_params())``), so they stay unfitted. Predictions of all
    conditions are pooled before scoring, so the numbers are comparable with a model's score
    on a whole test set.

    Parameters
    ----------
    ds : TrialDataset
        All trials, with their train/val/test split.
    models : mapping of name -> unfitted estimator
    shots : int
        Trials of the unseen condition the models may use.
    seed : int
        Seed of the shots' draw.
    max_epochs : int, optional
        Budget of the embedding inference of shared-network models.

    Returns
    -------
    DataFrame
        One row per model: ``model``, ``bits_per_spike``, ``psth_r2`` (pooled over conditions)
        and ``n_trials`` (trials scored).
    """
    if shots < 1:
        raise UserError(f"shots must be a positive integer, got {shots}")
    rng = np.random.default_rng(seed)
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in models}
    scored = []
    for c in np.flatnonzero(ds.trials_per_condition() > 0):
        chosen, rest = _draw_shots(ds, int(c), shots, rng)
        rest_ds = ds.subset(rest)
        for name, template in models.items():
            predictions[name].append(
                _few_shot_rates(_clone(template), ds, int(c), chosen, rest_ds, max_epochs))
        scored.append(rest)
    target = ds.subset(np.concatenate(scored))
    rows = []
    for name, parts in predictions.items():
        rates = np.concatenate(parts)
        rows.append({"model": name,
                     "bits_per_spike": bits_per_spike(rates, target.counts, target.bin_size),
                     "psth_r2_smoothed": psth_r2_smoothed(rates, target.counts,
                                                          target.condition,
                                                          target.n_conditions,
                                                          target.bin_size),
                     "n_trials": target.n_trials})
    return pd.DataFrame(rows)


def _draw_shots(ds: TrialDataset, c: int, shots: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `shots` training trials of condition c (sorted) and of its other trials."""
    candidates = np.flatnonzero((ds.condition == c) & (ds.split == "train"))
    everything = np.flatnonzero(ds.condition == c)
    if len(candidates) < shots or len(everything) <= shots:
        label = ds.conditions["label"].iloc[c]
        raise UserError(f"condition {label} has {len(candidates)} training trials and "
                        f"{len(everything)} in all; few-shot with {shots} shots needs at least "
                        f"{shots} training trials and one more to score: lower shots")
    chosen = np.sort(rng.choice(candidates, shots, replace=False))
    return chosen, np.setdiff1d(everything, chosen)


def _few_shot_rates(model, ds: TrialDataset, c: int, shots: np.ndarray, rest: TrialDataset,
                    max_epochs: int | None) -> np.ndarray:
    """Fit a fresh model as `few_shot` describes and predict the scored trials of c."""
    if hasattr(model, "infer_embeddings"):
        others = ds.condition != c
        model.fit(ds.subset(others & (ds.split == "train")),
                  ds.subset(others & (ds.split == "val")))
        inferred = model.infer_embeddings(ds.subset(shots), max_epochs=max_epochs)
        return inferred.predict_rates(rest)
    if "patience" in model.get_params():
        model.fit(ds.subset(shots[:-1]), ds.subset(shots[-1:]))
    else:
        model.fit(ds.subset(shots))
    return model.predict_rates(rest)


def _clone(estimator):
    """An unfitted estimator with the same parameters (scikit-learn's ``clone``, shallow)."""
    return type(estimator)(**estimator.get_params())


# ---------------------------------------------------------------------- classification
def classify_trials(model, test: TrialDataset, *, max_epochs: int | None = None, cv: int = 5,
                    group_by: str | None = None) -> dict:
    """The condition of held-out trials, from label-free per-trial embeddings.

    Every trial of `test` gets its own embedding, inferred from its spikes alone with the
    network frozen (`trial_embeddings`: no condition information goes in). Each is classified
    (a) by the nearest *training* condition embedding (``model.embeddings_``), and (b) by
    cross-validated nearest centroid among the test trials themselves (`classify_embeddings`).

    Parameters
    ----------
    model : fitted JEDI
    test : TrialDataset
        Trials of conditions the model knows, none used to fit it.
    max_epochs : int, optional
        Budget of the per-trial inference.
    cv : int
        Folds of (b), at most the largest number of trials of a condition (and at least 2).
    group_by : str, optional
        A condition column (of ``test.conditions`` and ``model.conditions_``, e.g. ``"task"``)
        to also report (a) per group, and the accuracy of the group the nearest embedding
        implies.

    Returns
    -------
    dict
        ``nearest_training`` (accuracy of a), ``cv_centroid`` (accuracy of b), ``chance``
        (1 / number of conditions), ``predicted`` (labels by a), ``truth`` (labels),
        ``embeddings`` (K, d); with `group_by` also ``per_group`` (group -> accuracy of a) and
        ``group_accuracy``.
    """
    x = trial_embeddings(model, test, max_epochs=max_epochs)
    truth = test.conditions["label"].astype(str).to_numpy()[test.condition]
    model_labels = model.conditions_["label"].astype(str).to_numpy()
    nearest = model_labels[nearest_embedding(x, model.embeddings_)]
    folds = max(2, min(cv, int(test.trials_per_condition().max())))
    result = {"nearest_training": float(np.mean(nearest == truth)),
              "cv_centroid": classify_embeddings(x, truth, cv=folds)["accuracy"],
              "chance": 1 / test.n_conditions, "predicted": nearest, "truth": truth,
              "embeddings": x}
    if group_by is not None:
        for table in (test.conditions, model.conditions_):
            if group_by not in table.columns:
                raise UserError(f"group_by={group_by!r} is not a condition column; available: "
                                f"{', '.join(map(str, table.columns))}")
        groups = test.conditions[group_by].to_numpy()[test.condition]
        group_of = dict(zip(model_labels, model.conditions_[group_by], strict=True))
        correct = nearest == truth
        result["per_group"] = {g: float(np.mean(correct[groups == g]))
                               for g in dict.fromkeys(groups)}
        result["group_accuracy"] = float(np.mean([group_of[n] for n in nearest] == groups))
    return result


# ---------------------------------------------------------------------- scoring hygiene
def trials_seen_in_training(fitted_session_id: str | None, fitted_trial_ids: Sequence,
                            fitted_split: Sequence[str], session_id: str | None,
                            trial_ids: Sequence) -> np.ndarray:
    """Mask of the trials that trained (or early-stopped) a model's network.

    A model applied to new trials of the session it was fitted on would flatter its score on
    trials its network was trained or validated on; those are the fitted dataset's non-test
    trials, matched by trial id. Trials of another session are never among them.

    Parameters
    ----------
    fitted_session_id : str or None
        Session id of the data the model was fitted on (None: unknown, so no overlap can be
        established).
    fitted_trial_ids, fitted_split : sequences (K_fit,)
        That dataset's trial ids and their split ("train", "val" or "test").
    session_id : str or None
        Session id of the new data.
    trial_ids : sequence (K,)
        The new data's trial ids.

    Returns
    -------
    ndarray of bool (K,)
    """
    n = len(trial_ids)
    if len(fitted_trial_ids) != len(fitted_split):
        raise ValueError(f"fitted_trial_ids ({len(fitted_trial_ids)}) and fitted_split "
                         f"({len(fitted_split)}) must have one entry per fitted trial")
    if not fitted_session_id or fitted_session_id != session_id:
        return np.zeros(n, dtype=bool)
    split = np.asarray(fitted_split).astype(str)
    used = {str(t) for t, s in zip(fitted_trial_ids, split, strict=True) if s != "test"}
    return np.array([str(t) in used for t in trial_ids], dtype=bool).reshape(n)
