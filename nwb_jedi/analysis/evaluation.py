"""Evaluation protocols that need a fitted model (the ones behind the README's numbers).

- `co_smoothing_bits_per_spike`, `co_smoothing`, `heldin_baselines`: Neural Latents Benchmark
  co-smoothing, the bits per spike of neurons the model never saw on the scored trials, with
  baselines that use the scored trials' held-in neurons as JEDI does.
- `forward_prediction`, `first_bins`: NLB forward prediction (fp-bps), the bins after an
  observed window predicted from that window.
- `decoding`, `smoothed_spike_rates`: NLB's velocity decoding (ridge regression trained on
  training trials) of a behavior series from several models' rates.
- `nlb_submission_rates`: the arrays of an NLB submission from a fitted model.
- `few_shot`: leave-one-condition-out generalization from a few trials of an unseen
  condition, against the PSTH of the training condition that best explains those trials.
- `classify_trials`: the condition of held-out trials from label-free per-trial embeddings.
- `trials_seen_in_training`: which trials of a dataset trained a model's network, so that a
  score never counts them.

Models are duck-typed: a model with ``infer_embeddings`` (JEDI) has a shared network that can
take new conditions or trials with the network frozen; a model with ``heldout_`` (the held-in
GLMs of `nwb_jedi.model.baselines`) reads the held-in neurons of the trials it predicts; any
other model (the RNN baselines, the PSTH) predicts from the condition alone. The array-level
metrics these protocols report live in `nwb_jedi.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nwb_jedi.analysis.embedding import classify_embeddings, nearest_embedding, trial_embeddings
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.metrics import bits_per_spike, fp_bps, psth_r2_smoothed, velocity_r2

if TYPE_CHECKING:
    from nwb_jedi.model.baselines import PSTHBaseline

__all__ = ["classify_trials", "co_smoothing", "co_smoothing_bits_per_spike", "decoding",
           "few_shot", "first_bins", "forward_prediction", "heldin_baselines",
           "nlb_submission_rates", "smoothed_spike_rates", "trials_seen_in_training"]


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
        Infer every trial's context (the model's per-trial states, inputs or embedding
        offsets) as well; conditions the model knows keep their trained embeddings.
    max_epochs : int, optional
        Budget of the inference.
    """
    heldout = np.asarray(heldout, dtype=bool)
    if heldout.shape != (ds.n_units,) or not heldout.any() or heldout.all():
        raise ValueError("heldout must be a boolean mask over the neurons with at least one "
                         "held-out and one held-in neuron")
    known = _all_known(model, ds)
    if known and not per_trial:
        # Nothing to infer: the trained embeddings are kept, and the model predicts these
        # trials as any new trial of a known condition (averaged over its trials' contexts,
        # not the condition's bare network, which the centring makes a worse guess).
        rates = model.predict_rates(ds)
        return bits_per_spike(rates, ds.counts, ds.bin_size, units=heldout)
    # Conditions the model was trained on keep their trained embeddings (a few test trials'
    # held-in neurons would only make them noisier); new conditions are inferred.
    inferred = model.infer_embeddings(ds, per_trial=per_trial, unit_mask=~heldout,
                                      max_epochs=max_epochs,
                                      refit_conditions=not known)
    rates = inferred.predict_rates(ds)
    return bits_per_spike(rates, ds.counts, ds.bin_size, units=heldout)


def _all_known(model, ds: TrialDataset) -> bool:
    """Whether every condition of `ds`'s trials is one the model was fitted on."""
    known = set(model.conditions_["label"].astype(str))
    labels = ds.conditions["label"].astype(str).to_numpy()[np.unique(ds.condition)]
    return set(labels) <= known


def co_smoothing(model, test: TrialDataset, heldout: np.ndarray, *,
                 max_epochs: int | None = None) -> dict[str, float]:
    """Bits/spike of the held-out neurons on test trials (NLB co-smoothing), for any model.

    Every model may use what NLB allows: the training trials' every neuron, and the test
    trials' held-in neurons.

    - A model with a shared network (``infer_embeddings``: JEDI) infers the test trials'
      embeddings of conditions it does not know from the held-in neurons only (``co_bps``;
      known conditions keep their trained embeddings, so this is its prediction for new
      trials), and each trial's own context from them as well (``co_bps_per_trial``).
    - A held-in GLM (`SmoothingGLM`, `PSTHResidualGLM`: ``heldout_``, fitted with the same
      `heldout` mask) predicts the held-out neurons from the test trials' held-in neurons
      (``co_bps``). `heldin_baselines` makes them.
    - Any other model predicts from the condition alone (the PSTH, the RNN baselines):
      ``co_bps`` of its prediction.

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
    fitted_mask = getattr(model, "heldout_", None)
    if fitted_mask is not None and not np.array_equal(np.asarray(fitted_mask), heldout):
        raise UserError(f"{type(model).__name__} was fitted to predict other held-out neurons "
                        f"than these; fit it with heldout= this mask")
    if not hasattr(model, "infer_embeddings"):
        return {"co_bps": bits_per_spike(model.predict_rates(test), test.counts, test.bin_size,
                                         units=heldout)}
    return {
        "co_bps": co_smoothing_bits_per_spike(model, test, heldout, max_epochs=max_epochs),
        "co_bps_per_trial": co_smoothing_bits_per_spike(model, test, heldout, per_trial=True,
                                                        max_epochs=max_epochs),
    }


def heldin_baselines(heldout: np.ndarray, *, smooth_sd: float = 0.05,
                     alpha: float = 0.01) -> dict[str, object]:
    """Unfitted co-smoothing baselines that use the scored trials' held-in neurons.

    ``SmoothingGLM`` (NLB's spike smoothing baseline; `smooth_sd` and `alpha` default to NLB's
    MC_Maze settings, 50 ms and 0.01) and ``PSTHResidualGLM`` (each held-out neuron's PSTH
    modulated by the held-in neurons' shared residuals, its own defaults), both for the
    `heldout` mask; fit them on the training trials and score them with `co_smoothing`.
    """
    from nwb_jedi.model.baselines import PSTHResidualGLM, SmoothingGLM

    heldout = np.asarray(heldout, dtype=bool)
    return {"SmoothingGLM": SmoothingGLM(heldout=heldout, smooth_sd=smooth_sd, alpha=alpha),
            "PSTHResidualGLM": PSTHResidualGLM(heldout=heldout)}


PSTH_WIDTHS = (0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.16)


def best_smoothed_psth(train: TrialDataset, val: TrialDataset | None,
                       widths: Sequence[float] = PSTH_WIDTHS) -> PSTHBaseline:
    """The best smoothed PSTH: the `PSTHBaseline` of `train` whose Gaussian smoothing width
    gives the `val` trials the most bits per spike.

    The baseline a condition-level model has to beat, chosen without the scored trials.

    Parameters
    ----------
    train : TrialDataset
        Trials the PSTH averages.
    val : TrialDataset
        Trials that choose the width (required; None or empty is refused).
    widths : sequence of float
        Candidate Gaussian widths in seconds (0: no smoothing).

    Returns
    -------
    PSTHBaseline
        Fitted on `train`; its `smooth_sd` is the chosen width.

    Raises
    ------
    UserError
        No validation trials, or no widths.
    """
    from nwb_jedi.model.baselines import PSTHBaseline

    if val is None or val.n_trials == 0:
        raise UserError("choosing the PSTH's smoothing needs validation trials")
    if not len(widths):
        raise UserError("no smoothing widths to choose from")
    scores = [PSTHBaseline(smooth_sd=float(w)).fit(train).score(val) for w in widths]
    return PSTHBaseline(smooth_sd=float(widths[int(np.argmax(scores))])).fit(train)


# ---------------------------------------------------------------------- forward prediction
def first_bins(ds: TrialDataset, n_bins: int) -> TrialDataset:
    """The same trials cut to their first `n_bins` bins (what a forward predictor observes)."""
    if not 0 < n_bins <= ds.n_bins:
        raise UserError(f"cannot keep {n_bins} of {ds.n_bins} bins")
    return TrialDataset(
        counts=ds.counts[:, :n_bins], condition=ds.condition, conditions=ds.conditions,
        trial_id=ds.trial_id, unit_id=ds.unit_id, time=ds.time[:n_bins],
        align_time=ds.align_time, bin_size=ds.bin_size, split=ds.split,
        behavior={k: np.asarray(v)[:, :n_bins] for k, v in ds.behavior.items()},
        units=ds.units, trials=ds.trials, provenance=ds.provenance.copy(),
        nlb_psth=None if ds.nlb_psth is None else ds.nlb_psth[:, :n_bins])


def _extended_rates(model, observed: TrialDataset, extended: TrialDataset,
                    heldin: np.ndarray | None, max_epochs: int | None) -> np.ndarray:
    """A model's rates for `extended`, given only what `observed` shows of its trials."""
    if not np.array_equal(np.asarray(observed.trial_id), np.asarray(extended.trial_id)):
        raise UserError("the observed and extended datasets must hold the same trials, in the "
                        "same order")
    if hasattr(model, "infer_embeddings"):
        inferred = model.infer_embeddings(observed, per_trial=True, unit_mask=heldin,
                                          max_epochs=max_epochs)
        return inferred.predict_rates(extended)
    if hasattr(model, "heldout_"):
        raise UserError(f"{type(model).__name__} predicts from the same bins' held-in "
                        f"activity, so it cannot predict the bins after a window")
    return model.predict_rates(extended)


def forward_prediction(model, observed: TrialDataset, extended: TrialDataset, *,
                       heldin: np.ndarray | None = None,
                       max_epochs: int | None = None) -> dict[str, float]:
    """NLB forward prediction: bits/spike (``fp_bps``) of the bins that follow a window.

    `extended` holds the same trials as `observed` with more bins after it (build `observed`
    with `first_bins`). The score is NLB's fp-bps of every neuron in the extra bins.

    - JEDI infers per-trial embeddings from `observed` (only the `heldin` neurons when given,
      as NLB's evaluation trials show only those) with the network frozen, and runs on.
    - Models that predict from the condition (the PSTH fitted on extended training trials,
      the RNN baselines) predict the extended trials.
    - Held-in GLMs cannot forecast and are refused.

    Returns
    -------
    dict
        ``fp_bps``.
    """
    n = observed.n_bins
    if extended.n_bins <= n:
        raise UserError(f"the extended trials ({extended.n_bins} bins) must be longer than the "
                        f"observed ones ({n} bins)")
    rates = _extended_rates(model, observed, extended, heldin, max_epochs)
    return {"fp_bps": fp_bps(rates[:, n:], extended.counts[:, n:], extended.bin_size)}


# ---------------------------------------------------------------------- decoding
def smoothed_spike_rates(counts: np.ndarray, bin_size: float, smooth_sd: float = 0.05
                         ) -> np.ndarray:
    """Spike counts smoothed as NLB's smoothing baseline does (each trial alone, NLB's
    window; `nwb_jedi.data.nlb.smooth_binned`), in Hz: the usual reference for decoding."""
    from nwb_jedi.data.nlb import smooth_binned

    return smooth_binned(counts, smooth_sd, bin_size) / bin_size


def decoding(rates: Mapping[str, np.ndarray], behavior: np.ndarray, bin_size: float,
             train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """NLB's velocity R² (`nwb_jedi.metrics.velocity_r2`) of a behavior series from each set of
    rates: one ridge decoder per set, trained on the `train` trials, scored on the `test` ones.

    Parameters
    ----------
    rates : mapping name -> array (K, T, N), Hz
        E.g. a model's predicted rates and `smoothed_spike_rates` of the counts. Converted to
        expected counts per bin, the unit in which NLB's penalty grid is defined.
    behavior : array (K, T, D)
        The series in the same bins, already lagged (`nwb_jedi.data.nlb.lagged_behavior`).
    bin_size : float
    train, test : bool arrays (K,)

    Returns
    -------
    dict name -> R²
    """
    train, test = np.asarray(train, dtype=bool), np.asarray(test, dtype=bool)
    behavior = np.asarray(behavior, dtype=np.float64)
    return {name: velocity_r2(np.asarray(r)[train] * bin_size, behavior[train],
                              np.asarray(r)[test] * bin_size, behavior[test])
            for name, r in rates.items()}


# ---------------------------------------------------------------------- NLB submissions
def nlb_submission_rates(model, train: TrialDataset, evaluation: TrialDataset,
                         heldout: np.ndarray, extended: TrialDataset | None = None, *,
                         max_epochs: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of an NLB submission (expected spike counts per bin, float32).

    Parameters
    ----------
    model : fitted estimator
        Fitted on training trials with every neuron.
    train : TrialDataset
        NLB's training trials, binned on NLB's windows: ``train_rates_*`` (used by the
        benchmark to train its velocity decoder) are the model's predictions of them.
    evaluation : TrialDataset
        NLB's evaluation trials, binned on NLB's windows. Only their held-in neurons reach the
        model (co-smoothing: JEDI infers from them; held-in GLMs read them).
    heldout : bool array (N,)
        NLB's held-out neurons (the units' ``heldout`` column).
    extended : TrialDataset, optional
        The evaluation trials with the window extended by the forward-prediction length:
        adds ``eval_rates_*_forward`` (rates of the extra bins, predicted from the window).
    max_epochs : int, optional
        Budget of JEDI's inference.

    Returns
    -------
    dict
        ``train_rates_heldin``, ``train_rates_heldout``, ``eval_rates_heldin``,
        ``eval_rates_heldout``, and with `extended` ``eval_rates_heldin_forward``,
        ``eval_rates_heldout_forward`` (not for held-in GLMs, which cannot forecast; NLB's
        smoothing baseline submits none either).
    """
    heldout = np.asarray(heldout, dtype=bool)
    if hasattr(model, "heldout_"):  # a held-in GLM reads the held-in neurons, cannot forecast
        rates, extended = model.predict_rates(evaluation), None
    elif hasattr(model, "infer_embeddings") or extended is not None:
        target = extended if extended is not None else evaluation
        rates = _extended_rates(model, evaluation, target, ~heldout, max_epochs)
    else:
        rates = model.predict_rates(evaluation)
    counts = rates.astype(np.float64) * evaluation.bin_size
    window = counts[:, : evaluation.n_bins]
    train_counts = model.predict_rates(train).astype(np.float64) * train.bin_size
    out = {"train_rates_heldin": train_counts[..., ~heldout],
           "train_rates_heldout": train_counts[..., heldout],
           "eval_rates_heldin": window[..., ~heldout],
           "eval_rates_heldout": window[..., heldout]}
    if extended is not None:
        extra = counts[:, evaluation.n_bins:]
        out["eval_rates_heldin_forward"] = extra[..., ~heldout]
        out["eval_rates_heldout_forward"] = extra[..., heldout]
    return {k: v.astype(np.float32) for k, v in out.items()}


# ---------------------------------------------------------------------- few-shot
NEAREST_PSTH = "NearestConditionPSTH"


def few_shot(ds: TrialDataset, models: Mapping[str, object], *, shots: int = 5, seed: int = 0,
             max_epochs: int | None = None, nearest_psth: bool = True,
             smooth_sd: float | None = None) -> pd.DataFrame:
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

    With `nearest_psth` (default) the table also has the obvious baseline of a model trained
    on the other conditions, row ``NearestConditionPSTH``: the PSTH (smoothed average of the
    training trials) of the *other* condition under which the shots are most likely (Poisson),
    given what JEDI is given (the other conditions' training trials and the shots).

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
    nearest_psth : bool
        Add the ``NearestConditionPSTH`` row.
    smooth_sd : float, optional
        Smoothing (s) of its PSTHs (default: `PSTHBaseline`'s).

    Returns
    -------
    DataFrame
        One row per model: ``model``, ``bits_per_spike``, ``psth_r2_smoothed`` (the package's
        own PSTH R², pooled over conditions) and ``n_trials`` (trials scored).
    """
    if shots < 1:
        raise UserError(f"shots must be a positive integer, got {shots}")
    if nearest_psth and NEAREST_PSTH in models:
        raise UserError(f"the model name {NEAREST_PSTH!r} is the protocol's own baseline; "
                        f"rename that model or pass nearest_psth=False")
    rng = np.random.default_rng(seed)
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in models}
    if nearest_psth:
        predictions[NEAREST_PSTH] = []
    scored = []
    for c in np.flatnonzero(ds.trials_per_condition() > 0):
        chosen, rest = _draw_shots(ds, int(c), shots, rng)
        rest_ds = ds.subset(rest)
        for name, template in models.items():
            predictions[name].append(
                _few_shot_rates(_clone(template), ds, int(c), chosen, rest_ds, max_epochs))
        if nearest_psth:
            predictions[NEAREST_PSTH].append(
                _nearest_psth_rates(ds, int(c), chosen, rest_ds, smooth_sd))
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


def _nearest_psth_rates(ds: TrialDataset, c: int, shots: np.ndarray, rest: TrialDataset,
                        smooth_sd: float | None) -> np.ndarray:
    """The PSTH of the other training condition under which the shots are most likely."""
    from nwb_jedi.model.baselines import PSTHBaseline

    others = ds.subset((ds.condition != c) & (ds.split == "train"))
    if not others.n_trials:
        raise UserError("few-shot's nearest-condition PSTH needs training trials of other "
                        "conditions")
    psth = PSTHBaseline(**({} if smooth_sd is None else {"smooth_sd": smooth_sd})).fit(others)
    counts = ds.counts[shots].astype(np.float64)  # (S, T, N)
    expected = psth.psth_ * ds.bin_size  # (C', T, N)
    loglik = (counts[None] * np.log(expected[:, None]) - expected[:, None]).sum(axis=(1, 2, 3))
    best = psth.psth_[int(np.argmax(loglik))]
    return np.broadcast_to(best, rest.counts.shape).astype(np.float32)


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
    For reference, (c) classifies each trial without inferring an embedding: the training
    condition whose network explains its spikes best (`condition_log_likelihoods`).

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
        ``nearest_training`` (accuracy of a), ``cv_centroid`` (accuracy of b),
        ``likeliest_condition`` (accuracy of c), ``chance``
        (1 / number of conditions), ``predicted`` (labels by a), ``truth`` (labels),
        ``embeddings`` (K, d); with `group_by` also ``per_group`` (group -> accuracy of a) and
        ``group_accuracy``.
    """
    x = trial_embeddings(model, test, max_epochs=max_epochs)
    truth = test.conditions["label"].astype(str).to_numpy()[test.condition]
    model_labels = model.conditions_["label"].astype(str).to_numpy()
    nearest = model_labels[nearest_embedding(x, model.embeddings_)]
    likeliest = model_labels[model.condition_log_likelihoods(test).argmax(1)]
    folds = max(2, min(cv, int(test.trials_per_condition().max())))
    result = {"nearest_training": float(np.mean(nearest == truth)),
              "cv_centroid": classify_embeddings(x, truth, cv=folds)["accuracy"],
              "likeliest_condition": float(np.mean(likeliest == truth)),
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
