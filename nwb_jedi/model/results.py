"""What a fitted model says about a dataset, computed once: the object `write_results` stores.

`compute_results` predicts the rates of every trial with ONE `predict_rates` call, scores each
data split on slices of those rates, and collects the embeddings, the connectivity spectra and
the model's state through the estimators' public API only. Writers (`nwb_jedi.io.write`)
serialize a `FitResults` and never touch the model's internals, so the same writer serves every
estimator that provides ``get_state()``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nwb_jedi.data.dataset import SPLIT_NAMES, TrialDataset
from nwb_jedi.errors import FitQualityWarning, UserError
from nwb_jedi.metrics import score_rates
from nwb_jedi.model.quality import (
    fit_quality_warning,
    population_warning,
    psth_baseline_comparison,
)

__all__ = ["FitResults", "compute_results"]


@dataclass(eq=False)
class FitResults:
    """A fitted model's results on one dataset, ready to be written.

    Attributes
    ----------
    rates : ndarray (K, T, N)
        Predicted firing rates (Hz) of every trial of the dataset.
    metrics : dict split -> {metric: value}
        Goodness of fit per data split (``nwb_jedi.metrics.score_rates``).
    config, tensors : dict, dict of ndarray
        The model's state, as returned by its ``get_state()``.
    estimator : str
        ``repr`` of the model (its class and non-default hyperparameters).
    condition_embeddings : ndarray (C, E) or None
        One embedding per row of the dataset's ``conditions`` table (NaN rows for conditions
        the model has no embedding for); None for models without embeddings.
    trial_embeddings : ndarray (K, E) or None
        Each trial's embedding, for models fitted with per-trial offsets; else None.
    eigenvalues : dict condition row -> complex ndarray
        Nonzero eigenvalues of each condition's connectivity J (decreasing modulus), for the
        dataset's condition rows the model knows; empty for models without a connectivity.
    warnings : list of str
        What `nwb_jedi.model.quality` found wrong (a fit no better than a trivial baseline, a
        population model of a handful of neurons), one line each; `compute_results` also
        raises each as a `FitQualityWarning`.
    """

    rates: np.ndarray
    metrics: dict[str, dict[str, float]]
    config: dict[str, Any]
    tensors: dict[str, np.ndarray]
    estimator: str
    condition_embeddings: np.ndarray | None = None
    trial_embeddings: np.ndarray | None = None
    eigenvalues: dict[int, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def check_matches(self, dataset: TrialDataset) -> None:
        """Raise UserError unless these results were computed for `dataset`'s trials."""
        shapes = [("rates", self.rates.shape, dataset.counts.shape)]
        if self.condition_embeddings is not None:
            shapes.append(("condition embeddings", self.condition_embeddings.shape[:1],
                           (dataset.n_conditions,)))
        if self.trial_embeddings is not None:
            shapes.append(("trial embeddings", self.trial_embeddings.shape[:1],
                           (dataset.n_trials,)))
        for what, got, expected in shapes:
            if tuple(got) != tuple(expected):
                raise UserError(f"the results' {what} have shape {tuple(got)} but the dataset "
                                f"needs {tuple(expected)}; compute the results on this dataset "
                                f"(compute_results(model, dataset))")


def compute_results(model, dataset: TrialDataset,
                    metrics: Mapping[str, Mapping[str, float]] | None = None, *,
                    splits: Iterable[str] | None = None) -> FitResults:
    """Everything `write_results` stores about a fitted model on `dataset`, computed once.

    Parameters
    ----------
    model : fitted estimator
        Any nwb_jedi estimator with ``predict_rates`` and ``get_state`` (JEDI and the
        estimators that can be saved); every condition of `dataset` must be known to it.
    dataset : TrialDataset
        The modelled data.
    metrics : dict split -> {metric: value}, optional
        Metrics to store as they are; by default each split is scored on the predicted rates.
    splits : iterable of str, optional
        The splits to score when `metrics` is not given, in this order (default: every split
        of ``train``, ``val``, ``test`` that has trials). A split named here is scored even
        if it has no trials. Held-out splits (``val``, ``test``) are also compared with the
        smoothed PSTH of the training trials (`nwb_jedi.model.quality`).

    Returns
    -------
    FitResults

    Warns
    -----
    FitQualityWarning
        The held-out scores are no better than each neuron's mean rate, or clearly worse than
        the PSTH baseline; or the model has a handful of neurons (one line each, also in
        ``FitResults.warnings``).

    Raises
    ------
    UserError
        The model is not a fitted, savable estimator, or the data do not fit it (other
        neurons, bin width or unknown conditions).
    """
    for method in ("predict_rates", "get_state"):
        if not callable(getattr(model, method, None)):
            raise UserError(f"{type(model).__name__} cannot be written: it has no {method}(); "
                            f"write a fitted nwb_jedi estimator such as JEDI")
    # The one prediction: also checks that the model is fitted and knows every condition.
    rates = model.predict_rates(dataset)
    if metrics is None:
        names = [s for s in SPLIT_NAMES if np.any(dataset.split == s)] if splits is None \
            else list(splits)
        metrics = {}
        for split in names:
            mask = dataset.split == split
            metrics[split] = score_rates(rates[mask], dataset.subset(mask))
            if split != "train" and mask.any():
                metrics[split].update(psth_baseline_comparison(rates, dataset, mask))
    config, tensors = model.get_state()
    rows = _model_rows(model, dataset)
    eigenvalues = {}
    if callable(getattr(model, "eigenvalues", None)):
        eigenvalues = {row: model.eigenvalues(known) for row, known in rows.items()}
    trial_embeddings = None
    # JEDI with per-trial offsets; getattr: other estimators have no such attribute.
    if len(getattr(model, "trial_offset_ids_", ())) > 0:
        trial_embeddings = np.asarray(model.embed_trials(dataset), dtype=np.float32)
    results = FitResults(rates=rates, metrics={s: dict(v) for s, v in metrics.items()},
                         config=config, tensors=tensors, estimator=repr(model),
                         condition_embeddings=_condition_embeddings(model, dataset, rows),
                         trial_embeddings=trial_embeddings, eigenvalues=eigenvalues)
    results.warnings = quality_warnings(model, dataset, results.metrics)
    for line in results.warnings:
        warnings.warn(line, FitQualityWarning, stacklevel=2)
    return results


def quality_warnings(model, dataset: TrialDataset,
                     metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    """What `nwb_jedi.model.quality` says about a fitted model's scores on `dataset`.

    Parameters
    ----------
    model : fitted estimator
    dataset : TrialDataset
        The scored data; a dataset whose provenance says it was built for a model fitted
        elsewhere (extra ``applied_model``, as ``nwb-jedi predict`` records) is judged as a
        transfer.
    metrics : dict split -> {metric: value}

    Returns
    -------
    list of str
        One line per problem (empty when none).
    """
    history = getattr(model, "history_", None)  # NotFittedError is an AttributeError
    dynamics = callable(getattr(model, "eigenvalues", None))  # a network of the neurons
    found = [population_warning(dataset.n_units, getattr(model, "rank", None)) if dynamics
             else None,
             fit_quality_warning(metrics, history=history if isinstance(history, Mapping)
                                 else None, max_epochs=getattr(model, "max_epochs", None),
                                 transfer="applied_model" in dataset.provenance.extras)]
    return [line for line in found if line]


def _model_rows(model, dataset: TrialDataset) -> dict[int, int]:
    """Row of the dataset's conditions table -> row of the model's `conditions_`, for the
    conditions the model knows (matched by label)."""
    known = {label: i for i, label in enumerate(model.conditions_["label"].astype(str))}
    return {i: known[label] for i, label in enumerate(dataset.conditions["label"].astype(str))
            if label in known}


def _condition_embeddings(model, dataset: TrialDataset,
                          rows: dict[int, int]) -> np.ndarray | None:
    embeddings = getattr(model, "embeddings_", None)
    if embeddings is None:
        return None
    embeddings = np.asarray(embeddings)
    out = np.full((dataset.n_conditions, embeddings.shape[1]), np.nan, dtype=np.float32)
    for row, known in rows.items():
        out[row] = embeddings[known]
    return out
