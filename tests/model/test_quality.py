"""A fit no better than a trivial baseline is said, in one line with the likely cause and what
to try (issue 14): the per-neuron mean-rate null and the smoothed PSTH of the training trials."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import FitQualityWarning
from nwb_jedi.metrics import bits_per_spike
from nwb_jedi.model.baselines import PSTHBaseline
from nwb_jedi.model.jedi import JEDI
from nwb_jedi.model.quality import (
    BASELINE_KEYS,
    MIN_NEURONS,
    fit_quality_warning,
    population_warning,
    psth_baseline_comparison,
)
from nwb_jedi.model.results import compute_results


@pytest.fixture(scope="module")
def tuned():
    """Trials of 4 conditions whose rates differ in time course; the true rates known."""
    rng = np.random.default_rng(0)
    condition = np.arange(120) % 4
    t = np.arange(25) / 25
    rates = 20 + 15 * np.sin(2 * np.pi * (t[None, :, None] + condition[:, None, None] / 4
                                          + np.arange(12)[None, None, :] / 12))
    ds = TrialDataset.from_arrays(rng.poisson(rates * 0.02), condition.tolist(), 0.02, seed=0)
    return ds, rates


def test_the_psth_baseline_is_the_psth_of_the_training_trials(tuned):
    ds, truth = tuned
    test = ds.split == "test"
    flat = np.broadcast_to(ds.counts.mean(axis=(0, 1)) / ds.bin_size, ds.counts.shape)
    found = psth_baseline_comparison(flat, ds, test)
    assert set(found) == set(BASELINE_KEYS)
    psth = PSTHBaseline().fit(ds.train).predict_rates(ds.test)
    assert found["psth_baseline_bits_per_spike"] == pytest.approx(
        bits_per_spike(psth, ds.test.counts, ds.bin_size))
    # The gain is the model's bits/spike minus the baseline's on the same trials.
    assert found["bits_per_spike_over_psth_baseline"] == pytest.approx(
        bits_per_spike(flat[test], ds.test.counts, ds.bin_size)
        - found["psth_baseline_bits_per_spike"], abs=1e-6)
    assert found["bits_per_spike_over_psth_baseline_se"] > 0
    # A flat prediction is clearly worse than the PSTH; the true rates are not.
    assert found["bits_per_spike_over_psth_baseline"] < -2 * found[
        "bits_per_spike_over_psth_baseline_se"]
    true = psth_baseline_comparison(truth, ds, test)
    assert true["bits_per_spike_over_psth_baseline"] > -2 * true[
        "bits_per_spike_over_psth_baseline_se"]
    assert psth_baseline_comparison(flat, ds.test, None) == {}  # no training trials


def test_no_warning_for_a_fit_that_beats_both_baselines_or_ties_within_noise():
    good = {"test": {"bits_per_spike": 0.3, "bits_per_spike_over_psth_baseline": 0.01,
                     "bits_per_spike_over_psth_baseline_se": 0.004}}
    assert fit_quality_warning(good) is None
    tie = {"test": {"bits_per_spike": 0.293, "psth_baseline_bits_per_spike": 0.297,
                    "bits_per_spike_over_psth_baseline": -0.004,
                    "bits_per_spike_over_psth_baseline_se": 0.0035}}
    assert fit_quality_warning(tie) is None  # within two standard errors
    assert fit_quality_warning({}) is None and fit_quality_warning({"train": {}}) is None


def test_a_fit_below_the_mean_rate_says_why_and_what_to_try():
    line = fit_quality_warning({"test": {"bits_per_spike": -0.151},
                                "train": {"bits_per_spike": 0.01}},
                               history={"epoch": list(range(1, 106)),
                                        "val_loss": [0.05] * 4 + [0.04] + [0.06] * 100},
                               max_epochs=500)
    assert "\n" not in line
    assert line.startswith("held-out (test) bits/spike -0.151 is no better than each "
                           "neuron's mean rate (<= 0)")
    assert "likely cause: the fit stopped learning at epoch 5 of 105" in line
    assert "try a smaller --lr" in line


def test_below_the_psth_baseline_names_both_numbers():
    line = fit_quality_warning({"val": {"bits_per_spike": 0.004,
                                        "psth_baseline_bits_per_spike": 0.2,
                                        "bits_per_spike_over_psth_baseline": -0.196,
                                        "bits_per_spike_over_psth_baseline_se": 0.03}})
    assert line.startswith("held-out (val) bits/spike 0.004 is below the smoothed PSTH of the "
                           "training trials (0.200, difference -0.196 ± 0.030)")


@pytest.mark.parametrize("train,history,max_epochs,transfer,cause", [
    (0.5, None, None, False, "overfitting (training trials: bits/spike 0.500)"),
    (-0.1, None, None, False, "the model does not fit even its training trials"),
    (0.02, {"epoch": [1, 2, 3], "val_loss": [3, 2, 1]}, 3, False,
     "the fit was still improving when it used up its budget of 3 epochs"),
    (-0.2, None, None, True, "the shared network does not carry over to these data"),
    (0.1, None, None, True, "the frozen network fits the trials the embeddings were inferred"),
])
def test_the_likely_cause(train, history, max_epochs, transfer, cause):
    line = fit_quality_warning({"test": {"bits_per_spike": -0.05},
                                "train": {"bits_per_spike": train}}, history=history,
                               max_epochs=max_epochs, transfer=transfer)
    assert f"likely cause: {cause}" in line


def test_a_handful_of_neurons_is_said_to_be_one():
    assert population_warning(MIN_NEURONS) is None and population_warning(61, 6) is None
    line = population_warning(1, 1)
    assert line.startswith("a population model of 1 neuron (fewer than 10): JEDI's dynamics "
                           "are a rank-1 network of the recorded neurons")


def test_compute_results_warns_and_keeps_the_lines(tuned):
    ds, _ = tuned
    few = ds.select_units([0, 1, 2])
    model = JEDI(hidden=8, embed_dim=2, rank=1, max_epochs=1, device="cpu", seed=0,
                 progress=False).fit(few.train, few.val)
    with pytest.warns(FitQualityWarning) as caught:
        results = compute_results(model, few)
    said = [str(w.message) for w in caught if w.category is FitQualityWarning]
    assert said == results.warnings
    assert results.warnings[0].startswith("a population model of 3 neurons")
    assert set(BASELINE_KEYS) <= set(results.metrics["test"]) and \
        set(BASELINE_KEYS).isdisjoint(results.metrics["train"])


def test_a_fit_below_the_null_and_the_psth_says_both_in_one_line():
    from nwb_jedi.model.quality import fit_quality_warning

    line = fit_quality_warning({"test": {"bits_per_spike": -0.2,
                                         "psth_baseline_bits_per_spike": 0.4,
                                         "bits_per_spike_over_psth_baseline": -0.6,
                                         "bits_per_spike_over_psth_baseline_se": 0.05}})
    assert line.startswith("held-out (test) bits/spike -0.200 is no better than each neuron's "
                           "mean rate (<= 0) and below the smoothed PSTH of the training trials "
                           "(0.400, difference -0.600 ± 0.050); likely cause: ")
    assert fit_quality_warning({"test": {"bits_per_spike": 0.3}}) is None
