"""Analyses of fitted dynamics: spectra, fixed points, Lyapunov exponents, embeddings,
phase-specific contexts, evaluation protocols and figures.

Modules
-------
dynamics            the noiseless map of a condition, its Jacobian and trajectories
spectra             eigenvalues of J and of the Jacobian along trajectories or at fixed points
fixedpoints         Sussillo-Barak fixed-point search and classification
lyapunov_exponents  Lyapunov exponents along trajectories
embedding           classification, distances and interpolation in the embedding space
phases              one context per (condition, task phase)
evaluation          protocols that need a fitted model (co-smoothing)
plots               figures (matplotlib; imported on first use)

The dynamics analyses take any fitted model with per-condition RNN weights (JEDI, or the RNN
baselines in `nwb_jedi.model.baselines`). Array-level metrics are in `nwb_jedi.metrics`.
"""

from importlib import import_module

from nwb_jedi.analysis.embedding import (
    classify_embeddings,
    embedding_classification,
    embedding_distances,
    interpolate,
    trial_embeddings,
)
from nwb_jedi.analysis.evaluation import co_smoothing_bits_per_spike
from nwb_jedi.analysis.fixedpoints import FixedPoints, find_fixed_points, fixed_points
from nwb_jedi.analysis.lyapunov_exponents import lyapunov, lyapunov_spectrum
from nwb_jedi.analysis.phases import phase_spectra, split_phases, summarize_phase_spectra
from nwb_jedi.analysis.spectra import condition_spectra, jacobian_spectrum, spectrum_table

# Figures need matplotlib, which model-only work should not pay for: `plots` is imported on
# first use (``nwb_jedi.analysis.plots`` or ``from nwb_jedi.analysis import plots``).
_ON_DEMAND = ("plots",)


def __getattr__(name: str):
    if name in _ON_DEMAND:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "FixedPoints", "classify_embeddings", "co_smoothing_bits_per_spike", "condition_spectra",
    "embedding_classification", "embedding_distances", "find_fixed_points", "fixed_points",
    "interpolate", "jacobian_spectrum", "lyapunov", "lyapunov_spectrum", "phase_spectra",
    "plots", "spectrum_table", "split_phases", "summarize_phase_spectra", "trial_embeddings",
]
