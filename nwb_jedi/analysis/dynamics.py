"""The noiseless dynamics of a fitted model, as callables the analyses share.

The model's noiseless map is ``F(x) = x + α(−x + J tanh(x) + b)``; its Jacobian is
``DF(x) = (1−α) I + α J diag(1 − tanh²(x))``.

The ``model_*`` functions take a "dynamics model": anything with ``condition_weights(c)``
(returning ``J``, ``b``, ``x0`` and, for low rank, ``M``/``U``), ``alpha_`` and ``conditions_``
— the JEDI estimator and the RNN baselines alike. The generic helpers (`autograd_jacobian`,
`trajectory_states`, `sorted_eigenvalues`) take a plain step callable or arrays instead, so
they also serve hand-built systems. Spectra, fixed points and Lyapunov exponents
(`nwb_jedi.analysis.spectra`, `.fixedpoints`, `.lyapunov_exponents`) are built on these.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nwb_jedi.errors import UserError
from nwb_jedi.model.hypernet import RNNWeights
from nwb_jedi.model.rnn import step as rnn_step

__all__ = [
    "JacobianFn", "StepFn", "autograd_jacobian", "model_initial_state", "model_jacobian",
    "model_step", "model_trajectory", "sorted_eigenvalues", "trajectory_states",
]

StepFn = Callable[[torch.Tensor], torch.Tensor]
JacobianFn = Callable[[torch.Tensor], torch.Tensor]


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


def model_trajectory(model, condition: int | str, n_steps: int) -> np.ndarray:
    """The condition's noiseless states ``x_0 … x_{n_steps−1}`` from its x0, (n_steps, N)."""
    return trajectory_states(model_step(model, condition), model_initial_state(model, condition),
                             n_steps)


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


def sorted_eigenvalues(matrices: np.ndarray) -> np.ndarray:
    """Eigenvalues of each (..., N, N) matrix, sorted by decreasing modulus."""
    values = np.linalg.eigvals(matrices)
    order = np.argsort(-np.abs(values), axis=-1, kind="stable")
    return np.take_along_axis(values, order, axis=-1)
