"""Embedding classification, distances, per-trial inference and interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.analysis.embedding import (
    classify_embeddings,
    embedding_classification,
    embedding_distances,
    interpolate,
    model_with_embeddings,
    stratified_folds,
)
from nwb_jedi.errors import UserError


@pytest.mark.parametrize("classifier", ["centroid", "logistic"])
def test_separable_embeddings_are_classified_and_random_ones_are_not(classifier):
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c", "d"], 25)
    centers = rng.standard_normal((4, 5)) * 5
    separable = centers[np.repeat(np.arange(4), 25)] + rng.standard_normal((100, 5)) * 0.3
    good = classify_embeddings(separable, labels, cv=5, seed=1, classifier=classifier)
    assert good["accuracy"] == 1.0 and good["n_classes"] == 4 and len(good["fold_accuracy"]) == 5
    assert good["chance"] == 0.25
    noise = classify_embeddings(rng.standard_normal((100, 5)), labels, classifier=classifier)
    assert noise["accuracy"] < 0.5
    assert list(good["predicted"]) == list(labels)


def test_folds_are_stratified_and_seeded():
    y = np.repeat([0, 1, 2], [10, 7, 3])
    fold = stratified_folds(y, 3, seed=0)
    for k in range(3):
        counts = np.bincount(fold[y == k], minlength=3)
        assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(fold, stratified_folds(y, 3, seed=0))


def test_bad_classification_input():
    with pytest.raises(UserError):
        classify_embeddings(np.zeros((4, 2)), ["a"] * 4)
    with pytest.raises(UserError):
        classify_embeddings(np.zeros((4, 2)), ["a", "b"] * 2, cv=9)
    with pytest.raises(UserError):
        classify_embeddings(np.zeros((4, 2)), ["a", "b"] * 2, classifier="svm")


def test_condition_attribute_and_trial_classification(small_jedi, oscillation_dataset):
    # Condition embeddings labelled by a made-up attribute: 3 conditions, cv=3.
    with pytest.raises(UserError, match="per-trial"):
        embedding_classification(small_jedi)
    with pytest.raises(UserError, match="no column"):
        embedding_classification(small_jedi, "task")
    result = embedding_classification(small_jedi, ["x", "y", "x"], cv=3)
    assert result["n_samples"] == 3 and result["embeddings"].shape == (3, 3)
    # Per-trial embeddings inferred one trial at a time, then the condition predicted.
    ds = oscillation_dataset.subset(np.arange(0, oscillation_dataset.n_trials, 2))
    trials = embedding_classification(small_jedi, dataset=ds, cv=4, max_epochs=30)
    assert trials["n_samples"] == ds.n_trials and trials["embeddings"].shape == (ds.n_trials, 3)
    assert trials["accuracy"] > trials["chance"]


def test_distances(small_jedi):
    d = embedding_distances(small_jedi)
    e = small_jedi.embeddings_
    assert d.shape == (3, 3) and np.allclose(np.diag(d), 0)
    assert np.isclose(d[0, 2], np.linalg.norm(e[0] - e[2]))
    cos = embedding_distances(small_jedi, "cosine")
    assert np.allclose(cos, cos.T) and np.allclose(np.diag(cos), 0, atol=1e-12)
    with pytest.raises(UserError):
        embedding_distances(small_jedi, "manhattan")


def test_interpolation_endpoints_equal_the_conditions_predictions(small_jedi,
                                                                   oscillation_dataset):
    ds = oscillation_dataset
    rates = interpolate(small_jedi, "c0", 2, n=5, n_steps=ds.n_bins)
    assert rates.shape == (5, ds.n_bins, ds.n_units)
    # The ends are the two conditions' own networks (no trial's context).
    np.testing.assert_allclose(rates[0], small_jedi.condition_rates("c0", ds.n_bins),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rates[-1], small_jedi.condition_rates(2, ds.n_bins),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(rates[2], rates[0])
    with pytest.raises(UserError):
        interpolate(small_jedi, "c0", "nope", n_steps=5)
    with pytest.raises(UserError):
        model_with_embeddings(small_jedi, np.zeros((2, 7)), ["a", "b"])
