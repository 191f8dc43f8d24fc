"""Baselines: per-condition RNNs, a shared RNN and the trial-averaged PSTH."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nwb_jedi import metrics
from nwb_jedi.analysis.fixedpoints import fixed_points
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.model.baselines import PerConditionRNN, PSTHBaseline, SharedRNN
from nwb_jedi.model.hypernet import RNNWeights
from nwb_jedi.model.rnn import simulate


def _dataset(seed: int = 0) -> TrialDataset:
    """Three conditions with distinct, strongly modulated rate profiles (Poisson counts)."""
    rng = np.random.default_rng(seed)
    n_per, n_bins, n_units, bin_size = 20, 25, 10, 0.02
    t = np.arange(n_bins) * bin_size
    cond = np.repeat(np.arange(3), n_per)
    phase = rng.uniform(0, 2 * np.pi, n_units)
    rates = np.stack([10 + 8 * np.sin(2 * np.pi * (2 + 3 * c) * t[:, None] + phase[None] + c)
                      for c in cond])
    counts = rng.poisson(rates * bin_size)
    return TrialDataset.from_arrays(counts, [f"k{c}" for c in cond], bin_size, seed=seed,
                                    ground_truth={"trial_rates": rates})


@pytest.fixture(scope="module")
def ds():
    return _dataset()


@pytest.fixture(scope="module")
def per_condition(ds):
    # The settings this fixture was written with (the defaults before they became JEDI's).
    return PerConditionRNN(rank=3, tau=0.05, noise_std=0.05, max_epochs=100, patience=100,
                           batch_size=8, device="cpu").fit(ds.train, ds.val)


def test_psth_baseline_equals_the_smoothed_training_average(ds):
    model = PSTHBaseline(smooth_sd=0.03, min_rate=0.0).fit(ds.train)
    train = ds.train
    for c in range(3):
        trials = train.counts[train.condition == c].astype(np.float64) / ds.bin_size
        expected = metrics.smooth(trials.mean(axis=0, keepdims=True), 0.03 / ds.bin_size)[0]
        np.testing.assert_allclose(model.psth_[c], expected, rtol=1e-12)
    rates = model.predict_rates(ds.test)
    np.testing.assert_allclose(rates, model.psth_[ds.test.condition].astype(np.float32))
    floored = PSTHBaseline(min_rate=5.0).fit(ds.train)
    assert floored.psth_.min() >= 5.0
    score = model.evaluate(ds.test)
    assert score["bits_per_spike"] > 0 and score["r2_true"] > 0.3


def test_psth_baseline_refuses_unknown_conditions_and_other_lengths(ds):
    only_two = ds.train.subset(ds.train.condition < 2)
    model = PSTHBaseline().fit(only_two)
    assert list(model.conditions_["label"]) == ["k0", "k1"]
    with pytest.raises(UserError, match="unknown to the model"):
        model.predict_rates(ds.test)
    short = TrialDataset.from_arrays(ds.counts[:, :10], ds.condition_labels, ds.bin_size)
    with pytest.raises(UserError, match="bins"):
        PSTHBaseline().fit(ds.train).predict_rates(short)
    with pytest.raises(UserError, match="not fitted"):
        PSTHBaseline().predict_rates(ds)


def test_per_condition_rnn_beats_the_mean_rate_null_and_the_shared_rnn(ds, per_condition):
    shared = SharedRNN(rank=3, tau=0.05, noise_std=0.05, max_epochs=40, patience=40,
                       batch_size=8, device="cpu").fit(ds.train, ds.val)
    own = per_condition.evaluate(ds.test)
    common = shared.evaluate(ds.test)
    assert own["bits_per_spike"] > 0.1
    assert own["bits_per_spike"] > common["bits_per_spike"]
    assert own["r2_true"] > common["r2_true"]
    assert per_condition.history_["epoch"][-1] == per_condition.n_epochs_
    rates = per_condition.predict_rates(ds.test)
    assert rates.shape == ds.test.counts.shape and np.all(rates >= 0)


def test_per_condition_rnn_has_one_independent_rnn_per_condition(ds, per_condition):
    model = per_condition
    assert model.module_.M.shape == (3, ds.n_units, 3)
    w0, w2 = model.condition_weights("k0"), model.condition_weights(2)
    assert not np.allclose(w0["J"], w2["J"])
    np.testing.assert_allclose(w0["J"], w0["M"] @ w0["U"].T / ds.n_units, rtol=1e-5,
                               atol=1e-6)
    ev = model.eigenvalues(0)
    np.testing.assert_allclose(np.sort(np.abs(ev)),
                               np.sort(np.abs(np.linalg.eigvals(w0["J"])))[-3:], rtol=1e-4)
    # Predictions of a condition are its own RNN simulated through the shared readout.
    t = torch.as_tensor
    weights = RNNWeights(b=t(w2["b"])[None], x0=t(w2["x0"])[None], M=t(w2["M"])[None],
                         U=t(w2["U"])[None])
    with torch.no_grad():
        expected = model.module_.readout(simulate(weights, ds.n_bins, model.alpha_))[0]
    trial = np.flatnonzero(ds.test.condition == 2)[0]
    np.testing.assert_allclose(model.predict_rates(ds.test)[trial],
                               expected.numpy() / ds.bin_size, rtol=1e-5, atol=1e-5)
    # The dynamics analyses apply to the baseline unchanged.
    found = fixed_points(model, "k1", n_initial=16, max_iters=200)
    assert found.locations.shape[1] == ds.n_units


def test_per_condition_rnn_fits_only_its_own_conditions(ds):
    only_two = ds.train.subset(ds.train.condition < 2)
    model = PerConditionRNN(rank=2, max_epochs=3, device="cpu").fit(only_two)
    assert model.module_.M.shape[0] == 2  # one RNN per condition with training trials
    assert list(model.conditions_["label"]) == ["k0", "k1"]
    with pytest.raises(UserError):
        model.condition_weights("nope")
    with pytest.raises(UserError, match="unknown to the model"):
        model.predict_rates(ds.test)  # the test trials include condition k2


def test_baselines_are_reproducible_and_validate_input(ds):
    a = SharedRNN(rank=2, max_epochs=4, device="cpu", seed=3).fit(ds.train)
    b = SharedRNN(rank=2, max_epochs=4, device="cpu", seed=3).fit(ds.train)
    np.testing.assert_array_equal(a.predict_rates(ds.test), b.predict_rates(ds.test))
    np.testing.assert_array_equal(a.condition_weights(0)["J"], a.condition_weights(2)["J"])
    gaussian = PerConditionRNN(rank=2, max_epochs=4, observation="gaussian",
                               device="cpu").fit(ds.train, ds.val)
    assert gaussian.predict_rates(ds.test).min() >= 0
    with pytest.raises(UserError):
        PerConditionRNN(observation="gamma").fit(ds.train)
    with pytest.raises(UserError):
        PerConditionRNN(rank=99).fit(ds.train)
    with pytest.raises(UserError):
        PerConditionRNN().predict_rates(ds)
    other_units = ds.select_units(np.arange(5))
    with pytest.raises(UserError, match="neurons"):
        a.predict_rates(other_units)
    assert "rank=2" in repr(a.set_params(rank=2))


def test_rnn_baselines_default_to_jedis_family_and_budget():
    from nwb_jedi import JEDI

    jedi = JEDI().get_params()
    for cls in (PerConditionRNN, SharedRNN):
        params = cls().get_params()
        shared = set(params) & set(jedi)
        assert {"rank", "tau", "noise_std", "lr", "max_epochs", "patience", "batch_size"} <= shared
        assert {k: params[k] for k in shared} == {k: jedi[k] for k in shared}
