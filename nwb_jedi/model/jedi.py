"""The JEDI estimator (scikit-learn style): embeddings → hypernetwork → low-rank RNN of neurons.

JEDI (Jamkhandi, Korojy, Codol, Lajoie, Perich, 2026) fits one hierarchical model to all
conditions: each condition has a learned embedding ``e_c``; a hypernetwork maps it to the
weights ``(M, U, b, x0)`` of a data-constrained RNN whose units are the recorded neurons, with
connectivity ``J = M Uᵀ / N``. The condition lives in the weights, not in an input.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nwb_jedi._files import atomic_output
from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi._version import __version__
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import ModelFileError, UserError
from nwb_jedi.model.base import NeuronRNNEstimator, present_conditions
from nwb_jedi.model.hypernet import HyperNetwork, RNNWeights
from nwb_jedi.model.rnn import Readout, draw_noise, simulate
from nwb_jedi.model.rnn import step as rnn_step
from nwb_jedi.model.train import Checkpoint, fingerprint, run_training

FORMAT_NAME = "nwb_jedi.JEDI"
FORMAT_VERSION = 1


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
                noise: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.hypernet(self.trial_embeddings(condition, offset_index))
        activity = simulate(weights, n_steps, alpha, noise_std, noise=noise)
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
    max_epochs, patience : int
        Training budget and early-stopping patience (epochs without validation improvement).
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
        patience: int = 100,
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
        self.batch_size = batch_size
        self.grad_clip = grad_clip
        self.smooth_sd = smooth_sd
        self.device = device
        self.seed = seed
        self.progress = progress

    def _check_params(self) -> None:
        self._check_common_params()
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

    def _build_module(self, n_conditions: int, n_units: int, n_offsets: int) -> _JEDIModule:
        # Initialization draws from a private generator state so that fitting never depends
        # on (or disturbs) the caller's global torch random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = _JEDIModule(n_conditions, n_units, self.embed_dim, self.hidden, self.rank,
                                 self.observation, n_offsets)
        return module

    # ------------------------------------------------------------------ data plumbing
    def _unknown_condition_hint(self) -> str:
        return "fit embeddings for them first with model.infer_embeddings(dataset)"

    def _offset_index(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's row in the per-trial offsets, or -1 when the trial has none."""
        ids = getattr(self, "trial_offset_ids_", None)
        if ids is None or len(ids) == 0:
            return np.full(ds.n_trials, -1)
        lookup = {str(t): i for i, t in enumerate(ids)}
        return np.array([lookup.get(str(t), -1) for t in ds.trial_id])

    def _run_module(self, chunk: list[torch.Tensor], n_steps: int) -> torch.Tensor:
        condition, offset_index = chunk
        return self.module_(condition, n_steps, self.alpha_, offset_index)

    # ------------------------------------------------------------------ fitting
    def fit(self, train: TrialDataset, val: TrialDataset | None = None, *,
            checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 10,
            resume: bool = False) -> JEDI:
        """Fit embeddings, hypernetwork and readout to the training trials.

        Parameters
        ----------
        train : TrialDataset
            Trials to fit (typically ``ds.train``).
        val : TrialDataset, optional
            Trials for early stopping (typically ``ds.val``); without it, training stops when
            the training loss stops improving.
        checkpoint_dir : path, optional
            Save a checkpoint (model, optimizer, random generators, epoch) there every
            `checkpoint_every` epochs, atomically.
        resume : bool
            Continue from the checkpoint in `checkpoint_dir` when there is one; the result is
            the same as an uninterrupted fit with the same seed.

        Under ``torchrun`` (torch.distributed initialized), trials of every minibatch are
        sharded across ranks and gradients all-reduced; the parameters equal those of a
        single-process fit with the same global batch.

        Returns
        -------
        self
        """
        self._check_params()
        self._check_train(train)
        self._check_rank(train)
        self._check_tau(train)
        if val is not None and val.n_trials == 0:
            val = None
        device = self._resolve_device()
        self.bin_size_ = train.bin_size
        self.n_bins_ = train.n_bins
        self.unit_id_ = np.asarray(train.unit_id)
        self.conditions_ = present_conditions(train)
        self.trial_offset_ids_ = (np.asarray(train.trial_id) if self.trial_embeddings
                                  else np.asarray([], dtype=np.int64))
        self.module_ = self._build_module(len(self.conditions_), train.n_units,
                                          len(self.trial_offset_ids_))
        self._init_readout(train)
        self.module_.to(device)

        checkpoint = None
        if checkpoint_dir is not None:
            # What defines the fit; not how long or where it runs, nor whether it shows
            # progress, so a resumed fit may train longer or move to a GPU.
            defining = {k: v for k, v in self.get_params().items()
                        if k not in ("progress", "device", "max_epochs", "patience")}
            checkpoint = Checkpoint(checkpoint_dir, checkpoint_every, resume, fingerprint(
                defining, train.counts, train.condition, train.trial_id.astype(str),
                None if val is None else val.counts))
        start = time.perf_counter()
        self.history_ = self._optimize(train, val, train_network=True, checkpoint=checkpoint)
        self.resumed_from_epoch_ = checkpoint.loaded_epoch if checkpoint is not None else 0
        self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = len(self.history_["epoch"])
        return self

    def _optimize(self, train: TrialDataset, val: TrialDataset | None, *,
                  train_network: bool, unit_mask: np.ndarray | None = None,
                  max_epochs: int | None = None, description: str = "JEDI fit",
                  checkpoint: Checkpoint | None = None) -> dict:
        module = self.module_
        device = next(module.parameters()).device
        n_steps, n_units = train.n_bins, train.n_units
        alpha = self.alpha_
        targets = torch.as_tensor(self._targets(train), device=device)
        condition = torch.as_tensor(self._condition_rows(train), device=device)
        offsets = torch.as_tensor(self._offset_index(train), device=device)
        mask = None if unit_mask is None else torch.as_tensor(unit_mask, dtype=torch.float32,
                                                              device=device)
        generator = torch.Generator(device=device).manual_seed(self.seed)

        network = list(module.hypernet.parameters()) + list(module.readout.parameters())
        embed_params = [module.embeddings]
        if module.trial_offsets.shape[0]:
            embed_params.append(module.trial_offsets)
        else:  # an empty tensor takes no gradient; DistributedDataParallel must not wait for one
            module.trial_offsets.requires_grad_(False)
        for p in network:
            p.requires_grad_(train_network)
        groups = [{"params": embed_params, "lr": self.embed_lr, "weight_decay": 0.0}]
        if train_network:
            groups.append({"params": network, "lr": self.lr, "weight_decay": self.weight_decay})
        optimizer = torch.optim.Adam(groups)

        def batch_loss(batch: np.ndarray, local: np.ndarray, net: nn.Module) -> torch.Tensor:
            noise = None
            if self.noise_std > 0:
                noise = draw_noise(len(batch), n_steps, n_units, generator, device)[local]
            idx = torch.as_tensor(batch[local], device=device)
            out = net(condition[idx], n_steps, alpha, offsets[idx], self.noise_std, noise)
            loss = self._loss(out, targets[idx], mask)
            if module.trial_offsets.shape[0]:
                known = offsets[idx][offsets[idx] >= 0]
                if len(known):
                    loss = loss + self.trial_penalty * module.trial_offsets[known].pow(2).sum(
                        -1).mean()
            return loss

        val_loss = None
        if val is not None:
            val_targets = torch.as_tensor(self._targets(val), device=device)
            val_condition = self._condition_rows(val)
            val_offsets = self._offset_index(val)

            def val_loss() -> float:
                return self._chunked_loss([val_condition, val_offsets], val_targets, val.n_bins,
                                          mask)

        try:
            with threads_for_step_size(self.batch_size * train.n_units):
                return run_training(
                    batch_loss, train.n_trials, optimizer,
                    [p for g in groups for p in g["params"]], module,
                    val_loss=val_loss,
                    max_epochs=self.max_epochs if max_epochs is None else max_epochs,
                    patience=self.patience, batch_size=self.batch_size,
                    grad_clip=self.grad_clip, seed=self.seed, progress=self.progress,
                    description=description, strata=condition.cpu().numpy(),
                    generator=generator, checkpoint=checkpoint,
                )
        finally:
            for p in network:
                p.requires_grad_(True)

    # ------------------------------------------------------------------ using the fit
    def predict_rates(self, ds: TrialDataset) -> np.ndarray:
        """Predicted firing rates in Hz, shape (K, T, N), for the trials of `ds`.

        Trials whose condition the model knows use its embedding (plus the trial's own offset
        when it was fitted with per-trial embeddings).
        """
        self._check_fitted()
        self.check_compatible(ds)
        output = self._forward_batches([self._condition_rows(ds), self._offset_index(ds)],
                                       ds.n_bins)
        return self._output_to_rates(output).astype(np.float32)

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
        new = JEDI(**self.get_params())
        new.trial_embeddings = per_trial
        new.bin_size_ = self.bin_size_
        new.n_bins_ = self.n_bins_
        new.unit_id_ = self.unit_id_
        new.conditions_ = present_conditions(ds)
        new.trial_offset_ids_ = (np.asarray(ds.trial_id) if per_trial
                                 else np.asarray([], dtype=np.int64))
        device = next(self.module_.parameters()).device
        new.module_ = new._build_module(len(new.conditions_), self.n_units_,
                                        len(new.trial_offset_ids_)).to(device)
        state = {k: v for k, v in self.module_.state_dict().items()
                 if k not in ("embeddings", "trial_offsets")}
        new.module_.load_state_dict(state, strict=False)
        with torch.no_grad():
            # Start every new condition at the centre of the known embeddings: the most
            # neutral guess, and the same for all, so only the data separate them.
            new.module_.embeddings.copy_(self.module_.embeddings.mean(0, keepdim=True).expand(
                len(new.conditions_), -1))
        start = time.perf_counter()
        new.history_ = new._optimize(ds, val, train_network=False, unit_mask=unit_mask,
                                     max_epochs=max_epochs, description="JEDI embeddings")
        new.fit_seconds_ = time.perf_counter() - start
        new.n_epochs_ = len(new.history_["epoch"])
        return new

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as a JSON-able config and named numpy arrays (no pickle needed)."""
        self._check_fitted()
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "params": {k: v for k, v in self.get_params().items() if k != "progress"},
            "n_units": self.n_units_,
            "bin_size": self.bin_size_,
            "n_bins": self.n_bins_,
            "unit_id": _jsonable_list(self.unit_id_),
            "conditions": _table_to_json(self.conditions_),
            "trial_offset_ids": _jsonable_list(self.trial_offset_ids_),
            "history": {k: [_jsonable(v) for v in vals]
                        for k, vals in getattr(self, "history_", {}).items()},
            "versions": package_versions(),
        }
        tensors = {name: t.detach().cpu().numpy().copy()
                   for name, t in self.module_.state_dict().items()}
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> JEDI:
        """Rebuild a fitted model from `get_state` output, refusing anything malformed.

        Raises
        ------
        ModelFileError
            Unknown format or version, unknown hyperparameters, missing or unexpected tensors,
            non-numeric (object) arrays, wrong shapes, or NaN/inf values.
        """
        if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
            raise ModelFileError("this is not a nwb_jedi JEDI model (its config names no "
                                 f"'{FORMAT_NAME}' format)")
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"model format version {config.get('format_version')!r} is not "
                                 f"supported by nwb_jedi {__version__} (which reads version "
                                 f"{FORMAT_VERSION}); upgrade nwb_jedi")
        params = dict(config.get("params", {}))
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise ModelFileError(f"the model config has unknown hyperparameters "
                                 f"{sorted(unknown)}; it was written by another nwb_jedi "
                                 f"version")
        try:
            model = cls(**params)
            model.device = "cpu"
            model._check_params()
            model.bin_size_ = float(config["bin_size"])
            model.n_bins_ = int(config.get("n_bins") or 0) or None  # absent before 0.1.0 final
            model.unit_id_ = np.asarray(config["unit_id"])
            model.conditions_ = _table_from_json(config["conditions"])
            model.trial_offset_ids_ = np.asarray(config.get("trial_offset_ids", []))
            n_units = int(config["n_units"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"the model config is incomplete or malformed ({err}); the "
                                 f"file is damaged or not a JEDI model") from None
        module = model._build_module(len(model.conditions_), n_units,
                                     len(model.trial_offset_ids_))
        expected = module.state_dict()
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise ModelFileError(f"the model's tensors do not match its config (missing: "
                                 f"{missing[:5]}, unexpected: {extra[:5]}); the file is damaged")
        state = {}
        for name, ref in expected.items():
            arr = tensors[name]
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
                kind = getattr(arr, "dtype", type(arr))
                raise ModelFileError(f"tensor {name!r} has dtype {kind}, not floating point; "
                                     f"refusing to load it")
            if tuple(arr.shape) != tuple(ref.shape):
                raise ModelFileError(f"tensor {name!r} has shape {tuple(arr.shape)}, expected "
                                     f"{tuple(ref.shape)}; the file is damaged")
            if not np.all(np.isfinite(arr)):
                raise ModelFileError(f"tensor {name!r} contains NaN or infinite values; "
                                     f"refusing to load it")
            state[name] = torch.as_tensor(np.ascontiguousarray(arr), dtype=ref.dtype)
        module.load_state_dict(state)
        module.eval()
        model.module_ = module
        model.history_ = {k: list(v) for k, v in config.get("history", {}).items()}
        model.n_epochs_ = len(model.history_.get("epoch", []))
        return model

    def save(self, path: str | os.PathLike) -> None:
        """Write config + tensors + versions to one ``.npz`` file (no pickle), atomically."""
        config, tensors = self.get_state()
        with atomic_output(os.fspath(path)) as tmp, open(tmp, "wb") as f:
            np.savez(f, __config__=np.array(json.dumps(config)),
                     **{f"tensor/{k}": v for k, v in tensors.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> JEDI:
        """Load a model written by `save`; never unpickles."""
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                config = json.loads(str(data["__config__"]))
                tensors = {k[len("tensor/"):]: data[k] for k in data.files
                           if k.startswith("tensor/")}
        except FileNotFoundError:
            raise
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as err:
            raise ModelFileError(f"{path} is not a readable nwb_jedi model file ({err})") \
                from None
        return cls.from_state(config, tensors)


# ---------------------------------------------------------------------- helpers
def package_versions() -> dict[str, str]:
    """Versions recorded with every saved model."""
    return {"nwb_jedi": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable_list(values) -> list:
    return [_jsonable(v) for v in np.asarray(values).tolist()]


def _table_to_json(table: pd.DataFrame) -> dict[str, Any]:
    return {"columns": [str(c) for c in table.columns],
            "rows": [[_jsonable(v) for v in row] for row in table.itertuples(index=False)]}


def _table_from_json(data: dict[str, Any]) -> pd.DataFrame:
    table = pd.DataFrame([list(r) for r in data["rows"]], columns=list(data["columns"]))
    if "label" not in table.columns:
        raise ValueError("the conditions table has no 'label' column")
    return table
