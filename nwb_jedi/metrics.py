"""Goodness-of-fit metrics for predicted firing rates (pure numpy, model-agnostic).

Conventions: ``counts`` are spike counts of shape (K, T, N); ``rates`` are predicted rates in Hz of
the same shape; ``bin_size`` in seconds.

These depend on arrays only, so they sit below the models (which report them) and the analyses
(which compare models with them). Protocols that need a fitted model, such as co-smoothing, are
in `nwb_jedi.analysis.evaluation`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from nwb_jedi.data.binning import gaussian_smooth
from nwb_jedi.data.dataset import condition_means

__all__ = [
    "DEFAULT_SMOOTH_SD", "bits_per_spike", "heldout_unit_mask", "poisson_log_likelihood",
    "pooled_r2", "psth_r2", "r2_per_neuron", "rate_r2", "score_rates", "single_trial_r2", "smooth",
]

DEFAULT_SMOOTH_SD = 0.04  # s; a common choice for rate R² on reaching data (NLB uses 50 ms)


def smooth(values: np.ndarray, sd_bins: float, axis: int = 1) -> np.ndarray:
    """Gaussian smoothing along `axis` (time); see `nwb_jedi.data.binning.gaussian_smooth`."""
    return gaussian_smooth(values, sd_bins, axis)


def poisson_log_likelihood(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood of `counts` under `expected` counts per bin, per element."""
    expected = np.maximum(np.asarray(expected, dtype=np.float64), 1e-9)
    counts = np.asarray(counts, dtype=np.float64)
    return counts * np.log(expected) - expected - gammaln(counts + 1)


def bits_per_spike(rates: np.ndarray, counts: np.ndarray, bin_size: float,
                   units: np.ndarray | None = None) -> float:
    """Log-likelihood gain over a per-neuron constant-rate null, in bits per spike.

    The null predicts, for each neuron, its mean count per bin over the evaluated data (the NLB
    convention). Positive means better than the neuron's mean rate.
    """
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(rates, dtype=np.float64) * bin_size
    if units is not None:
        counts, expected = counts[..., units], expected[..., units]
    null = np.broadcast_to(counts.mean(axis=(0, 1), keepdims=True), counts.shape)
    n_spikes = counts.sum()
    if n_spikes == 0:
        return float("nan")
    gain = poisson_log_likelihood(expected, counts).sum() - poisson_log_likelihood(null,
                                                                                   counts).sum()
    return float(gain / (n_spikes * np.log(2)))


def r2_per_neuron(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """R² of each neuron (last axis) pooled over all other axes; NaN for constant targets."""
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n = target.shape[-1]
    p = predicted.reshape(-1, n)
    y = target.reshape(-1, n)
    keep = ~np.isnan(y).any(axis=1) & ~np.isnan(p).any(axis=1)
    p, y = p[keep], y[keep]
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)


def psth_r2(rates: np.ndarray, counts: np.ndarray, condition: np.ndarray, n_conditions: int,
            bin_size: float, smooth_sd: float = DEFAULT_SMOOTH_SD) -> float:
    """R² between condition-averaged predicted rates and condition-averaged smoothed data.

    Computed per neuron over (condition, time), then averaged over neurons.
    """
    data = smooth(np.asarray(counts) / bin_size, smooth_sd / bin_size)
    model_psth = condition_means(rates, condition, n_conditions)
    data_psth = condition_means(data, condition, n_conditions)
    present = ~np.isnan(data_psth[:, 0, 0])
    return float(np.nanmean(r2_per_neuron(model_psth[present], data_psth[present])))


def single_trial_r2(rates: np.ndarray, counts: np.ndarray, bin_size: float,
                    smooth_sd: float = DEFAULT_SMOOTH_SD) -> float:
    """R² between predicted rates and single-trial smoothed rates, averaged over neurons."""
    data = smooth(np.asarray(counts) / bin_size, smooth_sd / bin_size)
    return float(np.nanmean(r2_per_neuron(rates, data)))


def rate_r2(rates: np.ndarray, true_rates: np.ndarray) -> float:
    """R² of predicted rates against known (e.g. teacher) rates, averaged over neurons."""
    return float(np.nanmean(r2_per_neuron(rates, true_rates)))


def pooled_r2(rates: np.ndarray, true_rates: np.ndarray) -> float:
    """Fraction of the true rates' variance (about each neuron's mean) that is explained.

    Pooled over neurons, so each neuron weighs by its variance: a nearly constant neuron
    (e.g. a saturated teacher unit) has an R² of its own that only measures noise, and would
    dominate a plain average over neurons.
    """
    y = np.asarray(true_rates, dtype=np.float64).reshape(-1, np.shape(true_rates)[-1])
    p = np.asarray(rates, dtype=np.float64).reshape(-1, np.shape(rates)[-1])
    return float(1 - ((y - p) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


def score_rates(rates: np.ndarray, ds) -> dict[str, float]:
    """The standard metrics of predicted rates (K, T, N, Hz) on the trials of a TrialDataset.

    ``bits_per_spike``, ``psth_r2``, ``r2`` (single trial), ``n_trials``, and ``r2_true``
    (pooled) and ``r2_true_per_neuron`` when the dataset carries ground-truth rates — the same
    dictionary as `JEDI.score`.
    """
    out = {
        "bits_per_spike": bits_per_spike(rates, ds.counts, ds.bin_size),
        "psth_r2": psth_r2(rates, ds.counts, ds.condition, ds.n_conditions, ds.bin_size),
        "r2": single_trial_r2(rates, ds.counts, ds.bin_size),
        "n_trials": float(ds.n_trials),
    }
    if ds.ground_truth and "trial_rates" in ds.ground_truth:
        truth = ds.ground_truth["trial_rates"]
        out["r2_true"] = pooled_r2(rates, truth)
        out["r2_true_per_neuron"] = rate_r2(rates, truth)
    return out


def heldout_unit_mask(n_units: int, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """A boolean mask (N,) marking a random `fraction` of neurons as held out (at least one)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    if n_units < 2:
        raise ValueError("co-smoothing needs at least two neurons")
    n_out = min(n_units - 1, max(1, int(round(fraction * n_units))))
    mask = np.zeros(n_units, dtype=bool)
    mask[np.random.default_rng(seed).choice(n_units, n_out, replace=False)] = True
    return mask
