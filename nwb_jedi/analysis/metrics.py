"""Goodness-of-fit metrics for predicted firing rates (pure numpy, model-agnostic).

Conventions: ``counts`` are spike counts of shape (K, T, N); ``rates`` are predicted rates in Hz of
the same shape; ``bin_size`` in seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import gammaln

from nwb_jedi.data.dataset import condition_means

DEFAULT_SMOOTH_SD = 0.04  # s; a common choice for rate R² on reaching data (NLB uses 50 ms)


def smooth(values: np.ndarray, sd_bins: float, axis: int = 1) -> np.ndarray:
    """Gaussian smoothing along `axis` (time), edges handled by reflection."""
    if sd_bins <= 0:
        return np.asarray(values, dtype=np.float64)
    return gaussian_filter1d(np.asarray(values, dtype=np.float64), sd_bins, axis=axis,
                             mode="nearest")


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
