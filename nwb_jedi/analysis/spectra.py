"""Spectra of fitted dynamics: eigenvalues of J and of the discrete-time Jacobian.

The model's noiseless map is ``F(x) = x + α(−x + J tanh(x) + b)``; its Jacobian is
``DF(x) = (1−α) I + α J diag(1 − tanh²(x))``. Eigenvalues of DF inside the unit circle are
contracting directions, outside expanding, near it slow (memory, oscillation).

Every function here takes a "dynamics model": anything with ``condition_weights(c)`` (returning
``J``, ``b``, ``x0`` and, for low rank, ``M``/``U``), ``alpha_`` and ``conditions_`` — the JEDI
estimator and the RNN baselines alike. The generic helpers (`autograd_jacobian`,
`trajectory_states`) take a plain step callable instead, so they also serve hand-built systems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nwb_jedi.errors import UserError
from nwb_jedi.model.hypernet import RNNWeights
from nwb_jedi.model.rnn import step as rnn_step

StepFn = Callable[[torch.Tensor], torch.Tensor]
JacobianFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------- dynamics of a model
def _weights64(model, condition) -> tuple[RNNWeights, float]:
    """One condition's weights as a batch-1 float64 `RNNWeights`, and the model's α."""
    if not hasattr(model, "condition_weights"):
        raise UserError(f"{type(model).__name__} has no per-condition RNN weights; pass a "
                        f"fitted JEDI model or RNN baseline")
    w = model.condition_weights(condition)
    as64 = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64).unsqueeze(0)
            for k, v in w.items()}
    if "M" in as64 and "U" in as64:
        weights = RNNWeights(b=as64["b"], x0=as64["x0"], M=as64["M"], U=as64["U"])
    else:
        weights = RNNWeights(b=as64["b"], x0=as64["x0"], J=as64["J"])
    return weights, float(model.alpha_)


def model_step(model, condition: int | str) -> StepFn:
    """The noiseless map ``x ↦ F(x)`` of one condition, in float64, for states (B, N).

    Built from the model's own weights and the package's RNN step (`nwb_jedi.model.rnn.step`),
    in double precision so fixed points can be located to ~1e-12.
    """
    weights, alpha = _weights64(model, condition)

    def step(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        return rnn_step(weights.expand(x.shape[0]), x, alpha)

    return step


def model_jacobian(model, condition: int | str) -> JacobianFn:
    """Analytic Jacobian ``DF(x) = (1−α)I + α J diag(1−tanh²(x))`` of one condition, (B, N, N)."""
    weights, alpha = _weights64(model, condition)
    J = weights.dense_J()[0]
    eye = torch.eye(J.shape[0], dtype=torch.float64)

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        gain = 1.0 - torch.tanh(x.to(torch.float64)) ** 2
        return (1.0 - alpha) * eye + alpha * J.unsqueeze(0) * gain.unsqueeze(1)

    return jacobian


def model_initial_state(model, condition: int | str) -> np.ndarray:
    """The condition's initial state x0 (N,)."""
    return np.asarray(model.condition_weights(condition)["x0"], dtype=np.float64)


def autograd_jacobian(step: StepFn) -> JacobianFn:
    """Jacobian of a row-wise step callable by automatic differentiation, (B, N, N).

    `step` must map states (B, N) to (B, N) with each row depending only on its own input row
    (true of any batched dynamical map), so the Jacobian of the batch sum is the per-row one.
    """

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(torch.float64)
        full = torch.autograd.functional.jacobian(lambda z: step(z).sum(0), x, vectorize=True)
        return full.permute(1, 0, 2)  # (N_out, B, N_in) -> (B, N_out, N_in)

    return jacobian


def trajectory_states(step: StepFn, x0: np.ndarray, n_steps: int) -> np.ndarray:
    """Noiseless states ``x_0 … x_{n_steps−1}`` of the map from `x0` (N,) or (B, N).

    Returns (n_steps, N) for one initial state, (B, n_steps, N) for a batch.
    """
    x = torch.as_tensor(np.atleast_2d(x0), dtype=torch.float64)
    states = [x]
    with torch.no_grad():
        for _ in range(n_steps - 1):
            x = step(x).to(torch.float64)
            states.append(x)
    out = torch.stack(states, dim=1).numpy()
    return out[0] if np.ndim(x0) == 1 else out


def _sorted_eigvals(matrices: np.ndarray) -> np.ndarray:
    values = np.linalg.eigvals(matrices)
    order = np.argsort(-np.abs(values), axis=-1, kind="stable")
    return np.take_along_axis(values, order, axis=-1)


# ---------------------------------------------------------------------- public analyses
@dataclass
class JacobianSpectrum:
    """Eigenvalues of the discrete-time Jacobian at a set of states.

    Attributes
    ----------
    eigenvalues : ndarray (P, N), complex
        Per state, sorted by decreasing modulus.
    states : ndarray (P, N)
        Where the Jacobian was evaluated.
    index : ndarray (P,)
        The time step (``along="trajectory"``) or fixed-point number (``"fixed_points"``).
    along : str
        "trajectory" or "fixed_points".
    """

    eigenvalues: np.ndarray
    states: np.ndarray
    index: np.ndarray
    along: str

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (state, eigenvalue) with real, imag and modulus."""
        p, n = self.eigenvalues.shape
        ev = self.eigenvalues.ravel()
        return pd.DataFrame({"index": np.repeat(self.index, n), "rank": np.tile(np.arange(n), p),
                             "real": ev.real, "imag": ev.imag, "modulus": np.abs(ev)})


def jacobian_spectrum(model, condition: int | str, along: str = "trajectory", *,
                      n_steps: int = 100, stride: int = 1, **fixed_point_kwargs
                      ) -> JacobianSpectrum:
    """Eigenvalues of the discrete-time Jacobian DF along the trajectory or at fixed points.

    Parameters
    ----------
    model : fitted JEDI or RNN baseline
    condition : int or str
        Row or label of the condition.
    along : {"trajectory", "fixed_points"}
        Evaluate at the noiseless trajectory from the condition's x0 (every `stride`-th of
        `n_steps` steps), or at the fixed points found by `fixed_points`.
    n_steps, stride : int
        Trajectory length and subsampling.
    **fixed_point_kwargs
        Passed to `nwb_jedi.analysis.fixed_points.fixed_points` when ``along="fixed_points"``.
    """
    jac = model_jacobian(model, condition)
    if along == "trajectory":
        if n_steps < 1 or stride < 1:
            raise UserError("n_steps and stride must be positive integers")
        states = trajectory_states(model_step(model, condition),
                                   model_initial_state(model, condition), n_steps)[::stride]
        index = np.arange(0, n_steps, stride)
    elif along == "fixed_points":
        from nwb_jedi.analysis.fixed_points import fixed_points

        found = fixed_points(model, condition, **fixed_point_kwargs)
        states, index = found.locations, np.arange(len(found))
    else:
        raise UserError(f"along must be 'trajectory' or 'fixed_points', got {along!r}")
    if len(states) == 0:
        n = model_initial_state(model, condition).shape[0]
        return JacobianSpectrum(np.zeros((0, n), complex), np.zeros((0, n)), index, along)
    with torch.no_grad():
        matrices = jac(torch.as_tensor(states)).numpy()
    return JacobianSpectrum(_sorted_eigvals(matrices), states, index, along)


def condition_spectra(model) -> dict[str, np.ndarray]:
    """Nonzero eigenvalues of each condition's connectivity J, keyed by condition label.

    For x' = −x + J tanh(x) + b linearized at 0 the stability boundary is Re λ = 1, so J's
    eigenvalues are compared with the unit circle.
    """
    labels = list(model.conditions_["label"].astype(str))
    return {label: np.asarray(model.eigenvalues(i)) for i, label in enumerate(labels)}


def spectrum_table(model) -> pd.DataFrame:
    """J's eigenvalues of every condition in one long table (with the condition columns)."""
    rows = []
    table = model.conditions_.reset_index(drop=True)
    for i in range(len(table)):
        values = np.asarray(model.eigenvalues(i))
        for rank, v in enumerate(values):
            row = table.iloc[i].to_dict()
            row.update(rank=rank, real=float(v.real), imag=float(v.imag), modulus=float(abs(v)))
            rows.append(row)
    return pd.DataFrame(rows)
