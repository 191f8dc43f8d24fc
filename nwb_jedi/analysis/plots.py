"""Figures of analysis results (matplotlib).

Every function takes results that are already computed — embeddings, spectra, trajectories and
fixed points, predicted rates, a training history; the analyses that produce them are the other
modules of `nwb_jedi.analysis`, and `nwb_jedi.analysis.report.analysis_report` computes them
all at once — and draws them

- into the matplotlib axes given as ``ax`` (one Axes, or one per panel for the multi-panel
  figures), e.g. in a notebook; or
- on a new `matplotlib.figure.Figure` with an Agg canvas (no pyplot, no global backend
  change, safe on headless machines and in threads).

With `path`, the figure is also written as PNG atomically (temporary file, then rename).
Every function returns the Figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nwb_jedi import metrics
from nwb_jedi._files import atomic_output
from nwb_jedi.analysis.fixedpoints import FixedPoints
from nwb_jedi.data.dataset import TrialDataset, condition_means
from nwb_jedi.errors import UserError

__all__ = ["plot_eigenvalues", "plot_embeddings", "plot_fixed_points", "plot_psth",
           "plot_training"]

DPI = 120

#: Spectra one figure of J's eigenvalues shows when a command draws every condition's (one
#: panel each; more are unreadable).
MAX_SPECTRUM_PANELS = 24


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Figure:
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return fig


def _pca(points: np.ndarray, n: int = 2, fit_on: np.ndarray | None = None) -> np.ndarray:
    """Project `points` on the top `n` principal axes of `fit_on` (default: the points)."""
    reference = np.asarray(points if fit_on is None else fit_on, dtype=np.float64)
    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    axes = vt[:n]
    projected = (np.asarray(points, dtype=np.float64) - mean) @ axes.T
    if projected.shape[1] < n:  # fewer dimensions than asked: pad with zeros
        projected = np.hstack([projected, np.zeros((len(projected), n - projected.shape[1]))])
    return projected


def _grid(n_panels: int, ncols: int, size: float = 2.6):
    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig = _figure(size * ncols, size * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n_panels]


def _single_axes(width: float, height: float, ax: Axes | None) -> tuple[Figure, Axes]:
    """The given Axes and its figure, or a new figure of one Axes."""
    if ax is None:
        fig = _figure(width, height)
        return fig, fig.add_subplot(1, 1, 1)
    return ax.figure.figure, ax  # .figure.figure: the root figure, also for a subfigure


def _panel_axes(n_panels: int, ncols: int, size: float, ax) -> tuple[Figure, list[Axes], bool]:
    """One Axes per panel: the given ones (one Axes, or a sequence or array of them), or a new
    grid. The flag says whether the figure is new (then the function may title it)."""
    if ax is None:
        fig, axes = _grid(n_panels, ncols, size)
        return fig, list(axes), True
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n_panels:
        raise UserError(f"ax: this figure has {n_panels} panel(s) but {len(axes)} Axes were "
                        f"given; pass one Axes per panel")
    return axes[0].figure.figure, axes, False


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    return fig if path is None else _save(fig, path)


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


# ---------------------------------------------------------------------- figures
def plot_embeddings(condition_embeddings, path: str | os.PathLike | None = None, *,
                    conditions: pd.DataFrame | Sequence | None = None, color_by: str = "label",
                    embeddings: np.ndarray | None = None, labels: Sequence | None = None,
                    annotate: bool = True, ax: Axes | None = None) -> Figure:
    """Condition (and trial) embeddings in 2-D (PCA), coloured by condition or an attribute.

    Parameters
    ----------
    condition_embeddings : fitted JEDI or ndarray (C, d)
        A model (its ``embeddings_`` with its ``conditions_`` table), or the embeddings.
    path : path, optional
        PNG to write.
    conditions : DataFrame or sequence, optional
        With an array: the condition table (a ``label`` column and any `color_by` column) or
        the labels; default "0" … "C−1".
    color_by : str
        Column of the condition table giving the colour groups (default: each condition).
    embeddings, labels : optional
        Other points to plot (e.g. per-trial embeddings) with their group labels; they are
        projected on the principal axes of the condition embeddings.
    annotate : bool
        Write each condition's label next to its point.
    ax : matplotlib Axes, optional
        Draw here instead of on a new figure.
    """
    cond, table = _condition_points(condition_embeddings, conditions)
    if color_by not in table.columns:
        raise UserError(f"the conditions have no column {color_by!r} to colour by; available: "
                        f"{', '.join(map(str, table.columns))}")
    fig, ax = _single_axes(5, 4.5, ax)
    fit_on = cond if len(cond) >= 2 else None
    if embeddings is not None:
        pts = _pca(embeddings, fit_on=fit_on)
        groups = np.asarray([str(v) for v in (labels if labels is not None
                                              else np.zeros(len(pts)))])
        for color, g in zip(_colors(len(np.unique(groups))), np.unique(groups), strict=True):
            sel = groups == g
            ax.scatter(pts[sel, 0], pts[sel, 1], s=10, alpha=0.5, color=color, label=g)
    pts = _pca(cond, fit_on=fit_on)
    groups = table[color_by].astype(str).to_numpy()
    unique = list(dict.fromkeys(groups))
    for color, g in zip(_colors(len(unique)), unique, strict=True):
        sel = groups == g
        ax.scatter(pts[sel, 0], pts[sel, 1], s=60, color=color, edgecolor="k",
                   label=g if embeddings is None else None, zorder=3)
    if annotate and len(cond) <= 40:
        for (x, y), text in zip(pts, table["label"].astype(str), strict=True):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Condition embeddings (d = {cond.shape[1]})")
    if len(unique) <= 20:
        ax.legend(fontsize=7, loc="best", title=color_by if color_by != "label" else None)
    return _finish(fig, path)


def _condition_points(source, conditions) -> tuple[np.ndarray, pd.DataFrame]:
    """Condition embeddings (C, d) and their table, from a fitted model or an array."""
    if hasattr(source, "embeddings_"):  # a fitted model: embeddings_ and conditions_ are data
        return np.asarray(source.embeddings_, dtype=np.float64), source.conditions_
    cond = np.asarray(source, dtype=np.float64) if isinstance(
        source, np.ndarray | list | tuple) else np.zeros(0)
    if cond.ndim != 2:
        raise UserError("plot_embeddings takes a fitted model or condition embeddings of shape "
                        "(C, d)")
    if conditions is None:
        table = pd.DataFrame({"label": [str(i) for i in range(len(cond))]})
    elif isinstance(conditions, pd.DataFrame):
        table = conditions.reset_index(drop=True)
    else:
        table = pd.DataFrame({"label": [str(c) for c in conditions]})
    if len(table) != len(cond) or "label" not in table.columns:
        raise UserError(f"conditions must give a label for each of the {len(cond)} embeddings "
                        f"(a table with a 'label' column, or the labels), got {len(table)}")
    return cond, table


def plot_eigenvalues(spectra: Mapping[str, np.ndarray], path: str | os.PathLike | None = None,
                     *, conditions: Sequence[int | str] | None = None, ncols: int = 4,
                     title: str = "Eigenvalues of J", ax=None) -> Figure:
    """Eigenvalues in the complex plane with the unit circle, one panel per spectrum.

    Parameters
    ----------
    spectra : mapping of name -> eigenvalues
        E.g. J's eigenvalues of each condition (`nwb_jedi.analysis.spectra.condition_spectra`)
        or Jacobian eigenvalues along trajectories (arrays of any shape, or
        `JacobianSpectrum` objects, are flattened into one panel each).
    path : path, optional
        PNG to write.
    conditions : sequence of str or int, optional
        Which spectra to show (names, or positions in `spectra`), in this order; default all.
    ncols : int
        Panels per row of a new figure.
    title : str
        Title of a new figure.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per panel to draw into instead of a new figure.
    """
    if not isinstance(spectra, Mapping):
        raise UserError("plot_eigenvalues takes a mapping of name -> eigenvalues; for a fitted "
                        "model pass nwb_jedi.analysis.spectra.condition_spectra(model)")
    if conditions is not None:
        names = list(spectra)
        keys = [names[c] if isinstance(c, int | np.integer) and 0 <= c < len(names) else str(c)
                for c in conditions]
        unknown = [k for k in keys if k not in spectra]
        if unknown:
            raise UserError(f"no spectrum named {unknown[0]!r}; known: {', '.join(names[:10])}")
        spectra = {k: spectra[k] for k in keys}
    if not spectra:
        raise UserError("nothing to plot: no spectra given")
    fig, axes, new = _panel_axes(len(spectra), ncols, 2.6, ax)
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax_, (name, values) in zip(axes, spectra.items(), strict=True):
        values = np.asarray(getattr(values, "eigenvalues", values)).ravel()
        ax_.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8)
        ax_.axhline(0, color="0.85", lw=0.5)
        ax_.axvline(0, color="0.85", lw=0.5)
        ax_.scatter(values.real, values.imag, s=14, color="C3", zorder=3)
        extent = max(1.2, float(np.abs(values).max(initial=0)) * 1.1)
        ax_.set_xlim(-extent, extent)
        ax_.set_ylim(-extent, extent)
        ax_.set_aspect("equal")
        ax_.set_title(str(name), fontsize=8)
        ax_.tick_params(labelsize=6)
    if new:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_psth(rates: np.ndarray, ds: TrialDataset, path: str | os.PathLike | None = None, *,
              neurons: Sequence[int] | None = None, conditions: Sequence[int] | None = None,
              smooth_sd: float = metrics.DEFAULT_SMOOTH_SD, ncols: int = 3,
              ax=None) -> Figure:
    """Data PSTH (smoothed, solid) against a model's condition-averaged rates (dashed).

    Parameters
    ----------
    rates : ndarray (K, T, N)
        Predicted rates (Hz) of the trials of `ds`, e.g. ``model.predict_rates(ds)``.
    ds : TrialDataset
        Trials to average (typically held-out trials).
    path : path, optional
        PNG to write.
    neurons : sequence of int, optional
        Neuron indices, one panel each; default the 6 with the highest mean rate.
    conditions : sequence of int, optional
        Rows of ``ds.conditions`` to overlay; default up to 8 present conditions.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per neuron to draw into instead of a new figure.
    """
    if not isinstance(rates, np.ndarray) and hasattr(rates, "predict_rates"):
        raise UserError("plot_psth takes predicted rates (trials x bins x neurons); pass "
                        "model.predict_rates(ds)")
    rates = np.asarray(rates)
    if rates.shape != ds.counts.shape:
        raise UserError(f"rates have shape {rates.shape} but the trials' counts "
                        f"{ds.counts.shape}; pass the rates predicted for these trials")
    data = metrics.smooth(ds.counts / ds.bin_size, smooth_sd / ds.bin_size)
    data_psth = condition_means(data, ds.condition, ds.n_conditions)
    model_psth = condition_means(rates, ds.condition, ds.n_conditions)
    present = np.flatnonzero(ds.trials_per_condition() > 0)
    conditions = list(present[:8] if conditions is None else conditions)
    if neurons is None:
        neurons = list(np.argsort(-ds.counts.mean(axis=(0, 1)), kind="stable")[:6])
    if not neurons or not conditions:
        raise UserError("nothing to plot: choose at least one neuron and one condition")
    fig, axes, new = _panel_axes(len(neurons), ncols, 3.0, ax)
    colors = _colors(len(conditions))
    labels = ds.conditions["label"].astype(str).to_numpy()
    for ax_, n in zip(axes, neurons, strict=True):
        for color, c in zip(colors, conditions, strict=True):
            ax_.plot(ds.time, data_psth[c, :, n], color=color, lw=1.4, label=labels[c])
            ax_.plot(ds.time, model_psth[c, :, n], color=color, lw=1.2, ls="--")
        ax_.set_title(f"neuron {ds.unit_id[n]}", fontsize=8)
        ax_.set_xlabel("time (s)", fontsize=7)
        ax_.set_ylabel("rate (Hz)", fontsize=7)
        ax_.tick_params(labelsize=6)
    axes[0].legend(fontsize=6, loc="upper right")
    if new:
        fig.suptitle("Data PSTH (solid) vs model (dashed)")
    return _finish(fig, path)


def plot_fixed_points(trajectories: Mapping[str, np.ndarray],
                      fixed_points: Mapping[str, FixedPoints] | None = None,
                      path: str | os.PathLike | None = None, *, ax: Axes | None = None
                      ) -> Figure:
    """Noiseless trajectories and their fixed points, in the state space's top 2 PCs.

    The principal axes are those of all plotted trajectories together. Fixed points are marked
    by stability: stable (filled circle), saddle (cross), unstable (open circle).

    Parameters
    ----------
    trajectories : mapping of name -> ndarray (T, N)
        States along each condition's noiseless trajectory
        (`nwb_jedi.analysis.dynamics.model_trajectory`).
    fixed_points : mapping of name -> FixedPoints, optional
        Fixed points of some or all of those conditions
        (`nwb_jedi.analysis.fixedpoints.fixed_points`).
    path : path, optional
        PNG to write.
    ax : matplotlib Axes, optional
        Draw here instead of on a new figure.

    Examples
    --------
    >>> report = analysis_report(model, ds, fixed_point_conditions=2)    # doctest: +SKIP
    >>> plot_fixed_points(report.trajectories, report.fixed_points)       # doctest: +SKIP
    """
    if not isinstance(trajectories, Mapping) or not trajectories:
        raise UserError("plot_fixed_points takes a non-empty mapping of name -> trajectory "
                        "(T x N states; see nwb_jedi.analysis.dynamics.model_trajectory) and "
                        "the fixed points found (nwb_jedi.analysis.fixedpoints.fixed_points)")
    fixed_points = dict(fixed_points or {})
    unknown = sorted(set(fixed_points) - set(trajectories))
    if unknown:
        raise UserError(f"fixed points of {unknown[0]!r} have no trajectory; pass the "
                        f"trajectory of every condition whose fixed points are drawn")
    reference = np.concatenate([np.asarray(t, dtype=np.float64) for t in trajectories.values()])
    fig, ax = _single_axes(5.5, 4.5, ax)
    for color, (name, traj) in zip(_colors(len(trajectories)), trajectories.items(),
                                   strict=True):
        pts = _pca(traj, fit_on=reference)
        ax.plot(pts[:, 0], pts[:, 1], color=color, lw=1.2, label=str(name))
        ax.scatter(pts[:1, 0], pts[:1, 1], color=color, s=20, marker="s")
        fps = fixed_points.get(name)
        if fps is not None and len(fps):
            _draw_fixed_points(ax, _pca(fps.locations, fit_on=reference), fps.stability, color)
    ax.set_xlabel("PC 1 (state)")
    ax.set_ylabel("PC 2 (state)")
    ax.set_title("Trajectories and fixed points (● stable, × saddle, ○ unstable)", fontsize=9)
    ax.legend(fontsize=7)
    return _finish(fig, path)


def _draw_fixed_points(ax: Axes, points: np.ndarray, stability: np.ndarray, color) -> None:
    styles = {"stable": dict(marker="o", facecolors=[color], edgecolors="k"),
              "saddle": dict(marker="x", c=[color]),
              "unstable": dict(marker="o", facecolors="none", edgecolors=[color])}
    for kind, style in styles.items():
        sel = stability == kind
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=70, zorder=4, linewidths=1.5, **style)


def plot_training(history: Mapping[str, Sequence[float]] | object,
                  path: str | os.PathLike | None = None, *, ax: Axes | None = None) -> Figure:
    """Training and validation loss per epoch (from ``model.history_`` or the model itself).

    Parameters
    ----------
    history : mapping or fitted model
        ``train_loss`` (and optionally ``val_loss``, ``epoch``) per epoch, or a model whose
        ``history_`` holds them.
    path : path, optional
        PNG to write.
    ax : matplotlib Axes, optional
        Draw here instead of on a new figure.
    """
    if not isinstance(history, Mapping):
        history = getattr(history, "history_", None)
        if history is None:
            raise UserError("the model has no training history; fit it first")
    train = np.asarray(history.get("train_loss", []), dtype=float)
    if len(train) == 0:
        raise UserError("the training history is empty")
    epochs = np.asarray(history.get("epoch", np.arange(1, len(train) + 1)))
    val = np.asarray(history.get("val_loss", []), dtype=float)
    fig, ax = _single_axes(5, 3.5, ax)
    ax.plot(epochs, train, label="train", color="C0")
    if len(val) == len(train) and np.isfinite(val).any():
        ax.plot(epochs, val, label="validation", color="C1")
        best = int(np.nanargmin(val))
        ax.axvline(epochs[best], color="0.6", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training curves")
    ax.legend(fontsize=8)
    return _finish(fig, path)
