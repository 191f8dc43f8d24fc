"""Spectra of fitted dynamics: eigenvalues of J and of the discrete-time Jacobian.

The model's noiseless map is ``F(x) = x + α(−x + J tanh(x) + b)``; its Jacobian is
``DF(x) = (1−α) I + α J diag(1 − tanh²(x))``. Eigenvalues of DF inside the unit circle are
contracting directions, outside expanding, near it slow (memory, oscillation).

Every function here takes a "dynamics model" (see `nwb_jedi.analysis.dynamics`): the JEDI
estimator and the RNN baselines alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nwb_jedi.analysis.dynamics import (
    model_initial_state,
    model_jacobian,
    model_step,
    sorted_eigenvalues,
    trajectory_states,
)
from nwb_jedi.analysis.fixedpoints import fixed_points
from nwb_jedi.errors import UserError, first_few

__all__ = ["JacobianSpectrum", "condition_spectra", "continuous_eigenvalues", "jacobian_spectrum",
           "leading_frequency", "spectrum_table", "stability_summary", "top_modes"]


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
        Passed to `nwb_jedi.analysis.fixedpoints.fixed_points` when ``along="fixed_points"``.
    """
    jac = model_jacobian(model, condition)
    if along == "trajectory":
        if n_steps < 1 or stride < 1:
            raise UserError("n_steps and stride must be positive integers")
        states = trajectory_states(model_step(model, condition),
                                   model_initial_state(model, condition), n_steps)[::stride]
        index = np.arange(0, n_steps, stride)
    elif along == "fixed_points":
        found = fixed_points(model, condition, **fixed_point_kwargs)
        states, index = found.locations, np.arange(len(found))
    else:
        raise UserError(f"along must be 'trajectory' or 'fixed_points', got {along!r}")
    if len(states) == 0:
        n = model_initial_state(model, condition).shape[0]
        return JacobianSpectrum(np.zeros((0, n), complex), np.zeros((0, n)), index, along)
    with torch.no_grad():
        matrices = jac(torch.as_tensor(states)).numpy()
    return JacobianSpectrum(sorted_eigenvalues(matrices), states, index, along)


def condition_spectra(model, conditions: Sequence[int | str] | None = None
                      ) -> dict[str, np.ndarray]:
    """Nonzero eigenvalues of each condition's connectivity J, keyed by condition label.

    For x' = −x + J tanh(x) + b linearized at 0 the stability boundary is Re λ = 1, so J's
    eigenvalues are compared with the unit circle.

    Parameters
    ----------
    model : fitted JEDI or RNN baseline
    conditions : sequence of int or str, optional
        Rows or labels of the conditions to include, in this order; default all.
    """
    labels = list(model.conditions_["label"].astype(str))
    chosen = labels if conditions is None else [_label_of(labels, c) for c in conditions]
    return {label: np.asarray(model.eigenvalues(label)) for label in chosen}


def _label_of(labels: list[str], condition: int | str) -> str:
    """The label of a condition given by its row or its label."""
    if isinstance(condition, int | np.integer) and 0 <= condition < len(labels):
        return labels[int(condition)]
    if str(condition) in labels:
        return str(condition)
    raise UserError(f"unknown condition {condition!r}; known: {first_few(labels)}")


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


# ---------------------------------------------------------------------- continuous time
def continuous_eigenvalues(discrete: np.ndarray, dt: float) -> np.ndarray:
    """Eigenvalues of the continuous-time linearization, ``s = (λ − 1)/Δt`` (1/s).

    Discrete-time Jacobians of maps with different steps (a teacher stepping every 10 ms, a
    model stepping every 20 ms bin) are not comparable; ``Re s`` (growth rate, 1/s) and
    ``Im s / 2π`` (oscillation frequency, Hz) are.
    """
    return (np.asarray(discrete) - 1.0) / dt


def leading_frequency(discrete: np.ndarray, dt: float) -> float:
    """``|Im s| / 2π`` (Hz) of the continuous-time mode with the largest real part.

    Parameters
    ----------
    discrete : ndarray (N,), complex
        Eigenvalues of one discrete-time Jacobian.
    dt : float
        Time step of the map (s).
    """
    s = continuous_eigenvalues(discrete, dt)
    return float(abs(s[np.argmax(s.real)].imag) / (2 * np.pi))


def top_modes(discrete: np.ndarray, dt: float, k: int = 3) -> tuple[float, float]:
    """Mean ``Re s`` (1/s) and mean ``|Im s| / 2π`` (Hz) of the `k` continuous-time modes with
    the largest real part, averaged over states.

    Parameters
    ----------
    discrete : ndarray (P, N) or (N,), complex
        Eigenvalues of discrete-time Jacobians, one row per state.
    dt : float
        Time step of the map (s).
    k : int
        How many of the least stable modes to average.
    """
    s = continuous_eigenvalues(discrete, dt)
    order = np.argsort(-s.real, axis=-1)[..., :k]
    top = np.take_along_axis(s, order, axis=-1)
    return float(top.real.mean()), float((np.abs(top.imag) / (2 * np.pi)).mean())


def stability_summary(model, n_steps: int | None = None) -> pd.DataFrame:
    """Per condition: J's leading |λ| next to the spectral radius of the step Jacobian DF along
    the condition's noiseless trajectory, and DF's oscillation frequency there.

    The two answer different questions and have different boundaries. The model steps
    ``x ↦ x + α(−x + J tanh x + b)``: its linearization at 0 is stable when every eigenvalue of
    J has Re λ < 1, so J's eigenvalues may well lie beyond |λ| = 1 in a stable model. The step
    Jacobian ``DF = (1 − α)I + αJ diag(1 − tanh²x)`` is what the dynamics do near a state, and
    its boundary is the unit circle.

    Returns
    -------
    DataFrame
        ``label``, ``J_leading_modulus``, ``J_max_real``, ``DF_max_radius`` (largest spectral
        radius of DF over the trajectory), ``DF_inside_unit_circle`` (every step),
        ``DF_frequency_hz`` (mean over the trajectory of |Im s|/2π of DF's least stable mode,
        s = (λ − 1)/Δt).
    """
    steps = int(n_steps if n_steps is not None else (getattr(model, "n_bins_", None) or 100))
    rows = []
    for row, label in enumerate(model.conditions_["label"].astype(str)):
        values = np.asarray(model.eigenvalues(row))
        spectrum = jacobian_spectrum(model, row, n_steps=steps).eigenvalues
        radius = np.abs(spectrum).max(axis=1)
        rows.append({
            "label": label,
            "J_leading_modulus": float(np.abs(values).max(initial=0.0)),
            "J_max_real": float(values.real.max(initial=-np.inf)),
            "DF_max_radius": float(radius.max()),
            "DF_inside_unit_circle": bool(np.all(radius < 1)),
            "DF_frequency_hz": float(np.mean([leading_frequency(ev, model.bin_size_)
                                              for ev in spectrum])),
        })
    return pd.DataFrame(rows)
