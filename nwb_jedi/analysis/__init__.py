"""Analyses of fitted dynamics: spectra, fixed points, Lyapunov exponents, embeddings,
phase-specific contexts, evaluation protocols, the analysis report and figures.

Modules
-------
dynamics            the noiseless map of a condition, its Jacobian and trajectories
spectra             eigenvalues of J and of the Jacobian along trajectories or at fixed points;
                    continuous-time modes
fixedpoints         Sussillo-Barak fixed-point search, classification and matching
lyapunov_exponents  Lyapunov exponents along trajectories
embedding           classification, distances and interpolation in the embedding space
phases              one context per (condition, task phase)
evaluation          protocols that need a fitted model: co-smoothing, few-shot generalization,
                    classification of held-out trials, never scoring training trials
report              `nwb-jedi analyze`'s analyses of a fitted model, computed once
ground_truth        fitted dynamics against a synthetic teacher (imported on first use)
plots               figures of computed results (matplotlib; imported on first use)

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
from nwb_jedi.analysis.evaluation import (
    classify_trials,
    co_smoothing,
    co_smoothing_bits_per_spike,
    few_shot,
    trials_seen_in_training,
)
from nwb_jedi.analysis.fixedpoints import FixedPoints, find_fixed_points, fixed_points
from nwb_jedi.analysis.lyapunov_exponents import lyapunov, lyapunov_spectrum
from nwb_jedi.analysis.phases import phase_spectra, split_phases, summarize_phase_spectra
from nwb_jedi.analysis.report import AnalysisReport, analysis_report
from nwb_jedi.analysis.spectra import condition_spectra, jacobian_spectrum, spectrum_table

# Figures need matplotlib, and the teacher comparisons the synthetic package, which model-only
# work should not pay for: they are imported on first use (``nwb_jedi.analysis.plots`` or
# ``from nwb_jedi.analysis import plots``).
_ON_DEMAND = ("ground_truth", "plots")


def __getattr__(name: str):
    if name in _ON_DEMAND:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AnalysisReport", "FixedPoints", "analysis_report", "classify_embeddings",
    "classify_trials", "co_smoothing", "co_smoothing_bits_per_spike", "condition_spectra",
    "embedding_classification", "embedding_distances", "few_shot", "find_fixed_points",
    "fixed_points", "ground_truth", "interpolate", "jacobian_spectrum", "lyapunov",
    "lyapunov_spectrum", "phase_spectra", "plots", "spectrum_table", "split_phases",
    "summarize_phase_spectra", "trial_embeddings", "trials_seen_in_training",
]
