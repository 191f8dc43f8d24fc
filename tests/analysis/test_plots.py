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


# ---------------------------------------------------------------------- what figures mean
def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_j_spectra_against_re_lambda_1_with_shared_scales(small_jedi, tmp_path):
    spectra = condition_spectra(small_jedi)
    fig = plots.plot_eigenvalues(spectra, tmp_path / "eig.png")
    _check_png(tmp_path / "eig.png")
    axes = _visible(fig)
    assert "connectivity J" in fig._suptitle.get_text() and "Re λ = 1" in \
        fig._suptitle.get_text()
    assert {ax.get_xlim() for ax in axes} == {axes[0].get_xlim()}  # one scale for all
    assert {ax.get_ylim() for ax in axes} == {axes[0].get_ylim()}
    assert any(ax.get_xlabel() == "Re λ(J)" for ax in axes)
    assert axes[0].get_ylabel() == "Im λ(J)"
    # The boundary drawn is the vertical line Re λ = 1, not a circle.
    for ax in axes:
        xs = [tuple(np.unique(line.get_xdata())) for line in ax.get_lines()
              if line.get_linestyle() == "--"]
        assert (1.0,) in xs
    low, high = axes[0].get_xlim()
    values = np.concatenate(list(spectra.values()))
    assert low < min(values.real.min(), 0) and high > max(values.real.max(), 1)


def test_step_jacobian_spectra_against_the_unit_circle(small_jedi, tmp_path):
    from nwb_jedi.analysis.spectra import jacobian_spectrum

    spectra = {c: jacobian_spectrum(small_jedi, c, n_steps=20) for c in ("c0", "c1")}
    fig = plots.plot_eigenvalues(spectra, tmp_path / "jac.png")
    _check_png(tmp_path / "jac.png")
    title = fig._suptitle.get_text()
    assert "step's Jacobian DF" in title and "|λ| = 1" in title and "colour: time step" in title
    axes = _visible(fig)
    assert axes[0].get_xlabel() == "Re λ(DF)" and axes[0].get_ylabel() == "Im λ(DF)"
    assert {ax.get_xlim() for ax in axes} == {axes[0].get_xlim()}
    circle = [line for line in axes[0].get_lines() if len(line.get_xdata()) > 100]
    assert circle and np.allclose(np.hypot(circle[0].get_xdata(), circle[0].get_ydata()), 1)
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert colorbars and "time step" in colorbars[0].get_ylabel()


def test_psth_figure_names_the_event_the_trials_and_the_choice(tmp_path):
    from nwb_jedi.data.dataset import TrialDataset
    from nwb_jedi.data.provenance import Provenance

    rng = np.random.default_rng(0)
    condition = np.arange(140) % 7
    rates = 10 + 8 * np.sin(np.arange(25)[None, :, None] / 4 + condition[:, None, None]
                            + np.arange(12)[None, None, :])
    ds = TrialDataset.from_arrays(rng.poisson(rates * 0.02), [f"r{c}" for c in condition],
                                  0.02, provenance=Provenance(mapper={"align": "go_cue_time"}))
    test = ds.test
    fig = plots.plot_psth(rates[ds.split == "test"], test, tmp_path / "psth.png")
    _check_png(tmp_path / "psth.png")
    axes = _visible(fig)
    assert len(axes) == plots.PSTH_NEURONS
    assert all(ax.get_xlabel() == "time from go_cue_time (s)" for ax in axes)
    assert all(len(ax.get_lines()) == 2 * plots.PSTH_CONDITIONS for ax in axes)  # was 14
    title = fig._suptitle.get_text()
    assert f"{test.n_trials} held-out (test) trials" in title
    assert "4 of 7 conditions, spread evenly" in title
    assert "the 6 neurons with the highest mean rate" in title
    # Rendered, no x label runs into the title of the panel below it.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ncols = 3
    for upper, lower in zip(axes[:-ncols], axes[ncols:], strict=True):
        label = upper.xaxis.label.get_window_extent(renderer)
        title_box = lower.title.get_window_extent(renderer)
        assert label.y0 > title_box.y1, (upper.get_title(), lower.get_title())


def test_embeddings_of_two_conditions_are_one_dimensional(small_jedi, tmp_path):
    points = np.asarray(small_jedi.embeddings_)[:2]
    fig = plots.plot_embeddings(points, tmp_path / "two.png", conditions=["a", "b"])
    _check_png(tmp_path / "two.png", min_bytes=4000)
    ax = fig.axes[0]
    assert list(ax.get_yticks()) == [] and "one direction they span" in ax.get_title()
    assert ax.get_xlabel() == "PC 1 (100% of the variance across conditions)"
    three = plots.plot_embeddings(small_jedi)
    assert three.axes[0].get_ylabel().startswith("PC 2 (")


def test_embedding_labels_show_values_and_the_legend_hides_no_point(tmp_path):
    import pandas as pd

    from nwb_jedi.analysis.embedding import condition_attributes, embedding_labels

    rng = np.random.default_rng(0)
    conditions = pd.DataFrame({"trial_type": ["sine"] * 3 + ["memorypro"] * 3,
                               "trial_version": [0, 1, 2, 0, 1, 2]})
    conditions["label"] = conditions["trial_type"] + "/" + conditions["trial_version"].astype(
        str)
    condition = np.repeat(np.arange(6), 4)
    trials = pd.DataFrame({"condition_value": np.array([0.5, 1.0, 2.0, 0.0, 90.0, 180.0])[
        condition], "go_cue_time": rng.uniform(0, 100, 24), "success": np.ones(24)})
    table = condition_attributes(conditions, condition, trials)
    assert list(table.columns) == ["trial_type", "trial_version", "label", "condition_value"]
    assert embedding_labels(table) == ("trial_type", "condition_value")
    assert embedding_labels(conditions) == ("trial_type", "label")
    fig = plots.plot_embeddings(rng.standard_normal((6, 4)), tmp_path / "labels.png",
                                conditions=table, color_by="trial_type",
                                annotate_by="condition_value")
    _check_png(tmp_path / "labels.png", min_bytes=5000)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0.5", "1", "2", "0", "90", "180"])
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # outside the axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sine", "memorypro"]


def test_fixed_point_and_training_figures_say_what_they_show(small_jedi, tmp_path):
    trajectories = {c: model_trajectory(small_jedi, c, 30) for c in ("c0", "c1")}
    found = {c: fixed_points(small_jedi, c, n_initial=8, max_iters=100) for c in trajectories}
    fig = plots.plot_fixed_points(trajectories, found, tmp_path / "fp.png")
    title = fig.axes[0].get_title()
    assert "fixed points of 2 conditions" in title and "|λ| = 1" in title
    assert fig.axes[0].get_xlabel().startswith("PC 1") and fig.axes[0].get_ylabel()
    fig = plots.plot_training(small_jedi, tmp_path / "train.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and "negative log-likelihood" in ax.get_ylabel()
    assert any(t.get_text().startswith("best epoch ") for t in ax.get_legend().get_texts())


def test_a_one_panel_psth_keeps_its_title_clear_of_the_legend(tmp_path):
    from nwb_jedi.data.dataset import TrialDataset

    rng = np.random.default_rng(0)
    condition = np.arange(40) % 2
    rates = 5 + 4 * np.sin(np.arange(25)[None, :, None] / 4 + condition[:, None, None])
    ds = TrialDataset.from_arrays(rng.poisson(rates * 0.02), [f"c{c}" for c in condition], 0.02)
    fig = plots.plot_psth(rates[ds.split == "test"], ds.test, tmp_path / "psth.png")
    _check_png(tmp_path / "psth.png")
    title = fig._suptitle.get_text()
    assert "the neuron with the highest mean rate" in title  # not "the 1 neurons"
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title_box = fig._suptitle.get_window_extent(renderer)
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert title_box.x1 <= legend_box.x0 or title_box.y0 >= legend_box.y1
    assert title_box.x0 >= 0 and title_box.x1 <= fig.bbox.width  # nothing cut off


def test_a_one_neuron_network_is_drawn_against_time():
    from nwb_jedi.analysis.fixedpoints import FixedPoints

    trajectories = {"a": np.linspace(3.0, 1.0, 20)[:, None], "b": np.full((20, 1), -1.0)}
    found = {"a": FixedPoints(locations=np.array([[1.0]]), speeds=np.zeros(1),
                              eigenvalues=np.array([[0.5]]), stability=np.array(["stable"]),
                              n_initial=1)}
    fig = plots.plot_fixed_points(trajectories, found)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("time step") and "one neuron" in ax.get_ylabel()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), trajectories["a"][:, 0])
