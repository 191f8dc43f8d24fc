"""What every estimator in `nwb_jedi.model` shares: the scikit-learn protocol, saving and loading
its state, the checks that data fit a fitted model, and — for the models whose RNN units are
the recorded neurons — the one fitting template.

JEDI and the RNN baselines differ only in where each trial's RNN weights come from (a
hypernetwork of an embedding, a free weight set per condition, or one shared set). Everything
else — checks of the training and validation data, building the module under a private random
generator, readout initialization, training noise, validation loss, threads, timing,
checkpoints, targets, chunked prediction, spectra and the state for saving — lives here once.
A subclass supplies its module (`_build_module`), what each trial feeds it (`_trial_inputs`),
how a chunk of trials runs through it (`_run_module`) and the RNN weights of one condition
(`_weights`).
"""

from __future__ import annotations

import inspect
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

from nwb_jedi import metrics
from nwb_jedi._files import atomic_output
from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi._version import __version__
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import ModelFileError, NotFittedError, UserError
from nwb_jedi.model.bounds import check_state
from nwb_jedi.model.rnn import draw_noise
from nwb_jedi.model.train import Checkpoint, Schedule, fingerprint, run_training

EVAL_BATCH = 256  # trials per forward pass when predicting: bounds memory, not results
STATE_FORMAT_VERSION = 2
# Versions this release reads: 1 (before per-trial contexts) is upgraded on load.
READABLE_FORMAT_VERSIONS = (1, 2)


def present_conditions(ds: TrialDataset) -> pd.DataFrame:
    """The rows of the conditions table that have trials in `ds` (a model learns only those)."""
    present = np.unique(ds.condition)
    return ds.conditions.iloc[present].reset_index(drop=True).copy()


def package_versions() -> dict[str, str]:
    """Versions recorded with every saved model."""
    return {"nwb_jedi": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def check_same_neurons(unit_id: np.ndarray, bin_size: float, ds: TrialDataset,
                       fitted: str = "the model was fitted on") -> None:
    """Raise UserError unless `ds` has exactly these neurons, in this order, at this bin width.

    A model's units are recorded neurons, so data of other neurons (or another bin width)
    cannot be fed to it.
    """
    if not isinstance(ds, TrialDataset):
        raise UserError(f"expected a TrialDataset, got {type(ds).__name__}; build one with "
                        f"TrialDataset.from_arrays or ConditionMapper.build")
    if ds.n_units != len(unit_id):
        raise UserError(f"the data have {ds.n_units} neurons but {fitted} {len(unit_id)}; use "
                        f"the same units (check the unit filters)")
    if not np.array_equal(np.asarray(ds.unit_id).astype(str), np.asarray(unit_id).astype(str)):
        raise UserError(f"the data's unit ids differ from those {fitted}; the model's units "
                        f"are recorded neurons, so give it data of the same units")
    if not math.isclose(ds.bin_size, bin_size, rel_tol=1e-6):
        raise UserError(f"the data are binned at {ds.bin_size * 1e3:g} ms but {fitted} "
                        f"{bin_size * 1e3:g} ms bins; rebin with --bin-ms {bin_size * 1e3:g}")


class Estimator:
    """scikit-learn protocol: hyperparameters are the ``__init__`` arguments, `fit` returns
    self, fitted state ends in ``_``; `evaluate` gives the package's standard metrics and
    `score` the bits per spike; `get_state`/`from_state` turn a fitted model into a JSON-able
    config plus named numpy arrays and back (never pickle)."""

    _fitted_attribute = "conditions_"
    #: Name of the stored format; `nwb_jedi.model.estimator_from_state` dispatches on it.
    _format = ""

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """The hyperparameters' defaults, read from the signature (the one place they live)."""
        return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if name != "self"}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as a dict (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> Estimator:
        """Set hyperparameters (scikit-learn protocol); returns self."""
        for name, value in params.items():
            if name not in self._param_names():
                raise ValueError(f"{type(self).__name__} has no hyperparameter {name!r}; valid "
                                 f"ones are {', '.join(self._param_names())}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = self.default_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in
                                                      changed.items()) + ")"

    def _check_fitted(self) -> None:
        if self._fitted_attribute not in self.__dict__:
            raise NotFittedError(f"this {type(self).__name__} model is not fitted yet; call "
                                 f"fit(train, val) first")

    def _check_params(self) -> None:
        """Refuse bad hyperparameters (subclasses check theirs)."""

    @staticmethod
    def _check_train(train: TrialDataset) -> None:
        if not isinstance(train, TrialDataset):
            raise UserError(f"fit expects a TrialDataset, got {type(train).__name__}")
        if train.n_trials == 0:
            raise UserError("the training set has no trials; check the split")

    @staticmethod
    def _check_val(train: TrialDataset, val: TrialDataset | None) -> TrialDataset | None:
        """The validation set to use (None when absent or empty); refuses other neurons."""
        if val is None:
            return None
        check_same_neurons(train.unit_id, train.bin_size, val,
                           fitted="the training data have")
        return val if val.n_trials else None

    def _remember_data(self, train: TrialDataset) -> None:
        """Fitted attributes that describe the training data."""
        self.bin_size_ = train.bin_size
        self.n_bins_ = train.n_bins
        self.unit_id_ = np.asarray(train.unit_id)
        self.conditions_ = present_conditions(train)

    def check_compatible(self, ds: TrialDataset) -> None:
        """Raise UserError when the data's neurons or bin width differ from the fitted model's."""
        check_same_neurons(self.unit_id_, self.bin_size_, ds)

    def _unknown_condition_hint(self) -> str:
        return f"{type(self).__name__} can only predict the conditions it was fitted on"

    def _condition_rows(self, ds: TrialDataset) -> np.ndarray:
        """Each trial's row in `conditions_`, matched by condition label."""
        known = {label: i for i, label in enumerate(self.conditions_["label"].astype(str))}
        labels = ds.conditions["label"].astype(str).to_numpy()
        missing = sorted({labels[c] for c in np.unique(ds.condition)} - set(known))
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            raise UserError(f"{len(missing)} condition(s) of this data are unknown to the model "
                            f"({shown}); {self._unknown_condition_hint()}")
        return np.array([known.get(label, -1) for label in labels])[ds.condition]

    def _condition_row(self, condition: int | str) -> int:
        """The row of one condition in `conditions_`, given its index or its label."""
        self._check_fitted()
        labels = list(self.conditions_["label"].astype(str))
        if isinstance(condition, int | np.integer):
            if not 0 <= condition < len(labels):
                raise UserError(f"condition index {condition} is out of range; the model has "
                                f"{len(labels)} conditions")
            return int(condition)
        if str(condition) not in labels:
            raise UserError(f"unknown condition {condition!r}; known: {', '.join(labels[:10])}")
        return labels.index(str(condition))

    def predict_rates(self, ds: TrialDataset) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate(self, ds: TrialDataset) -> dict[str, float]:
        """Metrics of the predicted rates on `ds` (use held-out trials).

        Returns
        -------
        dict
            ``bits_per_spike`` (vs a per-neuron mean-rate null), ``psth_r2_smoothed``
            (condition-averaged), ``r2`` (single trial, smoothed data), and, when `ds`
            carries ground-truth rates (synthetic data), ``r2_true`` (variance explained,
            pooled over neurons) and ``r2_true_per_neuron`` (R² averaged over neurons).
        """
        return metrics.score_rates(self.predict_rates(ds), ds)

    def score(self, ds: TrialDataset) -> float:
        """Bits per spike of the predicted rates on `ds` (higher is better).

        A single number, as scikit-learn's model selection (``GridSearchCV``,
        ``cross_val_score``) expects of ``score``; `evaluate` gives every metric.
        """
        return float(metrics.bits_per_spike(self.predict_rates(ds), ds.counts, ds.bin_size))

    # ------------------------------------------------------------------ saving and loading
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as a JSON-able config and named numpy arrays (no pickle needed)."""
        self._check_fitted()
        config = {
            "format": self._format,
            "format_version": STATE_FORMAT_VERSION,
            "params": {k: v for k, v in self.get_params().items() if k != "progress"},
            "n_units": len(self.unit_id_),
            "bin_size": self.bin_size_,
            "n_bins": getattr(self, "n_bins_", None),
            "unit_id": _jsonable_list(self.unit_id_),
            "conditions": _table_to_json(self.conditions_),
            "history": {k: [_jsonable(v) for v in vals]
                        for k, vals in getattr(self, "history_", {}).items()},
            "versions": package_versions(),
            **self._extra_config(),
        }
        return config, self._state_tensors()

    def _extra_config(self) -> dict[str, Any]:
        """Fitted values beyond the common ones that the config must carry."""
        return {}

    def _state_tensors(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> Estimator:
        """Rebuild a fitted model from `get_state` output, refusing anything malformed.

        Raises
        ------
        ModelFileError
            Unknown format or version, unknown hyperparameters, missing or unexpected tensors,
            non-numeric (object) arrays, wrong shapes, or NaN/inf values.
        """
        if not isinstance(config, dict) or config.get("format") != cls._format:
            found = config.get("format") if isinstance(config, dict) else None
            raise ModelFileError(f"this is not a nwb_jedi {cls.__name__} model (its config "
                                 f"names format {found!r}, not {cls._format!r}); load it with "
                                 f"nwb_jedi.load_model, which reads every estimator")
        if config.get("format_version") not in READABLE_FORMAT_VERSIONS:
            raise ModelFileError(f"model format version {config.get('format_version')!r} is not "
                                 f"supported by nwb_jedi {__version__} (which reads version "
                                 f"{STATE_FORMAT_VERSION}); upgrade nwb_jedi")
        check_state(config, tensors)  # sizes and structure, before anything is built
        params = config.get("params", {})
        if not isinstance(params, dict):
            raise ModelFileError("the model config's params are not a mapping; the file is "
                                 "damaged")
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise ModelFileError(f"the model config has unknown hyperparameters "
                                 f"{sorted(unknown)}; it was written by another nwb_jedi "
                                 f"version")
        if config.get("format_version") != STATE_FORMAT_VERSION:
            # Hyperparameters an older format did not have take the values that reproduce it.
            params = {**cls._legacy_params(config.get("format_version")), **params}
        try:
            model = cls(**params)
            if "device" in params:
                model.device = "cpu"
            model._check_params()
            model.bin_size_ = float(config["bin_size"])
            model.n_bins_ = int(config.get("n_bins") or 0) or None  # absent before 0.1.0 final
            model.unit_id_ = np.asarray(config["unit_id"])
            model.conditions_ = _table_from_json(config["conditions"])
            model._restore_extra_config(config)
            n_units = int(config["n_units"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"the model config is incomplete or malformed ({err}); the "
                                 f"file is damaged or not a {cls.__name__} model") from None
        expected = model._expected_tensors(n_units)
        if config.get("format_version") != STATE_FORMAT_VERSION:
            tensors = model._upgrade_tensors(dict(tensors), expected)
        model._restore_tensors(_checked_tensors(tensors, expected))
        model.history_ = {k: list(v) for k, v in config.get("history", {}).items()}
        model.n_epochs_ = len(model.history_.get("epoch", []))
        return model

    def _restore_extra_config(self, config: dict[str, Any]) -> None:
        """Read back what `_extra_config` stored."""

    @classmethod
    def _legacy_params(cls, version: Any) -> dict[str, Any]:
        """Values of the hyperparameters that format `version` did not store yet."""
        return {}

    def _upgrade_tensors(self, tensors: dict[str, np.ndarray],
                         expected: dict[str, tuple[tuple[int, ...], torch.dtype]]
                         ) -> dict[str, np.ndarray]:
        """Tensors stored by an older format version, in this version's names and shapes."""
        return tensors

    def save(self, path: str | os.PathLike) -> None:
        """Write config + tensors + versions to one ``.npz`` file (no pickle), atomically."""
        config, tensors = self.get_state()
        with atomic_output(os.fspath(path)) as tmp, open(tmp, "wb") as f:
            np.savez(f, __config__=np.array(json.dumps(config)),
                     **{f"tensor/{k}": v for k, v in tensors.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Estimator:
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

    def _expected_tensors(self, n_units: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of every tensor a model of this config holds."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError  # pragma: no cover - abstract


class NeuronRNNEstimator(Estimator):
    """Common ground of models whose RNN units are the recorded neurons, and their fitting
    template.

    Subclasses hold a torch module in ``module_`` with a ``readout`` (per-neuron gain/offset)
    and ``target_mean``/``target_std`` buffers, and implement `_build_module`, `_trial_inputs`,
    `_run_module` and `_weights`; they may add parameter groups (`_parameter_groups`), a
    penalty (`_penalty`) and fitted attributes (`_remember_data`).
    """

    _fitted_attribute = "module_"
    _description = "fit"

    @property
    def alpha_(self) -> float:
        """Integration step α = Δ/τ (fit refuses τ below the bin width, so α ≤ 1)."""
        return min(1.0, self.bin_size_ / self.tau)

    @property
    def n_units_(self) -> int:
        self._check_fitted()
        return len(self.unit_id_)

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.observation not in ("poisson", "gaussian"):
            raise UserError(f"observation must be 'poisson' or 'gaussian', got "
                            f"{self.observation!r}")
        if self.rank is not None and (not isinstance(self.rank, int | np.integer)
                                      or self.rank < 1):
            raise UserError(f"rank must be a positive integer or None, got {self.rank!r}")
        _check_integers(self, ("max_epochs", "batch_size", "patience"), low=1)
        _check_integers(self, ("n_decays", "warmup", "min_epochs"), low=0)
        for name in ("tau", "lr"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise UserError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.lr_decay, int | float) and 0 < self.lr_decay < 1):
            raise UserError(f"lr_decay must be between 0 and 1 (exclusive), got "
                            f"{self.lr_decay!r}")
        if not (isinstance(self.ema, int | float) and 0 <= self.ema < 1):
            raise UserError(f"ema must be at least 0 and below 1, got {self.ema!r}")
        if self.noise_std < 0:
            raise UserError("noise_std must be >= 0")
        if not isinstance(self.seed, int | np.integer) or not 0 <= self.seed < 2**32:
            raise UserError(f"seed must be an integer from 0 to 2**32 - 1, got {self.seed!r}")

    def _check_fit_data(self, train: TrialDataset, val: TrialDataset | None
                        ) -> TrialDataset | None:
        """Every check of the training and validation data; returns the validation set to use."""
        self._check_train(train)
        if self.rank is not None and self.rank > train.n_units:
            raise UserError(f"rank {self.rank} exceeds the number of neurons "
                            f"({train.n_units}); choose rank <= {train.n_units} (--rank)")
        # α = Δ/τ > 1 would overshoot; capping it would silently fit another model than the
        # one the stored tau describes, so refuse instead.
        if self.tau < train.bin_size * (1 - 1e-9):
            raise UserError(f"tau ({self.tau * 1e3:g} ms) must be at least the bin width "
                            f"({train.bin_size * 1e3:g} ms); raise tau (--tau-ms) or use "
                            f"smaller bins (--bin-ms)")
        return self._check_val(train, val)

    def _resolve_device(self) -> torch.device:
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise UserError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise UserError("device='cuda' was asked for but no CUDA GPU is available; use "
                            "device='auto' or 'cpu'")
        return torch.device(self.device)

    # ------------------------------------------------------------------ the fitting template
    def fit(self, train: TrialDataset, val: TrialDataset | None = None, *,
            checkpoint_dir: str | None = None, checkpoint_every: int = 10,
            resume: bool = False):
        """Fit the model to the training trials; returns self.

        Parameters
        ----------
        train : TrialDataset
            Trials to fit (typically ``ds.train``).
        val : TrialDataset, optional
            Trials of the same neurons for early stopping (typically ``ds.val``); without it,
            training stops when the training loss stops improving.
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
        val = self._check_fit_data(train, val)
        device = self._resolve_device()
        self._remember_data(train)
        self.module_ = self._new_module(train.n_units)
        self._init_readout(train)
        self.module_.to(device)
        self._begin_training(train)
        checkpoint = None
        if checkpoint_dir is not None:
            # What defines the fit; not how long or where it runs, nor whether it shows
            # progress, so a resumed fit may train longer or move to a GPU.
            defining = {k: v for k, v in self.get_params().items()
                        if k not in ("progress", "device", "max_epochs", "patience")}
            checkpoint = Checkpoint(checkpoint_dir, checkpoint_every, resume, fingerprint(
                type(self).__name__, defining, train.counts, train.condition,
                train.trial_id.astype(str), None if val is None else val.counts))
        start = time.perf_counter()
        self.history_ = self._train(train, val, self._parameter_groups(), checkpoint=checkpoint,
                                    description=self._description)
        self._end_training()
        self.resumed_from_epoch_ = checkpoint.loaded_epoch if checkpoint is not None else 0
        self.fit_seconds_ = time.perf_counter() - start
        self.n_epochs_ = len(self.history_["epoch"])
        return self

    def _new_module(self, n_units: int) -> nn.Module:
        # Initialization draws from a private generator state so that fitting never depends
        # on (or disturbs) the caller's global torch random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._build_module(n_units)

    def _build_module(self, n_units: int) -> nn.Module:  # pragma: no cover - abstract
        """The torch module for the fitted attributes set so far (conditions, ...)."""
        raise NotImplementedError

    def _begin_training(self, train: TrialDataset) -> None:
        """Set the module up for training on `train` (nothing by default)."""

    def _end_training(self) -> None:
        """Leave the module as it is to be used and saved after training (nothing by
        default)."""

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """Adam parameter groups of a fit (all parameters at `lr` by default)."""
        return [{"params": list(self.module_.parameters()), "lr": self.lr,
                 "weight_decay": self.weight_decay}]

    def _trial_inputs(self, ds: TrialDataset) -> list[np.ndarray]:  # pragma: no cover
        """Per-trial index arrays that select each trial's weights in the module."""
        raise NotImplementedError

    def _run_module(self, net: nn.Module, chunk: list[torch.Tensor], n_steps: int,
                    noise: torch.Tensor | None = None, target: torch.Tensor | None = None,
                    unit_mask: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        """Forward pass of `net` (the module or its data-parallel wrapper) for one chunk of
        trials (the tensors of `_trial_inputs`), with training noise when `noise` is given.

        Returns the readout's output, or, given `target`, the mean loss against it (the module
        computes the loss itself, so the readout and the likelihood fuse into one pass and a
        data-parallel wrapper sees every parameter used inside its forward)."""
        raise NotImplementedError

    def _schedule(self) -> Schedule:
        """The learning-rate schedule and stopping rule of a fit (see `Schedule`)."""
        return Schedule(patience=self.patience, decay=self.lr_decay, n_decays=self.n_decays,
                        warmup=self.warmup, min_epochs=self.min_epochs)

    def _penalty(self, chunk: list[torch.Tensor], n_steps: int,
                 n_observed_units: int) -> torch.Tensor | float:
        """A regularization term added to a minibatch's mean loss (none by default); a trial
        has `n_steps` x `n_observed_units` likelihood terms."""
        return 0.0

    def _train(self, train: TrialDataset, val: TrialDataset | None,
               groups: list[dict[str, Any]], *, unit_mask: np.ndarray | None = None,
               max_epochs: int | None = None, description: str = "fit",
               checkpoint: Checkpoint | None = None) -> dict[str, list]:
        """Optimize the parameters in `groups` on `train` (early stopping on `val`)."""
        device = next(self.module_.parameters()).device
        n_steps, n_units = train.n_bins, train.n_units
        targets = torch.as_tensor(self._targets(train), device=device)
        smoother = self._target_smoother(train)
        if smoother is not None:  # applied per minibatch: no smoothed copy of every trial
            smoother = torch.as_tensor(smoother, dtype=targets.dtype, device=device)
        inputs = [torch.as_tensor(a, device=device) for a in self._trial_inputs(train)]
        mask = None if unit_mask is None else torch.as_tensor(unit_mask, dtype=torch.float32,
                                                              device=device)
        n_observed = n_units if unit_mask is None else int(np.sum(unit_mask))
        generator = torch.Generator(device=device).manual_seed(self.seed)

        def batch_loss(batch: np.ndarray, local: np.ndarray, net: nn.Module) -> torch.Tensor:
            noise = None
            if self.noise_std > 0:
                noise = draw_noise(len(batch), n_steps, n_units, generator, device)
                if len(local) < len(batch):  # this process computes a share of the batch
                    noise = noise[torch.as_tensor(local, device=device)]
            idx = torch.as_tensor(batch[local], device=device)
            chunk = [a[idx] for a in inputs]
            target = targets[idx] if smoother is None else torch.matmul(smoother, targets[idx])
            loss = self._run_module(net, chunk, n_steps, noise, target, mask)
            return loss + self._penalty(chunk, n_steps, n_observed)

        val_loss = None
        if val is not None:
            val_targets = torch.as_tensor(self._targets(val, training=False), device=device)
            val_inputs = self._trial_inputs(val)

            def val_loss() -> float:
                return self._chunked_loss(val_inputs, val_targets, val.n_bins, mask)

        with threads_for_step_size(self.batch_size * n_units):
            return run_training(
                batch_loss, train.n_trials, torch.optim.AdamW(groups),
                [p for g in groups for p in g["params"]], self.module_,
                val_loss=val_loss,
                max_epochs=self.max_epochs if max_epochs is None else max_epochs,
                schedule=self._schedule(), ema=self.ema, batch_size=self.batch_size,
                grad_clip=self.grad_clip,
                seed=self.seed, progress=self.progress, description=description,
                strata=self._condition_rows(train), generator=generator, checkpoint=checkpoint)

    # ------------------------------------------------------------------ prediction
    def predict_rates(self, ds: TrialDataset) -> np.ndarray:
        """Predicted firing rates in Hz, shape (K, T, N), for the trials of `ds`."""
        self._check_fitted()
        self.check_compatible(ds)
        output = self._forward_batches(self._trial_inputs(ds), ds.n_bins)
        return self._output_to_rates(output).astype(np.float32)

    # ------------------------------------------------------------------ observation conventions
    def _targets(self, ds: TrialDataset, training: bool = True) -> np.ndarray:
        """What the observation model is fitted to (`training`) or scored on: counts, or
        normalized smoothed rates."""
        if self.observation == "poisson":
            return ds.counts
        rates = metrics.smooth(ds.counts / ds.bin_size, self.smooth_sd / ds.bin_size)
        mean = self.module_.target_mean.cpu().numpy()
        std = self.module_.target_std.cpu().numpy()
        return ((rates - mean) / std).astype(np.float32)

    def _target_smoother(self, ds: TrialDataset) -> np.ndarray | None:
        """A (T, T) matrix applied to each minibatch's training targets along time (None:
        the targets as they are)."""
        return None

    def _output_to_rates(self, output: np.ndarray) -> np.ndarray:
        if self.observation == "poisson":
            return output / self.bin_size_
        mean = self.module_.target_mean.cpu().numpy()
        std = self.module_.target_std.cpu().numpy()
        return np.maximum(output * std + mean, 0.0)

    def _init_readout(self, train: TrialDataset) -> None:
        """Start every neuron at its mean rate, so early training shapes dynamics, not offsets."""
        with torch.no_grad():
            if self.observation == "poisson":
                mean_count = np.maximum(train.counts.mean(axis=(0, 1)), 1e-3)
                inverse_softplus = mean_count + np.log(-np.expm1(-mean_count))
                self.module_.readout.offset.copy_(torch.as_tensor(inverse_softplus,
                                                                  dtype=torch.float32))
            else:
                rates = metrics.smooth(train.counts / train.bin_size,
                                       self.smooth_sd / train.bin_size)
                mean = rates.mean(axis=(0, 1))
                std = np.maximum(rates.std(axis=(0, 1)), 1e-3)
                self.module_.target_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
                self.module_.target_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    # ------------------------------------------------------------------ chunked evaluation
    def _chunks(self, arrays: list[np.ndarray]):
        device = next(self.module_.parameters()).device
        for start in range(0, len(arrays[0]), EVAL_BATCH):
            yield [torch.as_tensor(a[start:start + EVAL_BATCH], device=device) for a in arrays]

    def _forward_batches(self, arrays: list[np.ndarray], n_steps: int) -> np.ndarray:
        """Model output for all trials, EVAL_BATCH trials at a time (memory bounded)."""
        outputs = []
        with torch.no_grad(), threads_for_step_size(min(len(arrays[0]), EVAL_BATCH)
                                                    * self.n_units_):
            for chunk in self._chunks(arrays):
                outputs.append(self._run_module(self.module_, chunk, n_steps).cpu().numpy())
        if not outputs:
            return np.zeros((0, n_steps, self.n_units_), dtype=np.float32)
        return np.concatenate(outputs)

    def _chunked_loss(self, arrays: list[np.ndarray], targets: torch.Tensor, n_steps: int,
                      unit_mask: torch.Tensor | None = None) -> float:
        """Mean loss over all trials, computed chunk by chunk (memory bounded by a chunk)."""
        total, start = 0.0, 0
        with torch.no_grad():
            for chunk in self._chunks(arrays):
                stop = start + len(chunk[0])
                loss = self._run_module(self.module_, chunk, n_steps, target=targets[start:stop],
                                        unit_mask=unit_mask)
                total += float(loss) * (stop - start)
                start = stop
        return total / max(start, 1)

    # ------------------------------------------------------------------ saving and loading
    def _state_tensors(self) -> dict[str, np.ndarray]:
        return {name: t.detach().cpu().numpy().copy()
                for name, t in self.module_.state_dict().items()}

    def _expected_tensors(self, n_units: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        self.module_ = self._new_module(n_units)
        return {name: (tuple(t.shape), t.dtype) for name, t in self.module_.state_dict().items()}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.module_.load_state_dict(tensors)
        self.module_.eval()

    # ------------------------------------------------------------------ dynamics of one condition
    def _weights(self, condition: int | str):
        raise NotImplementedError  # pragma: no cover - abstract

    def condition_weights(self, condition: int | str) -> dict[str, np.ndarray]:
        """The RNN weights of one condition: ``M``, ``U`` (N×R), ``J`` (N×N), ``b``, ``x0``."""
        w = self._weights(condition)
        with torch.no_grad():
            out = {"J": w.dense_J()[0], "b": w.b[0], "x0": w.x0[0]}
            if w.M is not None:
                out["M"], out["U"] = w.M[0], w.U[0]
            return {k: v.cpu().numpy().copy() for k, v in out.items()}

    def eigenvalues(self, condition: int | str) -> np.ndarray:
        """Nonzero eigenvalues of J for a condition, sorted by decreasing modulus.

        For low rank these are the eigenvalues of the R×R matrix ``Uᵀ M / N`` (J has the
        same nonzero spectrum), which costs R³ instead of N³.
        """
        w = self._weights(condition)
        with torch.no_grad():
            if w.M is not None:
                small = (w.U[0].T @ w.M[0]) / w.n_units
                values = torch.linalg.eigvals(small.double().cpu())
            else:
                values = torch.linalg.eigvals(w.J[0].double().cpu())
        values = values.numpy()
        return values[np.argsort(-np.abs(values), kind="stable")]


# ---------------------------------------------------------------------- checks
def _check_integers(estimator: Estimator, names: tuple[str, ...], low: int) -> None:
    """Refuse hyperparameters that are not integers >= `low`."""
    for name in names:
        value = getattr(estimator, name)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            bound = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise UserError(f"{name} must be {bound}, got {value!r}")


# ---------------------------------------------------------------------- state helpers
def _checked_tensors(tensors: dict[str, np.ndarray],
                     expected: dict[str, tuple[tuple[int, ...], torch.dtype]]
                     ) -> dict[str, torch.Tensor]:
    """The stored tensors as torch tensors, after checking names, dtypes, shapes and values."""
    if not isinstance(tensors, dict):
        raise ModelFileError("the model's tensors are not a mapping; the file is damaged")
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(f"the model's tensors do not match its config (missing: "
                             f"{missing[:5]}, unexpected: {extra[:5]}); the file is damaged")
    out = {}
    for name, (shape, dtype) in expected.items():
        arr = tensors[name]
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
            kind = getattr(arr, "dtype", type(arr))
            raise ModelFileError(f"tensor {name!r} has dtype {kind}, not floating point; "
                                 f"refusing to load it")
        if tuple(arr.shape) != tuple(shape):
            raise ModelFileError(f"tensor {name!r} has shape {tuple(arr.shape)}, expected "
                                 f"{tuple(shape)}; the file is damaged")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"tensor {name!r} contains NaN or infinite values; "
                                 f"refusing to load it")
        out[name] = torch.as_tensor(np.ascontiguousarray(arr), dtype=dtype)
    return out


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
