"""Fixed points of fitted dynamics (Sussillo & Barak, 2013).

Minimize the speed ``q(x) = ½‖F(x) − x‖²`` of the noiseless map F from many initial states
sampled along the model's trajectories (plus a little noise), polish with Newton steps, keep the
points whose speed is below a tolerance, merge duplicates, and classify each by the eigenvalues of
the discrete-time Jacobian DF there: stable (all |λ| < 1), unstable (all |λ| > 1) or saddle.

`find_fixed_points` works on any step callable; `fixed_points` applies it to a fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi.analysis.dynamics import (
    JacobianFn,
    StepFn,
    autograd_jacobian,
    model_initial_state,
    model_jacobian,
    model_step,
    sorted_eigenvalues,
    trajectory_states,
)
from nwb_jedi.errors import UserError

__all__ = ["FixedPoints", "classify", "find_fixed_points", "fixed_points", "match_fixed_points",
           "sample_initial_states", "trajectory_starts"]


@dataclass
class FixedPoints:
    """Fixed (or slow) points of a map, sorted by increasing speed.

    Attributes
    ----------
    locations : ndarray (P, N)
        States x* with F(x*) ≈ x*.
    speeds : ndarray (P,)
        Residual ``q(x*) = ½‖F(x*) − x*‖²``.
    eigenvalues : ndarray (P, N), complex
        Eigenvalues of DF(x*), sorted by decreasing modulus.
    stability : ndarray (P,), str
        "stable", "unstable" or "saddle".
    n_initial : int
        How many initial states were optimized.
    """

    locations: np.ndarray
    speeds: np.ndarray
    eigenvalues: np.ndarray
    stability: np.ndarray
    n_initial: int = 0

    def __len__(self) -> int:
        return len(self.speeds)

    def to_frame(self) -> pd.DataFrame:
        """One row per fixed point: speed, stability, leading |λ| and number of unstable modes."""
        modulus = np.abs(self.eigenvalues)
        return pd.DataFrame({
            "speed": self.speeds,
            "stability": self.stability,
            "max_modulus": modulus.max(axis=1) if len(self) else np.zeros(0),
            "n_unstable": (modulus > 1).sum(axis=1) if len(self) else np.zeros(0, int),
            "norm": np.linalg.norm(self.locations, axis=1) if len(self) else np.zeros(0),
        })


def classify(eigenvalues: np.ndarray) -> np.ndarray:
    """'stable' when every |λ| < 1, 'unstable' when every |λ| > 1, else 'saddle' (per row)."""
    modulus = np.abs(np.atleast_2d(eigenvalues))
    return np.where((modulus < 1).all(axis=1), "stable",
                    np.where((modulus > 1).all(axis=1), "unstable", "saddle"))


def _speed(step: StepFn, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (step(x) - x).pow(2).sum(-1)


def _deduplicate(locations: np.ndarray, speeds: np.ndarray, distance: float) -> np.ndarray:
    """Indices of points to keep: greedily, slowest first, none within `distance` of a kept one."""
    kept: list[int] = []
    for i in np.argsort(speeds, kind="stable"):
        if all(np.linalg.norm(locations[i] - locations[j]) > distance for j in kept):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def find_fixed_points(step: StepFn, initial_states: np.ndarray, *, tol: float = 1e-10,
                      unique_tol: float = 1e-2, max_iters: int = 2000, lr: float = 1e-2,
                      newton_steps: int = 20, jacobian: JacobianFn | None = None
                      ) -> FixedPoints:
    """Sussillo–Barak fixed-point search for a step callable, batched over initial states.

    Parameters
    ----------
    step : callable
        Maps states (B, N) to next states (B, N) (torch, differentiable, row-wise).
    initial_states : ndarray (B, N)
        Starting points of the minimization.
    tol : float
        Keep points with speed ``q = ½‖F(x) − x‖² < tol``.
    unique_tol : float
        Points closer than ``unique_tol · √N`` (an RMS distance of `unique_tol` per unit) are
        the same fixed point; the slowest is kept.
    max_iters, lr : int, float
        Adam budget and learning rate of the gradient phase (the whole batch is one loss: the
        sum of independent per-point speeds, so points do not interact).
    newton_steps : int
        Newton iterations ``x ← x − (DF − I)⁻¹(F(x) − x)`` after Adam, accepted per point only
        where they lower the speed; they make slow points precise (quadratic convergence).
    jacobian : callable, optional
        Returns DF at states (B, N) as (B, N, N); defaults to automatic differentiation.

    Returns
    -------
    FixedPoints
    """
    init = np.asarray(initial_states, dtype=np.float64)
    if init.ndim != 2 or len(init) == 0:
        raise UserError(f"initial_states must be a non-empty (B, N) array, got shape "
                        f"{init.shape}")
    jacobian = jacobian or autograd_jacobian(step)
    with threads_for_step_size(init.size):
        return _search(step, init, jacobian, tol=tol, unique_tol=unique_tol,
                       max_iters=max_iters, lr=lr, newton_steps=newton_steps)


def _search(step, init, jacobian, *, tol, unique_tol, max_iters, lr, newton_steps):
    n = init.shape[1]
    x = torch.tensor(init, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=lr)
    for _ in range(max_iters):
        optimizer.zero_grad(set_to_none=True)
        q = _speed(step, x)
        if float(q.detach().max()) < tol * 1e-3:
            break
        q.sum().backward()
        optimizer.step()
    x = x.detach()

    eye = torch.eye(n, dtype=torch.float64)
    with torch.no_grad():
        q = _speed(step, x)
        for _ in range(newton_steps):
            residual = step(x) - x
            system = jacobian(x) - eye
            try:
                delta = torch.linalg.solve(system, residual.unsqueeze(-1)).squeeze(-1)
            except RuntimeError:  # a singular batch (e.g. a line attractor): least squares
                delta = torch.linalg.lstsq(system, residual.unsqueeze(-1)).solution.squeeze(-1)
            candidate = x - delta
            q_new = _speed(step, candidate)
            better = torch.isfinite(q_new) & (q_new < q)
            if not better.any():
                break
            x = torch.where(better.unsqueeze(-1), candidate, x)
            q = torch.where(better, q_new, q)

    locations, speeds = x.numpy(), q.numpy()
    slow = np.flatnonzero(np.isfinite(speeds) & (speeds < tol))
    keep = slow[_deduplicate(locations[slow], speeds[slow], unique_tol * np.sqrt(n))]
    locations, speeds = locations[keep], speeds[keep]
    if len(keep):
        with torch.no_grad():
            eigenvalues = sorted_eigenvalues(jacobian(torch.as_tensor(locations)).numpy())
    else:
        eigenvalues = np.zeros((0, n), dtype=complex)
    return FixedPoints(locations, speeds, eigenvalues, classify(eigenvalues) if len(keep)
                       else np.zeros(0, dtype="<U8"), n_initial=len(init))


def sample_initial_states(states: np.ndarray, n_initial: int, noise: float,
                          rng: np.random.Generator) -> np.ndarray:
    """`n_initial` states drawn (with replacement) from a trajectory (T, N) plus Gaussian noise."""
    states = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])
    picks = states[rng.integers(0, len(states), n_initial)]
    return picks + noise * rng.standard_normal(picks.shape)


def trajectory_starts(states: np.ndarray, n_initial: int, noise: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Initial states for a fixed-point search: the trajectory's mean state, then
    ``n_initial - 1`` states drawn from the trajectory plus noise.

    The mean matters for oscillations: it lies near the (unstable) fixed point the trajectory
    circles, which descent from points on the cycle reaches only slowly.
    """
    sampled = sample_initial_states(states, n_initial - 1, noise, rng)
    return np.vstack([states.mean(0, keepdims=True), sampled])


def fixed_points(model, condition: int | str, *, n_initial: int = 256, n_steps: int = 200,
                 noise: float = 0.1, tol: float = 1e-10, unique_tol: float = 1e-2,
                 max_iters: int = 2000, lr: float = 1e-2, newton_steps: int = 20,
                 seed: int = 0) -> FixedPoints:
    """Fixed points of one condition's noiseless dynamics.

    Initial states are the mean of the condition's noiseless trajectory (``n_steps`` steps from
    its x0) and states drawn from it with Gaussian noise of standard deviation `noise` added per
    unit (`trajectory_starts`); the search runs in float64 with the analytic Jacobian.

    Parameters
    ----------
    model : fitted JEDI or RNN baseline
    condition : int or str
        Row or label of the condition.
    n_initial, n_steps, noise : int, int, float
        Number of initial states, trajectory length they are drawn from, perturbation size.
    tol, unique_tol, max_iters, lr, newton_steps
        See `find_fixed_points`.
    seed : int
        Seed of the initial-state draw.

    Examples
    --------
    >>> fps = fixed_points(model, "reach_0")            # doctest: +SKIP
    >>> fps.to_frame().stability.value_counts()         # doctest: +SKIP
    """
    if n_initial < 1 or n_steps < 1:
        raise UserError("n_initial and n_steps must be positive integers")
    step = model_step(model, condition)
    states = trajectory_states(step, model_initial_state(model, condition), n_steps)
    init = trajectory_starts(states, n_initial, noise, np.random.default_rng(seed))
    return find_fixed_points(step, init, tol=tol, unique_tol=unique_tol, max_iters=max_iters,
                             lr=lr, newton_steps=newton_steps,
                             jacobian=model_jacobian(model, condition))


def match_fixed_points(points_a: np.ndarray, points_b: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair two sets of points one to one, minimizing the summed Euclidean distance.

    The Hungarian algorithm (`scipy.optimize.linear_sum_assignment`): with P and Q points,
    ``min(P, Q)`` pairs are made. Compare fixed points of two systems in a space they share
    (e.g. the recorded neurons' firing rates), not in their own state spaces.

    Parameters
    ----------
    points_a, points_b : ndarray (P, D), (Q, D)

    Returns
    -------
    rows, cols, distances : ndarray
        ``points_a[rows[i]]`` is paired with ``points_b[cols[i]]`` at ``distances[i]``; all
        empty when either set is.
    """
    from scipy.optimize import linear_sum_assignment

    if len(points_a) == 0 or len(points_b) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    cost = np.linalg.norm(points_a[:, None] - points_b[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return rows, cols, cost[rows, cols]
