"""Is a fit any good? Its scores against two trivial baselines, said in one line.

A fitted (or transferred) model whose held-out predictions are

- no better than each neuron's mean rate: held-out bits/spike <= 0 (the NLB null), or
- clearly worse than the smoothed PSTH of the training trials of each condition
  (`nwb_jedi.model.baselines.PSTHBaseline`) on the same held-out trials,

has learnt nothing a condition average does not give. `fit_quality_warning` says so in one
line with the likely cause and what to try; the CLI prints that line after its summary,
``nwb-jedi show`` prints it from the metrics stored in a file, and
`nwb_jedi.model.results.compute_results` raises it as a `FitQualityWarning`.

Definitions (ours, not NLB's; the names below are the metric names stored in files):

``psth_baseline_bits_per_spike``
    Bits/spike of `PSTHBaseline` fitted on the dataset's training trials, on the scored trials
    of conditions that have training trials.
``bits_per_spike_over_psth_baseline``
    The model's bits/spike minus the baseline's, on those same trials. The per-neuron null
    cancels, so this is the log-likelihood ratio of model to baseline per spike, in bits.
``bits_per_spike_over_psth_baseline_se``
    Its standard error from the spread of the per-trial log-likelihood ratios (trials as
    independent samples). "Clearly worse" means more than `SE_MARGIN` standard errors below 0,
    so a tie within noise on a few dozen test trials is not called a failure.

`population_warning` is the other check: a population model of a handful of neurons is
allowed, but said to be one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import counted
from nwb_jedi.metrics import bits_per_spike, poisson_log_likelihood

__all__ = ["BASELINE_KEYS", "MIN_NEURONS", "SE_MARGIN", "fit_quality_warning",
           "population_warning", "psth_baseline_comparison"]

BASELINE = "psth_baseline_bits_per_spike"
GAIN = "bits_per_spike_over_psth_baseline"
GAIN_SE = "bits_per_spike_over_psth_baseline_se"
#: Metric names `psth_baseline_comparison` adds to a split's metrics.
BASELINE_KEYS = (BASELINE, GAIN, GAIN_SE)

#: "Clearly worse than the PSTH baseline": below it by more than this many standard errors.
SE_MARGIN = 2.0

#: Below this many neurons a population model says it is hardly one. JEDI's units are the
#: recorded neurons; its low-rank connectivity and the shared dynamics across conditions need a
#: population to constrain them (the paper's data have tens to hundreds of neurons).
MIN_NEURONS = 10

#: A best epoch at or before this (with a longer run) means the fit stopped learning early.
EARLY_BEST_EPOCH = 10

_HELD_OUT = ("test", "val")


def psth_baseline_comparison(rates: np.ndarray, dataset: TrialDataset,
                             mask: np.ndarray | None = None) -> dict[str, float]:
    """The model's bits/spike against the smoothed PSTH of the training trials.

    Parameters
    ----------
    rates : ndarray (K, T, N)
        The model's predicted rates (Hz) of every trial of `dataset`.
    dataset : TrialDataset
        The trials, with their split; the baseline is fitted on its ``train`` trials.
    mask : array of bool (K,), optional
        The trials to score (default: the test trials, else the validation trials).

    Returns
    -------
    dict
        ``psth_baseline_bits_per_spike``, ``bits_per_spike_over_psth_baseline`` and its
        ``..._se`` (see the module docstring); empty when there are no training trials or no
        scored trial of a condition that has some.
    """
    from nwb_jedi.model.baselines import PSTHBaseline  # torch: only when a baseline is fitted

    rates = np.asarray(rates)
    if mask is None:
        held = next((s for s in _HELD_OUT if np.any(dataset.split == s)), None)
        mask = dataset.split == held if held else np.zeros(dataset.n_trials, dtype=bool)
    train = dataset.split == "train"
    if not train.any():
        return {}
    known = np.bincount(dataset.condition[train], minlength=dataset.n_conditions)
    scored = np.asarray(mask, dtype=bool) & (known[dataset.condition] > 0)
    if not scored.any():
        return {}
    baseline = PSTHBaseline().fit(dataset.subset(train))
    target = dataset.subset(scored)
    base_rates = baseline.predict_rates(target)
    counts = target.counts
    if counts.sum() == 0:
        return {}
    # Per-trial log-likelihood ratio model / baseline (the null cancels in the difference).
    ratio = (poisson_log_likelihood(rates[scored] * target.bin_size, counts)
             - poisson_log_likelihood(base_rates * target.bin_size, counts)).sum(axis=(1, 2))
    per_spike = float(counts.sum() * np.log(2))
    se = (float(np.sqrt(len(ratio) * ratio.var(ddof=1)) / per_spike) if len(ratio) > 1
          else float("nan"))
    return {BASELINE: bits_per_spike(base_rates, counts, target.bin_size),
            GAIN: float(ratio.sum() / per_spike), GAIN_SE: se}


def fit_quality_warning(metrics: Mapping[str, Mapping[str, float]], *,
                        history: Mapping[str, Sequence[float]] | None = None,
                        max_epochs: int | None = None, transfer: bool = False) -> str | None:
    """One line saying that a fit is no better than a trivial baseline, or None if it is.

    Parameters
    ----------
    metrics : dict split -> {metric: value}
        Scores per data split (`nwb_jedi.metrics.score_rates`, plus the keys of
        `psth_baseline_comparison` on held-out splits), as computed or as stored in a file.
        The held-out split judged is ``test``, else ``val``.
    history : dict, optional
        The training history (``epoch``, ``val_loss`` ...), to tell a fit that stopped
        learning early from one that ran out of epochs.
    max_epochs : int, optional
        The fit's epoch budget.
    transfer : bool
        The model's network was fitted on other data and only embeddings were inferred
        (``nwb-jedi predict``); changes the likely cause and the advice.

    Returns
    -------
    str or None
        "held-out (test) bits/spike ... ; likely cause: ...; try ...", or None.
    """
    split = next((s for s in _HELD_OUT if _number(metrics.get(s, {}).get("bits_per_spike"))
                  is not None), None)
    if split is None:
        return None
    scores = metrics[split]
    bps = float(scores["bits_per_spike"])
    gain, se = _number(scores.get(GAIN)), _number(scores.get(GAIN_SE))
    below_null = bps <= 0
    below_psth = gain is not None and gain < 0 and (se is None or -gain > SE_MARGIN * se)
    if not (below_null or below_psth):
        return None
    what = f"held-out ({split}) bits/spike {bps:.3f}"
    if below_null:
        what += " is no better than each neuron's mean rate (<= 0)"
    if below_psth:
        base = _number(scores.get(BASELINE))
        numbers = [f"{base:.3f}"] if base is not None else []
        numbers.append(f"difference {gain:+.3f}" + (f" ± {se:.3f}" if se is not None else ""))
        what += (f"{' and' if below_null else ' is'} below the smoothed PSTH of the training "
                 f"trials ({', '.join(numbers)})")
    train = _number(metrics.get("train", {}).get("bits_per_spike"))
    cause, advice = _diagnosis(bps, train, _best_epoch(history), max_epochs, transfer)
    return f"{what}; likely cause: {cause}; try {advice}"


def _diagnosis(held: float, train: float | None, best: tuple[int, int] | None,
               max_epochs: int | None, transfer: bool) -> tuple[str, str]:
    """(likely cause, what to try) for a poor fit."""
    if transfer:
        if train is not None and train <= 0:
            return ("the shared network does not carry over to these data even on the trials "
                    "its embeddings were inferred from (neurons, session or behavior differ "
                    "from the model's)", "fitting a model on these data (nwb-jedi fit)")
        return ("the frozen network fits the trials the embeddings were inferred from but "
                "not held-out ones (few trials per condition, or dynamics that differ from "
                "the model's session)",
                "more trials per condition, a longer inference (--epochs), or fitting a model "
                "on these data (nwb-jedi fit)")
    if best is not None and max_epochs is not None and best[1] >= max_epochs and \
            best[0] > best[1] - max(2, best[1] // 10):
        return (f"the fit was still improving when it used up its budget of {max_epochs} "
                f"epochs (best epoch {best[0]})", "more --epochs")
    if best is not None and best[0] <= EARLY_BEST_EPOCH < best[1]:
        return (f"the fit stopped learning at epoch {best[0]} of {best[1]} (a loss spike or "
                f"too high a learning rate)",
                "a smaller --lr (e.g. a third), another --seed, or a larger --patience")
    if train is not None and train <= 0:
        return ("the model does not fit even its training trials",
                "a smaller --lr, more --epochs and --patience, or check --window and --bin-ms "
                "(does the window hold activity that varies with the condition?)")
    if train is not None and train > max(held, 0) + 0.05:
        return (f"overfitting (training trials: bits/spike {train:.3f})",
                "a smaller --rank or --embed-dim, more --noise or --weight-decay, or more "
                "trials per condition")
    return ("the dynamics add nothing over condition averages on these trials (few trials per "
            "condition, or too short a fit)",
            "a larger --patience, a larger --rank, or a window (--window) that holds the "
            "dynamics of interest")


def _best_epoch(history: Mapping[str, Sequence[float]] | None) -> tuple[int, int] | None:
    """(best epoch by validation loss, epochs run), or None without a usable history."""
    if not isinstance(history, Mapping):
        return None
    val = np.asarray(history.get("val_loss") or [], dtype=float)
    if val.size == 0 or not np.isfinite(val).any():
        return None
    epochs = list(history.get("epoch") or range(1, len(val) + 1))
    if len(epochs) != len(val):
        return None
    return int(epochs[int(np.nanargmin(val))]), int(epochs[-1])


def population_warning(n_units: int, rank: int | None = None) -> str | None:
    """One line saying that a population model of so few neurons is hardly one, or None.

    Parameters
    ----------
    n_units : int
        Neurons modelled (JEDI's units are the recorded neurons).
    rank : int, optional
        Rank of the connectivity, named in the message.
    """
    if n_units >= MIN_NEURONS:
        return None
    network = f"a rank-{rank} network" if rank else "a network"
    return (f"a population model of {counted(n_units, 'neuron')} (fewer than "
            f"{MIN_NEURONS}): JEDI's dynamics are {network} of the recorded neurons, which "
            f"tens of neurons constrain and a handful do not, so its spectra, fixed points "
            f"and embeddings say little; use a session with more units (or, if the mapper "
            f"dropped some, keep them: a lower --min-rate or a looser --unit-filter)")


def _number(value: Any) -> float | None:
    """A finite float, or None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
