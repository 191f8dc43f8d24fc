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

import copy
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi.data.binning import smoothing_matrix
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.metrics import poisson_log_likelihood
from nwb_jedi.model.base import NeuronRNNEstimator
from nwb_jedi.model.contexts import TrialContexts, n_basis_for
from nwb_jedi.model.hypernet import HyperNetwork, RNNWeights
from nwb_jedi.model.rnn import Readout, simulate
from nwb_jedi.model.rnn import step as rnn_step

FORMAT_NAME = "nwb_jedi.JEDI"
# Trials per forward pass when inferring contexts: bounds memory; the gradient is summed.
INFER_CHUNK = 512
# Inference lowers its rate by INFER_DECAY each time the objective stops improving, at most
# INFER_DECAYS times, then stops.
INFER_DECAY = 0.3
INFER_DECAYS = 3


class _JEDIModule(nn.Module):
    """All trainable tensors of a JEDI model."""

    def __init__(self, n_conditions: int, n_units: int, embed_dim: int, hidden: int,
                 rank: int | None, observation: str, contexts: TrialContexts):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(n_conditions, embed_dim))
        self.hypernet = HyperNetwork(embed_dim, n_units, rank, hidden)
        self.readout = Readout(n_units, observation)
        self.contexts = contexts
        # Normalization of the Gaussian targets (identity for Poisson), kept with the model.
        self.register_buffer("target_mean", torch.zeros(n_units))
        self.register_buffer("target_std", torch.ones(n_units))

    def trial_embeddings(self, condition: torch.Tensor,
                         context_index: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embeddings[condition]
        offsets = self.contexts.embedding_offsets(context_index)
        return emb if offsets is None else emb + offsets

    def forward(self, condition: torch.Tensor, n_steps: int, alpha: float,
                context_index: torch.Tensor | None = None, noise_std: float = 0.0,
                noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                unit_mask: torch.Tensor | None = None,
                knot_step: float = 1.0) -> torch.Tensor:
        """The readout's output for these trials, or, given `target`, the mean loss of it."""
        weights = self.hypernet(self.trial_embeddings(condition, context_index))
        x0 = weights.x0
        start = self.contexts.state_offsets(context_index)
        if start is not None:
            x0 = x0 + start
        drive = self.contexts.drive(context_index, n_steps, alpha, knot_step)
        activity = simulate(weights, n_steps, alpha, noise_std, noise=noise, x0=x0, drive=drive)
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
        Give every trial an offset δ_k added to its condition's embedding.
    trial_states : int
        Size q of every trial's own initial-state offset (0: none).
    trial_inputs : int
        Number p of every trial's own inferred, time-varying inputs (0: none).
    input_spacing : float
        Seconds between the smooth basis functions of the inferred inputs.
    trial_penalty : float
        Strength of the Gaussian prior on embedding offsets and initial-state offsets, per trial
        (see `nwb_jedi.model.contexts`).
    input_penalty : float
        Strength of the Gaussian prior on the inferred inputs' coefficients, per trial.
    target_smooth : float
        Poisson observation: fit to spike counts smoothed with a Gaussian of this sd (s) (0: raw
        counts); validation always scores the raw counts. Smoothed targets cut the noise the
        network would otherwise fit.
    noise_std : float
        Standard deviation σ of the process noise during training (none when predicting).
    lr, embed_lr : float
        Adam learning rates of the network (hypernetwork and readout) and of the embeddings.
    weight_decay : float
        Decoupled weight decay (AdamW) of the network's weight matrices; biases, the readout
        and embeddings are not decayed.
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
        Clip every gradient at this multiple of the recent typical gradient norm (0: never);
        relative, so it engages on outliers whatever the loss's scale.
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
        trial_states: int = 4,
        trial_inputs: int = 2,
        input_spacing: float = 0.05,
        trial_penalty: float = 100.0,
        input_penalty: float = 30.0,
        target_smooth: float = 0.04,
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
        ema: float = 0.99,
        batch_size: int = 64,
        grad_clip: float = 5.0,
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
        self.trial_states = trial_states
        self.trial_inputs = trial_inputs
        self.input_spacing = input_spacing
        self.trial_penalty = trial_penalty
        self.input_penalty = input_penalty
        self.target_smooth = target_smooth
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
        for name in ("trial_states", "trial_inputs"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
                raise UserError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("trial_penalty", "input_penalty", "target_smooth"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                raise UserError(f"{name} must be a number >= 0, got {value!r}")
        if not (isinstance(self.input_spacing, int | float) and self.input_spacing > 0):
            raise UserError(f"input_spacing must be a positive number of seconds, got "
                            f"{self.input_spacing!r}")

    # ------------------------------------------------------------------ fitted state
    @property
    def embeddings_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.embeddings.detach().cpu().numpy().copy()

    @property
    def has_trial_contexts(self) -> bool:
        """Whether trials get contexts of their own (offsets, initial states or inputs)."""
        return bool(self.trial_embeddings or self.trial_states or self.trial_inputs)

    @property
    def trial_offset_ids_(self) -> np.ndarray:
        """Ids of the trials with a fitted embedding offset (empty without offsets)."""
        if not self.trial_embeddings:
            return np.asarray([], dtype=np.int64)
        return self.context_ids_

    def _remember_data(self, train: TrialDataset) -> None:
        super()._remember_data(train)
        if self.has_trial_contexts:
            self.context_ids_ = np.asarray(train.trial_id)
            self.context_conditions_ = self._condition_rows(train)
        else:
            self.context_ids_ = np.asarray([], dtype=np.int64)
            self.context_conditions_ = np.asarray([], dtype=np.int64)

    def _extra_config(self) -> dict[str, Any]:
        return {"context_ids": [v.item() if isinstance(v, np.generic) else v
                                for v in np.asarray(self.context_ids_).tolist()],
                "context_conditions": [int(c) for c in self.context_conditions_]}

    def _restore_extra_config(self, config: dict[str, Any]) -> None:
        # Files of format version 1 name the rows of the per-trial offsets trial_offset_ids
        # and do not record their conditions.
        ids = config.get("context_ids", config.get("trial_offset_ids", []))
        self.context_ids_ = np.asarray(ids)
        rows = np.asarray(config.get("context_conditions", []), dtype=np.int64)
        if len(rows) and (len(rows) != len(ids) or rows.min() < 0
                          or rows.max() >= len(self.conditions_)):
            raise ValueError("context_conditions do not match the contexts and conditions")
        self.context_conditions_ = rows

    @classmethod
    def _legacy_params(cls, version: Any) -> dict[str, Any]:
        # Format 1 had no per-trial states or inputs, no smoothed targets, no averaging and a
        # constant learning rate that stopped after `patience` stale epochs.
        return {"trial_states": 0, "trial_inputs": 0, "target_smooth": 0.0, "ema": 0.0,
                "n_decays": 0, "warmup": 0, "min_epochs": 0}

    def _upgrade_tensors(self, tensors: dict[str, np.ndarray],
                         expected: dict[str, tuple[tuple[int, ...], torch.dtype]]
                         ) -> dict[str, np.ndarray]:
        # Version 1 kept the per-trial embedding offsets in "trial_offsets" and had no other
        # contexts: rename, and give the (empty) tensors of the absent contexts.
        if "trial_offsets" in tensors:
            tensors["contexts.offsets"] = tensors.pop("trial_offsets")
        for name, (shape, _dtype) in expected.items():
            if name not in tensors and int(np.prod(shape)) == 0:
                tensors[name] = np.zeros(shape, dtype=np.float32)
        return tensors

    @property
    def knot_step_(self) -> float:
        """Bins between the inferred inputs' basis functions."""
        return max(1.0, self.input_spacing / self.bin_size_)

    # ------------------------------------------------------------------ template hooks
    def _build_module(self, n_units: int) -> _JEDIModule:
        contexts = TrialContexts(len(self.context_ids_), n_units, self.embed_dim,
                                 bool(self.trial_embeddings), int(self.trial_states),
                                 int(self.trial_inputs),
                                 n_basis_for(int(self.n_bins_ or 2), self.knot_step_))
        return _JEDIModule(len(self.conditions_), n_units, self.embed_dim, self.hidden,
                           self.rank, self.observation, contexts)

    def _begin_training(self, train: TrialDataset) -> None:
        # Each trial's contexts are centred on its condition's while fitting (see
        # nwb_jedi.model.contexts): conditions carry what their trials share.
        if len(self.context_conditions_):
            self.module_.contexts.center_on(torch.as_tensor(self.context_conditions_))

    def _end_training(self) -> None:
        self.module_.contexts.fix_centering()

    def _parameter_groups(self, train_network: bool = True) -> list[dict[str, Any]]:
        """Embeddings and per-trial contexts at `embed_lr`; the network at `lr`, its weight
        matrices with decoupled weight decay and everything else (biases, readout) without."""
        module = self.module_
        for p in module.contexts.parameters():  # empty tensors take no gradient (and DDP
            p.requires_grad_(p.numel() > 0)      # must not wait for one)
        groups = [{"params": [module.embeddings, *module.contexts.trainable()],
                   "lr": self.embed_lr, "weight_decay": 0.0}]
        if train_network:
            decayed, plain = self._network_parameter_split()
            groups.append({"params": decayed, "lr": self.lr, "weight_decay": self.weight_decay})
            groups.append({"params": plain, "lr": self.lr, "weight_decay": 0.0})
        return groups

    def _network_parameter_split(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(weight matrices, other network parameters): only the first are decayed. The
        hypernetwork's output bias is the part of the weights all conditions share, and the
        readout starts at each neuron's mean rate: decaying them would pull the model to 0."""
        module = self.module_
        decayed = [layer.weight for layer in module.hypernet.layers
                   if isinstance(layer, nn.Linear)] + module.contexts.loadings()
        ids = {id(p) for p in decayed}
        plain = [p for p in self._network_parameters() if id(p) not in ids]
        return decayed, plain

    def _network_parameters(self) -> list[nn.Parameter]:
        module = self.module_
        return (list(module.hypernet.parameters()) + list(module.readout.parameters())
                + module.contexts.loadings())

    def _trial_inputs(self, ds: TrialDataset) -> list[np.ndarray]:
        return [self._condition_rows(ds), self._context_index(ds)]

    def _run_module(self, net: nn.Module, chunk: list[torch.Tensor], n_steps: int,
                    noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                    unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        condition, context_index = chunk
        noise_std = self.noise_std if noise is not None else 0.0
        return net(condition, n_steps, self.alpha_, context_index, noise_std, noise, target,
                   unit_mask, self.knot_step_)

    def _penalty(self, chunk: list[torch.Tensor], n_steps: int,
                 n_observed_units: int) -> torch.Tensor | float:
        """The per-trial contexts' priors, against a trial's T × N likelihood terms."""
        weights = {"offsets": self.trial_penalty, "states": self.trial_penalty,
                   "inputs": self.input_penalty}
        return self.module_.contexts.penalty(chunk[1], weights, n_steps * n_observed_units)

    def _target_smoother(self, ds: TrialDataset) -> np.ndarray | None:
        if self.observation == "poisson" and self.target_smooth > 0:
            return smoothing_matrix(ds.n_bins, self.target_smooth, ds.bin_size)
        return None

    def _unknown_condition_hint(self) -> str:
        return "fit embeddings for them first with model.infer_embeddings(dataset)"

    def _context_index(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's row in the per-trial contexts, or -1 when the trial has none."""
        ids = getattr(self, "context_ids_", None)
        if ids is None or len(ids) == 0:
            return np.full(ds.n_trials, -1)
        lookup = {str(t): i for i, t in enumerate(ids)}
        return np.array([lookup.get(str(t), -1) for t in ds.trial_id])

    # ------------------------------------------------------------------ using the fit
    def predict_rates(self, ds: TrialDataset) -> np.ndarray:
        """Predicted firing rates in Hz, shape (K, T, N), for the trials of `ds`.

        A trial whose context the model fitted or inferred is predicted with it. Any other
        trial is predicted by its condition: when the model has per-trial contexts, that is the
        average over the condition's trials with contexts (its trials' variability
        marginalized, rather than the one trial without any); else the condition's network.
        """
        rates = super().predict_rates(ds)
        marginal = self._marginal_rates(ds)
        if marginal is not None:
            rows, index = self._condition_rows(ds), self._context_index(ds)
            for k in np.flatnonzero(index < 0):
                if not np.isnan(marginal[rows[k], 0, 0]):
                    rates[k] = marginal[rows[k]]
        return rates

    def _marginal_rates(self, ds: TrialDataset) -> np.ndarray | None:
        """(C, T, N) rates averaged over each condition's trials with contexts (NaN for a
        condition without any), or None when the model has no per-trial contexts."""
        rows = getattr(self, "context_conditions_", np.zeros(0))
        if not len(rows) or np.all(self._context_index(ds) >= 0):
            return None
        key = (id(self.module_), ds.n_bins)
        cached = getattr(self, "_marginal_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        output = self._forward_batches([rows, np.arange(len(rows))], ds.n_bins)
        rates = self._output_to_rates(output)
        out = np.full((len(self.conditions_), ds.n_bins, self.n_units_), np.nan,
                      dtype=np.float32)
        for c in np.unique(rows):
            out[c] = rates[rows == c].mean(0)
        self._marginal_cache = (key, out)
        return out

    def embed_trials(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's embedding (K, d): its condition's, plus its own offset when the model
        has per-trial embeddings and fitted (or inferred) that trial's context."""
        self._check_fitted()
        device = next(self.module_.parameters()).device
        with torch.no_grad():
            return self.module_.trial_embeddings(
                torch.as_tensor(self._condition_rows(ds), device=device),
                torch.as_tensor(self._context_index(ds), device=device)).cpu().numpy()

    def _weights(self, condition: int | str) -> RNNWeights:
        row = self._condition_row(condition)
        with torch.no_grad():
            emb = self.module_.embeddings[row:row + 1]
            return self.module_.hypernet(emb)

    def condition_rates(self, condition: int | str, n_steps: int | None = None) -> np.ndarray:
        """The rates (T, N) in Hz of one condition's own network: its embedding's RNN from its
        initial state, noiseless, with no trial's context (what spectra, fixed points and
        embedding interpolation analyse; `predict_rates` of a new trial averages over the
        condition's trials' contexts instead)."""
        row = self._condition_row(condition)
        steps = int(n_steps if n_steps is not None else (self.n_bins_ or 2))
        output = self._forward_batches([np.array([row]), np.array([-1])], steps)
        return self._output_to_rates(output)[0].astype(np.float32)

    def with_embeddings(self, embeddings: np.ndarray, labels) -> JEDI:
        """A copy whose conditions are the given embeddings (n, d) named `labels`, with this
        network and no per-trial contexts.

        Built through the model's own state, so the copy is validated like a loaded model.
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        config, tensors = self.get_state()
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise UserError(f"embeddings must have shape (n, {self.embed_dim}), got "
                            f"{embeddings.shape}")
        config = {**config, "context_ids": [], "context_conditions": [],
                  "conditions": {"columns": ["label"], "rows": [[str(v)] for v in labels]}}
        tensors = {**tensors, "embeddings": embeddings}
        for name in ("contexts.offsets", "contexts.states", "contexts.inputs"):
            tensors[name] = np.zeros((0, *tensors[name].shape[1:]), dtype=np.float32)
        return type(self).from_state(config, tensors)

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
                         val: TrialDataset | None = None, observed_bins: int | None = None,
                         refit_conditions: bool = True, max_iters: int = 300,
                         tol: float = 1e-5, start: str = "likeliest") -> JEDI:
        """Infer the embeddings of new data's conditions, and optionally its trials' contexts,
        with the network frozen.

        This is how a shared model is applied to another session, how single trials are
        modelled (co-smoothing: infer from held-in neurons; forward prediction: from the first
        part of each trial) and how generalization to unseen conditions is measured. It is a
        maximum a posteriori estimate: the likelihood of the observed data plus the contexts'
        priors, optimized over all trials at once (Adam, full batch, no training noise); each
        time it stops improving the rate drops (×0.3, three times), and then it stops.
        Conditions the model knows start from their trained embeddings,
        the others from the known embedding under which their trials are likeliest, or from
        the centre of the known ones (`start`).

        Parameters
        ----------
        ds : TrialDataset
            Trials to infer from (their units must be the model's).
        per_trial : bool
            Also infer every trial's own context (the model's kinds: embedding offset, initial
            state, inputs; an embedding offset when the model has none).
        unit_mask : array of bool (N,), optional
            Fit only to these neurons (co-smoothing: infer from held-in neurons).
        max_epochs : int, optional
            Kept for compatibility: the most optimization steps (as `max_iters`).
        val : TrialDataset, optional
            Other trials of the same conditions: the iterate that predicts them best is kept.
        observed_bins : int, optional
            Fit only the first bins of each trial (forward prediction); default all.
        refit_conditions : bool
            Optimize the condition embeddings too (False: keep the trained ones; every
            condition of `ds` must then be known).
        max_iters : int
            Most optimization steps.
        tol : float
            The objective has stopped improving when it improved by less than this fraction
            over 20 steps.
        start : {"likeliest", "centre"}
            Where a condition the model does not know starts: the known embedding whose
            network gives its trials (their observed neurons and bins) the highest likelihood,
            a screening of every known condition that keeps the optimization out of the basins
            of wrong conditions (the default: it won on validation trials, see README), or the
            centre of the known embeddings (the same neutral guess for all).

        Returns
        -------
        JEDI
            A new fitted model whose `conditions_` are those of `ds` (and whose per-trial
            contexts are those of its trials); the network is this model's (copied).
        """
        self._check_fitted()
        self.check_compatible(ds)
        if ds.n_trials == 0:
            raise UserError("no trials to infer embeddings from")
        if max_epochs is not None:
            if not isinstance(max_epochs, int | np.integer) or max_epochs < 1:
                raise UserError(f"max_epochs must be a positive integer, got {max_epochs!r}")
            max_iters = int(max_epochs)
        n_fit = ds.n_bins if observed_bins is None else int(observed_bins)
        if not 2 <= n_fit <= ds.n_bins:
            raise UserError(f"observed_bins must be between 2 and the trials' {ds.n_bins} "
                            f"bins, got {observed_bins!r}")
        if start not in ("centre", "likeliest"):
            raise UserError(f"start must be 'centre' or 'likeliest', got {start!r}")
        val = self._check_val(ds, val)
        new = self._frozen_copy(ds, per_trial, refit_conditions, start, unit_mask, n_fit)
        began = time.perf_counter()
        if refit_conditions and len(new.context_conditions_):
            # Conditions are fitted with their trials: centre as in training.
            new.module_.contexts.center_on(torch.as_tensor(new.context_conditions_))
        new.history_ = new._maximize_posterior(ds, unit_mask, n_fit, refit_conditions,
                                               max_iters, tol, val)
        new.module_.contexts.fix_centering()
        new.fit_seconds_ = time.perf_counter() - began
        new.n_epochs_ = len(new.history_["epoch"])
        return new

    def condition_log_likelihoods(self, ds: TrialDataset, *,
                                  unit_mask: np.ndarray | None = None,
                                  n_bins: int | None = None) -> np.ndarray:
        """How well each known condition's network explains each trial: (K, C).

        The log-likelihood of every trial of `ds` (its first `n_bins` bins, the `unit_mask`
        neurons) under the network of every condition of `conditions_`, run from its initial
        state without any trial's context (Poisson: `nwb_jedi.metrics.poisson_log_likelihood`
        of the counts; Gaussian: minus half the squared error of the normalized smoothed
        rates, up to a constant).
        The condition labels of `ds` are not used, so it classifies trials by likelihood
        (``conditions_["label"][result.argmax(1)]``).
        """
        self._check_fitted()
        self.check_compatible(ds)
        n_fit = ds.n_bins if n_bins is None else int(n_bins)
        if not 1 <= n_fit <= ds.n_bins:
            raise UserError(f"n_bins must be between 1 and the trials' {ds.n_bins} bins, got "
                            f"{n_bins!r}")
        targets = self._targets(ds, training=False)[:, :n_fit]
        mask = (np.ones(self.n_units_, dtype=bool) if unit_mask is None
                else np.asarray(unit_mask, dtype=bool))
        no_context = np.full(ds.n_trials, -1)
        out = np.empty((ds.n_trials, len(self.conditions_)))
        for row in range(len(self.conditions_)):
            output = self._forward_batches([np.full(ds.n_trials, row), no_context], n_fit)
            if self.observation == "poisson":
                per_bin = poisson_log_likelihood(output, targets)
            else:
                per_bin = -0.5 * (output - targets) ** 2
            out[:, row] = per_bin[:, :, mask].sum(axis=(1, 2))
        return out

    def _likeliest_known(self, ds: TrialDataset, unit_mask: np.ndarray | None,
                         n_fit: int) -> np.ndarray:
        """For each condition with trials in `ds` (in the order of the inferred model's
        `conditions_`), the known condition (row of `conditions_`) under which its trials are
        likeliest together (`condition_log_likelihoods` summed over its trials)."""
        per_trial = self.condition_log_likelihoods(ds, unit_mask=unit_mask, n_bins=n_fit)
        per_condition = np.zeros((len(ds.conditions), len(self.conditions_)))
        np.add.at(per_condition, ds.condition, per_trial)
        return per_condition[np.unique(ds.condition)].argmax(1)

    def _frozen_copy(self, ds: TrialDataset, per_trial: bool, refit_conditions: bool,
                     start: str = "centre", unit_mask: np.ndarray | None = None,
                     n_fit: int | None = None) -> JEDI:
        """A model of `ds`'s conditions (and trials) with this network, ready to infer;
        unknown conditions start as `start` says (see `infer_embeddings`), screened on the
        `unit_mask` neurons of the first `n_fit` bins."""
        new = JEDI(**self.get_params())
        if per_trial and not self.has_trial_contexts:
            new.trial_embeddings = True  # a context of its own for every trial
        new._remember_data(ds)
        if not per_trial:
            new.context_ids_ = np.asarray([], dtype=np.int64)
            new.context_conditions_ = np.asarray([], dtype=np.int64)
        # The new model is this network: its neurons, bin width and simulation length.
        new.bin_size_, new.n_bins_, new.unit_id_ = self.bin_size_, self.n_bins_, self.unit_id_
        known = {label: i for i, label in enumerate(self.conditions_["label"].astype(str))}
        labels = new.conditions_["label"].astype(str)
        missing = [label for label in labels if label not in known]
        if missing and not refit_conditions:
            raise UserError(f"{len(missing)} condition(s) of the data are unknown to the model "
                            f"({', '.join(missing[:5])}); infer with refit_conditions=True")
        starts = (self._likeliest_known(ds, unit_mask, n_fit or ds.n_bins)
                  if missing and start == "likeliest" else None)
        device = next(self.module_.parameters()).device
        new.module_ = new._new_module(self.n_units_).to(device)
        skip = ("embeddings", "contexts.offsets", "contexts.states", "contexts.inputs")
        state = {k: v for k, v in self.module_.state_dict().items() if k not in skip}
        new.module_.load_state_dict(state, strict=False)
        with torch.no_grad():
            trained = self.module_.embeddings
            # Known conditions start where training left them; new ones at the known
            # embedding their trials favour, or at the centre of the known ones (the same
            # neutral guess for all, so only the optimization separates them).
            for row, label in enumerate(labels):
                if label in known:
                    new.module_.embeddings[row] = trained[known[label]]
                elif starts is not None:
                    new.module_.embeddings[row] = trained[int(starts[row])]
                else:
                    new.module_.embeddings[row] = trained.mean(0)
        return new

    def _maximize_posterior(self, ds: TrialDataset, unit_mask: np.ndarray | None, n_fit: int,
                            refit_conditions: bool, max_iters: int, tol: float,
                            val: TrialDataset | None) -> dict[str, list]:
        """Full-batch Adam on the embeddings and contexts, the network frozen."""
        module = self.module_
        for p in module.parameters():
            p.requires_grad_(False)
        params = list(module.contexts.trainable())
        if refit_conditions:
            params.insert(0, module.embeddings)
        for p in params:
            p.requires_grad_(True)
        history: dict[str, list] = {"epoch": [], "train_loss": [], "val_loss": [],
                                    "lr_scale": [], "seconds": []}
        if not params:
            return history
        device = next(module.parameters()).device
        # What the observation model scores: counts (Poisson) or normalized smoothed rates.
        targets = torch.as_tensor(self._targets(ds, training=False)[:, :n_fit], device=device)
        inputs = [torch.as_tensor(a, device=device) for a in self._trial_inputs(ds)]
        mask = None if unit_mask is None else torch.as_tensor(unit_mask, dtype=torch.float32,
                                                              device=device)
        observed = self.n_units_ if unit_mask is None else int(np.sum(unit_mask))
        optimizer = torch.optim.Adam(params, lr=self.embed_lr)
        best, best_state, start = math.inf, None, time.perf_counter()
        settling = _Settling(optimizer)
        val_inputs = self._trial_inputs(val) if val is not None else None
        val_targets = (torch.as_tensor(self._targets(val, training=False), device=device)
                       if val is not None else None)
        with threads_for_step_size(min(ds.n_trials, INFER_CHUNK) * self.n_units_):
            for step in range(max_iters):
                optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for lo in range(0, ds.n_trials, INFER_CHUNK):
                    chunk = [a[lo:lo + INFER_CHUNK] for a in inputs]
                    share = len(chunk[0]) / ds.n_trials
                    loss = self._run_module(module, chunk, n_fit, None,
                                            targets[lo:lo + INFER_CHUNK], mask)
                    loss = (loss + self._penalty(chunk, n_fit, observed)) * share
                    loss.backward()
                    total += float(loss.detach())
                optimizer.step()
                current_val = float("nan")
                if val is not None:
                    with torch.no_grad():
                        current_val = self._chunked_loss(val_inputs, val_targets, val.n_bins,
                                                         mask)
                history["epoch"].append(step + 1)
                history["train_loss"].append(total)
                history["val_loss"].append(current_val)
                history["lr_scale"].append(settling.scale)
                history["seconds"].append(time.perf_counter() - start)
                if val is not None and current_val < best:
                    best = current_val
                    best_state = copy.deepcopy(module.state_dict())
                if settling.finished(history["train_loss"], tol):
                    break
        if best_state is not None:
            module.load_state_dict(best_state)
        for p in module.parameters():
            p.requires_grad_(True)
        return history


class _Settling:
    """When full-batch inference stops: Adam at a constant rate hovers around the optimum (the
    inputs' basis functions overlap, so their coefficients are ill-conditioned), so each time
    the objective stalls the rates drop by INFER_DECAY, at most INFER_DECAYS times."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.scale, self.decays_left, self.since = 1.0, INFER_DECAYS, 0

    def finished(self, losses: list[float], tol: float) -> bool:
        """Whether to stop after these losses (lowering the rates when they stalled)."""
        if not _converged(losses[self.since:], tol):
            return False
        if self.decays_left == 0:
            return True
        self.decays_left -= 1
        self.scale *= INFER_DECAY
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = lr * self.scale
        self.since = len(losses)
        return False


def _converged(losses: list[float], tol: float, window: int = 20) -> bool:
    """Whether the objective improved by less than `tol` (relative) over the last `window`
    steps."""
    if len(losses) <= window:
        return False
    before, now = losses[-window - 1], losses[-1]
    return before - now <= tol * max(abs(before), 1e-12)
