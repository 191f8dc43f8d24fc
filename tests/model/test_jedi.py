"""The JEDI estimator: API, determinism, persistence, spectra, embedding inference."""

import json

import numpy as np
import pytest
import torch

from nwb_jedi import JEDI, TrialDataset
from nwb_jedi.errors import ModelFileError, UserError
from tests.model.rotation import rotation_dataset

FAST = dict(hidden=16, embed_dim=3, rank=2, max_epochs=6, patience=3, batch_size=16)


@pytest.fixture(scope="module")
def ds():
    return rotation_dataset()


@pytest.fixture(scope="module")
def fitted(ds):
    return JEDI(**FAST, seed=0).fit(ds.train, ds.val)


def test_fit_returns_self_and_fitted_attributes(ds):
    model = JEDI(**FAST)
    assert model.fit(ds.train, ds.val) is model
    assert model.embeddings_.shape == (4, 3)
    assert list(model.conditions_["label"]) == list(ds.conditions["label"])
    assert len(model.history_["train_loss"]) == model.n_epochs_ >= 1
    assert np.all(np.isfinite(model.history_["val_loss"]))


def test_predict_rates_shape_dtype_units(fitted, ds):
    rates = fitted.predict_rates(ds.test)
    assert rates.shape == ds.test.counts.shape and rates.dtype == np.float32
    assert np.all(rates >= 0)
    # Rates are in Hz: near the data's mean rate, not its mean count per bin.
    data_hz = ds.counts.mean() / ds.bin_size
    assert 0.3 * data_hz < rates.mean() < 3 * data_hz


def test_score_has_metrics(fitted, ds):
    scores = fitted.evaluate(ds.test)
    for key in ("bits_per_spike", "psth_r2_smoothed", "r2", "r2_true"):
        assert np.isfinite(scores[key])


def test_same_seed_same_parameters_other_seed_differs(ds):
    a = JEDI(**FAST, seed=3).fit(ds.train, ds.val).get_state()[1]
    b = JEDI(**FAST, seed=3).fit(ds.train, ds.val).get_state()[1]
    c = JEDI(**FAST, seed=4).fit(ds.train, ds.val).get_state()[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_fit_does_not_touch_global_torch_rng(ds):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    JEDI(**FAST).fit(ds.train)
    assert torch.equal(torch.rand(3), expected)


def test_eigenvalues_are_nonzero_spectrum_of_J(fitted):
    for c in range(2):
        w = fitted.condition_weights(c)
        assert np.allclose(w["J"], w["M"] @ w["U"].T / w["M"].shape[0], atol=1e-6)
        full = np.linalg.eigvals(w["J"].astype(np.float64))
        full = full[np.argsort(-np.abs(full))][:2]
        assert np.allclose(fitted.eigenvalues(c), full, atol=1e-5)
    assert fitted.eigenvalues("cond1").shape == (2,)


def test_step_fn_matches_simulation(fitted):
    w = fitted.condition_weights(1)
    step = fitted.step_fn(1)
    x = torch.as_tensor(w["x0"])
    states = [np.tanh(w["x0"])]
    for _ in range(4):
        x = step(x)
        states.append(torch.tanh(x).detach().numpy())
    assert np.allclose(np.array(states), fitted.simulate_states(1, 5), atol=1e-5)
    batch = step(torch.zeros(3, 2, fitted.n_units_))  # any leading shape
    assert batch.shape == (3, 2, fitted.n_units_)


def test_save_load_roundtrip_identical(tmp_path, fitted, ds):
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = JEDI.load(path)
    assert np.array_equal(loaded.predict_rates(ds), fitted.predict_rates(ds))
    assert loaded.get_params() == {**fitted.get_params(), "device": "cpu"}
    assert list(loaded.conditions_["label"]) == list(fitted.conditions_["label"])
    with np.load(path, allow_pickle=False) as data:  # nothing in the file needs pickle
        assert all(data[k].dtype != object for k in data.files)


def _rewrite(path, out, change):
    with np.load(path, allow_pickle=False) as data:
        items = {k: data[k] for k in data.files}
    change(items)
    np.savez(out, **items)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update({"tensor/readout.gain": np.array([object()], dtype=object)}),
     "not a readable nwb_jedi model"),
    (lambda d: d.update({"tensor/readout.gain": np.zeros(3, np.float32)}), "has shape"),
    (lambda d: d.update({"tensor/readout.gain": np.full(12, np.nan, np.float32)}), "NaN"),
    (lambda d: d.update({"tensor/readout.gain": np.zeros(12, np.int64)}), "not floating"),
    (lambda d: d.pop("tensor/readout.offset"), "missing"),
    (lambda d: d.update({"__config__": np.array(json.dumps(
        {**json.loads(str(d["__config__"])), "format_version": 99}))}), "version 99"),
])
def test_load_refuses_malformed_files(tmp_path, fitted, change, message):
    good = tmp_path / "good.npz"
    fitted.save(good)
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, change)
    with pytest.raises(ModelFileError, match=message):
        JEDI.load(bad)


def test_infer_embeddings_for_unseen_condition(ds):
    seen = ds.subset(ds.condition != 3)
    model = JEDI(**{**FAST, "max_epochs": 30}, seed=0).fit(seen.train, seen.val)
    unseen = ds.subset(ds.condition == 3)
    with pytest.raises(UserError, match="unknown to the model"):
        model.predict_rates(unseen)
    with pytest.raises(UserError, match="max_epochs must be a positive integer"):
        model.infer_embeddings(unseen.train, max_epochs=0)
    new = model.infer_embeddings(unseen.train, max_epochs=40, start="centre")
    assert new.embeddings_.shape == (1, 3)
    assert list(new.conditions_["label"]) == ["cond3"]
    # The network is frozen: identical weights, only embeddings moved.
    old_state, new_state = model.get_state()[1], new.get_state()[1]
    for key, value in old_state.items():
        if key not in ("embeddings", "contexts.offsets", "contexts.states", "contexts.inputs"):
            assert np.array_equal(value, new_state[key])
    start = new.history_["train_loss"][0]
    assert min(new.history_["train_loss"]) < start
    # The inferred embedding explains the unseen condition better than its neutral start.
    start_model = model.infer_embeddings(unseen.train, max_epochs=1, start="centre")
    assert new.evaluate(unseen.test)["bits_per_spike"] > start_model.evaluate(unseen.test)[
        "bits_per_spike"]


def test_likeliest_start_screens_the_known_conditions(ds):
    # Trials of a known condition, relabelled as new: the likeliest start is the known
    # embedding their data favour, which for a fitted model is their own condition's.
    fitted = JEDI(**{**FAST, "max_epochs": 40}, seed=0).fit(ds.train, ds.val)
    relabelled = TrialDataset(
        counts=ds.counts, condition=ds.condition,
        conditions=ds.conditions.assign(label=[f"new{i}" for i in range(len(ds.conditions))]),
        trial_id=ds.trial_id, unit_id=ds.unit_id, time=ds.time, align_time=ds.align_time,
        bin_size=ds.bin_size, split=ds.split)
    likelihoods = fitted.condition_log_likelihoods(relabelled)
    assert likelihoods.shape == (ds.n_trials, len(ds.conditions))
    # The labels are not used; the trials' own conditions explain most of them best.
    np.testing.assert_array_equal(likelihoods, fitted.condition_log_likelihoods(ds))
    assert np.mean(likelihoods.argmax(1) == ds.condition) >= 0.5  # chance 0.25
    starts = fitted._likeliest_known(relabelled, None, relabelled.n_bins)
    assert list(starts) == list(range(len(ds.conditions)))
    first_step = fitted.infer_embeddings(relabelled, start="likeliest", max_iters=1)
    centre = fitted.infer_embeddings(relabelled, start="centre", max_iters=1)
    assert first_step.history_["train_loss"][0] < centre.history_["train_loss"][0]
    # One step of Adam moves each embedding by about the learning rate from its start.
    np.testing.assert_allclose(first_step.embeddings_, fitted.embeddings_,
                               atol=2 * fitted.embed_lr)
    with pytest.raises(UserError, match="start must be"):
        fitted.infer_embeddings(relabelled, start="nearest")


def test_inference_of_a_gaussian_model_scores_what_it_was_fitted_to(ds):
    # A Gaussian model is fitted to normalized smoothed rates; inference must score the same
    # targets (not spike counts), so at the trained embeddings its objective is the model's
    # own Gaussian loss of those trials.
    model = JEDI(**FAST, observation="gaussian", trial_states=0, trial_inputs=0,
                 seed=0).fit(ds.train, ds.val)
    test = ds.test
    inferred = model.infer_embeddings(test, max_iters=1)
    output = model._forward_batches(model._trial_inputs(test), test.n_bins)
    expected = np.mean((output - model._targets(test, training=False)) ** 2)
    assert inferred.history_["train_loss"][0] == pytest.approx(expected, rel=1e-4)


def test_gaussian_observation_and_trial_embeddings(ds):
    model = JEDI(**FAST, observation="gaussian", trial_embeddings=True).fit(ds.train, ds.val)
    rates = model.predict_rates(ds.test)
    assert rates.shape == ds.test.counts.shape and np.all(rates >= 0)
    assert model.get_state()[1]["contexts.offsets"].shape == (ds.train.n_trials, 3)
    # Training trials use their own offsets, so their predictions differ within a condition.
    train_rates = model.predict_rates(ds.train)
    first = ds.train.condition == 0
    assert not np.allclose(train_rates[first][0], train_rates[first][1])


def test_full_rank_ablation(ds):
    model = JEDI(**{**FAST, "rank": None}).fit(ds.train)
    assert model.condition_weights(0)["J"].shape == (12, 12)
    assert "M" not in model.condition_weights(0)
    assert model.eigenvalues(0).shape == (12,)


@pytest.mark.parametrize("params, message", [
    (dict(observation="gamma"), "observation"),
    (dict(rank=0), "rank"),
    (dict(tau=-1.0), "tau"),
    (dict(batch_size=0), "batch_size"),
    (dict(device="tpu"), "device"),
    (dict(rank=50), "exceeds the number of neurons"),
    (dict(tau=0.005), "tau .5 ms. must be at least the bin width .20 ms."),
    (dict(patience=0), "patience"),
    (dict(hidden=10**8), "the hypernetwork would hold 1e\\+16 parameters"),
])
def test_bad_hyperparameters(ds, params, message):
    with pytest.raises(UserError, match=message):
        JEDI(**{**FAST, **params}).fit(ds.train)


def test_incompatible_data_is_refused(fitted, ds):
    with pytest.raises(UserError, match="neurons"):
        fitted.predict_rates(ds.select_units(np.arange(5)))
    rebinned = TrialDataset.from_arrays(ds.counts, ds.condition_labels, 0.01)
    with pytest.raises(UserError, match="binned at 10 ms"):
        fitted.predict_rates(rebinned)
    with pytest.raises(UserError, match="not fitted"):
        JEDI().predict_rates(ds)


def test_set_params_and_repr():
    model = JEDI().set_params(rank=3, tau=0.1)
    assert model.rank == 3 and "rank=3" in repr(model)
    with pytest.raises(ValueError, match="no hyperparameter"):
        model.set_params(nope=1)
