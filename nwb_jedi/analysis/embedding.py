"""The embedding space: classification, distances, per-trial embeddings and interpolation.

Classifiers are pure numpy and deliberately simple, so that accuracy measures how the embeddings
are organized rather than the power of the classifier:

- ``"centroid"`` (default): nearest class centroid (Euclidean) on the training folds.
- ``"logistic"``: multinomial logistic regression on standardized features, L2 penalty,
  full-batch gradient descent (convex, so deterministic and seed-free).

Per-trial embeddings are inferred with every trial as its own condition (the network frozen), so
no label enters the embedding that is then classified. (The condition part of a model's own
per-trial embeddings ``e_c + δ_k`` is shared by all trials of a condition, so classifying those
would only test that the labels were used in training.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError, first_few

CLASSIFIERS = ("centroid", "logistic")


# ---------------------------------------------------------------------- classifiers
def _fit_predict_centroid(x_train, y_train, x_test, n_classes):
    centroids = np.full((n_classes, x_train.shape[1]), np.inf)
    for k in np.unique(y_train):
        centroids[k] = x_train[y_train == k].mean(axis=0)
    distance = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
    distance[~np.isfinite(distance)] = np.inf  # classes absent from the training folds
    return distance.argmin(axis=1)


def _fit_predict_logistic(x_train, y_train, x_test, n_classes, l2=1e-2, n_iter=500, lr=0.5):
    mean, std = x_train.mean(0), x_train.std(0)
    std[std == 0] = 1.0
    xs, xt = (x_train - mean) / std, (x_test - mean) / std
    xs, xt = np.hstack([xs, np.ones((len(xs), 1))]), np.hstack([xt, np.ones((len(xt), 1))])
    onehot = np.eye(n_classes)[y_train]
    weights = np.zeros((xs.shape[1], n_classes))
    for _ in range(n_iter):
        logits = xs @ weights
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        grad = xs.T @ (prob - onehot) / len(xs) + l2 * weights
        weights -= lr * grad
    return (xt @ weights).argmax(axis=1)


def stratified_folds(y: np.ndarray, cv: int, seed: int) -> np.ndarray:
    """Fold number of every sample: each class's samples shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        idx = idx[rng.permutation(len(idx))]
        fold[idx] = (np.arange(len(idx)) + offset) % cv
        offset += len(idx)  # spread small classes over different folds
    return fold


def classify_embeddings(embeddings: np.ndarray, labels: Sequence, *, cv: int = 5,
                        seed: int = 0, classifier: str = "centroid") -> dict:
    """Cross-validated accuracy of predicting `labels` from `embeddings`.

    Parameters
    ----------
    embeddings : ndarray (S, d)
    labels : sequence (S,)
        Any hashable labels.
    cv : int
        Number of stratified folds (2 ≤ cv ≤ S).
    seed : int
        Seed of the fold assignment.
    classifier : {"centroid", "logistic"}

    Returns
    -------
    dict
        ``accuracy`` (pooled over folds), ``fold_accuracy`` (list), ``chance`` (the majority
        class fraction), ``n_samples``, ``n_classes``, ``classifier``, ``predicted`` (labels).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray([str(v) for v in labels])
    if x.ndim != 2 or len(x) != len(labels):
        raise UserError(f"need one label per embedding; got {len(labels)} labels for "
                        f"embeddings of shape {x.shape}")
    if classifier not in CLASSIFIERS:
        raise UserError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise UserError("need at least two different labels to classify")
    if not 2 <= cv <= len(x):
        raise UserError(f"cv must be between 2 and the number of samples ({len(x)}), got {cv}")
    fold = stratified_folds(y, cv, seed)
    predicted = np.empty_like(y)
    fit_predict = (_fit_predict_centroid if classifier == "centroid"
                   else _fit_predict_logistic)
    fold_accuracy = []
    for f in range(cv):
        test = fold == f
        if not test.any():
            continue
        predicted[test] = fit_predict(x[~test], y[~test], x[test], len(classes))
        fold_accuracy.append(float((predicted[test] == y[test]).mean()))
    return {
        "accuracy": float((predicted == y).mean()),
        "fold_accuracy": fold_accuracy,
        "chance": float(np.bincount(y).max() / len(y)),
        "n_samples": len(y),
        "n_classes": len(classes),
        "classifier": classifier,
        "predicted": classes[predicted],
    }


def nearest_embedding(points: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Row of the nearest reference (Euclidean) for every point: (P, d), (C, d) -> (P,).

    E.g. which condition embedding of a fitted model each per-trial embedding is closest to.
    """
    points, references = np.asarray(points), np.asarray(references)
    return ((points[:, None, :] - references[None]) ** 2).sum(-1).argmin(1)


# ---------------------------------------------------------------------- per-trial embeddings
def one_condition_per_trial(ds: TrialDataset) -> TrialDataset:
    """The same trials, each its own condition (label: trial id, or index if ids repeat)."""
    ids = [str(t) for t in ds.trial_id]
    if len(set(ids)) != len(ids):
        ids = [str(i) for i in range(ds.n_trials)]
    return TrialDataset(
        counts=ds.counts, condition=np.arange(ds.n_trials),
        conditions=pd.DataFrame({"trial": ids, "label": ids}), trial_id=ds.trial_id,
        unit_id=ds.unit_id, time=ds.time, align_time=ds.align_time, bin_size=ds.bin_size,
        split=ds.split, behavior=ds.behavior, units=ds.units, trials=ds.trials,
        metadata=dict(ds.metadata), ground_truth=ds.ground_truth)


def trial_embeddings(model, ds: TrialDataset, *, max_epochs: int | None = None) -> np.ndarray:
    """An embedding per trial (K, d), inferred from that trial alone with the network frozen."""
    inferred = model.infer_embeddings(one_condition_per_trial(ds), max_epochs=max_epochs)
    return inferred.embeddings_


def _trial_labels(ds: TrialDataset, labels) -> np.ndarray:
    if labels is None:
        return np.asarray(ds.condition_labels)
    if isinstance(labels, str):
        if ds.trials is not None and labels in ds.trials.columns:
            return ds.trials[labels].to_numpy()
        if labels in ds.conditions.columns:
            return ds.conditions[labels].to_numpy()[ds.condition]
        raise UserError(f"no trial or condition column named {labels!r}; available: "
                        f"{', '.join(map(str, list(ds.trials.columns) + list(ds.conditions)))}")
    labels = np.asarray(labels)
    if len(labels) != ds.n_trials:
        raise UserError(f"labels has {len(labels)} entries but the dataset has {ds.n_trials} "
                        f"trials")
    return labels


def embedding_classification(model, labels: str | Sequence | None = None, *, cv: int = 5,
                             seed: int = 0, dataset: TrialDataset | None = None,
                             classifier: str = "centroid", max_epochs: int | None = None
                             ) -> dict:
    """Cross-validated accuracy of predicting a label from embeddings.

    Parameters
    ----------
    model : fitted JEDI
    labels : None, str or sequence
        With `dataset`: per trial — None for the trials' conditions, a column of
        ``dataset.trials`` or ``dataset.conditions``, or one value per trial. Without:
        per condition — a column of ``model.conditions_`` (e.g. ``"task"``) or one value per
        condition.
    cv, seed, classifier
        See `classify_embeddings`.
    dataset : TrialDataset, optional
        Trials whose embeddings are inferred one trial at a time (see `trial_embeddings`);
        needed to predict the condition itself, which has one embedding per condition.
    max_epochs : int, optional
        Budget of the per-trial inference.

    Returns
    -------
    dict
        As `classify_embeddings`, plus ``embeddings`` (the samples classified).
    """
    if dataset is not None:
        x = trial_embeddings(model, dataset, max_epochs=max_epochs)
        y = _trial_labels(dataset, labels)
    else:
        x = model.embeddings_
        table = model.conditions_
        if labels is None:
            raise UserError("the model has one embedding per condition, so predicting the "
                            "condition needs per-trial embeddings: pass dataset=<trials>, or "
                            "name a condition attribute to predict (labels='task')")
        if isinstance(labels, str):
            if labels not in table.columns:
                raise UserError(f"the model's conditions have no column {labels!r}; available: "
                                f"{', '.join(map(str, table.columns))}")
            y = table[labels].to_numpy()
        else:
            y = np.asarray(labels)
    result = classify_embeddings(x, y, cv=cv, seed=seed, classifier=classifier)
    result["embeddings"] = x
    return result


# ---------------------------------------------------------------------- geometry
def embedding_distances(model, metric: str = "euclidean") -> np.ndarray:
    """Pairwise distances (C, C) between condition embeddings ("euclidean" or "cosine")."""
    e = np.asarray(model.embeddings_, dtype=np.float64)
    if metric == "euclidean":
        return np.sqrt(np.maximum(((e[:, None] - e[None]) ** 2).sum(-1), 0.0))
    if metric == "cosine":
        unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return 1.0 - unit @ unit.T
    raise UserError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")


def model_with_embeddings(model, embeddings: np.ndarray, labels: Sequence[str]):
    """A copy of a fitted JEDI whose conditions are the given embeddings (network unchanged);
    see `JEDI.with_embeddings`."""
    return model.with_embeddings(embeddings, labels)


def predict_from_embeddings(model, embeddings: np.ndarray, n_steps: int) -> np.ndarray:
    """Noiseless rates (n, n_steps, N) in Hz of the RNNs that `embeddings` (n, d) specify."""
    embeddings = np.asarray(embeddings)
    labels = [f"e{i}" for i in range(len(embeddings))]
    copy = model_with_embeddings(model, embeddings, labels)
    n = len(embeddings)
    ds = TrialDataset(
        counts=np.zeros((n, n_steps, model.n_units_), np.float32), condition=np.arange(n),
        conditions=copy.conditions_, trial_id=np.arange(n), unit_id=model.unit_id_,
        time=(np.arange(n_steps) + 0.5) * model.bin_size_, align_time=np.full(n, np.nan),
        bin_size=model.bin_size_, split=np.full(n, "test"))
    return copy.predict_rates(ds)


def interpolate(model, c_from: int | str, c_to: int | str, n: int = 11,
                n_steps: int | None = None) -> np.ndarray:
    """Rates along the straight line between two condition embeddings.

    Parameters
    ----------
    model : fitted JEDI
    c_from, c_to : int or str
        Rows or labels of the end conditions.
    n : int
        Points on the line, ends included (point 0 is `c_from`, point n−1 is `c_to`).
    n_steps : int, optional
        Bins to simulate; defaults to the trial length the model was fitted on (``n_bins_``).

    Returns
    -------
    ndarray (n, n_steps, N)
        Predicted rates in Hz (noiseless, without per-trial offsets).
    """
    if n < 2:
        raise UserError(f"n must be at least 2 (the two end points), got {n}")
    if n_steps is None:
        n_steps = getattr(model, "n_bins_", None)
        if n_steps is None:
            raise UserError("the model does not record its trial length; pass n_steps=<bins>")
    labels = list(model.conditions_["label"].astype(str))
    rows = []
    for c in (c_from, c_to):
        if isinstance(c, int | np.integer) and 0 <= c < len(labels):
            rows.append(int(c))
        elif str(c) in labels:
            rows.append(labels.index(str(c)))
        else:
            raise UserError(f"unknown condition {c!r}; known: {first_few(labels)}")
    e = model.embeddings_
    weights = np.linspace(0.0, 1.0, n)[:, None]
    line = (1 - weights) * e[rows[0]] + weights * e[rows[1]]
    return predict_from_embeddings(model, line, int(n_steps))


# ---------------------------------------------------------------------- labels
def condition_attributes(conditions: pd.DataFrame, condition: np.ndarray,
                         trials: pd.DataFrame) -> pd.DataFrame:
    """The condition table with the numeric trial columns that describe each condition.

    A trials-table column describes the conditions when it is numeric, not an event time
    (``*_time``, ``*_times``), constant within every condition and not constant across all
    of them: e.g. the ``condition_value`` (sine frequency, reach direction) of a file written
    by ``nwb-jedi simulate``, whose conditions are only named by an index within their task.

    Parameters
    ----------
    conditions : DataFrame
        One row per condition, with a ``label`` column (``TrialDataset.conditions``).
    condition : array (K,)
        Each trial's row of `conditions`.
    trials : DataFrame
        The same K trials' metadata, in the same order.

    Returns
    -------
    DataFrame
        `conditions` with those columns appended after its own (NaN for conditions without
        trials); unchanged when there are none.
    """
    condition = np.asarray(condition)
    if len(trials) != len(condition):
        raise UserError(f"trials has {len(trials)} rows but condition {len(condition)}; give "
                        f"the metadata of the same trials")
    table = conditions.reset_index(drop=True).copy()
    for name in trials.columns:
        column = trials[name]
        if name in table.columns or str(name).endswith(("_time", "_times")) or \
                column.dtype.kind not in "iuf":
            continue
        values = pd.Series(column.to_numpy(dtype=float)).groupby(condition)
        if (values.nunique(dropna=False) > 1).any():
            continue
        per_condition = values.first()
        if per_condition.nunique() < 2:
            continue
        table[str(name)] = per_condition.reindex(range(len(table))).to_numpy()
    return table


def embedding_labels(conditions: pd.DataFrame) -> tuple[str, str]:
    """(colour column, annotation column) for `plots.plot_embeddings` of these conditions.

    Colour: the first column that defines the conditions (before ``label``) and groups them
    (2 or more values, fewer than conditions, e.g. the task), else each condition. Annotation:
    the first numeric column after ``label`` (an attribute from `condition_attributes`, e.g. a
    frequency), else the label.
    """
    columns = list(conditions.columns)
    cut = columns.index("label") if "label" in columns else len(columns)
    color = next((c for c in columns[:cut]
                  if 2 <= conditions[c].nunique() < len(conditions)), "label")
    annotate = next((c for c in columns[cut + 1:] if conditions[c].dtype.kind in "iuf"),
                    "label")
    return color, annotate
