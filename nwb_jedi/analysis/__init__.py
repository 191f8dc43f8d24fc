"""Analyses of fitted dynamics: metrics, spectra, fixed points, Lyapunov exponents, embeddings,
phase-specific contexts and figures.

The dynamics analyses take any fitted model with per-condition RNN weights (JEDI, or the RNN
baselines in `nwb_jedi.model.baselines`). Plots are imported on demand
(``from nwb_jedi.analysis import plots``) so that matplotlib is only loaded when drawing.
"""

from importlib import import_module

from nwb_jedi.analysis import metrics

# Resolved on first use: the analysis modules import torch and the model package, and
# nwb_jedi.model.jedi imports this package (for metrics), so eager imports would be circular.
_LAZY = {
    "fixed_points": "nwb_jedi.analysis.fixed_points",
    "find_fixed_points": "nwb_jedi.analysis.fixed_points",
    "FixedPoints": "nwb_jedi.analysis.fixed_points",
    "jacobian_spectrum": "nwb_jedi.analysis.spectra",
    "condition_spectra": "nwb_jedi.analysis.spectra",
    "spectrum_table": "nwb_jedi.analysis.spectra",
    "lyapunov": "nwb_jedi.analysis.lyapunov",
    "lyapunov_spectrum": "nwb_jedi.analysis.lyapunov",
    "embedding_classification": "nwb_jedi.analysis.embedding",
    "classify_embeddings": "nwb_jedi.analysis.embedding",
    "embedding_distances": "nwb_jedi.analysis.embedding",
    "interpolate": "nwb_jedi.analysis.embedding",
    "trial_embeddings": "nwb_jedi.analysis.embedding",
    "split_phases": "nwb_jedi.analysis.phases",
    "phase_spectra": "nwb_jedi.analysis.phases",
    "summarize_phase_spectra": "nwb_jedi.analysis.phases",
    "plots": "nwb_jedi.analysis.plots",
}


def __getattr__(name):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if module.__name__.endswith("." + name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nwb_jedi.analysis' has no attribute {name!r}")


__all__ = ["metrics", *_LAZY]
