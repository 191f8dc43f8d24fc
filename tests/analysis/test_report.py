"""The analysis report computes each analysis once, and its summary and fields agree with the
analyses run one by one."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.analysis import fixedpoints
from nwb_jedi.analysis.embedding import embedding_distances
from nwb_jedi.analysis.report import AnalysisReport, analysis_report
from nwb_jedi.analysis.spectra import condition_spectra, jacobian_spectrum
from nwb_jedi.errors import UserError


@pytest.fixture
def count_searches(monkeypatch):
    """Every fixed-point search (whoever runs it), as the number of starts of each."""
    searches: list[int] = []
    search = fixedpoints._search

    def counting(step, init, *args, **kwargs):
        searches.append(len(init))
        return search(step, init, *args, **kwargs)

    monkeypatch.setattr(fixedpoints, "_search", counting)
    return searches


@pytest.fixture(scope="module")
def report(small_jedi, oscillation_dataset) -> AnalysisReport:
    return analysis_report(small_jedi, oscillation_dataset, fixed_point_conditions=2,
                           n_initial=16, seed=1)


def test_report_holds_the_analyses(report, small_jedi, oscillation_dataset):
    ds = oscillation_dataset
    assert report.labels == ["c0", "c1", "c2"] and report.model_name == "JEDI"
    assert report.n_bins == ds.n_bins and report.n_units == small_jedi.n_units_
    for label, values in condition_spectra(small_jedi).items():
        np.testing.assert_array_equal(report.j_spectra[label], values)
    for i, label in enumerate(report.labels):
        expected = jacobian_spectrum(small_jedi, i, n_steps=ds.n_bins)
        np.testing.assert_array_equal(report.jacobian_spectra[label].eigenvalues,
                                      expected.eigenvalues)
    assert list(report.fixed_points) == ["c0", "c1"] == list(report.trajectories)
    again = fixedpoints.fixed_points(small_jedi, 1, n_initial=16, n_steps=ds.n_bins, seed=1)
    np.testing.assert_array_equal(report.fixed_points["c1"].locations, again.locations)
    np.testing.assert_array_equal(report.trajectories["c0"],
                                  report.jacobian_spectra["c0"].states)
    np.testing.assert_array_equal(report.distances, embedding_distances(small_jedi))
    assert report.held_out and report.scored.n_trials == ds.test.n_trials
    np.testing.assert_array_equal(report.rates, small_jedi.predict_rates(ds.test))
    assert report.scores == pytest.approx(small_jedi.evaluate(ds.test))
    assert report.has_history


def test_summary_lines(report, small_jedi):
    lines = report.summary_lines("fit.nwb")
    assert lines[0] == (f"fit.nwb: JEDI with 3 conditions, {small_jedi.n_units_} neurons, "
                        f"rank 3, embedding size 3, 30 bins of 20 ms")
    # Each spectrum against its own boundary: J's real parts against Re λ = 1, the step
    # Jacobian's moduli against |λ| = 1 (issue 14: the unit circle is not J's boundary).
    leading = {k: float(v.real.max()) for k, v in report.j_spectra.items()}
    low, high = min(leading, key=leading.get), max(leading, key=leading.get)
    beyond = sum(v > 1 for v in leading.values())
    assert lines[1].startswith(f"J (connectivity) eigenvalues: largest Re λ {leading[low]:.3f} "
                               f"({low}) to {leading[high]:.3f} ({high}); ")
    assert ("every condition below Re λ = 1" in lines[1]) == (beyond == 0)
    radius = report.spectral_radius
    assert lines[2].startswith(f"step Jacobian DF along trajectories: spectral radius "
                               f"{min(radius.values()):.3f} to {max(radius.values()):.3f}; ")
    assert "|λ| = 1" in lines[2]
    counts = report.fixed_point_counts()
    assert lines[3].startswith("fixed points of 2 of 3 conditions, the first 2 (stable: DF's "
                               "eigenvalues all inside |λ| = 1): ")
    assert "; c0: " in lines[3] and "; c1: " in lines[3]
    assert sum(counts["c0"].values()) == len(report.fixed_points["c0"])
    first, second, distance = report.closest_pair()
    assert lines[4].endswith(f"closest pair {first} / {second} ({distance:.3f})")
    assert lines[5].startswith(f"held-out trials ({report.scored.n_trials}): bits/spike "
                               f"{report.scores['bits_per_spike']:.3f}")
    assert len(lines) == 6


def test_each_fixed_point_search_runs_once(small_jedi, oscillation_dataset, count_searches,
                                           tmp_path):
    from nwb_jedi.analysis import plots

    report = analysis_report(small_jedi, oscillation_dataset, fixed_point_conditions=["c2"],
                             n_initial=8)
    assert count_searches == [8]
    plots.plot_fixed_points(report.trajectories, report.fixed_points, tmp_path / "fp.png")
    assert count_searches == [8]  # drawing searches nothing
    analysis_report(small_jedi, oscillation_dataset, fixed_point_conditions=0)
    assert count_searches == [8]


def test_report_without_held_out_trials_scores_all(small_jedi, oscillation_dataset):
    train = oscillation_dataset.train
    report = analysis_report(small_jedi, train, fixed_point_conditions=0)
    assert not report.held_out and report.scored.n_trials == train.n_trials
    assert report.fixed_points == {} and report.trajectories == {}
    lines = report.summary_lines("x")
    assert not any(line.startswith("fixed points") for line in lines)
    assert lines[-1].startswith(f"all trials ({train.n_trials}): ")


def test_report_refuses_bad_conditions(small_jedi, oscillation_dataset):
    with pytest.raises(UserError, match="0 or more"):
        analysis_report(small_jedi, oscillation_dataset, fixed_point_conditions=-1)
    with pytest.raises(UserError, match="unknown condition"):
        analysis_report(small_jedi, oscillation_dataset, fixed_point_conditions=["c7"])


def test_fixed_points_cover_every_condition_by_default_and_say_which(
        small_jedi, oscillation_dataset, count_searches, monkeypatch):
    from nwb_jedi.analysis import report as report_module

    every = analysis_report(small_jedi, oscillation_dataset, n_initial=4)
    assert list(every.fixed_points) == ["c0", "c1", "c2"]  # was the first 4 (or fewer)
    assert every.fixed_point_choice == "every condition"
    assert "fixed points of 3 of 3 conditions, every condition " in \
        every.summary_lines("x")[3]
    monkeypatch.setattr(report_module, "MAX_FIXED_POINT_CONDITIONS", 2)
    spread = analysis_report(small_jedi, oscillation_dataset, n_initial=4)
    assert list(spread.fixed_points) == ["c0", "c2"]  # first and last: spread evenly
    assert spread.fixed_point_choice == "spread evenly over the conditions"
    assert list(analysis_report(small_jedi, oscillation_dataset, n_initial=4,
                                fixed_point_conditions="all").fixed_points) == ["c0", "c1", "c2"]
    with pytest.raises(UserError, match="'auto', 'all', a number or condition labels"):
        analysis_report(small_jedi, oscillation_dataset, fixed_point_conditions="some")
