"""Phase-specific contexts: cutting trials into (condition, phase) windows."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.analysis.phases import phase_spectra, split_phases, summarize_phase_spectra
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError


@pytest.fixture()
def trials() -> TrialDataset:
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (8, 20, 3))
    time = np.arange(20) * 0.01 - 0.095  # centres -0.095 … 0.095
    behavior = {"hand": rng.standard_normal((8, 20, 2))}
    return TrialDataset.from_arrays(counts, ["a", "b"] * 4, 0.01, time=time, seed=0,
                                    trial_ids=np.arange(100, 108), behavior=behavior,
                                    align_time=np.arange(8) * 10.0,
                                    ground_truth={"trial_rates": counts * 2.0,
                                                  "trial_target": np.arange(8),
                                                  "weights": np.eye(2)})


def test_split_into_phases(trials):
    out = split_phases(trials, [("prep", -0.1, -0.05), ("exec", 0.0, 0.05)])
    assert out.n_trials == 16 and out.n_bins == 5
    assert list(out.conditions["label"]) == ["a/prep", "a/exec", "b/prep", "b/exec"]
    assert list(out.conditions["phase"]) == ["prep", "exec", "prep", "exec"]
    # Trial 1 (condition b) exec piece is trial 1's bins 10..14.
    np.testing.assert_array_equal(out.counts[3], trials.counts[1, 10:15])
    np.testing.assert_array_equal(out.counts[2], trials.counts[1, 0:5])
    assert out.condition_labels[3] == "b/exec" and out.trial_id[3] == "101/exec"
    np.testing.assert_array_equal(out.split[::2], trials.split)
    np.testing.assert_array_equal(out.split[1::2], trials.split)
    np.testing.assert_allclose(out.time, (np.arange(5) + 0.5) * 0.01)
    assert out.align_time[3] == pytest.approx(10.0 + 0.0)
    assert out.align_time[2] == pytest.approx(10.0 - 0.1)
    np.testing.assert_array_equal(out.behavior["hand"][3], trials.behavior["hand"][1, 10:15])
    np.testing.assert_array_equal(out.ground_truth["trial_rates"][3],
                                  trials.ground_truth["trial_rates"][1, 10:15])
    np.testing.assert_array_equal(out.ground_truth["trial_target"], np.repeat(np.arange(8), 2))
    assert out.ground_truth["weights"] is trials.ground_truth["weights"]
    assert list(out.trials["source_trial"][:2]) == [100, 100]
    # Subsets by phase still share the table, so the train split has every (condition, phase).
    assert (out.train.trials_per_condition() > 0).all()


def test_bad_windows(trials):
    with pytest.raises(UserError, match="same number of bins"):
        split_phases(trials, [("prep", -0.1, -0.05), ("exec", 0.0, 0.06)])
    with pytest.raises(UserError, match="inside the trials"):
        split_phases(trials, [("late", 0.05, 0.2)])
    with pytest.raises(UserError, match="no bin"):
        split_phases(trials, [("after", 1.0, 1.1)])
    with pytest.raises(UserError, match="before it starts"):
        split_phases(trials, [("x", 0.0, 0.0)])
    with pytest.raises(UserError, match="unique"):
        split_phases(trials, [("x", 0.0, 0.02), ("x", 0.02, 0.04)])
    with pytest.raises(UserError):
        split_phases(trials, [])


def test_phase_spectra_of_a_phase_model(trials):
    from nwb_jedi.model.jedi import JEDI

    out = split_phases(trials, [("prep", -0.1, -0.05), ("exec", 0.0, 0.05)])
    model = JEDI(embed_dim=2, hidden=16, rank=2, max_epochs=3, device="cpu").fit(out.train)
    table = phase_spectra(model)
    assert len(table) == 4 * 2 and set(table["phase"]) == {"prep", "exec"}
    summary = summarize_phase_spectra(table)
    assert list(summary.index) == ["prep", "exec"]
    assert np.all(summary["leading_modulus"] >= summary["mean_modulus"] - 1e-12)
    plain = JEDI(embed_dim=2, hidden=16, rank=2, max_epochs=1, device="cpu").fit(trials.train)
    with pytest.raises(UserError, match="phase"):
        phase_spectra(plain)
