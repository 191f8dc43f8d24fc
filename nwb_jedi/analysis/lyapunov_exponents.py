"""Lyapunov exponents of fitted dynamics along trajectories (Benettin et al. / QR method).

Tangent vectors Q are pushed through the Jacobian of the map at each step and re-orthonormalized
by QR; the exponents are the time averages of ``log |R_ii|``. With one exponent this is the
classic largest-exponent estimate with renormalization. Negative: nearby trajectories converge
(stable fixed point or limit cycle transverse directions); ~0: a neutral direction (limit cycle,
line attractor); positive: chaos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi.analysis.dynamics import (
    JacobianFn,
    StepFn,
    autograd_jacobian,
    model_initial_state,
    model_jacobian,
    model_step,
)
from nwb_jedi.errors import UserError

__all__ = ["LyapunovResult", "lyapunov", "lyapunov_spectrum"]


@dataclass
class LyapunovResult:
    """Leading Lyapunov exponents.

    Attributes
    ----------
    per_step : ndarray (k,)
        Exponents per step of the map (mean over trajectories), largest first.
    per_second : ndarray (k,)
        The same divided by the step duration (the model's bin size), in 1/s.
    per_trajectory : ndarray (B, k)
        Per-trajectory estimates (their spread shows convergence).
    dt : float
        Step duration in seconds.
    """

    per_step: np.ndarray
    per_second: np.ndarray
    per_trajectory: np.ndarray
    dt: float

    @property
    def largest(self) -> float:
        """The largest exponent per second."""
        return float(self.per_second[0])


def lyapunov_spectrum(step: StepFn, initial_states: np.ndarray, n_steps: int, *,
                      n_exponents: int = 1, n_transient: int = 0,
                      jacobian: JacobianFn | None = None, seed: int = 0) -> np.ndarray:
    """Leading Lyapunov exponents per step of a map, for a batch of trajectories.

    Parameters
    ----------
    step : callable
        Maps states (B, N) to (B, N), torch.
    initial_states : ndarray (B, N) or (N,)
    n_steps : int
        Steps averaged over (after the transient).
    n_exponents : int
        How many exponents (k ≤ N); k > 1 uses the QR method.
    n_transient : int
        Steps run first (tangent vectors aligned, not averaged) so the estimate reflects the
        attractor rather than the approach to it.
    jacobian : callable, optional
        DF at states (B, N) → (B, N, N); defaults to automatic differentiation.
    seed : int
        Seed of the random initial tangent vectors.

    Returns
    -------
    ndarray (B, k)
        Exponents per step, largest first.
    """
    x = torch.as_tensor(np.atleast_2d(np.asarray(initial_states, dtype=np.float64)))
    batch, n = x.shape
    if not 1 <= n_exponents <= n:
        raise UserError(f"n_exponents must be between 1 and the state size {n}, got "
                        f"{n_exponents}")
    if n_steps < 1 or n_transient < 0:
        raise UserError("n_steps must be positive and n_transient non-negative")
    jacobian = jacobian or autograd_jacobian(step)
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(batch, n, n_exponents, generator=generator,
                                    dtype=torch.float64)).Q
    log_growth = torch.zeros(batch, n_exponents, dtype=torch.float64)
    with torch.no_grad(), threads_for_step_size(batch * n * n):
        for t in range(n_transient + n_steps):
            tangent = jacobian(x) @ q
            x = step(x).to(torch.float64)
            q, r = torch.linalg.qr(tangent)
            if t >= n_transient:
                log_growth += torch.log(torch.diagonal(r, dim1=-2, dim2=-1).abs().clamp_min(
                    1e-300))
    exponents = (log_growth / n_steps).numpy()
    return -np.sort(-exponents, axis=1)


def lyapunov(model, condition: int | str, *, n_steps: int = 500, n_exponents: int = 1,
             n_transient: int = 100, n_trajectories: int = 4, noise: float = 0.1,
             seed: int = 0) -> LyapunovResult:
    """Leading Lyapunov exponents of one condition's noiseless dynamics.

    Trajectories start at the condition's x0 (the first one exactly, the others perturbed by
    Gaussian noise of standard deviation `noise`), run `n_transient` steps, then average over
    `n_steps` steps. The exponents are reported per step and per second (step = bin size).

    Parameters
    ----------
    model : fitted JEDI or RNN baseline
    condition : int or str
    n_steps, n_exponents, n_transient : int
        See `lyapunov_spectrum`.
    n_trajectories : int
        Independent trajectories (the mean is reported, the spread is in ``per_trajectory``).
    noise : float
        Perturbation of the extra trajectories' initial states.
    seed : int
    """
    if n_trajectories < 1:
        raise UserError("n_trajectories must be a positive integer")
    x0 = model_initial_state(model, condition)
    rng = np.random.default_rng(seed)
    starts = np.repeat(x0[None], n_trajectories, axis=0)
    starts[1:] += noise * rng.standard_normal(starts[1:].shape)
    per_trajectory = lyapunov_spectrum(model_step(model, condition), starts, n_steps,
                                       n_exponents=n_exponents, n_transient=n_transient,
                                       jacobian=model_jacobian(model, condition), seed=seed)
    dt = float(model.bin_size_)
    per_step = per_trajectory.mean(axis=0)
    return LyapunovResult(per_step, per_step / dt, per_trajectory, dt)
