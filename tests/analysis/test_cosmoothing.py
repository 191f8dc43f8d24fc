"""score_rates, held-out unit masks and co-smoothing (NLB protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi import metrics
from nwb_jedi.analysis.evaluation import co_smoothing_bits_per_spike
from nwb_jedi.data.dataset import TrialDataset


def test_score_rates_matches_the_model_score(small_jedi, oscillation_dataset):
    test = oscillation_dataset.test
    ours = metrics.score_rates(small_jedi.predict_rates(test), test)
    assert ours == pytest.approx(small_jedi.evaluate(test))
    assert "r2_true" in ours


def test_heldout_mask():
    mask = metrics.heldout_unit_mask(10, 0.2, seed=1)
    assert mask.dtype == bool and mask.sum() == 2
    np.testing.assert_array_equal(mask, metrics.heldout_unit_mask(10, 0.2, seed=1))
    assert metrics.heldout_unit_mask(3, 0.01).sum() == 1
    assert metrics.heldout_unit_mask(3, 0.99).sum() == 2
    with pytest.raises(ValueError):
        metrics.heldout_unit_mask(10, 1.5)


def test_co_smoothing_never_looks_at_the_heldout_neurons(small_jedi, oscillation_dataset):
    test = oscillation_dataset.test
    heldout = metrics.heldout_unit_mask(test.n_units, 0.25, seed=0)
    score = co_smoothing_bits_per_spike(small_jedi, test, heldout, max_epochs=15)
    assert np.isfinite(score)
    # Scramble the held-out neurons' spikes: the inference (held-in only) must not change, so
    # the prediction is identical and only the score moves.
    counts = test.counts.copy()
    rng = np.random.default_rng(0)
    counts[:, :, heldout] = rng.poisson(3.0, counts[:, :, heldout].shape)
    scrambled = TrialDataset(counts=counts, condition=test.condition,
                             conditions=test.conditions, trial_id=test.trial_id,
                             unit_id=test.unit_id, time=test.time, align_time=test.align_time,
                             bin_size=test.bin_size, split=test.split)
    a = small_jedi.infer_embeddings(test, unit_mask=~heldout, max_epochs=15)
    b = small_jedi.infer_embeddings(scrambled, unit_mask=~heldout, max_epochs=15)
    np.testing.assert_allclose(a.embeddings_, b.embeddings_, rtol=1e-6)
    other = co_smoothing_bits_per_spike(small_jedi, scrambled, heldout, max_epochs=15)
    assert other != score
    with pytest.raises(ValueError):
        co_smoothing_bits_per_spike(small_jedi, test, np.zeros(test.n_units, bool))


def test_co_smoothing_of_known_conditions_keeps_their_trained_embeddings(small_jedi,
                                                                        oscillation_dataset):
    """Single-trial co-smoothing infers the trials' contexts only: a few test trials' held-in
    neurons do not re-fit the embeddings of conditions the model was trained on."""
    test = oscillation_dataset.test
    heldout = metrics.heldout_unit_mask(test.n_units, 0.25, seed=0)
    score = co_smoothing_bits_per_spike(small_jedi, test, heldout, per_trial=True,
                                        max_epochs=15)

    def scored(refit: bool) -> float:
        inferred = small_jedi.infer_embeddings(test, per_trial=True, unit_mask=~heldout,
                                               max_epochs=15, refit_conditions=refit)
        return metrics.bits_per_spike(inferred.predict_rates(test), test.counts,
                                      test.bin_size, units=heldout)

    assert score == pytest.approx(scored(False), rel=1e-6)
    assert abs(score - scored(True)) > 1e-4
