"""plan_grid / GridRates: every trial's window on one regular grid, exactly where the phases
agree, within half a bin elsewhere; overlaps refused; only touched chunks written."""

from __future__ import annotations

import numpy as np

from nwb_jedi.io.rates_grid import GridRates, plan_grid

TIME = -0.25 + 0.01 + 0.02 * np.arange(35)  # MC_Maze preset: 35 bins of 20 ms from -250 ms


def test_windows_on_one_phase_land_exactly():
    align = 1.25 + 1.5 * np.arange(10)
    grid = plan_grid(align, TIME, 0.02)
    assert grid.n_exact == 10 and grid.max_shift < 1e-9 and grid.session_times
    np.testing.assert_allclose(grid.starting_time + grid.starts * grid.step, align + TIME[0])
    assert grid.n_samples == grid.starts.max() + 35


def test_the_most_common_phase_wins_and_the_others_move_at_most_half_a_bin():
    rng = np.random.default_rng(0)
    align = np.round(2.0 + 1.5 * np.arange(40) + rng.integers(0, 20, 40) * 0.001, 3)
    align[:25] = np.round(2.0 + 1.5 * np.arange(25), 3)  # 25 trials share one phase
    grid = plan_grid(align, TIME, 0.02)
    assert grid.n_exact >= 25
    assert grid.max_shift <= 0.01 + 1e-9
    assert "shifted by at most" in grid.describe()


def test_overlapping_windows_have_no_grid():
    assert plan_grid(1.0 + 0.3 * np.arange(5), TIME, 0.02) is None  # 0.7 s windows, 0.3 s apart


def test_trials_without_session_times_are_laid_back_to_back():
    grid = plan_grid(np.full(4, np.nan), TIME, 0.02)
    assert not grid.session_times and list(grid.starts) == [0, 35, 70, 105]
    assert "not session times" in grid.describe()


def test_only_chunks_with_modelled_samples_are_yielded():
    align = np.array([1.25, 400.25])  # far apart: most of the grid is padding
    grid = plan_grid(align, TIME, 0.02)
    rates = np.arange(2 * 35 * 3, dtype=np.float32).reshape(2, 35, 3)
    chunks = list(GridRates(rates, grid))
    assert len(chunks) <= 4 and grid.n_samples > 10 * 1024
    full = np.full((grid.n_samples, 3), np.nan, dtype=np.float32)
    for chunk in chunks:
        full[chunk.selection] = chunk.data
    for k in range(2):
        np.testing.assert_array_equal(full[grid.starts[k]:grid.starts[k] + 35], rates[k])
    assert np.sum(np.isfinite(full[:, 0])) == 70
