"""Single trials: per-trial contexts fitted with the network and inferred for new trials, the
priors' scale, the marginal prediction, and the fixed bugs of the earlier release."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.metrics import bits_per_spike
from nwb_jedi.model.jedi import JEDI
from nwb_jedi.model.train import _RelativeClip

# Weight averaging off: with two steps per epoch its window would span most of these short
# fits (it has its own tests in test_schedule.py).
SMALL = dict(hidden=32, embed_dim=4, rank=3, max_epochs=60, patience=5, n_decays=2,
             batch_size=16, device="cpu", seed=0, ema=0.0)
CONTEXTS = dict(trial_states=2, trial_inputs=2, input_spacing=0.06, trial_penalty=10.0,
                input_penalty=3.0)


def gain_dataset(n_per=24, n_bins=25, n_units=16, seed=0) -> TrialDataset:
    """Two conditions whose trials share a strong, slow, trial-specific gain fluctuation: a
    single-trial signal that the condition alone cannot predict."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_bins) * 0.02
    cond = np.repeat([0, 1], n_per)
    tuning = rng.uniform(-1, 1, n_units)
    shape = np.where(cond[:, None] == 0, np.sin(2 * np.pi * 2 * t), np.cos(2 * np.pi * 3 * t))
    gain = 0.8 * np.cumsum(rng.standard_normal((len(cond), n_bins)), 1) / np.sqrt(n_bins)
    log_rate = np.log(15) + 0.6 * shape[:, :, None] * tuning + gain[:, :, None]
    rates = np.exp(log_rate)
    counts = rng.poisson(rates * 0.02)
    return TrialDataset.from_arrays(counts, [f"c{c}" for c in cond], 0.02, seed=seed,
                                    ground_truth={"trial_rates": rates})


@pytest.fixture(scope="module")
def data():
    return gain_dataset()


@pytest.fixture(scope="module")
def with_contexts(data):
    # Stopped on the training loss: validation trials are predicted without contexts, and on
    # data this dominated by single-trial gain their loss stops improving within the warm-up
    # (whichever seed), long before the network has learned what the contexts drive.
    return JEDI(**SMALL, **CONTEXTS).fit(data.train)


def co_bps(model, ds, heldout):
    inferred = model.infer_embeddings(ds, per_trial=True, unit_mask=~heldout,
                                      refit_conditions=False)
    return bits_per_spike(inferred.predict_rates(ds), ds.counts, ds.bin_size, units=heldout)


def test_inferred_contexts_predict_held_out_neurons_of_new_trials(with_contexts, data):
    heldout = np.zeros(data.n_units, bool)
    heldout[::4] = True
    test = data.test
    condition_only = bits_per_spike(with_contexts.predict_rates(test), test.counts,
                                    test.bin_size, units=heldout)
    single_trial = co_bps(with_contexts, test, heldout)
    assert single_trial > condition_only + 0.02


def test_trials_without_context_get_their_conditions_average(with_contexts, data):
    test = data.test
    rates = with_contexts.predict_rates(test)
    marginal = with_contexts._marginal_rates(test)
    rows = with_contexts._condition_rows(test)
    np.testing.assert_allclose(rates, marginal[rows], rtol=1e-6)
    # The training trials keep their own fitted contexts: they differ from the average.
    train = data.train
    own = with_contexts.predict_rates(train)
    assert np.abs(own - marginal[with_contexts._condition_rows(train)]).max() > 1e-3


def test_the_prior_does_not_depend_on_how_many_trials_are_inferred(with_contexts, data):
    test = data.test
    twice = test.subset(np.r_[np.arange(test.n_trials), np.arange(test.n_trials)])
    twice.trial_id = np.r_[test.trial_id, test.trial_id + 10_000]
    one = with_contexts.infer_embeddings(test, per_trial=True, refit_conditions=False,
                                         max_iters=200, tol=0)
    two = with_contexts.infer_embeddings(twice, per_trial=True, refit_conditions=False,
                                         max_iters=200, tol=0)
    a = one.module_.contexts.inputs.detach().numpy()
    b = two.module_.contexts.inputs.detach().numpy()[:test.n_trials]
    # Control: what a prior that changed by a factor of two would do to the same contexts.
    # Inferring twice the trials may move them only by float32 rounding (measured 1.3e-4
    # against 0.13 for the doubled prior, contexts up to 0.44).
    stronger = copy.deepcopy(with_contexts)
    stronger.trial_penalty, stronger.input_penalty = (2 * with_contexts.trial_penalty,
                                                      2 * with_contexts.input_penalty)
    c = stronger.infer_embeddings(test, per_trial=True, refit_conditions=False, max_iters=200,
                                  tol=0).module_.contexts.inputs.detach().numpy()
    assert np.abs(a - b).max() < 0.01 * np.abs(a - c).max()


def test_the_prior_weighs_against_each_trials_summed_likelihood(with_contexts, data):
    """The inferred contexts are the maximum a posteriori estimate of
    Σ_k [Σ_{t,n} log p(k_tn | c_k) − λ‖c_k‖²] over the observed bins and neurons: the gradient
    of that objective vanishes at them, however many bins and neurons are observed (the
    prior is not scaled by the trial's length or the number of neurons)."""
    test = data.test
    half = np.arange(data.n_units) % 2 == 0
    for unit_mask, n_bins in ((None, test.n_bins), (half, 12)):
        inferred = with_contexts.infer_embeddings(test, per_trial=True, refit_conditions=False,
                                                  unit_mask=unit_mask, observed_bins=n_bins,
                                                  max_iters=1500)
        module, contexts = inferred.module_, inferred.module_.contexts
        condition, index = (torch.as_tensor(a) for a in inferred._trial_inputs(test))
        counts = torch.as_tensor(test.counts[:, :n_bins], dtype=torch.float32)
        observed = torch.ones(data.n_units) if unit_mask is None else torch.as_tensor(
            unit_mask, dtype=torch.float32)
        expected = module(condition, n_bins, inferred.alpha_, index,
                          knot_step=inferred.knot_step_)
        nll = ((expected - counts * torch.log(expected)) * observed).sum()
        prior = (inferred.trial_penalty * contexts.states.pow(2).sum()
                 + inferred.input_penalty * contexts.inputs.pow(2).sum())
        params = contexts.trainable()
        likelihood_only = torch.autograd.grad(nll, params, retain_graph=True)
        posterior = torch.autograd.grad(nll + prior, params)
        norm = lambda grads: float(torch.sqrt(sum(g.pow(2).sum() for g in grads)))  # noqa: E731
        assert norm(posterior) < 0.2 * norm(likelihood_only), (unit_mask, n_bins)


def test_training_fits_smoothed_counts_and_scores_raw_ones(data):
    """With `target_smooth`, every training trial's targets are its counts smoothed along time
    (a Gaussian of that many seconds); validation still scores the raw counts."""
    from nwb_jedi.data.binning import smoothing_matrix

    class Recording(JEDI):
        def _run_module(self, net, chunk, n_steps, noise=None, target=None, unit_mask=None):
            if target is not None:
                seen["train" if torch.is_grad_enabled() else "val"].append(
                    target.detach().numpy().copy())
            return super()._run_module(net, chunk, n_steps, noise, target, unit_mask)

    train, val = data.train, data.val
    for width in (0.04, 0.0):
        seen = {"train": [], "val": []}
        Recording(**{**SMALL, "max_epochs": 1}, trial_states=0, trial_inputs=0,
                  target_smooth=width).fit(train, val)
        expected = train.counts.astype(np.float32)
        if width:
            expected = np.matmul(smoothing_matrix(train.n_bins, width, train.bin_size),
                                 expected)
        fitted = np.concatenate(seen["train"])
        assert len(fitted) == train.n_trials
        for target in fitted:  # minibatches come in a shuffled order
            distance = np.abs(expected - target).max(axis=(1, 2))
            assert distance.min() < 1e-5
        np.testing.assert_array_equal(np.concatenate(seen["val"]), val.counts)
    assert not np.allclose(expected, np.matmul(smoothing_matrix(train.n_bins, 0.04,
                                                                train.bin_size), expected))


def test_known_conditions_start_from_their_trained_embeddings(with_contexts, data):
    test = data.test
    kept = with_contexts.infer_embeddings(test, per_trial=True, refit_conditions=False,
                                          max_iters=5)
    np.testing.assert_array_equal(kept.embeddings_, with_contexts.embeddings_)
    moved = with_contexts.infer_embeddings(test, max_iters=1)
    step = np.abs(moved.embeddings_ - with_contexts.embeddings_).max()
    assert 0 < step <= 1.5 * with_contexts.embed_lr  # one Adam step away, not re-initialized


def test_forward_prediction_infers_from_the_first_bins_only(with_contexts, data):
    test = data.test
    early = with_contexts.infer_embeddings(test, per_trial=True, observed_bins=10,
                                           refit_conditions=False)
    changed = test.subset(np.arange(test.n_trials))
    changed.counts = changed.counts.copy()
    changed.counts[:, 10:] = 0  # what comes after the observed bins cannot matter
    again = with_contexts.infer_embeddings(changed, per_trial=True, observed_bins=10,
                                           refit_conditions=False)
    np.testing.assert_allclose(early.predict_rates(test), again.predict_rates(test), rtol=1e-5)
    with pytest.raises(UserError, match="observed_bins"):
        with_contexts.infer_embeddings(test, observed_bins=1)


def test_weight_decay_spares_the_shared_weights_and_the_readout(data):
    no_contexts = dict(trial_states=0, trial_inputs=0)
    model = JEDI(**{**SMALL, "max_epochs": 1}, **no_contexts, weight_decay=1e-3).fit(data.train)
    decayed, plain = model._network_parameter_split()
    module = model.module_
    def among(x, params):
        return any(x is p for p in params)

    assert among(module.hypernet.layers[-1].bias, plain)
    assert among(module.readout.offset, plain) and among(module.readout.gain, plain)
    assert all(p.dim() == 2 for p in decayed)
    groups = model._parameter_groups()
    assert [g["weight_decay"] for g in groups] == [0.0, 1e-3, 0.0]
    fitted = JEDI(**SMALL, **no_contexts, weight_decay=1e-3).fit(data.train, data.val)
    best = int(np.nanargmin(fitted.history_["val_loss"])) + 1
    assert best > 5 and fitted.score(data.test) > 0


def test_relative_clipping_engages_on_outliers_only():
    p = torch.nn.Parameter(torch.zeros(3))
    clip = _RelativeClip(5.0)
    for scale in (1.0, 1.2, 0.9, 1.1):
        p.grad = torch.full((3,), scale)
        clip([p])
        assert torch.allclose(p.grad, torch.full((3,), scale))  # typical: untouched
    p.grad = torch.full((3,), 1000.0)
    clip([p])
    assert float(p.grad.norm()) < 6 * np.sqrt(3) * 1.2


def test_models_of_the_previous_format_still_load(data):
    # A model format 1 could hold: per-trial embedding offsets, no per-trial states or inputs.
    model = JEDI(**{**SMALL, "max_epochs": 2}, trial_embeddings=True, trial_states=0,
                 trial_inputs=0).fit(data.train)
    config, tensors = model.get_state()
    old_config = {**config, "format_version": 1, "trial_offset_ids": config["context_ids"]}
    for key in ("context_ids", "context_conditions"):
        old_config.pop(key)
    old_config["params"] = {k: v for k, v in config["params"].items()
                            if k not in ("trial_states", "trial_inputs", "input_spacing",
                                         "input_penalty", "target_smooth")}
    old_tensors = {k: v for k, v in tensors.items() if not k.startswith("contexts.")}
    old_tensors["trial_offsets"] = tensors["contexts.offsets"]
    loaded = JEDI.from_state(old_config, old_tensors)
    np.testing.assert_array_equal(loaded.predict_rates(data.train),
                                  model.predict_rates(data.train))


def test_fitted_contexts_are_centred_on_their_conditions(with_contexts):
    """Conditions carry what their trials share: each condition's trials' contexts average to
    zero, and the stored model no longer centres (its forward pass needs no grouping)."""
    contexts = with_contexts.module_.contexts
    rows = with_contexts.context_conditions_
    assert len(contexts.row_groups) == 0
    for param in (contexts.states, contexts.inputs):
        values = param.detach().numpy()
        assert np.abs(values).max() > 1e-3
        for c in np.unique(rows):
            np.testing.assert_allclose(values[rows == c].mean(0), 0, atol=1e-5)


def test_centring_leaves_the_forward_pass_unchanged_and_spares_lone_trials():
    from nwb_jedi.model.contexts import TrialContexts

    torch.manual_seed(0)
    contexts = TrialContexts(5, 6, 3, True, 2, 2, 4)
    with torch.no_grad():
        for p in contexts.trainable():
            p.normal_()
    lone = contexts.states[4].detach().clone()
    contexts.center_on(torch.tensor([0, 0, 1, 1, 2]))
    index = torch.tensor([0, 3, 4, -1])
    before = contexts.drive(index, 6, 0.2, 1.0), contexts.state_offsets(index)
    contexts.fix_centering()
    after = contexts.drive(index, 6, 0.2, 1.0), contexts.state_offsets(index)
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(contexts.states[4], lone)
    torch.testing.assert_close(contexts.states[:2].sum(0), torch.zeros(2))
    with pytest.raises(ValueError, match="groups"):
        contexts.center_on(torch.tensor([0, 1]))
