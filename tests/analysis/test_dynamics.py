"""Fixed points, Jacobians and Lyapunov exponents against systems with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nwb_jedi.analysis.dynamics import (
    autograd_jacobian,
    model_initial_state,
    model_jacobian,
    model_step,
    trajectory_states,
)
from nwb_jedi.analysis.fixedpoints import classify, find_fixed_points, fixed_points
from nwb_jedi.analysis.lyapunov_exponents import lyapunov, lyapunov_spectrum
from nwb_jedi.analysis.spectra import condition_spectra, jacobian_spectrum
from nwb_jedi.errors import UserError

ALPHA = 0.2


def bistable_step(x: torch.Tensor) -> torch.Tensor:
    """Two uncoupled units x ↦ x + α(−x + 2 tanh x): each has fixed points 0 and ±x*."""
    return x + ALPHA * (-x + 2.0 * torch.tanh(x))


def _x_star() -> float:
    x = 2.0
    for _ in range(200):
        x = 2.0 * np.tanh(x)
    return x


def test_finds_all_nine_fixed_points_of_two_bistable_units():
    rng = np.random.default_rng(0)
    found = find_fixed_points(bistable_step, rng.uniform(-3, 3, (200, 2)))
    assert len(found) == 9
    xs = _x_star()
    expected = {(a, b) for a in (-xs, 0.0, xs) for b in (-xs, 0.0, xs)}
    for point in expected:
        distance = np.linalg.norm(found.locations - np.array(point), axis=1).min()
        assert distance < 1e-6
    assert np.all(found.speeds < 1e-10)
    counts = dict(zip(*np.unique(found.stability, return_counts=True), strict=True))
    assert counts == {"stable": 4, "saddle": 4, "unstable": 1}
    # Eigenvalues at the origin: 1 − α + 2α = 1 + α (twice).
    origin = np.argmin(np.linalg.norm(found.locations, axis=1))
    np.testing.assert_allclose(found.eigenvalues[origin], [1 + ALPHA] * 2, atol=1e-8)
    frame = found.to_frame()
    assert len(frame) == 9 and set(frame.columns) >= {"speed", "stability", "max_modulus"}


def test_slow_points_above_tolerance_are_dropped():
    # x ↦ x + 0.01: no fixed point anywhere; speed is 5e-5 everywhere.
    found = find_fixed_points(lambda x: x + 0.01, np.zeros((5, 3)), max_iters=50)
    assert len(found) == 0
    with pytest.raises(UserError):
        find_fixed_points(bistable_step, np.zeros((0, 2)))


def test_classify():
    assert list(classify(np.array([[0.5, 0.2j], [1.5, 2.0], [1.5, 0.5]]))) == [
        "stable", "unstable", "saddle"]


def test_model_jacobian_matches_autograd_and_finite_differences(small_jedi):
    step = model_step(small_jedi, 1)
    analytic = model_jacobian(small_jedi, 1)
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((3, small_jedi.n_units_)))
    auto = autograd_jacobian(step)(x)
    np.testing.assert_allclose(analytic(x).numpy(), auto.numpy(), atol=1e-10)
    eps = 1e-6
    fd = np.empty_like(auto.numpy())
    for j in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, j] = eps
        fd[:, :, j] = ((step(x + e) - step(x - e)) / (2 * eps)).numpy()
    np.testing.assert_allclose(analytic(x).numpy(), fd, atol=1e-7)


def test_model_step_matches_the_model_own_step(small_jedi):
    x = torch.randn(4, small_jedi.n_units_)
    ours = model_step(small_jedi, "c2")(x.double())
    theirs = small_jedi.step_fn("c2")(x)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    states = trajectory_states(model_step(small_jedi, 2), model_initial_state(small_jedi, 2), 30)
    np.testing.assert_allclose(np.tanh(states), small_jedi.simulate_states(2, 30), atol=1e-4)


def test_jacobian_spectrum_along_trajectory_and_at_fixed_points(small_jedi):
    spec = jacobian_spectrum(small_jedi, 0, along="trajectory", n_steps=20, stride=5)
    n = small_jedi.n_units_
    assert spec.eigenvalues.shape == (4, n) and list(spec.index) == [0, 5, 10, 15]
    # Low rank R: N − R eigenvalues of DF equal 1 − α exactly.
    alpha = small_jedi.alpha_
    near = np.isclose(spec.eigenvalues, 1 - alpha, atol=1e-8).sum(axis=1)
    assert np.all(near >= n - small_jedi.rank)
    fps = jacobian_spectrum(small_jedi, 0, along="fixed_points", n_initial=32, max_iters=300)
    assert fps.eigenvalues.shape[1] == n and fps.along == "fixed_points"
    with pytest.raises(UserError):
        jacobian_spectrum(small_jedi, 0, along="nowhere")
    spectra = condition_spectra(small_jedi)
    assert list(spectra) == ["c0", "c1", "c2"] and spectra["c0"].shape == (small_jedi.rank,)


def test_model_fixed_points_are_fixed(small_jedi):
    found = fixed_points(small_jedi, 1, n_initial=64, max_iters=500, seed=3)
    assert len(found) >= 1
    step = model_step(small_jedi, 1)
    with torch.no_grad():
        moved = step(torch.as_tensor(found.locations)).numpy() - found.locations
    assert np.abs(moved).max() < 1e-4
    again = fixed_points(small_jedi, 1, n_initial=64, max_iters=500, seed=3)
    np.testing.assert_array_equal(found.locations, again.locations)


def test_lyapunov_spectrum_of_a_linear_map():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((4, 4))
    A = basis @ np.diag([1.1, 0.9, -0.5, 0.2]) @ np.linalg.inv(basis)  # non-normal
    At = torch.as_tensor(A)

    def linear(x):
        return x @ At.T

    exps = lyapunov_spectrum(linear, rng.standard_normal((2, 4)), 400, n_exponents=3,
                             n_transient=50)
    np.testing.assert_allclose(exps, np.tile(np.log([1.1, 0.9, 0.5]), (2, 1)), atol=0.02)
    largest = lyapunov_spectrum(linear, rng.standard_normal(4), 400, n_transient=50)
    np.testing.assert_allclose(largest, [[np.log(1.1)]], atol=0.02)


def test_lyapunov_of_contracting_model(small_jedi):
    result = lyapunov(small_jedi, 0, n_steps=100, n_transient=20, n_exponents=2,
                      n_trajectories=2)
    assert result.per_trajectory.shape == (2, 2)
    assert result.per_step[0] >= result.per_step[1]
    np.testing.assert_allclose(result.per_second, result.per_step / small_jedi.bin_size_)
    # Every direction outside J's R-dim range contracts at exactly 1 − α per step, so the
    # exponents are bounded below by log(1 − α) in the low-rank model.
    assert result.per_step[1] >= np.log(1 - small_jedi.alpha_) - 1e-6
    with pytest.raises(UserError):
        lyapunov(small_jedi, 0, n_exponents=0)


def test_package_exports_call_the_analyses(small_jedi):
    import nwb_jedi.analysis as analysis

    found = analysis.fixed_points(small_jedi, 0, n_initial=8, max_iters=100)
    assert hasattr(found, "stability")
    assert analysis.lyapunov(small_jedi, 0, n_steps=10, n_transient=0).per_step.shape == (1,)
    assert callable(analysis.interpolate) and callable(analysis.split_phases)
    with pytest.raises(AttributeError):
        analysis.no_such_analysis  # noqa: B018


def test_trajectory_starts_begin_at_the_trajectory_mean():
    from nwb_jedi.analysis.fixedpoints import trajectory_starts

    angle = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    circle = np.stack([np.cos(angle), np.sin(angle)], 1) + 3.0  # a cycle around (3, 3)
    starts = trajectory_starts(circle, 8, 0.0, np.random.default_rng(0))
    assert starts.shape == (8, 2)
    np.testing.assert_allclose(starts[0], [3.0, 3.0], atol=1e-12)  # the centre it circles
    assert np.allclose(np.linalg.norm(starts[1:] - 3.0, axis=1), 1.0)  # the others: on it


def test_hungarian_matching_pairs_nearest_points():
    from nwb_jedi.analysis.fixedpoints import match_fixed_points

    a = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    b = a[[2, 0]] + 0.1  # two of the three, shuffled
    rows, cols, dist = match_fixed_points(a, b)
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 1, 2: 0}
    np.testing.assert_allclose(dist, np.sqrt(0.02))
    assert len(match_fixed_points(a, b[:0])[0]) == 0


def test_continuous_frequency_of_a_discrete_rotation():
    from nwb_jedi.analysis.spectra import continuous_eigenvalues, leading_frequency, top_modes

    dt, hz, decay = 0.02, 3.0, -2.0
    # The exact discrete map of s = decay ± 2πi·hz, to first order in dt.
    s = np.array([decay + 2j * np.pi * hz, decay - 2j * np.pi * hz, -50.0])
    discrete = 1 + s * dt
    np.testing.assert_allclose(continuous_eigenvalues(discrete, dt), s)
    assert leading_frequency(discrete, dt) == pytest.approx(hz)
    re, freq = top_modes(discrete[None], dt, k=2)
    assert re == pytest.approx(decay) and freq == pytest.approx(hz)


def test_model_trajectory_and_chosen_condition_spectra(small_jedi):
    from nwb_jedi.analysis.dynamics import model_trajectory

    states = model_trajectory(small_jedi, "c1", 25)
    expected = trajectory_states(model_step(small_jedi, 1), model_initial_state(small_jedi, 1),
                                 25)
    np.testing.assert_array_equal(states, expected)
    np.testing.assert_array_equal(states, jacobian_spectrum(small_jedi, 1, n_steps=25).states)
    chosen = condition_spectra(small_jedi, conditions=[2, "c0"])
    assert list(chosen) == ["c2", "c0"]
    np.testing.assert_array_equal(chosen["c2"], small_jedi.eigenvalues(2))
    with pytest.raises(UserError, match="unknown condition"):
        condition_spectra(small_jedi, conditions=["c9"])


def test_stability_summary_separates_j_from_the_step_jacobian(small_jedi):
    from nwb_jedi.analysis.spectra import jacobian_spectrum, stability_summary

    table = stability_summary(small_jedi, n_steps=20)
    assert list(table["label"]) == list(small_jedi.conditions_["label"])
    for row in range(len(table)):
        values = small_jedi.eigenvalues(row)
        assert table["J_leading_modulus"][row] == pytest.approx(np.abs(values).max())
        radius = np.abs(jacobian_spectrum(small_jedi, row, n_steps=20).eigenvalues).max()
        assert table["DF_max_radius"][row] == pytest.approx(radius)
        assert table["DF_inside_unit_circle"][row] == (radius < 1)
    # DF = (1 - α)I + αJ diag(1 - tanh²): its radius is at most (1 - α) + α ‖J‖.
    alpha = small_jedi.alpha_
    bound = (1 - alpha) + alpha * np.abs(small_jedi.eigenvalues(0)).max() * 10
    assert (table["DF_max_radius"] >= 1 - alpha - 1e-9).all() and (
        table["DF_max_radius"] < bound).all()
