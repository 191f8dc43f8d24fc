"""Every figure is written as a valid, non-trivial PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from nwb_jedi._files import TMP_MARK
from nwb_jedi.analysis import plots
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
    plots.plot_eigenvalues(small_jedi, tmp_path / "eig.png")
    _check_png(tmp_path / "eig.png")
    plots.plot_eigenvalues({"a": np.array([0.5 + 0.5j, 0.5 - 0.5j]), "b": np.array([1.5])},
                           tmp_path / "eig2.png", title="custom")
    _check_png(tmp_path / "eig2.png")
    with pytest.raises(UserError):
        plots.plot_eigenvalues({}, tmp_path / "none.png")


def test_psth_plot(small_jedi, oscillation_dataset, tmp_path):
    plots.plot_psth(small_jedi, oscillation_dataset.test, tmp_path / "psth.png",
                    neurons=[0, 3, 5])
    _check_png(tmp_path / "psth.png")


def test_fixed_point_plot(small_jedi, tmp_path):
    plots.plot_fixed_points(small_jedi, tmp_path / "fp.png", conditions=[0, "c2"], n_steps=60,
                            fixed_point_kwargs={"n_initial": 32, "max_iters": 300})
    _check_png(tmp_path / "fp.png")


def test_training_plot(small_jedi, tmp_path):
    plots.plot_training(small_jedi, tmp_path / "train.png")
    _check_png(tmp_path / "train.png", min_bytes=5000)
    with pytest.raises(UserError):
        plots.plot_training({"train_loss": []}, tmp_path / "empty.png")
