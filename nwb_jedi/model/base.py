"""What every estimator in `nwb_jedi.model` shares: the scikit-learn protocol, the checks that
data fit a fitted model, and the observation conventions of the neuron-unit RNNs.

JEDI and the RNN baselines differ only in where each trial's RNN weights come from (a
hypernetwork of an embedding, a free weight set per condition, or one shared set); everything
else — targets, readout initialization, chunked prediction, spectra — lives here once.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from nwb_jedi import metrics
from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import NotFittedError, UserError
from nwb_jedi.model.rnn import gaussian_nll, poisson_nll

EVAL_BATCH = 256  # trials per forward pass when predicting: bounds memory, not results


def present_conditions(ds: TrialDataset) -> pd.DataFrame:
    """The rows of the conditions table that have trials in `ds` (a model learns only those)."""
    present = np.unique(ds.condition)
    return ds.conditions.iloc[present].reset_index(drop=True).copy()


class Estimator:
    """scikit-learn protocol: hyperparameters are the ``__init__`` arguments; fitted state
    ends in ``_``; `score` gives the package's standard metrics."""

    _fitted_attribute = "conditions_"

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

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
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in
                                                      changed.items()) + ")"

    def _check_fitted(self) -> None:
        if self._fitted_attribute not in self.__dict__:
            raise NotFittedError(f"this {type(self).__name__} model is not fitted yet; call "
                                 f"fit(train, val) first")

    @staticmethod
    def _check_train(train: TrialDataset) -> None:
        if not isinstance(train, TrialDataset):
            raise UserError(f"fit expects a TrialDataset, got {type(train).__name__}")
        if train.n_trials == 0:
            raise UserError("the training set has no trials; check the split")

    def check_compatible(self, ds: TrialDataset) -> None:
        """Raise UserError when the data's neurons or bin width differ from the fitted model's."""
        if not isinstance(ds, TrialDataset):
            raise UserError(f"expected a TrialDataset, got {type(ds).__name__}; build one with "
                            f"TrialDataset.from_arrays or ConditionMapper.build")
        if ds.n_units != len(self.unit_id_):
            raise UserError(f"the data have {ds.n_units} neurons but the model was fitted on "
                            f"{len(self.unit_id_)}; use the same units (check the unit filters)")
        if not np.array_equal(np.asarray(ds.unit_id).astype(str),
                              np.asarray(self.unit_id_).astype(str)):
            raise UserError("the data's unit ids differ from the model's; the model's units are "
                            "recorded neurons, so apply it only to data with the same units")
        if not math.isclose(ds.bin_size, self.bin_size_, rel_tol=1e-6):
            raise UserError(f"the data are binned at {ds.bin_size * 1e3:g} ms but the model was "
                            f"fitted at {self.bin_size_ * 1e3:g} ms; rebin with --bin-ms "
                            f"{self.bin_size_ * 1e3:g}")

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
            ``bits_per_spike`` (vs a per-neuron mean-rate null), ``psth_r2``
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


class NeuronRNNEstimator(Estimator):
    """Common ground of models whose RNN units are the recorded neurons.

    Subclasses hold a torch module in ``module_`` with a ``readout`` (per-neuron gain/offset)
    and ``target_mean``/``target_std`` buffers, and implement `_run_module` (one forward pass
    for a chunk of trials) and `_weights` (the RNN weights of one condition).
    """

    _fitted_attribute = "module_"

    @property
    def alpha_(self) -> float:
        """Integration step α = Δ/τ (fit refuses τ below the bin width, so α ≤ 1)."""
        return min(1.0, self.bin_size_ / self.tau)

    @property
    def n_units_(self) -> int:
        self._check_fitted()
        return len(self.unit_id_)

    def _check_common_params(self) -> None:
        if self.observation not in ("poisson", "gaussian"):
            raise UserError(f"observation must be 'poisson' or 'gaussian', got "
                            f"{self.observation!r}")
        if self.rank is not None and (not isinstance(self.rank, int | np.integer)
                                      or self.rank < 1):
            raise UserError(f"rank must be a positive integer or None, got {self.rank!r}")
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        for name in ("tau", "lr"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise UserError(f"{name} must be a positive number, got {value!r}")
        if self.noise_std < 0:
            raise UserError("noise_std must be >= 0")
        if not isinstance(self.patience, int | np.integer) or self.patience < 1:
            raise UserError(f"patience must be a positive integer, got {self.patience!r}")

    def _check_rank(self, train: TrialDataset) -> None:
        if self.rank is not None and self.rank > train.n_units:
            raise UserError(f"rank {self.rank} exceeds the number of neurons "
                            f"({train.n_units}); choose rank <= {train.n_units} (--rank)")

    def _check_tau(self, train: TrialDataset) -> None:
        # α = Δ/τ > 1 would overshoot; capping it would silently fit another model than the
        # one the stored tau describes, so refuse instead.
        if self.tau < train.bin_size * (1 - 1e-9):
            raise UserError(f"tau ({self.tau * 1e3:g} ms) must be at least the bin width "
                            f"({train.bin_size * 1e3:g} ms); raise tau (--tau-ms) or use "
                            f"smaller bins (--bin-ms)")

    def _resolve_device(self) -> torch.device:
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise UserError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise UserError("device='cuda' was asked for but no CUDA GPU is available; use "
                            "device='auto' or 'cpu'")
        return torch.device(self.device)

    # -- observation conventions
    def _targets(self, ds: TrialDataset) -> np.ndarray:
        """What the observation model is fitted to: counts, or normalized smoothed rates."""
        if self.observation == "poisson":
            return ds.counts
        rates = metrics.smooth(ds.counts / ds.bin_size, self.smooth_sd / ds.bin_size)
        mean = self.module_.target_mean.cpu().numpy()
        std = self.module_.target_std.cpu().numpy()
        return ((rates - mean) / std).astype(np.float32)

    def _loss(self, output: torch.Tensor, target: torch.Tensor,
              unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.observation == "poisson":
            return poisson_nll(output, target, unit_mask)
        return gaussian_nll(output, target, unit_mask)

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

    # -- chunked evaluation
    def _run_module(self, chunk: list[torch.Tensor], n_steps: int) -> torch.Tensor:
        """Forward pass for one chunk of trials (the tensors of `_forward_batches`' arrays)."""
        raise NotImplementedError  # pragma: no cover - abstract

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
                outputs.append(self._run_module(chunk, n_steps).cpu().numpy())
        if not outputs:
            return np.zeros((0, n_steps, self.n_units_), dtype=np.float32)
        return np.concatenate(outputs)

    def _chunked_loss(self, arrays: list[np.ndarray], targets: torch.Tensor, n_steps: int,
                      unit_mask: torch.Tensor | None = None) -> float:
        """Mean loss over all trials, computed chunk by chunk (memory bounded by a chunk)."""
        total, start = 0.0, 0
        with torch.no_grad():
            for chunk in self._chunks(arrays):
                out = self._run_module(chunk, n_steps)
                stop = start + out.shape[0]
                total += float(self._loss(out, targets[start:stop], unit_mask)) * out.shape[0]
                start = stop
        return total / max(start, 1)

    # -- dynamics of one condition
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
