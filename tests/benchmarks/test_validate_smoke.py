"""Smoke test of benchmarks/validate.py: every section runs end to end on tiny settings, and its
phase data are right. (The evaluation protocols it calls are tested with the library:
tests/analysis/test_evaluation.py, test_ground_truth.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def tiny(validate):
    """Smaller still than --quick (which is meant to be run by hand): a few epochs everywhere."""
    return dataclasses.replace(validate.Settings.quick(), trials_per_condition=4,
                               max_epochs=3, synthetic_epochs=3, reaching_epochs=3,
                               infer_epochs=3, fp_initial=4, fp_iters=20)


def test_reaching_phase_windows(validate):
    ds = validate.reaching_phase_data()
    assert ds.n_bins == validate.REACHING_PHASE_MS // 20
    assert sorted(ds.conditions["phase"].unique()) == ["early", "late"]
    assert ds.n_conditions == 4 and ds.n_trials == 2 * 112
    # Both windows of a trial share its split, so no trial leaks across splits via its phases.
    split = dict(zip(ds.trial_id, ds.split, strict=True))
    for trial_id, s in split.items():
        if trial_id.endswith("/early"):
            assert split[trial_id.replace("/early", "/late")] == s


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # 3 epochs: flat spectra
def test_all_sections_and_report(validate, tiny, tmp_path):
    results = validate.run_all(tiny, tmp_path)
    syn = results["synthetic"]
    assert np.isfinite(syn["r2_pooled"]) and np.isfinite(syn["r2_per_neuron"])
    assert 0 <= syn["classification"]["nearest_training"] <= 1
    assert len(syn["fixed_points"]) == 8  # one row per sine frequency
    assert {"rho_leading", "rho_max_imag"} <= set(syn["spearman"])
    table = results["reaching"]["table"]
    # Issue 12: co-smoothing has baselines that read the held-in neurons (co-bps only), and
    # few-shot the nearest training condition's PSTH.
    glms = {"SmoothingGLM", "PSTHResidualGLM"}
    assert set(table["model"]) == {"JEDI", "PerConditionRNN", "SharedRNN", "PSTHBaseline",
                                   validate.BEST_PSTH, *glms}
    assert table.loc[~table["model"].isin(glms), "bps"].notna().all()
    assert table["co_bps"].notna().all()
    assert set(results["reaching"]["fewshot"]["model"]) == {"JEDI", "PerConditionRNN",
                                                            "PSTHBaseline",
                                                            "NearestConditionPSTH"}
    assert list(results["memorypro_phases"]["phase"]) == ["stimulus", "delay", "response"]
    assert set(results["reaching_phases"]["phase"]) == {"early", "late"}
    report = validate.write_report(results, tiny, tmp_path, quick=True).read_text()
    assert len(pd.read_csv(tmp_path / "reaching_seeds.csv")) == 8  # 8 models x 1 seed
    assert "| NearestConditionPSTH | — |" in report  # a few-shot-only row is not dropped
    for heading in ("## 1. Synthetic", "## 2. Monkey PMd reaching", "## 3. Phases",
                    "## 4. Single trials", "## Flat fits"):
        assert heading in report
    # Issue 12's goals on the PMd data, from paired per-seed differences.
    paired = validate.reaching_paired(table)
    jedi = table.set_index("model")
    residual = paired.set_index("comparison").loc["co_bps_per_trial: JEDI − PSTHResidualGLM"]
    difference = (jedi.loc["JEDI", "co_bps_per_trial"]
                  - jedi.loc["PSTHResidualGLM", "co_bps"])
    assert residual["per seed"] == f"{difference:+.3f}"
    assert "| co_bps_per_trial: JEDI − SmoothingGLM |" in report
    assert "co-bps above the PSTHs, the smoothing GLM and the residual GLM" in report
    n_fits = 1 + 1 + 1  # sections 1, 2 and 4 with one seed each
    assert f"{n_fits} fits, " in report
    # Issue 12's single-trial goals: co-bps against the truth and the held-in baselines,
    # fp-bps, decoding of the teacher's output, and the flat-fit check on the real fixture.
    single = results["single"]["table"]
    assert set(single["model"]) == {"JEDI", "JEDI, contexts of each test trial", "PSTHBaseline",
                                    validate.BEST_PSTH, "truth", "SmoothingGLM",
                                    "PSTHResidualGLM", "SmoothedSpikes"}
    by_model = single.set_index("model")
    for model in ("JEDI", "PSTHBaseline", "truth"):
        assert np.isfinite(by_model.loc[model, ["bps", "co_bps", "fp_bps", "decode_r2"]]
                           .astype(float)).all(), model
    assert np.isfinite(by_model.loc["JEDI", "co_bps_per_trial"])
    assert np.isfinite(by_model.loc["SmoothedSpikes", "decode_r2"])
    assert list(results["single"]["fixture"]["seed"]) == list(tiny.fixture_seeds)
    assert "of the gap" in report and "DANDI:000006 ALM unit" in report
    for png in ("synthetic_embeddings.png", "reaching_psth_jedi.png",
                "memorypro_phase_eigenvalues.png", "reaching_phase_eigenvalues.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_sweep_writes_tables(validate, tiny, tmp_path):
    settings = dataclasses.replace(tiny, sweep_seeds=(0,))
    rows = validate.sweep_reaching(settings, [{}, {"rank": 2}])
    validate.append_sweep(rows, tmp_path / "sweep_reaching.csv")
    validate.append_sweep(rows.iloc[:1], tmp_path / "sweep_reaching.csv")  # replaces, no dup
    assert len(pd.read_csv(tmp_path / "sweep_reaching.csv")) == 3  # + the PSTH reference
    text = validate.write_sweep(tmp_path).read_text()
    assert "| reaching | rank=2 |" in text and "PSTHBaseline (reference" in text
