"""The JEDI estimator (scikit-learn style): embeddings → hypernetwork → low-rank RNN of neurons.

JEDI (Jamkhandi, Korojy, Codol, Lajoie, Perich, 2026) fits one hierarchical model to all
conditions: each condition has a learned embedding ``e_c``; a hypernetwork maps it to the
weights ``(M, U, b, x0)`` of a data-constrained RNN whose units are the recorded neurons, with
connectivity ``J = M Uᵀ / N``. The condition lives in the weights, not in an input.

The fitting loop, checks, checkpoints and saving are the estimator template's
(`nwb_jedi.model.base.NeuronRNNEstimator`); this module says where each trial's weights come
from (the hypernetwork of its condition's embedding, plus an optional per-trial offset) and
how embeddings of new data are inferred with the network frozen.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.model.base import NeuronRNNEstimator
from nwb_jedi.model.hypernet import HyperNetwork, RNNWeights
from nwb_jedi.model.rnn import Readout, simulate
from nwb_jedi.model.rnn import step as rnn_step

FORMAT_NAME = "nwb_jedi.JEDI"


class _JEDIModule(nn.Module):
    """All trainable tensors of a JEDI model."""

    def __init__(self, n_conditions: int, n_units: int, embed_dim: int, hidden: int,
                 rank: int | None, observation: str, n_trial_offsets: int = 0):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(n_conditions, embed_dim))
        self.trial_offsets = nn.Parameter(torch.zeros(n_trial_offsets, embed_dim))
        self.hypernet = HyperNetwork(embed_dim, n_units, rank, hidden)
        self.readout = Readout(n_units, observation)
        # Normalization of the Gaussian targets (identity for Poisson), kept with the model.
        self.register_buffer("target_mean", torch.zeros(n_units))
        self.register_buffer("target_std", torch.ones(n_units))

    def trial_embeddings(self, condition: torch.Tensor,
                         offset_index: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embeddings[condition]
        if offset_index is not None and self.trial_offsets.shape[0]:
            known = offset_index >= 0
            offsets = self.trial_offsets[offset_index.clamp_min(0)]
            emb = emb + offsets * known.unsqueeze(-1)
        return emb

    def forward(self, condition: torch.Tensor, n_steps: int, alpha: float,
                offset_index: torch.Tensor | None = None, noise_std: float = 0.0,
                noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The readout's output for these trials, or, given `target`, the mean loss of it."""
        weights = self.hypernet(self.trial_embeddings(condition, offset_index))
        activity = simulate(weights, n_steps, alpha, noise_std, noise=noise)
        if target is not None:
            return self.readout.loss(activity, target, unit_mask)
        return self.readout(activity)


class JEDI(NeuronRNNEstimator):
    """Jointly Embedded Inference of Neural Dynamics.

    Parameters
    ----------
    embed_dim : int
        Size d of each condition's embedding.
    hidden : int
        Width H of the hypernetwork's two hidden layers.
    rank : int or None
        Rank R of the connectivity ``J = M Uᵀ / N``. ``None`` emits a full-rank J (ablation only).
    tau : float
        Time constant of the units in seconds; the step is α = bin_size / tau (capped at 1).
    observation : {"poisson", "gaussian"}
        Poisson likelihood on spike counts, or Gaussian on smoothed normalized rates (the
        paper's dRNN setting).
    trial_embeddings : bool
        Learn a per-trial offset δ_k added to the condition embedding (L2 penalized).
    trial_penalty : float
        Weight of the L2 penalty on per-trial offsets.
    noise_std : float
        Standard deviation σ of the process noise during training (none when predicting).
    lr, embed_lr : float
        Adam learning rates of the network (hypernetwork and readout) and of the embeddings.
    weight_decay : float
        L2 weight decay on the network parameters.
    max_epochs : int
        Training budget: the most epochs a fit runs.
    patience : int
        Epochs without validation improvement before the learning rates are lowered.
    lr_decay : float
        Factor on the learning rates at each plateau.
    n_decays : int
        After this many decays, the next plateau ends the fit (the best state is returned).
    warmup : int
        Epochs over which the learning rates rise linearly to their values.
    min_epochs : int
        No fit ends before this many epochs.
    ema : float
        Decay of the moving average of the network's parameters that is validated and kept
        (0: the parameters themselves).
    batch_size : int
        Trials per minibatch.
    grad_clip : float
        Maximum gradient norm.
    smooth_sd : float
        Gaussian smoothing (s) of the targets for ``observation="gaussian"``.
    device : str
        "auto" (CUDA when available), "cpu" or "cuda".
    seed : int
        Seed of initialization, minibatch order and training noise.
    progress : bool
        Show a progress bar while fitting.

    Attributes
    ----------
    embeddings_ : ndarray (C, d)
        One embedding per condition, rows in the order of `conditions_`.
    conditions_ : DataFrame
        The conditions the model knows (from the training data).
    history_ : dict of lists
        Per-epoch ``train_loss`` and ``val_loss``.
    unit_id_ : ndarray (N,)
        Identifiers of the modelled neurons.
    bin_size_ : float
        Bin width the model was fitted at (s).
    n_bins_ : int
        Trial length (bins) of the training data: the default length of simulations.
    """

    _format = FORMAT_NAME
    _description = "JEDI fit"

    def __init__(
        self,
        embed_dim: int = 8,
        hidden: int = 128,
        rank: int | None = 6,
        tau: float = 0.1,
        observation: str = "poisson",
        trial_embeddings: bool = False,
        trial_penalty: float = 1e-2,
        noise_std: float = 0.02,
        lr: float = 1e-2,
        embed_lr: float = 3e-2,
        weight_decay: float = 0.0,
        max_epochs: int = 500,
        patience: int = 10,
        lr_decay: float = 0.5,
        n_decays: int = 4,
        warmup: int = 5,
        min_epochs: int = 20,
        ema: float = 0.0,
        batch_size: int = 64,
        grad_clip: float = 1.0,
        smooth_sd: float = 0.04,
        device: str = "auto",
        seed: int = 0,
        progress: bool = False,
    ):
        self.embed_dim = embed_dim
        self.hidden = hidden
        self.rank = rank
        self.tau = tau
        self.observation = observation
        self.trial_embeddings = trial_embeddings
        self.trial_penalty = trial_penalty
        self.noise_std = noise_std
        self.lr = lr
        self.embed_lr = embed_lr
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

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("embed_dim", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.embed_lr, int | float) and self.embed_lr > 0
                and math.isfinite(self.embed_lr)):
            raise UserError(f"embed_lr must be a positive number, got {self.embed_lr!r}")
        if self.trial_penalty < 0:
            raise UserError("trial_penalty must be >= 0")

    # ------------------------------------------------------------------ fitted state
    @property
    def embeddings_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.embeddings.detach().cpu().numpy().copy()

    def _remember_data(self, train: TrialDataset) -> None:
        super()._remember_data(train)
        self.trial_offset_ids_ = (np.asarray(train.trial_id) if self.trial_embeddings
                                  else np.asarray([], dtype=np.int64))

    def _extra_config(self) -> dict[str, Any]:
        return {"trial_offset_ids": [v.item() if isinstance(v, np.generic) else v
                                     for v in np.asarray(self.trial_offset_ids_).tolist()]}

    def _restore_extra_config(self, config: dict[str, Any]) -> None:
        self.trial_offset_ids_ = np.asarray(config.get("trial_offset_ids", []))

    # ------------------------------------------------------------------ template hooks
    def _build_module(self, n_units: int) -> _JEDIModule:
        return _JEDIModule(len(self.conditions_), n_units, self.embed_dim, self.hidden,
                           self.rank, self.observation, len(self.trial_offset_ids_))

    def _parameter_groups(self, train_network: bool = True) -> list[dict[str, Any]]:
        """Embeddings (and trial offsets) at `embed_lr`; hypernetwork and readout at `lr`."""
        module = self.module_
        embed_params = [module.embeddings]
        if module.trial_offsets.shape[0]:
            embed_params.append(module.trial_offsets)
        else:  # an empty tensor takes no gradient; DistributedDataParallel must not wait for one
            module.trial_offsets.requires_grad_(False)
        groups = [{"params": embed_params, "lr": self.embed_lr, "weight_decay": 0.0}]
        if train_network:
            groups.append({"params": self._network_parameters(), "lr": self.lr,
                           "weight_decay": self.weight_decay})
        return groups

    def _network_parameters(self) -> list[nn.Parameter]:
        return list(self.module_.hypernet.parameters()) + list(self.module_.readout.parameters())

    def _trial_inputs(self, ds: TrialDataset) -> list[np.ndarray]:
        return [self._condition_rows(ds), self._offset_index(ds)]

    def _run_module(self, net: nn.Module, chunk: list[torch.Tensor], n_steps: int,
                    noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                    unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        condition, offset_index = chunk
        noise_std = self.noise_std if noise is not None else 0.0
        return net(condition, n_steps, self.alpha_, offset_index, noise_std, noise, target,
                   unit_mask)

    def _penalty(self, chunk: list[torch.Tensor]) -> torch.Tensor | float:
        """L2 penalty on the fitted offsets of the minibatch's trials."""
        offsets = self.module_.trial_offsets
        if not offsets.shape[0]:
            return 0.0
        known = chunk[1][chunk[1] >= 0]
        if not len(known):
            return 0.0
        return self.trial_penalty * offsets[known].pow(2).sum(-1).mean()

    def _unknown_condition_hint(self) -> str:
        return "fit embeddings for them first with model.infer_embeddings(dataset)"

    def _offset_index(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's row in the per-trial offsets, or -1 when the trial has none."""
        ids = getattr(self, "trial_offset_ids_", None)
        if ids is None or len(ids) == 0:
            return np.full(ds.n_trials, -1)
        lookup = {str(t): i for i, t in enumerate(ids)}
        return np.array([lookup.get(str(t), -1) for t in ds.trial_id])

    # ------------------------------------------------------------------ using the fit
    def embed_trials(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's embedding (K, d): its condition's, plus its own fitted offset when the
        model has per-trial embeddings and was fitted on that trial."""
        self._check_fitted()
        device = next(self.module_.parameters()).device
        with torch.no_grad():
            return self.module_.trial_embeddings(
                torch.as_tensor(self._condition_rows(ds), device=device),
                torch.as_tensor(self._offset_index(ds), device=device)).cpu().numpy()

    def _weights(self, condition: int | str) -> RNNWeights:
        row = self._condition_row(condition)
        with torch.no_grad():
            emb = self.module_.embeddings[row:row + 1]
            return self.module_.hypernet(emb)

    def step_fn(self, condition: int | str):
        """A torch callable ``x ↦ x_next`` (noiseless) for one condition, for states (..., N).

        Differentiable in x, so it serves fixed-point finders and Jacobians.
        """
        w = self._weights(condition)
        alpha = self.alpha_

        def step(x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            flat = x.reshape(-1, shape[-1]).to(w.b.dtype)
            return rnn_step(w.expand(flat.shape[0]), flat, alpha).reshape(shape)

        return step

    def simulate_states(self, condition: int | str, n_steps: int) -> np.ndarray:
        """Noiseless activity φ(x_t) of one condition, shape (n_steps, N)."""
        w = self._weights(condition)
        with torch.no_grad():
            return simulate(w, n_steps, self.alpha_)[0].cpu().numpy()

    def infer_embeddings(self, ds: TrialDataset, *, per_trial: bool = False,
                         unit_mask: np.ndarray | None = None, max_epochs: int | None = None,
                         val: TrialDataset | None = None) -> JEDI:
        """Fit embeddings for the conditions (and optionally trials) of new data.

        The hypernetwork and readout stay frozen; only embeddings are optimized. This is how
        a shared model is applied to another session, and how generalization to unseen
        conditions is measured.

        Parameters
        ----------
        ds : TrialDataset
            Trials to infer from (their units must be the model's).
        per_trial : bool
            Also fit a per-trial offset for every trial of `ds`.
        unit_mask : array of bool (N,), optional
            Fit only to these neurons (co-smoothing: infer from held-in neurons).
        max_epochs : int, optional
            Budget; defaults to the model's `max_epochs`.
        val : TrialDataset, optional
            Trials of the same conditions for early stopping.

        Returns
        -------
        JEDI
            A new fitted model whose `conditions_` are those of `ds`; the network weights are
            shared (copied) from this model.
        """
        self._check_fitted()
        self.check_compatible(ds)
        if ds.n_trials == 0:
            raise UserError("no trials to infer embeddings from")
        if max_epochs is not None and (not isinstance(max_epochs, int | np.integer)
                                       or max_epochs < 1):
            raise UserError(f"max_epochs must be a positive integer, got {max_epochs!r}")
        val = self._check_val(ds, val)
        new = JEDI(**self.get_params())
        new.trial_embeddings = per_trial
        new._remember_data(ds)
        # The new model is this network: its neurons, bin width and simulation length.
        new.bin_size_, new.n_bins_, new.unit_id_ = self.bin_size_, self.n_bins_, self.unit_id_
        device = next(self.module_.parameters()).device
        new.module_ = new._new_module(self.n_units_).to(device)
        state = {k: v for k, v in self.module_.state_dict().items()
                 if k not in ("embeddings", "trial_offsets")}
        new.module_.load_state_dict(state, strict=False)
        with torch.no_grad():
            # Start every new condition at the centre of the known embeddings: the most
            # neutral guess, and the same for all, so only the data separate them.
            new.module_.embeddings.copy_(self.module_.embeddings.mean(0, keepdim=True).expand(
                len(new.conditions_), -1))
        network = new._network_parameters()
        for p in network:
            p.requires_grad_(False)
        start = time.perf_counter()
        try:
            new.history_ = new._train(ds, val, new._parameter_groups(train_network=False),
                                      unit_mask=unit_mask, max_epochs=max_epochs,
                                      description="JEDI embeddings")
        finally:
            for p in network:
                p.requires_grad_(True)
        new.fit_seconds_ = time.perf_counter() - start
        new.n_epochs_ = len(new.history_["epoch"])
        return new
