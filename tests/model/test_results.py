"""compute_results: everything written about a fitted model, from one prediction of the trials."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.model.jedi import JEDI
from nwb_jedi.model.quality import BASELINE_KEYS
from nwb_jedi.model.results import FitResults, compute_results


def _dataset(seed: int = 0) -> TrialDataset:
    rng = np.random.default_rng(seed)
    n_trials = 60
    condition = np.arange(n_trials) % 5
    rates = 0.5 + condition[:, None, None] * 0.3 + rng.uniform(0, 1, size=(1, 10, 6))
    return TrialDataset.from_arrays(rng.poisson(rates), condition.tolist(), 0.02,
                                    trial_ids=np.arange(100, 100 + n_trials))


def _tiny(**kw) -> JEDI:
    return JEDI(hidden=16, embed_dim=3, rank=2, max_epochs=3, patience=2, device="cpu", seed=0,
                **kw)


@pytest.fixture(scope="module")
def fitted():
    ds = _dataset()
    return _tiny().fit(ds.train, ds.val), ds


@pytest.fixture(scope="module")
def fitted_per_trial():
    ds = _dataset(1)
    return _tiny(trial_embeddings=True).fit(ds.train, ds.val), ds


def _count_predictions(model, monkeypatch) -> list:
    calls = []
    predict = model.predict_rates

    def counting(ds):
        calls.append(ds.n_trials)
        return predict(ds)

    monkeypatch.setattr(model, "predict_rates", counting)
    return calls


def test_one_prediction_and_each_split_scored_like_evaluate(fitted, monkeypatch):
    model, ds = fitted
    expected = {split: model.evaluate(ds.subset(ds.split == split))
                for split in ("train", "val", "test")}
    calls = _count_predictions(model, monkeypatch)
    results = compute_results(model, ds)
    assert calls == [ds.n_trials]  # one predict_rates call, on every trial
    assert list(results.metrics) == ["train", "val", "test"]
    for split, metrics in expected.items():
        # Held-out splits also carry the comparison with the PSTH baseline (issue 14).
        extra = set(BASELINE_KEYS) if split != "train" else set()
        assert results.metrics[split].keys() == metrics.keys() | extra
        for name, value in metrics.items():
            np.testing.assert_allclose(results.metrics[split][name], value, rtol=1e-5,
                                       atol=1e-7, err_msg=f"{split} {name}")
    monkeypatch.undo()
    np.testing.assert_array_equal(results.rates, model.predict_rates(ds))


def test_state_embeddings_and_eigenvalues_come_from_the_public_api(fitted):
    model, ds = fitted
    results = compute_results(model, ds)
    config, tensors = model.get_state()
    assert results.config["format"] == config["format"] == "nwb_jedi.JEDI"
    assert results.tensors.keys() == tensors.keys()
    for name in tensors:
        np.testing.assert_array_equal(results.tensors[name], tensors[name])
    assert results.estimator == repr(model)
    np.testing.assert_array_equal(results.condition_embeddings,
                                  model.embeddings_.astype(np.float32))
    assert results.trial_embeddings is None  # no per-trial offsets
    assert sorted(results.eigenvalues) == list(range(ds.n_conditions))
    for row, values in results.eigenvalues.items():
        np.testing.assert_array_equal(values, model.eigenvalues(row))


def test_conditions_the_model_does_not_know_get_nan_and_no_eigenvalues():
    ds = _dataset(2)
    without_3 = ds.subset(ds.condition != 3)  # the conditions table keeps row 3
    model = _tiny().fit(without_3.subset(without_3.split == "train"))
    results = compute_results(model, without_3)
    assert results.condition_embeddings.shape == (ds.n_conditions, 3)
    assert np.all(np.isnan(results.condition_embeddings[3]))
    known = [0, 1, 2, 4]
    np.testing.assert_array_equal(results.condition_embeddings[known],
                                  model.embeddings_.astype(np.float32))
    assert sorted(results.eigenvalues) == known
    np.testing.assert_array_equal(results.eigenvalues[4], model.eigenvalues(3))  # model row 3


def test_per_trial_embeddings(fitted_per_trial):
    model, ds = fitted_per_trial
    results = compute_results(model, ds)
    assert results.trial_embeddings.shape == (ds.n_trials, 3)
    np.testing.assert_array_equal(results.trial_embeddings,
                                  model.embed_trials(ds).astype(np.float32))


def test_given_metrics_are_kept_and_splits_choose_what_is_scored(fitted, monkeypatch):
    model, ds = fitted
    calls = _count_predictions(model, monkeypatch)
    given = compute_results(model, ds, {"custom": {"bits_per_spike": 1.5}})
    assert given.metrics == {"custom": {"bits_per_spike": 1.5}}
    chosen = compute_results(model, ds, splits=("test", "train"))
    assert list(chosen.metrics) == ["test", "train"]
    assert calls == [ds.n_trials, ds.n_trials]


def test_results_of_other_data_are_refused(fitted):
    model, ds = fitted
    results = compute_results(model, ds)
    results.check_matches(ds)
    with pytest.raises(UserError, match="rates.*compute the results on this dataset"):
        results.check_matches(ds.subset(ds.split == "test"))


def test_models_without_embeddings_or_spectra():
    """An estimator with only predict_rates, get_state and conditions_ (like PSTHBaseline)."""
    ds = _dataset(3)

    class RatesOnly:
        conditions_ = ds.conditions

        def predict_rates(self, data):
            return np.ones(data.counts.shape, dtype=np.float32)

        def get_state(self):
            return {"format": "test.RatesOnly"}, {}

    results = compute_results(RatesOnly(), ds)
    assert isinstance(results, FitResults)
    assert results.condition_embeddings is None and results.trial_embeddings is None
    assert results.eigenvalues == {}
    assert set(results.metrics) == set(np.unique(ds.split))


@pytest.mark.parametrize("model, match", [
    (object(), "has no predict_rates"),
    (JEDI(), "not fitted"),
])
def test_unsavable_or_unfitted_models_are_user_errors(model, match):
    with pytest.raises(UserError, match=match):
        compute_results(model, _dataset())
