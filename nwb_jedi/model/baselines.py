"""Baselines that run on the same TrialDataset and expose the same API as JEDI.

- `PerConditionRNN`: one independent data-constrained RNN per condition (the classic dRNN, as in
  CURBD), of the same family as JEDI's (units = neurons, low-rank ``J = M Uᵀ / N``, tanh, same
  readout and likelihood) and trained with the same loop, budget and stopping rule. The RNNs
  of all conditions are trained together as batched weight tensors ``(C, N, R)`` indexed by each
  trial's condition, which is equivalent to C separate fits (no parameter is shared between
  conditions except the readout, which JEDI shares too) but costs one batched step per bin.
- `SharedRNN`: one RNN for all trials, no embedding (the condition is invisible to it).
- `PSTHBaseline`: the smoothed trial-averaged PSTH of each condition's training trials.

All three: hyperparameters in ``__init__``, ``fit(train, val=None)`` returns self,
``predict_rates(ds)`` gives (K, T, N) rates in Hz, ``score(ds)`` the same metrics as JEDI. The
RNN baselines also expose ``condition_weights``, ``eigenvalues`` and ``alpha_``, so the dynamics
analyses (`nwb_jedi.analysis`) apply to them unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nwb_jedi import metrics
from nwb_jedi.data.dataset import TrialDataset, condition_means
from nwb_jedi.errors import UserError
from nwb_jedi.model.base import Estimator, NeuronRNNEstimator
from nwb_jedi.model.hypernet import RNNWeights
from nwb_jedi.model.jedi import JEDI
from nwb_jedi.model.rnn import Readout, simulate


# ---------------------------------------------------------------------- RNN baselines
class _RNNModule(nn.Module):
    """G independent RNNs (batched weights) with one shared readout."""

    def __init__(self, n_groups: int, n_units: int, rank: int | None, observation: str):
        super().__init__()
        # Same initial scale as JEDI's hypernetwork output: unit-variance low-rank factors
        # (J ~ sqrt(R/N)), or J ~ 0.5/sqrt(N) for full rank; zero bias and initial state.
        if rank is not None:
            self.M = nn.Parameter(torch.randn(n_groups, n_units, rank))
            self.U = nn.Parameter(torch.randn(n_groups, n_units, rank))
        else:
            self.J = nn.Parameter(torch.randn(n_groups, n_units, n_units) * 0.5 / n_units ** 0.5)
        self.b = nn.Parameter(torch.zeros(n_groups, n_units))
        self.x0 = nn.Parameter(torch.zeros(n_groups, n_units))
        self.rank = rank
        self.readout = Readout(n_units, observation)
        self.register_buffer("target_mean", torch.zeros(n_units))
        self.register_buffer("target_std", torch.ones(n_units))

    def weights(self, group: torch.Tensor) -> RNNWeights:
        if self.rank is not None:
            return RNNWeights(b=self.b[group], x0=self.x0[group], M=self.M[group],
                              U=self.U[group])
        return RNNWeights(b=self.b[group], x0=self.x0[group], J=self.J[group])

    def forward(self, group: torch.Tensor, n_steps: int, alpha: float, noise_std: float = 0.0,
                noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The readout's output for these trials, or, given `target`, the mean loss of it."""
        activity = simulate(self.weights(group), n_steps, alpha, noise_std, noise=noise)
        if target is not None:
            return self.readout.loss(activity, target, unit_mask)
        return self.readout(activity)


# Defaults are JEDI's (read from its signature, their one source), so a baseline is by default
# the same family with the same budget.
_JEDI = JEDI.default_params()


class _RNNBaseline(NeuronRNNEstimator):
    """Shared machinery of `PerConditionRNN` and `SharedRNN`: the template's hooks for a module
    of G independent weight sets, selected per trial by `_groups`."""

    _description = "RNN baseline"

    def __init__(self, rank: int | None = _JEDI["rank"], tau: float = _JEDI["tau"],
                 observation: str = _JEDI["observation"], noise_std: float = _JEDI["noise_std"],
                 lr: float = _JEDI["lr"], weight_decay: float = _JEDI["weight_decay"],
                 max_epochs: int = _JEDI["max_epochs"], patience: int = _JEDI["patience"],
                 lr_decay: float = _JEDI["lr_decay"], n_decays: int = _JEDI["n_decays"],
                 warmup: int = _JEDI["warmup"], min_epochs: int = _JEDI["min_epochs"],
                 ema: float = _JEDI["ema"],
                 batch_size: int = _JEDI["batch_size"], grad_clip: float = _JEDI["grad_clip"],
                 smooth_sd: float = _JEDI["smooth_sd"], device: str = _JEDI["device"],
                 seed: int = _JEDI["seed"], progress: bool = _JEDI["progress"]):
        self.rank = rank
        self.tau = tau
        self.observation = observation
        self.noise_std = noise_std
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.lr_decay = lr_decay
        self.n_decays = n_decays
        self.warmup = warmup
        self.min_epochs = min_epochs
        self.ema = ema
        self.batch_size = batch_size
        self.grad_clip = grad_clip
        self.smooth_sd = smooth_sd
        self.device = device
        self.seed = seed
        self.progress = progress

    # -- which RNN each trial uses
    def _n_groups(self) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    def _groups(self, ds: TrialDataset) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def _group_of(self, condition: int | str) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    # -- template hooks
    def _build_module(self, n_units: int) -> _RNNModule:
        return _RNNModule(self._n_groups(), n_units, self.rank, self.observation)

    def _trial_inputs(self, ds: TrialDataset) -> list[np.ndarray]:
        return [self._groups(ds)]

    def _run_module(self, net: nn.Module, chunk: list[torch.Tensor], n_steps: int,
                    noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                    unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        noise_std = self.noise_std if noise is not None else 0.0
        return net(chunk[0], n_steps, self.alpha_, noise_std, noise, target, unit_mask)

    def _weights(self, condition: int | str) -> RNNWeights:
        device = next(self.module_.parameters()).device
        group = torch.as_tensor([self._group_of(condition)], device=device)
        with torch.no_grad():
            return self.module_.weights(group)


class PerConditionRNN(_RNNBaseline):
    """One independent data-constrained RNN per condition (the classic dRNN, as in CURBD).

    Same family as JEDI's RNN (units = neurons, ``J = M Uᵀ / N`` of rank `rank`, tanh, α = Δ/τ,
    per-neuron readout shared across conditions) and the same training loop and budget; each
    condition's ``M, U, b, x0`` are free parameters instead of hypernetwork outputs. Conditions
    absent from the training data cannot be predicted: fit a new one on their trials.

    Parameters
    ----------
    rank, tau, observation, noise_std, lr, weight_decay, max_epochs, patience, batch_size,
    grad_clip, smooth_sd, device, seed, progress
        As in `JEDI` (`lr` applies to all parameters).

    Attributes
    ----------
    conditions_ : DataFrame
        The conditions fitted, one RNN each (row order = RNN index).
    history_ : dict of lists
        Per-epoch ``train_loss`` and ``val_loss``.
    """

    _description = "per-condition RNNs"
    _format = "nwb_jedi.PerConditionRNN"

    def _n_groups(self) -> int:
        return len(self.conditions_)

    def _groups(self, ds: TrialDataset) -> np.ndarray:
        return self._condition_rows(ds)

    def _group_of(self, condition: int | str) -> int:
        return self._condition_row(condition)


class SharedRNN(_RNNBaseline):
    """One data-constrained RNN for all trials, with no embedding: the condition is invisible.

    Parameters and attributes as `PerConditionRNN`; every condition maps to the same weights.
    """

    _description = "shared RNN"
    _format = "nwb_jedi.SharedRNN"

    def _n_groups(self) -> int:
        return 1

    def _groups(self, ds: TrialDataset) -> np.ndarray:
        return np.zeros(ds.n_trials, dtype=np.int64)

    def _group_of(self, condition: int | str) -> int:
        self._condition_row(condition)  # validates the condition
        return 0


# ---------------------------------------------------------------------- PSTH
class PSTHBaseline(Estimator):
    """The smoothed trial-averaged PSTH of each condition's training trials.

    Parameters
    ----------
    smooth_sd : float
        Gaussian smoothing (s) applied along time to the trial average (smoothing and averaging
        commute, so this is also the average of smoothed trials).
    min_rate : float
        Floor (Hz) on the prediction, so that a neuron silent in a condition's training trials
        does not get zero probability for a spike on held-out trials.

    Attributes
    ----------
    psth_ : ndarray (C, T, N)
        Predicted rates in Hz per condition, rows in the order of `conditions_`.
    """

    def __init__(self, smooth_sd: float = metrics.DEFAULT_SMOOTH_SD, min_rate: float = 0.1):
        self.smooth_sd = smooth_sd
        self.min_rate = min_rate

    _fitted_attribute = "psth_"
    _format = "nwb_jedi.PSTHBaseline"

    def _check_params(self) -> None:
        if self.smooth_sd < 0 or self.min_rate < 0:
            raise UserError("smooth_sd and min_rate must be >= 0")

    def fit(self, train: TrialDataset, val: TrialDataset | None = None) -> PSTHBaseline:
        """Average each condition's training trials; `val` is not needed (accepted for parity,
        and checked like every estimator's: same neurons as `train`)."""
        self._check_train(train)
        self._check_val(train, val)
        self._check_params()
        present = np.flatnonzero(train.trials_per_condition() > 0)
        mean = condition_means(train.counts.astype(np.float64) / train.bin_size, train.condition,
                               train.n_conditions)[present]
        self._remember_data(train)
        self.psth_ = np.maximum(metrics.smooth(mean, self.smooth_sd / train.bin_size),
                                self.min_rate)
        return self

    def _state_tensors(self) -> dict[str, np.ndarray]:
        return {"psth": np.asarray(self.psth_, dtype=np.float64).copy()}

    def _expected_tensors(self, n_units: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {"psth": ((len(self.conditions_), int(self.n_bins_ or 0), n_units),
                         torch.float64)}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.psth_ = tensors["psth"].numpy()

    def predict_rates(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's condition PSTH, (K, T, N) in Hz."""
        self._check_fitted()
        self.check_compatible(ds)
        if ds.n_bins != self.n_bins_:
            raise UserError(f"the data have {ds.n_bins} bins per trial but the PSTHs have "
                            f"{self.n_bins_}; use trials of the same length")
        return self.psth_[self._condition_rows(ds)].astype(np.float32)

