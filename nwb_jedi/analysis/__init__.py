"""Analyses of fitted dynamics: metrics, spectra, fixed points, Lyapunov exponents, embeddings."""

from nwb_jedi.analysis import metrics

__all__ = ["metrics"]
