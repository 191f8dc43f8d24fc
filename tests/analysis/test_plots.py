"""Every figure is written as a valid, non-trivial PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from nwb_jedi._files import TMP_MARK
from nwb_jedi.analysis import plots
from nwb_jedi.analysis.dynamics import model_trajectory
from nwb_jedi.analysis.fixedpoints import fixed_points
from nwb_jedi.analysis.spectra import condition_spectra
from nwb_jedi.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_bytes=8000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    # Not a blank canvas: decode and look for several distinct colours.
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20
    assert not list(path.parent.glob(f"*{TMP_MARK}*"))


def test_embeddings_plot(small_jedi, tmp_path, oscillation_dataset):
    fig = plots.plot_embeddings(small_jedi, tmp_path / "emb.png")
    assert isinstance(fig, Figure)
    _check_png(tmp_path / "emb.png")
    rng = np.random.default_rng(0)
    plots.plot_embeddings(small_jedi, tmp_path / "sub" / "trials.png",
                          embeddings=small_jedi.embeddings_[[0, 1, 2, 0]]
                          + 0.1 * rng.standard_normal((4, 3)),
                          labels=["c0", "c1", "c2", "c0"])
    _check_png(tmp_path / "sub" / "trials.png")
    with pytest.raises(UserError):
        plots.plot_embeddings(small_jedi, tmp_path / "x.png", color_by="task")


def test_eigenvalue_plot(small_jedi, tmp_path):
    plots.plot_eigenvalues(condition_spectra(small_jedi), tmp_path / "eig.png")
    _check_png(tmp_path / "eig.png")
    plots.plot_eigenvalues({"a": np.array([0.5 + 0.5j, 0.5 - 0.5j]), "b": np.array([1.5])},
                           tmp_path / "eig2.png", title="custom")
    _check_png(tmp_path / "eig2.png")
    with pytest.raises(UserError):
        plots.plot_eigenvalues({}, tmp_path / "none.png")


def test_psth_plot(small_jedi, oscillation_dataset, tmp_path):
    test = oscillation_dataset.test
    plots.plot_psth(small_jedi.predict_rates(test), test, tmp_path / "psth.png",
                    neurons=[0, 3, 5])
    _check_png(tmp_path / "psth.png")


def test_fixed_point_plot(small_jedi, tmp_path):
    trajectories = {c: model_trajectory(small_jedi, c, 60) for c in ("c0", "c2")}
    found = {c: fixed_points(small_jedi, c, n_initial=32, max_iters=300) for c in trajectories}
    plots.plot_fixed_points(trajectories, found, tmp_path / "fp.png")
    _check_png(tmp_path / "fp.png")


def test_training_plot(small_jedi, tmp_path):
    plots.plot_training(small_jedi, tmp_path / "train.png")
    _check_png(tmp_path / "train.png", min_bytes=5000)
    with pytest.raises(UserError):
        plots.plot_training({"train_loss": []}, tmp_path / "empty.png")


def test_plots_draw_into_given_axes_and_write_only_with_a_path(small_jedi, oscillation_dataset,
                                                                tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = Figure()
    axes = fig.subplots(2, 3)
    test = oscillation_dataset.test
    spectra = condition_spectra(small_jedi)
    trajectories = {"c1": model_trajectory(small_jedi, "c1", 30)}
    drawn = [
        plots.plot_embeddings(small_jedi, ax=axes[0, 0]),
        plots.plot_training(small_jedi.history_, ax=axes[0, 1]),
        plots.plot_psth(small_jedi.predict_rates(test), test, neurons=[2], ax=axes[0, 2]),
        plots.plot_eigenvalues(spectra, ax=axes[1]),  # 3 conditions: one Axes each
    ]
    assert all(f is fig for f in drawn)
    assert all(ax.has_data() for ax in axes.ravel())
    assert not fig.texts  # no suptitle: the caller's figure keeps its own title
    sub = Figure().subfigures(1, 2)[1]
    assert plots.plot_fixed_points(trajectories, ax=sub.add_subplot()) is sub.figure
    assert list(tmp_path.iterdir()) == []  # nothing written without a path
    with pytest.raises(UserError, match="one Axes per panel"):
        plots.plot_eigenvalues(spectra, ax=axes[0, 0])
    new = plots.plot_eigenvalues(spectra, conditions=["c2", 0])
    titles = [a.get_title() for a in new.axes if a.get_visible()]
    assert new is not fig and titles == ["c2", "c0"]


def test_embeddings_plot_from_arrays(tmp_path):
    points = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.5], [2.0, 2.0, 1.0]])
    plots.plot_embeddings(points, tmp_path / "a.png", conditions=["x", "y", "z"])
    _check_png(tmp_path / "a.png", min_bytes=5000)
    import pandas as pd

    table = pd.DataFrame({"label": ["x", "y", "z"], "group": ["g", "g", "h"]})
    fig = plots.plot_embeddings(points, conditions=table, color_by="group")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["g", "h"]
    with pytest.raises(UserError, match="a label for each"):
        plots.plot_embeddings(points, conditions=["x"])
    with pytest.raises(UserError, match="fitted model or condition embeddings"):
        plots.plot_embeddings(points[0])


def test_plots_take_results_not_models(small_jedi, oscillation_dataset):
    with pytest.raises(UserError, match="condition_spectra"):
        plots.plot_eigenvalues(small_jedi)
    with pytest.raises(UserError, match="predict_rates"):
        plots.plot_psth(small_jedi, oscillation_dataset.test)
    with pytest.raises(UserError, match="rates predicted for these trials"):
        plots.plot_psth(np.zeros((2, 3, 4)), oscillation_dataset.test)
    with pytest.raises(UserError, match="trajectory"):
        plots.plot_fixed_points(small_jedi)
    with pytest.raises(UserError, match="no trajectory"):
        plots.plot_fixed_points({"c0": model_trajectory(small_jedi, 0, 10)},
                                {"c1": fixed_points(small_jedi, 1, n_initial=4, max_iters=10)})
