"""Figures of fitted models (matplotlib, Agg canvas, PNG).

Every function draws on its own `matplotlib.figure.Figure` with an Agg canvas (no pyplot, no
global backend change, safe on headless machines and in threads), writes a PNG to `path`
atomically (temporary file, then rename) and returns the Figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nwb_jedi import metrics
from nwb_jedi._files import atomic_output
from nwb_jedi.data.dataset import TrialDataset, condition_means
from nwb_jedi.errors import UserError

DPI = 120


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


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


# ---------------------------------------------------------------------- figures
def plot_embeddings(model, path: str | os.PathLike, *, color_by: str = "label",
                    embeddings: np.ndarray | None = None,
                    labels: Sequence | None = None, annotate: bool = True) -> Figure:
    """Condition (or trial) embeddings in 2-D (PCA), coloured by condition or an attribute.

    Parameters
    ----------
    model : fitted JEDI
        Its ``embeddings_`` and ``conditions_`` are plotted, unless `embeddings` is given.
    path : path
        PNG to write.
    color_by : str
        Column of ``model.conditions_`` giving the colour groups (default: each condition).
    embeddings, labels : optional
        Other points to plot (e.g. per-trial embeddings) with their group labels; they are
        projected on the principal axes of the condition embeddings.
    annotate : bool
        Write each condition's label next to its point.
    """
    cond = np.asarray(model.embeddings_, dtype=np.float64)
    table = model.conditions_
    if color_by not in table.columns:
        raise UserError(f"the model's conditions have no column {color_by!r}; available: "
                        f"{', '.join(map(str, table.columns))}")
    fig = _figure(5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
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
    return _save(fig, path)


def plot_eigenvalues(spectra, path: str | os.PathLike, *, conditions: Sequence | None = None,
                     ncols: int = 4, title: str = "Eigenvalues of J") -> Figure:
    """Eigenvalues in the complex plane with the unit circle, one panel per condition.

    Parameters
    ----------
    spectra : fitted model or mapping of name → eigenvalues
        A model (J's eigenvalues of each condition via ``model.eigenvalues``), or any spectra
        to show (e.g. Jacobian eigenvalues; 2-D arrays are flattened into one panel).
    path : path
        PNG to write.
    conditions : sequence, optional
        Which conditions (labels or rows) of a model to show; default all (at most 24).
    """
    if not isinstance(spectra, Mapping):
        model = spectra
        labels = list(model.conditions_["label"].astype(str))
        chosen = conditions if conditions is not None else labels[:24]
        spectra = {str(labels[c]) if isinstance(c, int | np.integer) else str(c):
                   np.asarray(model.eigenvalues(c)) for c in chosen}
    if not spectra:
        raise UserError("nothing to plot: no spectra given")
    fig, axes = _grid(len(spectra), ncols)
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax, (name, values) in zip(axes, spectra.items(), strict=True):
        values = np.asarray(values).ravel()
        ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8)
        ax.axhline(0, color="0.85", lw=0.5)
        ax.axvline(0, color="0.85", lw=0.5)
        ax.scatter(values.real, values.imag, s=14, color="C3", zorder=3)
        extent = max(1.2, float(np.abs(values).max(initial=0)) * 1.1)
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.set_title(str(name), fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(title)
    return _save(fig, path)


def plot_psth(model, ds: TrialDataset, path: str | os.PathLike, *,
              neurons: Sequence[int] | None = None, conditions: Sequence[int] | None = None,
              smooth_sd: float = metrics.DEFAULT_SMOOTH_SD, ncols: int = 3) -> Figure:
    """Data PSTH (smoothed, solid) against the model's condition-averaged rates (dashed).

    Parameters
    ----------
    model : fitted model with ``predict_rates`` (JEDI or a baseline)
    ds : TrialDataset
        Trials to average (typically held-out trials).
    neurons : sequence of int, optional
        Neuron indices, one panel each; default the 6 with the highest mean rate.
    conditions : sequence of int, optional
        Rows of ``ds.conditions`` to overlay; default up to 8 present conditions.
    """
    rates = model.predict_rates(ds)
    data = metrics.smooth(ds.counts / ds.bin_size, smooth_sd / ds.bin_size)
    data_psth = condition_means(data, ds.condition, ds.n_conditions)
    model_psth = condition_means(rates, ds.condition, ds.n_conditions)
    present = np.flatnonzero(ds.trials_per_condition() > 0)
    conditions = list(present[:8] if conditions is None else conditions)
    if neurons is None:
        neurons = list(np.argsort(-ds.counts.mean(axis=(0, 1)), kind="stable")[:6])
    if not neurons or not conditions:
        raise UserError("nothing to plot: choose at least one neuron and one condition")
    fig, axes = _grid(len(neurons), ncols, size=3.0)
    colors = _colors(len(conditions))
    labels = ds.conditions["label"].astype(str).to_numpy()
    for ax, n in zip(axes, neurons, strict=True):
        for color, c in zip(colors, conditions, strict=True):
            ax.plot(ds.time, data_psth[c, :, n], color=color, lw=1.4, label=labels[c])
            ax.plot(ds.time, model_psth[c, :, n], color=color, lw=1.2, ls="--")
        ax.set_title(f"neuron {ds.unit_id[n]}", fontsize=8)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("rate (Hz)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6, loc="upper right")
    fig.suptitle("Data PSTH (solid) vs model (dashed)")
    return _save(fig, path)


def plot_fixed_points(model, path: str | os.PathLike, conditions: Sequence | None = None, *,
                      n_steps: int = 100, fixed_point_kwargs: Mapping | None = None) -> Figure:
    """Fixed points over the noiseless trajectories, in the state space's top 2 PCs.

    The principal axes are those of all plotted trajectories together. Fixed points are marked
    by stability: stable (filled circle), saddle (cross), unstable (open circle).

    Parameters
    ----------
    model : fitted JEDI or RNN baseline
    path : path
    conditions : sequence, optional
        Labels or rows; default the first 4 conditions.
    n_steps : int
        Trajectory length (bins).
    fixed_point_kwargs : mapping, optional
        Passed to `nwb_jedi.analysis.fixedpoints.fixed_points`.
    """
    from nwb_jedi.analysis.dynamics import model_initial_state, model_step, trajectory_states
    from nwb_jedi.analysis.fixedpoints import fixed_points

    if conditions is None:
        conditions = list(range(min(4, len(model.conditions_))))
    labels = list(model.conditions_["label"].astype(str))
    trajectories, found = [], []
    for c in conditions:
        trajectories.append(trajectory_states(model_step(model, c),
                                              model_initial_state(model, c), n_steps))
        found.append(fixed_points(model, c, **dict(fixed_point_kwargs or {})))
    reference = np.concatenate(trajectories)
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for color, c, traj, fps in zip(_colors(len(conditions)), conditions, trajectories, found,
                                   strict=True):
        name = labels[c] if isinstance(c, int | np.integer) else str(c)
        pts = _pca(traj, fit_on=reference)
        ax.plot(pts[:, 0], pts[:, 1], color=color, lw=1.2, label=name)
        ax.scatter(pts[:1, 0], pts[:1, 1], color=color, s=20, marker="s")
        if not len(fps):
            continue
        fp = _pca(fps.locations, fit_on=reference)
        styles = {"stable": dict(marker="o", facecolors=[color], edgecolors="k"),
                  "saddle": dict(marker="x", c=[color]),
                  "unstable": dict(marker="o", facecolors="none", edgecolors=[color])}
        for kind, style in styles.items():
            sel = fps.stability == kind
            if sel.any():
                ax.scatter(fp[sel, 0], fp[sel, 1], s=70, zorder=4, linewidths=1.5, **style)
    ax.set_xlabel("PC 1 (state)")
    ax.set_ylabel("PC 2 (state)")
    ax.set_title("Trajectories and fixed points (● stable, × saddle, ○ unstable)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_training(history: Mapping[str, Sequence[float]] | object, path: str | os.PathLike
                  ) -> Figure:
    """Training and validation loss per epoch (from ``model.history_`` or the model itself)."""
    if not isinstance(history, Mapping):
        history = getattr(history, "history_", None)
        if history is None:
            raise UserError("the model has no training history; fit it first")
    train = np.asarray(history.get("train_loss", []), dtype=float)
    if len(train) == 0:
        raise UserError("the training history is empty")
    epochs = np.asarray(history.get("epoch", np.arange(1, len(train) + 1)))
    val = np.asarray(history.get("val_loss", []), dtype=float)
    fig = _figure(5, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(epochs, train, label="train", color="C0")
    if len(val) == len(train) and np.isfinite(val).any():
        ax.plot(epochs, val, label="validation", color="C1")
        best = int(np.nanargmin(val))
        ax.axvline(epochs[best], color="0.6", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training curves")
    ax.legend(fontsize=8)
    return _save(fig, path)
