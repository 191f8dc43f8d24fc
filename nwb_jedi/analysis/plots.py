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
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nwb_jedi import metrics
from nwb_jedi._files import atomic_output
from nwb_jedi.analysis.fixedpoints import FixedPoints
from nwb_jedi.data.dataset import TrialDataset, condition_means
from nwb_jedi.errors import UserError, counted, first_few

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
                    annotate_by: str = "label", embeddings: np.ndarray | None = None,
                    labels: Sequence | None = None, annotate: bool = True,
                    ax: Axes | None = None) -> Figure:
    """Condition (and trial) embeddings on their principal axes, coloured by condition or an
    attribute.

    The axes are the principal components of the condition embeddings, labelled with the
    share of their variance each explains. C conditions span at most C − 1 directions, so
    when the condition embeddings span one direction (two conditions, or points on a line)
    the plot is 1-D: a second axis would show numerical noise.

    Parameters
    ----------
    condition_embeddings : fitted JEDI or ndarray (C, d)
        A model (its ``embeddings_`` with its ``conditions_`` table), or the embeddings.
    path : path, optional
        PNG to write.
    conditions : DataFrame or sequence, optional
        The condition table (a ``label`` column and any `color_by` / `annotate_by` column) or
        the labels; default the model's table, or "0" … "C−1".
    color_by : str
        Column of the condition table giving the colour groups (default: each condition).
    annotate_by : str
        Column whose values are written next to each condition's point (default its label;
        e.g. a frequency column, with `color_by` the task).
    embeddings, labels : optional
        Other points to plot (e.g. per-trial embeddings) with their group labels; they are
        projected on the principal axes of the condition embeddings.
    annotate : bool
        Write each condition's `annotate_by` value next to its point (up to 40 conditions).
    ax : matplotlib Axes, optional
        Draw here instead of on a new figure.
    """
    cond, table = _condition_points(condition_embeddings, conditions)
    for name in (color_by, annotate_by):
        if name not in table.columns:
            raise UserError(f"the conditions have no column {name!r} to colour or annotate "
                            f"by; available: {', '.join(map(str, table.columns))}")
    axes, explained = _principal_axes(cond)
    one_d = len(explained) < 2
    fig, ax = _single_axes(5.5, 2.4 if one_d else 4.5, ax)
    if embeddings is not None:
        pts = _project(embeddings, cond, axes)
        groups = np.asarray([str(v) for v in (labels if labels is not None
                                              else np.zeros(len(pts)))])
        for color, g in zip(_colors(len(np.unique(groups))), np.unique(groups), strict=True):
            sel = groups == g
            ax.scatter(pts[sel, 0], pts[sel, 1], s=10, alpha=0.5, color=color, label=g)
    pts = _project(cond, cond, axes)
    groups = table[color_by].astype(str).to_numpy()
    unique = list(dict.fromkeys(groups))
    for color, g in zip(_colors(len(unique)), unique, strict=True):
        sel = groups == g
        ax.scatter(pts[sel, 0], pts[sel, 1], s=60, color=color, edgecolor="k",
                   label=g if embeddings is None else None, zorder=3)
    annotated = annotate and len(cond) <= 40
    if annotated:
        for (x, y), value in zip(pts, table[annotate_by], strict=True):
            ax.annotate(_short(value), (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, rotation=45 if one_d else 0)
    ax.set_xlabel(_pc_label(1, explained))
    what = "Condition embeddings" + (" and trial embeddings" if embeddings is not None else "")
    what += f" (d = {cond.shape[1]}, {len(cond)} conditions)"
    if annotated and annotate_by != "label":
        what += f"; points labelled by {annotate_by}"
    if one_d:
        # C conditions span at most C - 1 directions: a second axis would be numerical noise.
        ax.set_ylabel("(none)")
        ax.set_yticks([])
        what += "\non the one direction they span (a second axis would be numerical noise)"
    else:
        ax.set_ylabel(_pc_label(2, explained))
    ax.set_title(what, fontsize=9)
    # Each condition's own colour with its label written next to it needs no legend; groups
    # (or trial points) do. Outside the axes, so it hides no point.
    self_labelled = color_by == "label" and annotate_by == "label" and annotated
    if (not self_labelled or embeddings is not None) and len(unique) <= 20:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  title=color_by if color_by != "label" else None, title_fontsize=7)
    return _finish(fig, path)


def _principal_axes(cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (k, d) of the condition embeddings and the share of variance each
    explains: k = 2, or 1 when they span one direction (numerically: the second singular
    value below 1e-6 of the first, as for two points)."""
    centered = cond - cond.mean(axis=0)
    if len(cond) < 2 or not np.any(centered):
        axes = np.zeros((1, cond.shape[1]))
        axes[0, 0] = 1.0
        return axes, np.array([1.0])
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    k = 2 if len(singular) > 1 and singular[1] > 1e-6 * singular[0] else 1
    return vt[:k], (singular ** 2 / np.sum(singular ** 2))[:k]


def _project(points: np.ndarray, cond: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates on the axes (second column 0 for a 1-D projection)."""
    projected = (np.asarray(points, dtype=np.float64) - cond.mean(axis=0)) @ axes.T
    if projected.shape[1] < 2:
        projected = np.hstack([projected, np.zeros((len(projected), 1))])
    return projected


def _pc_label(k: int, explained: np.ndarray) -> str:
    return f"PC {k} ({explained[k - 1]:.0%} of the variance across conditions)"


def _short(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.3g}"
    return str(value)


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


#: What the eigenvalue panels can show: (x label, y label, title, boundary) per matrix.
SPECTRUM_KINDS = {
    "J": ("Re λ(J)", "Im λ(J)",
          "Eigenvalues of each condition's connectivity J\n(dashed: Re λ = 1, where "
          "ẋ = −x + J tanh(x) loses stability at x = 0{zoom})"),
    "jacobian": ("Re λ(DF)", "Im λ(DF)",
                 "Eigenvalues of the step's Jacobian DF = (1−α)I + αJ diag(tanh′(x)) along "
                 "each trajectory\n(circle: |λ| = 1, the stability boundary of the discrete "
                 "map; colour: time step{zoom})"),
}


def plot_eigenvalues(spectra: Mapping[str, np.ndarray], path: str | os.PathLike | None = None,
                     *, conditions: Sequence[int | str] | None = None, ncols: int = 4,
                     title: str | None = None, matrix: str | None = None, ax=None) -> Figure:
    """Eigenvalues in the complex plane against their stability boundary, one panel each.

    The model steps ``x ← x + α(−x + J tanh(x) + b)``. Two spectra mean different things:

    - J's eigenvalues (``matrix="J"``): the linearization at x = 0 of ẋ = −x + J tanh(x)
      is −I + J, stable while every ``Re λ(J) < 1``: the dashed line ``Re λ = 1`` is the
      boundary (not the unit circle);
    - the discrete step's Jacobian ``DF(x)`` along a trajectory or at fixed points
      (``matrix="jacobian"``, e.g. `nwb_jedi.analysis.spectra.JacobianSpectrum`): stable
      inside the unit circle, which is drawn (zoomed in on the eigenvalues when they sit in
      a small part of it). Points are coloured by time step. The N − R eigenvalues at
      ``1 − α`` on the real axis come from J's null space (J has rank R).

    Every panel has the same scales, so spectra can be compared across conditions; the axes
    are labelled and the title says which matrix is shown.

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
    title : str, optional
        Title of a new figure (default: what the matrix and the boundary are).
    matrix : {"J", "jacobian"}, optional
        Which matrix the eigenvalues are of (default: "jacobian" for `JacobianSpectrum`
        values, else "J").
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per panel to draw into instead of a new figure.
    """
    if not isinstance(spectra, Mapping):
        raise UserError("plot_eigenvalues takes a mapping of name -> eigenvalues; for a fitted "
                        "model pass nwb_jedi.analysis.spectra.condition_spectra(model)")
    spectra = _chosen_spectra(spectra, conditions)
    if matrix is None:
        matrix = "jacobian" if any(hasattr(v, "eigenvalues") for v in spectra.values()) \
            else "J"
    if matrix not in SPECTRUM_KINDS:
        raise UserError(f"matrix must be one of {', '.join(SPECTRUM_KINDS)}, got {matrix!r}")
    xlabel, ylabel, default_title = SPECTRUM_KINDS[matrix]
    values = {name: _spectrum_points(v) for name, v in spectra.items()}
    xlim, ylim, zoom = _shared_limits([v for v, _ in values.values()], matrix)
    fig, axes, new = _panel_axes(len(spectra), ncols, 2.6, ax)
    if new:
        # Room between rows for the x labels (equal-aspect panels: a constrained layout
        # would shrink them instead).
        fig.subplots_adjust(hspace=0.45, wspace=0.3)
    columns = max(1, min(ncols, len(spectra))) if new else len(axes)
    scatter = None
    steps = [t.max() for _, t in values.values() if t is not None and t.size]
    last_step = max(1.0, max(steps)) if steps else 1.0
    for i, (ax_, (name, (points, time))) in enumerate(zip(axes, values.items(), strict=True)):
        _draw_boundary(ax_, matrix)
        ax_.axhline(0, color="0.85", lw=0.5, zorder=0)
        ax_.axvline(0, color="0.85", lw=0.5, zorder=0)
        if time is None:
            ax_.scatter(points.real, points.imag, s=14, color="C3", zorder=3)
        else:
            scatter = ax_.scatter(points.real, points.imag, s=6, c=time, cmap="viridis",
                                  vmin=0, vmax=last_step, zorder=3)
        ax_.set_xlim(*xlim)
        ax_.set_ylim(*ylim)
        ax_.set_aspect("equal", adjustable="box")
        ax_.set_title(str(name), fontsize=8)
        ax_.tick_params(labelsize=6)
        # New grids label the outer panels; given Axes each get their labels.
        if not new or i >= len(axes) - columns:
            ax_.set_xlabel(xlabel, fontsize=7)
        if not new or i % columns == 0:
            ax_.set_ylabel(ylabel, fontsize=7)
    if new:
        zoomed = "; zoomed in on the eigenvalues" if zoom else ""
        fig.suptitle(title or default_title.format(zoom=zoomed), fontsize=9)
        if scatter is not None:
            bar = fig.colorbar(scatter, ax=list(axes), shrink=0.6)
            bar.set_label("time step along the trajectory (bins)", fontsize=7)
            bar.ax.tick_params(labelsize=6)
    return _finish(fig, path)


def _chosen_spectra(spectra: Mapping, conditions: Sequence[int | str] | None) -> dict:
    if conditions is not None:
        names = list(spectra)
        keys = [names[c] if isinstance(c, int | np.integer) and 0 <= c < len(names) else str(c)
                for c in conditions]
        unknown = [k for k in keys if k not in spectra]
        if unknown:
            raise UserError(f"no spectrum named {unknown[0]!r}; known: {first_few(names)}")
        spectra = {k: spectra[k] for k in keys}
    if not spectra:
        raise UserError("nothing to plot: no spectra given")
    return dict(spectra)


def _spectrum_points(values) -> tuple[np.ndarray, np.ndarray | None]:
    """Flattened eigenvalues, and the time step of each for spectra along a trajectory."""
    ev = np.asarray(getattr(values, "eigenvalues", values))
    time = None
    if getattr(values, "along", None) == "trajectory" and ev.ndim == 2:
        time = np.repeat(np.asarray(values.index, dtype=float), ev.shape[1])
    return ev.ravel(), time


def _shared_limits(points: list[np.ndarray], matrix: str
                   ) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """Limits of every panel, and whether they zoom in on part of the boundary.

    J: every eigenvalue, the origin and the line Re λ = 1. Step Jacobian: the whole unit
    circle, or, when the eigenvalues sit in a small part of it (typically near 1, since
    DF = (1−α)I + ...), the box around them and the point 1, so they can be told apart and
    their distance from the circle read off.
    """
    allv = np.concatenate([p.ravel() for p in points]) if points else np.zeros(0)
    allv = allv[np.isfinite(allv)]
    re = np.concatenate([allv.real, [1.0]])
    im = np.concatenate([allv.imag, [0.0]])
    zoom = False
    if matrix == "J":
        re = np.concatenate([re, [0.0]])
    else:
        zoom = bool(allv.size) and max(np.ptp(re), 2 * np.abs(im).max()) < 1.0
        if not zoom:
            re = np.concatenate([re, [-1.0]])
            im = np.concatenate([im, [-1.0, 1.0]])
    pad = 0.1 * max(np.ptp(re), 2 * np.abs(im).max(), 0.5 if not zoom else 0.2)
    half = max(np.abs(im).max(), 0.25 if not zoom else 0.1) + pad
    return (float(re.min() - pad), float(re.max() + pad)), (-float(half), float(half)), zoom


def _draw_boundary(ax: Axes, matrix: str) -> None:
    if matrix == "J":
        ax.axvline(1.0, color="0.4", lw=1.0, ls="--", zorder=1)
    else:
        theta = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(theta), np.sin(theta), color="0.4", lw=1.0, zorder=1)


#: Conditions and neurons a PSTH figure shows by default (more lines are unreadable).
PSTH_CONDITIONS = 4
PSTH_NEURONS = 6


def plot_psth(rates: np.ndarray, ds: TrialDataset, path: str | os.PathLike | None = None, *,
              neurons: Sequence[int] | None = None, conditions: Sequence[int] | None = None,
              smooth_sd: float = metrics.DEFAULT_SMOOTH_SD, ncols: int = 3,
              align: str | None = None, ax=None) -> Figure:
    """Data PSTH (smoothed, solid) against a model's condition-averaged rates (dashed).

    The title says which trials are averaged (their split and number), which conditions and
    how the neurons were chosen; the time axis is named after the alignment event.

    Parameters
    ----------
    rates : ndarray (K, T, N)
        Predicted rates (Hz) of the trials of `ds`, e.g. ``model.predict_rates(ds)``.
    ds : TrialDataset
        Trials to average (typically held-out trials).
    path : path, optional
        PNG to write.
    neurons : sequence of int, optional
        Neuron indices, one panel each; default the `PSTH_NEURONS` with the highest mean
        rate in these trials.
    conditions : sequence of int, optional
        Rows of ``ds.conditions`` to overlay; default `PSTH_CONDITIONS` present conditions
        spread evenly over the table (first and last included).
    smooth_sd : float
        Gaussian smoothing of the data (s).
    ncols : int
        Panels per row of a new figure.
    align : str, optional
        Name of the alignment event for the time axis (default: the ``align`` of the mapper
        that built `ds`, from its provenance).
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
    chosen_conditions = conditions is None
    if conditions is None:
        spread = np.unique(np.linspace(0, len(present) - 1, min(PSTH_CONDITIONS, len(present)))
                           .round().astype(int)) if len(present) else []
        conditions = present[spread]
    conditions = list(conditions)
    chosen_neurons = neurons is None
    if neurons is None:
        neurons = list(np.argsort(-ds.counts.mean(axis=(0, 1)), kind="stable")[:PSTH_NEURONS])
    if not len(neurons) or not conditions:
        raise UserError("nothing to plot: choose at least one neuron and one condition")
    fig, axes, new = _panel_axes(len(neurons), ncols, 3.0, ax)
    if new:
        fig.set_layout_engine("constrained")  # labels never run into the next row's titles
    colors = _colors(len(conditions))
    labels = ds.conditions["label"].astype(str).to_numpy()
    event = align or _align_name(ds)
    for i, (ax_, n) in enumerate(zip(axes, neurons, strict=True)):
        for color, c in zip(colors, conditions, strict=True):
            ax_.plot(ds.time, data_psth[c, :, n], color=color, lw=1.4, label=labels[c])
            ax_.plot(ds.time, model_psth[c, :, n], color=color, lw=1.2, ls="--")
        ax_.set_title(f"neuron {ds.unit_id[n]}", fontsize=8)
        ax_.set_xlabel(f"time from {event} (s)", fontsize=7)
        if not new or i % max(1, min(ncols, len(neurons))) == 0:
            ax_.set_ylabel("rate (Hz)", fontsize=7)
        ax_.tick_params(labelsize=6)
    if new:
        handles, names = axes[0].get_legend_handles_labels()
        handles += [Line2D([], [], color="0.3", lw=1.4), Line2D([], [], color="0.3", ls="--")]
        names += ["data (smoothed)", "model"]
        fig.legend(handles, names, loc="outside right upper", fontsize=7)
        title = _psth_title(ds, conditions, present, chosen_conditions, neurons,
                            chosen_neurons, smooth_sd)
        # A grid of one or two panels is narrower than the title and legend: widen it, and
        # wrap the title to the figure's width.
        size = fig.get_size_inches()
        fig.set_size_inches(max(size[0], 8.0), size[1])
        width = int(fig.get_size_inches()[0] * 10)  # centred on the figure, clear of the legend
        fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.split("\n")),
                     fontsize=9)
    else:
        axes[0].legend(fontsize=6, loc="upper right")
    return _finish(fig, path)


def _align_name(ds: TrialDataset) -> str:
    align = (ds.provenance.mapper or {}).get("align")
    return align if isinstance(align, str) and align else "the alignment event"


def _psth_title(ds: TrialDataset, conditions, present, chosen_conditions: bool, neurons,
                chosen_neurons: bool, smooth_sd: float) -> str:
    splits = sorted(set(np.asarray(ds.split).tolist()))
    names = {"test": "held-out (test)", "val": "validation", "train": "training"}
    trials = (f"{names.get(splits[0], splits[0])} trials" if len(splits) == 1 else
              "trials of every split")
    which = (f"{len(conditions)} of {len(present)} conditions, spread evenly"
             if chosen_conditions and len(conditions) < len(present) else
             counted(len(conditions), "condition"))
    cells = ((f"the {len(neurons)} neurons" if len(neurons) != 1 else "the neuron")
             + " with the highest mean rate" if chosen_neurons else
             counted(len(neurons), "chosen neuron"))
    return (f"Condition-averaged rates of {ds.n_trials} {trials}: data (solid, smoothed "
            f"{smooth_sd * 1e3:g} ms) vs model (dashed)\n{which}; {cells}")


def plot_fixed_points(trajectories: Mapping[str, np.ndarray],
                      fixed_points: Mapping[str, FixedPoints] | None = None,
                      path: str | os.PathLike | None = None, *, title: str | None = None,
                      ax: Axes | None = None) -> Figure:
    """Noiseless trajectories and their fixed points, in the state space's top 2 PCs.

    The principal axes are those of all plotted trajectories together. Fixed points are marked
    by stability, from the eigenvalues of the step's Jacobian DF there: stable (filled
    circle; all inside the unit circle), saddle (cross; some outside), unstable (open circle;
    all outside).

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
    title : str, optional
        Title (default: how many conditions, and the markers).
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
    # A one-neuron network has a one-dimensional state: drawn against time, not on two PCs.
    one_dim = reference.shape[1] == 1
    fig, ax = _single_axes(6.5, 4.5, ax)
    for color, (name, traj) in zip(_colors(len(trajectories)), trajectories.items(),
                                   strict=True):
        traj = np.asarray(traj, dtype=np.float64)
        pts = (np.column_stack([np.arange(len(traj)), traj[:, 0]]) if one_dim
               else _pca(traj, fit_on=reference))
        ax.plot(pts[:, 0], pts[:, 1], color=color, lw=1.2, label=str(name))
        ax.scatter(pts[:1, 0], pts[:1, 1], color=color, s=20, marker="s")
        fps = fixed_points.get(name)
        if fps is not None and len(fps):
            where = (np.column_stack([np.full(len(fps), len(traj) - 1),
                                      np.asarray(fps.locations)[:, 0]]) if one_dim
                     else _pca(fps.locations, fit_on=reference))
            _draw_fixed_points(ax, where, fps.stability, color)
    if one_dim:
        ax.set_xlabel("time step (fixed points drawn at the last step)")
        ax.set_ylabel("state x of the one neuron")
    else:
        ax.set_xlabel("PC 1 of the states (trajectories together)")
        ax.set_ylabel("PC 2 of the states")
    n = len(trajectories)
    ax.set_title(title or f"Noiseless trajectories (■ start) and fixed points of "
                          f"{counted(n, 'condition')}\n● stable, × saddle, ○ unstable "
                          f"(eigenvalues of DF inside / across / outside |λ| = 1)", fontsize=9)
    if n <= 24:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  ncols=1 if n <= 12 else 2)
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
    ax.plot(epochs, train, label="training trials", color="C0")
    if len(val) == len(train) and np.isfinite(val).any():
        ax.plot(epochs, val, label="validation trials", color="C1")
        best = int(np.nanargmin(val))
        ax.axvline(epochs[best], color="0.6", ls=":", lw=1,
                   label=f"best epoch {epochs[best]} (the state kept)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log-likelihood per bin and neuron)", fontsize=8)
    ax.set_title(f"Training curves ({len(train)} epochs)")
    ax.legend(fontsize=8)
    return _finish(fig, path)
