"""Evaluation protocols: co-smoothing for any model, few-shot generalization, classification of
held-out trials from label-free embeddings, and the never-score-training-trials rule."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi import metrics
from nwb_jedi.analysis.embedding import nearest_embedding
from nwb_jedi.analysis.evaluation import (
    classify_trials,
    co_smoothing,
    co_smoothing_bits_per_spike,
    few_shot,
    trials_seen_in_training,
)
from nwb_jedi.errors import UserError
from nwb_jedi.model.baselines import PSTHBaseline


# ---------------------------------------------------------------------- co-smoothing
def test_co_smoothing_infers_with_a_shared_network_and_predicts_otherwise(
        small_jedi, oscillation_dataset):
    ds = oscillation_dataset
    test = ds.test
    heldout = metrics.heldout_unit_mask(test.n_units, 0.25, seed=0)
    jedi = co_smoothing(small_jedi, test, heldout, max_epochs=5)
    assert set(jedi) == {"co_bps", "co_bps_per_trial"}
    assert jedi["co_bps"] == pytest.approx(
        co_smoothing_bits_per_spike(small_jedi, test, heldout, max_epochs=5))
    assert jedi["co_bps_per_trial"] == pytest.approx(
        co_smoothing_bits_per_spike(small_jedi, test, heldout, per_trial=True, max_epochs=5))
    psth = PSTHBaseline().fit(ds.train)
    assert co_smoothing(psth, test, heldout) == {
        "co_bps": pytest.approx(metrics.bits_per_spike(psth.predict_rates(test), test.counts,
                                                       test.bin_size, units=heldout))}


def test_condition_level_co_smoothing_predicts_known_conditions_as_new_trials(
        small_jedi, oscillation_dataset):
    # Known conditions keep their trained embeddings, so the condition-level co-bps is the
    # model's own prediction for new trials (averaged over its trials' contexts), not the
    # bare condition network that the contexts were centred on.
    test = oscillation_dataset.test
    assert small_jedi.has_trial_contexts
    heldout = metrics.heldout_unit_mask(test.n_units, 0.25, seed=0)
    marginal = metrics.bits_per_spike(small_jedi.predict_rates(test), test.counts,
                                      test.bin_size, units=heldout)
    bare = small_jedi.infer_embeddings(test, unit_mask=~heldout, refit_conditions=False)
    bare_score = metrics.bits_per_spike(bare.predict_rates(test), test.counts, test.bin_size,
                                        units=heldout)
    assert bare_score != pytest.approx(marginal, abs=1e-6)  # the two differ on this model
    assert co_smoothing_bits_per_spike(small_jedi, test, heldout) == pytest.approx(marginal)


# ---------------------------------------------------------------------- few-shot
class _PerConditionSpy:
    """A stand-in estimator fitted per condition: records the trials it sees, predicts each
    neuron's mean rate. Its parameters (shared log included) survive few_shot's cloning."""

    def __init__(self, log: list, patience: int = 3):
        self.log = log
        self.patience = patience

    def get_params(self) -> dict:
        return {"log": self.log, "patience": self.patience}

    def fit(self, train, val=None):
        self.log.append((type(self).__name__, "fit", set(train.trial_id),
                         None if val is None else set(val.trial_id)))
        self.rate_ = train.counts.mean(axis=(0, 1)) / train.bin_size + 1e-3
        return self

    def predict_rates(self, ds):
        self.log.append((type(self).__name__, "predict", set(ds.trial_id), None))
        return np.broadcast_to(self.rate_, ds.counts.shape).astype(np.float64)


class _NoValidationSpy(_PerConditionSpy):
    def __init__(self, log: list):
        super().__init__(log)

    def get_params(self) -> dict:
        return {"log": self.log}


class _SharedSpy(_PerConditionSpy):
    """A stand-in with a shared network: fitted on other conditions, then infers."""

    def infer_embeddings(self, ds, max_epochs=None):
        self.log.append((type(self).__name__, "infer", set(ds.trial_id), max_epochs))
        return self


def test_few_shot_protocol_no_model_sees_the_trials_it_is_scored_on(oscillation_dataset):
    ds = oscillation_dataset
    log: list = []
    models = {"shared": _SharedSpy(log), "rnn": _PerConditionSpy(log),
              "psth": _NoValidationSpy(log)}
    table = few_shot(ds, models, shots=4, seed=1, max_epochs=7, nearest_psth=False)
    assert list(table["model"]) == ["shared", "rnn", "psth"]
    assert (table["n_trials"] == ds.n_trials - 4 * ds.n_conditions).all()
    assert np.isfinite(table[["bits_per_spike", "psth_r2_smoothed"]].to_numpy()).all()
    condition = dict(zip(ds.trial_id, ds.condition, strict=True))
    split = dict(zip(ds.trial_id, ds.split, strict=True))
    calls = iter(log)
    for c in range(ds.n_conditions):
        of_c = {t for t in ds.trial_id if condition[t] == c}
        # The shared network: fitted on the other conditions' train/val trials only.
        _, _, train, val = next(calls)
        assert all(condition[t] != c and split[t] == "train" for t in train)
        assert all(condition[t] != c and split[t] == "val" for t in val)
        _, what, shots, budget = next(calls)
        assert what == "infer" and budget == 7 and len(shots) == 4
        assert all(condition[t] == c and split[t] == "train" for t in shots)
        _, _, scored, _ = next(calls)
        assert scored == of_c - shots
        # Early-stopping model: the shots, the last one for validation; then the same scoring.
        _, _, train, val = next(calls)
        assert train | val == shots and len(val) == 1 and not train & val
        assert next(calls)[2] == scored
        # No validation: all the shots.
        _, _, train, val = next(calls)
        assert train == shots and val is None
        assert next(calls)[2] == scored
    assert next(calls, None) is None


def test_few_shot_with_real_models(oscillation_dataset):
    from nwb_jedi.model.jedi import JEDI

    ds = oscillation_dataset
    template = JEDI(embed_dim=2, hidden=8, rank=2, max_epochs=2, device="cpu", seed=0)
    table = few_shot(ds, {"JEDI": template, "PSTHBaseline": PSTHBaseline()}, shots=3, seed=0,
                     max_epochs=2)
    # The protocol's own baseline comes last (issue 12: few-shot lacked it).
    assert list(table["model"]) == ["JEDI", "PSTHBaseline", "NearestConditionPSTH"]
    assert np.isfinite(table[["bits_per_spike", "psth_r2_smoothed"]].to_numpy()).all()
    assert not hasattr(template, "embeddings_")  # templates are cloned, never fitted
    # The shots depend on the seed only, not on which models take part.
    alone = few_shot(ds, {"PSTHBaseline": PSTHBaseline()}, shots=3, seed=0)
    assert alone["bits_per_spike"].iloc[0] == table["bits_per_spike"].iloc[1]
    other = few_shot(ds, {"PSTHBaseline": PSTHBaseline()}, shots=3, seed=1)
    assert other["bits_per_spike"].iloc[0] != alone["bits_per_spike"].iloc[0]
    with pytest.raises(UserError, match="lower shots"):
        few_shot(ds, {"PSTHBaseline": PSTHBaseline()}, shots=15)
    with pytest.raises(UserError, match="positive"):
        few_shot(ds, {"PSTHBaseline": PSTHBaseline()}, shots=0)


# ---------------------------------------------------------------------- classification
def test_nearest_embedding():
    refs = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    points = np.array([[4.0, 4.5], [0.2, -0.1], [-4.0, 6.0], [-0.1, 0.3]])
    np.testing.assert_array_equal(nearest_embedding(points, refs), [1, 0, 2, 0])


def test_classify_trials_from_label_free_embeddings(small_jedi, oscillation_dataset):
    test = oscillation_dataset.test
    result = classify_trials(small_jedi, test, max_epochs=5, group_by="label")
    assert result["embeddings"].shape == (test.n_trials, small_jedi.embeddings_.shape[1])
    assert list(result["truth"]) == test.condition_labels
    assert set(result["predicted"]) <= set(small_jedi.conditions_["label"])
    np.testing.assert_array_equal(
        result["predicted"], small_jedi.conditions_["label"].to_numpy()[
            nearest_embedding(result["embeddings"], small_jedi.embeddings_)])
    assert result["nearest_training"] == np.mean(result["predicted"] == result["truth"])
    assert 0 <= result["cv_centroid"] <= 1 and result["chance"] == 1 / 3
    likeliest = small_jedi.condition_log_likelihoods(test).argmax(1)
    assert result["likeliest_condition"] == pytest.approx(np.mean(
        small_jedi.conditions_["label"].to_numpy()[likeliest] == result["truth"]))
    # Grouped by the condition itself, the group accuracy is the condition accuracy.
    assert set(result["per_group"]) == set(test.condition_labels)
    assert result["group_accuracy"] == result["nearest_training"]
    with pytest.raises(UserError, match="not a condition column"):
        classify_trials(small_jedi, test, max_epochs=1, group_by="task")


# ---------------------------------------------------------------------- scoring hygiene
def test_trials_seen_in_training_only_in_the_same_session():
    fitted_ids = [1, 2, 3, 4]
    fitted_split = ["train", "val", "test", "train"]
    new_ids = [4, 3, 9, "1", 2]
    np.testing.assert_array_equal(
        trials_seen_in_training("s1", fitted_ids, fitted_split, "s1", new_ids),
        [True, False, False, True, True])
    for fitted_session, session in (("s1", "s2"), (None, None), ("", "")):
        seen = trials_seen_in_training(fitted_session, fitted_ids, fitted_split, session,
                                       new_ids)
        assert seen.dtype == bool and not seen.any() and seen.shape == (5,)
    assert trials_seen_in_training("s1", [], [], "s1", []).shape == (0,)
    with pytest.raises(ValueError, match="one entry per fitted trial"):
        trials_seen_in_training("s1", fitted_ids, fitted_split[:2], "s1", new_ids)
