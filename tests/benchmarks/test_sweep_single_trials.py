"""Smoke test of benchmarks/sweep_single_trials.py: both data sets, two variants, the report."""

from __future__ import annotations

import numpy as np


def test_the_sweep_scores_variants_against_the_residual_glm(sweep_single_trials, tmp_path):
    module = sweep_single_trials
    settings = module.Settings.quick()
    variants = [{}, {"trial_states": 0}]
    pmd = module.sweep_pmd(settings, variants)
    synthetic = module.sweep_synthetic(settings, variants)
    assert list(pmd["variant"]) == ["defaults", "trial_states=0"]
    assert np.isfinite(pmd["val_co_bps_minus_residual_glm"]).all()
    assert np.isfinite(synthetic["val_gap_closed"]).all()
    report = module.write_report({"pmd": pmd, "synthetic": synthetic}, tmp_path).read_text()
    assert "| trial_states=0 |" in report and "minus defaults" in report
    assert report.count("Above the defaults by more than the sd of the paired") == 2
    assert "Above the defaults on every data set:" in report
