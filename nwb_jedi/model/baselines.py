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

import time

import numpy as np
import torch
from torch import nn

from nwb_jedi import metrics
from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi.data.dataset import TrialDataset, condition_means
from nwb_jedi.errors import UserError
from nwb_jedi.model.base import Estimator, NeuronRNNEstimator, present_conditions
from nwb_jedi.model.hypernet import RNNWeights
from nwb_jedi.model.rnn import Readout, draw_noise, simulate
from nwb_jedi.model.train import run_training


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
                noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(simulate(self.weights(group), n_steps, alpha, noise_std,
                                     noise=noise))


class _RNNBaseline(NeuronRNNEstimator):
    """Shared machinery of `PerConditionRNN` and `SharedRNN`."""

    _description = "RNN baseline"

    # Defaults are JEDI's, so a baseline is by default the same family with the same budget.
    def __init__(self, rank: int | None = 6, tau: float = 0.1, observation: str = "poisson",
                 noise_std: float = 0.02, lr: float = 1e-2, weight_decay: float = 0.0,
                 max_epochs: int = 500, patience: int = 100, batch_size: int = 64,
                 grad_clip: float = 1.0, smooth_sd: float = 0.04, device: str = "auto",
                 seed: int = 0, progress: bool = False):
        self.rank = rank
        self.tau = tau
        self.observation = observation
        self.noise_std = noise_std
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.grad_clip = grad_clip
        self.smooth_sd = smooth_sd
        self.device = device
        self.seed = seed
        self.progress = progress

    # -- which RNN each trial uses
    def _n_groups(self) -> int:
        raise NotImplementedError

    def _groups(self, ds: TrialDataset) -> np.ndarray:
        raise NotImplementedError

    def _group_of(self, condition: int | str) -> int:
        raise NotImplementedError

    def _run_module(self, chunk: list[torch.Tensor], n_steps: int) -> torch.Tensor:
        return self.module_(chunk[0], n_steps, self.alpha_)

    # -- public API
    def fit(self, train: TrialDataset, val: TrialDataset | None = None):
        """Fit the RNN(s) and the readout to the training trials; returns self.

        Uses `nwb_jedi.model.train.run_training` with the same budget (`max_epochs`), early
        stopping (`patience`, on `val` when given), minibatches and clipping as JEDI.
        """
        self._check_common_params()
        self._check_train(train)
        self._check_rank(train)
        self._check_tau(train)
        if val is not None and val.n_trials == 0:
            val = None
        device = self._resolve_device()
        self.bin_size_ = train.bin_size
        self.unit_id_ = np.asarray(train.unit_id)
        self._set_conditions(train)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = _RNNModule(self._n_groups(), train.n_units, self.rank,
                                      self.observation)
        self._init_readout(train)
        module = self.module_.to(device)

        n_steps, alpha = train.n_bins, self.alpha_
        targets = torch.as_tensor(self._targets(train), device=device)
        groups = torch.as_tensor(self._groups(train), device=device)
        generator = torch.Generator(device=device).manual_seed(self.seed)
        optimizer = torch.optim.Adam(module.parameters(), lr=self.lr,
                                     weight_decay=self.weight_decay)

        def batch_loss(batch: np.ndarray, local: np.ndarray, net: nn.Module) -> torch.Tensor:
            noise = None
            if self.noise_std > 0:
                noise = draw_noise(len(batch), n_steps, train.n_units, generator, device)[local]
            idx = torch.as_tensor(batch[local], device=device)
            return self._loss(net(groups[idx], n_steps, alpha, self.noise_std, noise),
                              targets[idx])

        val_loss = None
        if val is not None:
            self.check_compatible(val)
            val_targets = torch.as_tensor(self._targets(val), device=device)
            val_groups = self._groups(val)

            def val_loss() -> float:
                return self._chunked_loss([val_groups], val_targets, val.n_bins)

        start = time.perf_counter()
        with threads_for_step_size(self.batch_size * train.n_units):
            self.history_ = run_training(
                batch_loss, train.n_trials, optimizer, list(module.parameters()), module,
                val_loss=val_loss, max_epochs=self.max_epochs, patience=self.patience,
                batch_size=self.batch_size, grad_clip=self.grad_clip, seed=self.seed,
                progress=self.progress, description=self._description,
                strata=groups.cpu().numpy(), generator=generator)
        self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = len(self.history_["epoch"])
        return self

    def _set_conditions(self, train: TrialDataset) -> None:
        self.conditions_ = present_conditions(train)

    def predict_rates(self, ds: TrialDataset) -> np.ndarray:
        """Predicted firing rates in Hz, shape (K, T, N)."""
        self._check_fitted()
        self.check_compatible(ds)
        return self._output_to_rates(self._forward_batches([self._groups(ds)], ds.n_bins)
                                     ).astype(np.float32)

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

    def fit(self, train: TrialDataset, val: TrialDataset | None = None) -> PSTHBaseline:
        """Average each condition's training trials; `val` is not needed (accepted for parity)."""
        if not isinstance(train, TrialDataset):
            raise UserError(f"fit expects a TrialDataset, got {type(train).__name__}")
        if train.n_trials == 0:
            raise UserError("the training set has no trials; check the split")
        if self.smooth_sd < 0 or self.min_rate < 0:
            raise UserError("smooth_sd and min_rate must be >= 0")
        present = np.flatnonzero(train.trials_per_condition() > 0)
        mean = condition_means(train.counts.astype(np.float64) / train.bin_size, train.condition,
                               train.n_conditions)[present]
        self.psth_ = np.maximum(metrics.smooth(mean, self.smooth_sd / train.bin_size),
                                self.min_rate)
        self.conditions_ = train.conditions.iloc[present].reset_index(drop=True).copy()
        self.bin_size_ = train.bin_size
        self.unit_id_ = np.asarray(train.unit_id)
        self.n_bins_ = train.n_bins
        return self

    def predict_rates(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's condition PSTH, (K, T, N) in Hz."""
        self._check_fitted()
        self.check_compatible(ds)
        if ds.n_bins != self.n_bins_:
            raise UserError(f"the data have {ds.n_bins} bins per trial but the PSTHs have "
                            f"{self.n_bins_}; use trials of the same length")
        return self.psth_[self._condition_rows(ds)].astype(np.float32)

