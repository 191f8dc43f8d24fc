"""Goodness-of-fit metrics for predicted firing rates (pure numpy, model-agnostic).

Conventions: ``counts`` are spike counts of shape (K, T, N); ``rates`` are predicted rates in Hz of
the same shape; ``bin_size`` in seconds.

Two families, named so that they are never confused:

- **The Neural Latents Benchmark's metrics** (NLB'21; Pei et al. 2021), with its names and
  definitions, cross-checked against ``nlb_tools.evaluation`` on fixed arrays
  (``benchmarks/nlb_crosscheck.py`` records nlb_tools' numbers; ``tests/test_metrics_nlb.py``
  compares): `bits_per_spike` (and its uses `co_bps`, `fp_bps`), `velocity_r2` (NLB's
  "vel R2": ridge regression from rates to behavior, penalty chosen by 5-fold cross-validation
  on the training trials) and `psth_r2_nlb` (NLB's "psth R2": condition-averaged predictions
  against PSTHs of all trials of each condition, from 1 ms spikes smoothed with the benchmark's
  kernel; `nwb_jedi.data.nlb.smoothed_psth` builds those targets from a session).
- **The package's own**: `psth_r2_smoothed` (condition averages of the *scored* trials against
  their binned counts smoothed at 40 ms: a quick check that needs no 1 ms spikes; not NLB's
  "psth R2"), `single_trial_r2`, `rate_r2` / `pooled_r2` (against known rates).

These depend on arrays only, so they sit below the models (which report them) and the analyses
(which compare models with them). Protocols that need a fitted model, such as co-smoothing, are
in `nwb_jedi.analysis.evaluation`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import gammaln

from nwb_jedi.data.binning import gaussian_smooth
from nwb_jedi.data.dataset import condition_means

__all__ = [
    "DEFAULT_SMOOTH_SD", "NLB_RIDGE_ALPHAS", "bits_per_spike", "co_bps", "fp_bps",
    "heldout_unit_mask", "nlb_evaluate", "poisson_log_likelihood", "pooled_r2", "psth_r2",
    "psth_r2_nlb", "psth_r2_smoothed", "r2_per_neuron", "rate_r2", "score_rates",
    "single_trial_r2", "smooth", "velocity_r2",
]

# s; the package's own smoothing of binned counts (psth_r2_smoothed, single-trial R²). Not
# NLB's: the benchmark's PSTH R² smooths 1 ms spikes with 70 ms (MC_Maze) or 50 ms (MC_Maze
# Large/Medium/Small), see psth_r2_nlb and nwb_jedi.data.nlb.
DEFAULT_SMOOTH_SD = 0.04

# NLB's velocity decoder: ridge penalties searched by GridSearchCV(Ridge(), {"alpha": ...}).
NLB_RIDGE_ALPHAS = np.logspace(-4, 0, 9)
NLB_CV_FOLDS = 5
_ZERO_RATE = 1e-9  # what nlb_tools puts in place of a zero rate before taking its log


def smooth(values: np.ndarray, sd_bins: float, axis: int = 1) -> np.ndarray:
    """Gaussian smoothing along `axis` (time); see `nwb_jedi.data.binning.gaussian_smooth`."""
    return gaussian_smooth(values, sd_bins, axis)


def poisson_log_likelihood(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood of `counts` under `expected` counts per bin, per element."""
    expected = np.maximum(np.asarray(expected, dtype=np.float64), 1e-9)
    counts = np.asarray(counts, dtype=np.float64)
    return counts * np.log(expected) - expected - gammaln(counts + 1)


# ---------------------------------------------------------------------- NLB: bits per spike
def _negative_log_likelihood(expected: np.ndarray, counts: np.ndarray) -> float:
    """nlb_tools' ``neg_log_likelihood`` on observed elements: zero rates count as 1e-9."""
    expected = np.where(expected == 0, _ZERO_RATE, expected)
    return float(np.sum(expected - counts * np.log(expected) + gammaln(counts + 1.0)))


def bits_per_spike(rates: np.ndarray, counts: np.ndarray, bin_size: float,
                   units: np.ndarray | None = None) -> float:
    """Bits per spike: NLB's log-likelihood gain over a per-neuron mean-rate null.

    NLB's definition (``nlb_tools.evaluation.bits_per_spike``): the Poisson log-likelihood of
    the counts under the predicted rates minus that under a null which predicts, for each
    neuron, its mean count per bin *over the scored data*, in bits, divided by the number of
    scored spikes. NaN counts (times outside a unit's observation intervals) are left out; a
    zero rate counts as 1e-9 spikes per bin. Positive means better than each neuron's mean
    rate.

    Parameters
    ----------
    rates : array (..., N)
        Predicted rates in Hz (or counts per bin with ``bin_size=1``).
    counts : array, same shape
        Spike counts; NaN where unobserved.
    bin_size : float
        Bin width in seconds (converts the rates to expected counts per bin).
    units : array of bool or int, optional
        Score only these neurons (last axis).

    Returns
    -------
    float
        NaN when the scored data hold no spike.

    Raises
    ------
    ValueError
        Shapes differ, or a rate is negative or NaN where a count is observed.
    """
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(rates, dtype=np.float64) * bin_size
    if units is not None:
        counts, expected = counts[..., units], expected[..., units]
    if expected.shape != counts.shape:
        raise ValueError(f"rates have shape {expected.shape} but the counts {counts.shape}; "
                         f"give one rate per count")
    observed = ~np.isnan(counts)
    null = np.broadcast_to(np.nanmean(counts, axis=tuple(range(counts.ndim - 1)),
                                      keepdims=True), counts.shape)
    counts, expected, null = counts[observed], expected[observed], null[observed]
    if np.isnan(expected).any() or (expected < 0).any():
        raise ValueError("rates must be non-negative numbers wherever a count is observed")
    n_spikes = counts.sum()
    if n_spikes == 0:
        return float("nan")
    gain = _negative_log_likelihood(null, counts) - _negative_log_likelihood(expected, counts)
    return float(gain / n_spikes / np.log(2))


def co_bps(rates: np.ndarray, counts: np.ndarray, bin_size: float,
           heldout: np.ndarray) -> float:
    """NLB's co-smoothing bits per spike ("co-bps"): `bits_per_spike` of the held-out neurons.

    The rates of the held-out neurons must come from a model that never saw their spikes on
    the scored trials (only the held-in neurons'); see
    `nwb_jedi.analysis.evaluation.co_smoothing`.
    """
    return bits_per_spike(rates, counts, bin_size, units=np.asarray(heldout))


def fp_bps(rates: np.ndarray, counts: np.ndarray, bin_size: float) -> float:
    """NLB's forward-prediction bits per spike ("fp-bps"): `bits_per_spike` of every neuron
    (held-in and held-out) in the bins that follow the observed window (200 ms in NLB), for
    rates predicted from the observed window alone."""
    return bits_per_spike(rates, counts, bin_size)


# ---------------------------------------------------------------------- NLB: R² conventions
def _r2_columns(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """R² of each column, scikit-learn's ``r2_score`` convention (the one nlb_tools uses): a
    constant target column scores 1 when predicted exactly and 0 otherwise."""
    numerator = ((target - predicted) ** 2).sum(axis=0)
    denominator = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, 1 - numerator / denominator,
                        np.where(numerator == 0, 1.0, 0.0))


def _flat(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(-1, values.shape[-1]) if values.ndim > 2 else values


# ---------------------------------------------------------------------- NLB: velocity R²
def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: np.ndarray
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weights, intercept) of ridge regression with intercept (scikit-learn's ``Ridge``:
    centred data, penalty on the weights only) for each penalty in `alphas`."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    # One eigendecomposition of the Gram matrix serves every penalty.
    values, vectors = np.linalg.eigh(xc.T @ xc)
    projected = vectors.T @ (xc.T @ yc)
    out = []
    for alpha in alphas:
        weights = vectors @ (projected / (values + alpha)[:, None])
        out.append((weights, y_mean - x_mean @ weights))
    return out


def _kfold(n: int, folds: int) -> list[np.ndarray]:
    """Test indices of scikit-learn's ``KFold(folds)`` (contiguous, unshuffled; the first
    ``n % folds`` folds one sample longer)."""
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    edges = np.r_[0, np.cumsum(sizes)]
    return [np.arange(edges[i], edges[i + 1]) for i in range(folds)]


def _decode_r2(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray,
               eval_y: np.ndarray, alphas: np.ndarray, folds: int) -> float:
    """nlb_tools' ``fit_and_eval_decoder``: drop samples whose behavior is NaN, choose the
    ridge penalty by `folds`-fold cross-validated R² on the training samples, refit on all of
    them, and return the R² (averaged over behavior dimensions) on the evaluation samples."""
    keep = ~np.isnan(train_y[:, 0])
    train_x, train_y = train_x[keep], train_y[keep]
    keep = ~np.isnan(eval_y[:, 0])
    eval_x, eval_y = eval_x[keep], eval_y[keep]
    if np.isnan(train_x).any() or np.isnan(eval_x).any():
        raise ValueError("NaN rates where the behavior is defined; predict every scored bin")
    if len(train_x) < folds or not len(eval_x):
        raise ValueError(f"velocity decoding needs at least {folds} training samples and one "
                         f"evaluation sample with behavior")
    alphas = np.asarray(alphas, dtype=np.float64)
    if len(alphas) > 1:
        scores = np.zeros(len(alphas))
        everything = np.arange(len(train_x))
        for test in _kfold(len(train_x), folds):
            fit = np.setdiff1d(everything, test)
            for i, (w, b) in enumerate(_ridge_path(train_x[fit], train_y[fit], alphas)):
                scores[i] += _r2_columns(train_y[test], train_x[test] @ w + b).mean()
        alphas = alphas[[int(np.argmax(scores))]]  # the first of equal scores, as sklearn
    weights, intercept = _ridge_path(train_x, train_y, alphas)[0]
    return float(_r2_columns(eval_y, eval_x @ weights + intercept).mean())


def velocity_r2(train_rates: np.ndarray, train_behavior: np.ndarray, eval_rates: np.ndarray,
                eval_behavior: np.ndarray, *, train_masks: np.ndarray | None = None,
                eval_masks: np.ndarray | None = None,
                alphas: np.ndarray | float = NLB_RIDGE_ALPHAS,
                folds: int = NLB_CV_FOLDS) -> float:
    """NLB's velocity decoding R² ("vel R2") of rates.

    A ridge regression from rates to behavior is fitted on the *training* trials (penalty
    chosen among `alphas` by `folds`-fold cross-validated R², scikit-learn's
    ``GridSearchCV(Ridge(), ...)`` as in ``nlb_tools.evaluation.velocity_decoding``) and
    scored by R² (averaged over behavior dimensions) on the evaluation trials. With masks,
    one decoder per mask column and the mean of their R².

    The benchmark's lag (behavior taken `lag` later than the rates: 100 ms for MC_Maze,
    120 ms for its scaled versions) is in the behavior arrays: build them with
    `nwb_jedi.data.nlb.lagged_behavior` or `nwb_jedi.data.nlb.nlb_behavior`.

    Parameters
    ----------
    train_rates, eval_rates : arrays (K, T, N) or (samples, N)
        Rates as the benchmark gives them: expected spike counts per bin (the penalty grid is
        absolute, so rates in Hz would select other penalties than NLB's).
    train_behavior, eval_behavior : arrays (K, T, D) or (samples, D)
        Behavior in the same bins; samples whose first dimension is NaN are left out.
    train_masks, eval_masks : bool arrays (K, M), optional
        Trials of each decoder (NLB's ``decode_masks``; Area2_Bump: active / passive).
    alphas : array or float
        Penalties to search; one value fits that penalty without a search.
    folds : int
        Cross-validation folds.

    Returns
    -------
    float
    """
    train_rates, eval_rates = np.asarray(train_rates, float), np.asarray(eval_rates, float)
    train_behavior = np.asarray(train_behavior, float)
    eval_behavior = np.asarray(eval_behavior, float)
    if train_masks is None:
        train_masks = np.ones((len(train_rates), 1), dtype=bool)
        eval_masks = np.ones((len(eval_rates), 1), dtype=bool)
    train_masks, eval_masks = np.asarray(train_masks, bool), np.asarray(eval_masks, bool)
    r2s = [_decode_r2(_flat(train_rates[train_masks[:, i]]),
                      _flat(train_behavior[train_masks[:, i]]),
                      _flat(eval_rates[eval_masks[:, i]]), _flat(eval_behavior[eval_masks[:, i]]),
                      np.atleast_1d(alphas), folds)
           for i in range(train_masks.shape[1])]
    return float(np.mean(r2s))


# ---------------------------------------------------------------------- NLB: PSTH R²
def psth_r2_nlb(rates: np.ndarray, condition: np.ndarray, psth: np.ndarray) -> float:
    """NLB's PSTH R² ("psth R2", ``nlb_tools.evaluation.eval_psth``).

    The predicted rates of the scored trials are averaged per condition and compared with the
    condition's PSTH over (condition, time), R² per neuron averaged over neurons
    (scikit-learn's ``r2_score``). NLB's PSTHs average *all* trials of each condition (not
    only the scored ones), from 1 ms spikes smoothed with a Gaussian of 70 ms (MC_Maze) or
    50 ms (MC_Maze Large/Medium/Small) and then binned: `nwb_jedi.data.nlb.smoothed_psth`
    builds them from a session.

    Parameters
    ----------
    rates : array (K, T, N)
        Predicted rates of the scored trials (any unit, the same as `psth`'s).
    condition : int array (K,)
        Each trial's row in `psth`.
    psth : array (C, T, N)
        Target PSTHs; rows NaN at times to leave out (NLB pads shorter conditions so).

    Returns
    -------
    float
    """
    rates = np.asarray(rates, dtype=np.float64)
    psth = np.asarray(psth, dtype=np.float64)
    condition = np.asarray(condition)
    if rates.shape[1:] != psth.shape[1:]:
        raise ValueError(f"rates have (bins, neurons) {rates.shape[1:]} but the PSTHs "
                         f"{psth.shape[1:]}")
    targets, predictions = [], []
    for c in np.unique(condition):
        keep = ~np.isnan(psth[c, :, 0])
        predicted = rates[condition == c].mean(axis=0)[keep]
        if np.isnan(predicted).any():
            raise ValueError("NaN rates where the PSTH is defined; predict every scored bin")
        targets.append(psth[c][keep])
        predictions.append(predicted)
    if not targets:
        return float("nan")
    return float(_r2_columns(np.vstack(targets), np.vstack(predictions)).mean())


def nlb_evaluate(targets: Mapping[str, Any], submission: Mapping[str, Any]) -> dict[str, float]:
    """The metrics ``nlb_tools.evaluation.evaluate`` computes for one MC_Maze-type dataset.

    Parameters
    ----------
    targets : mapping
        NLB's evaluation data (``make_eval_target_tensors``'s inner dict, or
        `nwb_jedi.data.nlb.NLBTargets.as_dict`): ``eval_spikes_heldout``, ``train_behavior``,
        ``eval_behavior``, and optionally ``psth`` + ``eval_cond_idx`` (list of index arrays
        of the evaluation trials of each PSTH row), ``eval_spikes_heldin_forward`` +
        ``eval_spikes_heldout_forward``, ``train_decode_mask`` + ``eval_decode_mask``.
    submission : mapping
        ``train_rates_heldin``, ``train_rates_heldout``, ``eval_rates_heldin``,
        ``eval_rates_heldout`` and optionally ``eval_rates_heldin_forward``,
        ``eval_rates_heldout_forward`` (expected spike counts per bin).

    Returns
    -------
    dict
        With NLB's keys: ``co-bps``, ``vel R2``, and ``psth R2`` and ``fp-bps`` when the data
        allow.
    """
    def arr(source, key):
        return np.asarray(source[key], dtype=np.float64)

    eval_heldin, eval_heldout = arr(submission, "eval_rates_heldin"), arr(submission,
                                                                         "eval_rates_heldout")
    eval_rates = np.concatenate([eval_heldin, eval_heldout], axis=-1)
    train_rates = np.concatenate([arr(submission, "train_rates_heldin"),
                                  arr(submission, "train_rates_heldout")], axis=-1)
    out = {"co-bps": bits_per_spike(eval_heldout, arr(targets, "eval_spikes_heldout"), 1.0)}
    masks = {}
    if "train_decode_mask" in targets:
        masks = {"train_masks": np.asarray(targets["train_decode_mask"], bool),
                 "eval_masks": np.asarray(targets["eval_decode_mask"], bool)}
    out["vel R2"] = velocity_r2(train_rates, arr(targets, "train_behavior"), eval_rates,
                                arr(targets, "eval_behavior"), **masks)
    if "psth" in targets:
        condition = np.full(len(eval_rates), -1)
        for row, trials in enumerate(targets["eval_cond_idx"]):
            condition[np.asarray(trials, dtype=np.int64)] = row
        scored = condition >= 0
        out["psth R2"] = psth_r2_nlb(eval_rates[scored], condition[scored], arr(targets, "psth"))
    if "eval_rates_heldin_forward" in submission and "eval_spikes_heldin_forward" in targets:
        rates = np.concatenate([arr(submission, "eval_rates_heldin_forward"),
                                arr(submission, "eval_rates_heldout_forward")], axis=-1)
        spikes = np.concatenate([arr(targets, "eval_spikes_heldin_forward"),
                                 arr(targets, "eval_spikes_heldout_forward")], axis=-1)
        out["fp-bps"] = bits_per_spike(rates, spikes, 1.0)
    return out


# ---------------------------------------------------------------------- the package's own
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


def psth_r2_smoothed(rates: np.ndarray, counts: np.ndarray, condition: np.ndarray,
                     n_conditions: int, bin_size: float,
                     smooth_sd: float = DEFAULT_SMOOTH_SD) -> float:
    """The package's own PSTH R² (not NLB's "psth R2", see `psth_r2_nlb`).

    Condition averages of the predicted rates of the *scored* trials against the condition
    averages of the same trials' binned counts smoothed with a Gaussian of `smooth_sd` (40 ms
    by default); R² per neuron over (condition, time), averaged over neurons. It needs only
    binned counts, so every dataset has it, but its target is noisier than NLB's (fewer trials,
    binned before smoothing), so its values are not comparable with benchmark tables.
    """
    data = smooth(np.asarray(counts) / bin_size, smooth_sd / bin_size)
    model_psth = condition_means(rates, condition, n_conditions)
    data_psth = condition_means(data, condition, n_conditions)
    present = ~np.isnan(data_psth[:, 0, 0])
    return float(np.nanmean(r2_per_neuron(model_psth[present], data_psth[present])))


def psth_r2(*args, **kwargs) -> float:
    """Deprecated name of `psth_r2_smoothed` (the package's own PSTH R², not NLB's), kept for
    one release."""
    warnings.warn("nwb_jedi.metrics.psth_r2 is now psth_r2_smoothed (the package's own PSTH "
                  "R², not the benchmark's: see psth_r2_nlb); the old name will be removed in "
                  "the next release", DeprecationWarning, stacklevel=2)
    return psth_r2_smoothed(*args, **kwargs)


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


class Scores(dict):
    """The dict `score_rates` returns: a plain dict, except that reading the old key
    ``"psth_r2"`` (renamed ``"psth_r2_smoothed"``) still works for one release, with a
    DeprecationWarning. The old key is never stored or listed."""

    def __missing__(self, key):
        if key == "psth_r2" and "psth_r2_smoothed" in self:
            warnings.warn("the metric 'psth_r2' is now 'psth_r2_smoothed' (the package's own "
                          "PSTH R², not the benchmark's 'psth_r2_nlb'); the old key will be "
                          "removed in the next release", DeprecationWarning, stacklevel=2)
            return self["psth_r2_smoothed"]
        raise KeyError(key)

    def __reduce__(self):  # copies and pickles are plain dicts
        return dict, (dict(self),)


def score_rates(rates: np.ndarray, ds) -> dict[str, float]:
    """The standard metrics of predicted rates (K, T, N, Hz) on the trials of a TrialDataset.

    Returns
    -------
    dict
        ``bits_per_spike`` (NLB's definition, every neuron), ``psth_r2_smoothed`` (the
        package's own PSTH R²), ``r2`` (single trial, smoothed counts), ``n_trials``;
        ``psth_r2_nlb`` (NLB's PSTH R²) when the dataset carries NLB's PSTH targets
        (``ds.nlb_psth``, see `nwb_jedi.data.nlb.smoothed_psth`); ``r2_true`` (pooled) and
        ``r2_true_per_neuron`` when it carries ground-truth rates. The same dictionary as an
        estimator's ``evaluate``.
    """
    out = Scores({
        "bits_per_spike": bits_per_spike(rates, ds.counts, ds.bin_size),
        "psth_r2_smoothed": psth_r2_smoothed(rates, ds.counts, ds.condition, ds.n_conditions,
                                             ds.bin_size),
        "r2": single_trial_r2(rates, ds.counts, ds.bin_size),
        "n_trials": float(ds.n_trials),
    })
    target = getattr(ds, "nlb_psth", None)
    if target is not None and ds.n_trials:
        out["psth_r2_nlb"] = psth_r2_nlb(rates, ds.condition, target)
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
