"""Binning equals a naive exact reference, including spikes exactly on the edges of a 1 ms grid."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nwb_jedi.data.binning import (
    bin_index,
    bin_spikes,
    merge_intervals,
    n_bins_for,
    resample_behavior,
    smooth_counts,
    smoothing_matrix,
    windows_within,
)


def naive_counts_ticks(spikes_ms, starts_ms, n_bins, bin_ms):
    """Reference in exact integer milliseconds: bin = (t - t0) // bin, half-open windows."""
    out = np.zeros((len(starts_ms), n_bins, len(spikes_ms)))
    for u, spikes in enumerate(spikes_ms):
        for k, t0 in enumerate(starts_ms):
            for t in spikes:
                j = (t - t0) // bin_ms
                if 0 <= j < n_bins:
                    out[k, j, u] += 1
    return out


grid_case = st.integers(min_value=1, max_value=3).flatmap(lambda n_units: st.tuples(
    st.lists(st.lists(st.integers(0, 4000), max_size=60), min_size=n_units, max_size=n_units),
    st.lists(st.integers(0, 3500), min_size=1, max_size=8),
    st.sampled_from([1, 2, 5, 10, 20, 25, 50]),
    st.integers(1, 30),
    st.sampled_from([0, 1_000, 123_456, 9_876_543]),  # offsets in ms: large absolute times
))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grid_case)
def test_bin_spikes_matches_exact_reference_on_1ms_grid(case):
    spikes_ms, starts_ms, bin_ms, n_bins, offset = case
    spikes_ms = [sorted(s) for s in spikes_ms]
    # make many spikes sit exactly on edges: add each window's edges as spikes of unit 0
    edge_spikes = sorted(set(spikes_ms[0]) | {t0 + j * bin_ms for t0 in starts_ms
                                              for j in range(n_bins + 1)})
    spikes_ms[0] = edge_spikes
    spikes_ms = [[t + offset for t in s] for s in spikes_ms]
    starts_ms = [t + offset for t in starts_ms]
    expected = naive_counts_ticks(spikes_ms, starts_ms, n_bins, bin_ms)
    # floats as a file would store them: the decimal value of each ms tick
    spikes_s = [np.array([t / 1000 for t in s]) for s in spikes_ms]
    starts_s = np.array([t / 1000 for t in starts_ms])
    got = bin_spikes(spikes_s, starts_s, n_bins, bin_ms / 1000)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_alignment_plus_window_start_keeps_edge_spikes():
    """t0 = event + window start is computed in floats; edge spikes must stay in their bin."""
    rng = np.random.default_rng(0)
    event_ms = np.sort(rng.integers(1_000, 5_000_000, size=400))
    spikes_ms = np.unique(np.concatenate([event_ms - 250 + 5 * j for j in range(140)]))
    spikes = spikes_ms / 1000
    events = event_ms / 1000
    counts = bin_spikes([spikes], events + (-0.25), 140, 0.005)
    # every bin starts with exactly one spike on its left edge (windows may overlap: >= 1)
    assert counts.min() >= 1
    expected = naive_counts_ticks([spikes_ms.tolist()], (event_ms - 250).tolist(), 140, 5)
    np.testing.assert_array_equal(counts, expected)


off_grid_case = st.tuples(
    st.lists(st.floats(0, 10, allow_nan=False), max_size=80),
    st.lists(st.floats(0, 9, allow_nan=False), min_size=1, max_size=5),
    st.floats(1e-3, 0.5),
    st.integers(1, 20),
)


@settings(max_examples=150, deadline=None)
@given(off_grid_case)
def test_bin_spikes_matches_exact_rational_reference_off_grid(case):
    spikes, starts, bin_size, n_bins = case
    spikes = np.sort(np.array(spikes, dtype=float))
    bin_f = Fraction(bin_size)
    expected = np.zeros((len(starts), n_bins, 1))
    for k, t0 in enumerate(starts):
        for t in spikes:
            x = (Fraction(float(t)) - Fraction(t0)) / bin_f
            j = x.numerator // x.denominator
            # the documented 1 ns guard counts times within 1 ns below an edge as on it;
            # off the grid, keep clear of that band so the exact floor is the reference
            dist_to_next_edge = (1 - (x - j)) * bin_f
            assume(dist_to_next_edge > Fraction(2e-9))
            if 0 <= j < n_bins:
                expected[k, j, 0] += 1
    got = bin_spikes([spikes], np.array(starts), n_bins, bin_size)
    np.testing.assert_array_equal(got, expected)


def test_bin_index_floor_semantics():
    # 0.3 / 0.1 = 2.9999999999999996 in floats: naive floor says bin 2, the edge says bin 3
    assert np.floor((0.3 - 0.0) / 0.1) == 2
    assert bin_index(np.array([0.3]), 0.0, 0.1)[0] == 3
    assert list(bin_index(np.array([-0.001, 0.0, 0.0999, 0.1]), 0.0, 0.1)) == [-1, 0, 0, 1]


def test_n_bins_for():
    assert n_bins_for((-0.25, 0.45), 0.005) == 140
    assert n_bins_for((0.1, 0.5), 0.02) == 20
    with pytest.raises(ValueError, match="whole number"):
        n_bins_for((0, 0.1), 0.03)
    with pytest.raises(ValueError, match="stop > start"):
        n_bins_for((0.2, 0.1), 0.01)


def naive_resample(ts, data, starts, n_bins, bin_size):
    out = np.full((len(starts), n_bins, data.shape[1]), np.nan)
    for k, t0 in enumerate(starts):
        for j in range(n_bins):
            lo, hi = t0 + j * bin_size, t0 + (j + 1) * bin_size
            sel = (ts >= lo - 1e-9) & (ts < hi - 1e-9)
            if sel.any():
                out[k, j] = data[sel].mean(axis=0)
            else:
                c = t0 + (j + 0.5) * bin_size
                for d in range(data.shape[1]):
                    out[k, j, d] = np.interp(c, ts, data[:, d], left=np.nan, right=np.nan)
    return out


@pytest.mark.parametrize("rate,bin_size", [(1000.0, 0.005), (100.0, 0.005), (1000.0, 0.02)])
def test_resample_behavior_matches_naive(rate, bin_size):
    rng = np.random.default_rng(1)
    ts = np.arange(0, 5, 1 / rate)
    data = rng.normal(size=(len(ts), 2)).cumsum(axis=0)
    starts = np.array([-0.05, 0.5, 1.234, 4.99])
    got = resample_behavior(ts, data, starts, 20, bin_size)
    want = naive_resample(ts, data, starts, 20, bin_size)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert np.isnan(got[0, 0]).all()  # before the series starts
    assert np.isnan(got[-1, -1]).all()  # after it ends


def test_resample_ignores_nan_samples():
    ts = np.arange(10) * 0.001
    data = np.arange(10, dtype=float)[:, None]
    data[3] = np.nan
    got = resample_behavior(ts, data, np.array([0.0]), 2, 0.005)
    np.testing.assert_allclose(got[0, :, 0], [np.mean([0, 1, 2, 4]), np.mean([5, 6, 7, 8, 9])])


def test_windows_within_and_merge():
    intervals = np.array([[5.0, 8.0], [0.0, 2.0], [2.0, 3.0]])
    np.testing.assert_array_equal(merge_intervals(intervals), [[0, 3], [5, 8]])
    starts = np.array([0.0, 1.5, 2.5, 4.0, 5.0, 7.5])
    stops = starts + 0.5
    np.testing.assert_array_equal(windows_within(starts, stops, intervals),
                                  [True, True, True, False, True, True])
    assert not windows_within(np.array([7.6]), np.array([8.1]), intervals)[0]


def test_smoothing_keeps_levels_and_interior_mass():
    rng = np.random.default_rng(2)
    counts = rng.poisson(2, size=(3, 50, 4)).astype(np.float32)
    smoothed = smooth_counts(counts, 0.02, 0.005)
    assert smoothed.std() < counts.std()
    np.testing.assert_array_equal(smooth_counts(counts, None, 0.005), counts)
    # A constant rate stays constant up to the edges (no pull toward zero there)...
    np.testing.assert_allclose(smooth_counts(np.full((1, 50, 2), 3.0), 0.02, 0.005), 3.0,
                               rtol=1e-6)
    # ...and a spike far from the edges keeps its mass, spread over neighbouring bins.
    impulse = np.zeros((1, 50, 1))
    impulse[0, 25, 0] = 1.0
    spread = smooth_counts(impulse, 0.02, 0.005)
    assert spread.sum() == pytest.approx(1.0, rel=1e-5) and spread.max() < 0.2


@pytest.mark.parametrize("sd", [0.0, 0.004, 0.04, 0.5])
def test_the_smoothing_matrix_is_the_smoother(sd):
    """JEDI smooths each minibatch's targets with this matrix (no smoothed copy of the whole
    dataset), so it must give what smooth_counts gives, edges included."""
    counts = np.random.default_rng(3).poisson(2, size=(4, 37, 5)).astype(np.float64)
    matrix = smoothing_matrix(37, sd, 0.01)
    np.testing.assert_allclose(np.matmul(matrix, counts), smooth_counts(counts, sd, 0.01),
                               rtol=1e-6, atol=1e-6)
