"""The package's own PSTH R² is called ``psth_r2_smoothed`` (not NLB's "psth R2"); files
written before the rename, whose metrics table says ``psth_r2``, read and show the new name,
and code that reads the old key of a score dictionary keeps working for one release."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nwb_jedi import metrics
from tests.cli.runner import run_cli


def test_old_files_metric_psth_r2_is_read_and_shown_as_psth_r2_smoothed(arrays_fit, tmp_path,
                                                                        capsys):
    from nwb_jedi.io.load import read_summary
    from nwb_jedi.io.write import write_results

    model, ds = arrays_fit
    # What a file written before the rename holds: the metric row named 'psth_r2'.
    path = write_results(model, ds, tmp_path / "old.nwb",
                         metrics={"test": {"bits_per_spike": 0.1, "psth_r2": 0.42}})
    table = read_summary(path)["metrics"]
    assert list(table["metric"]) == ["bits_per_spike", "psth_r2_smoothed"]
    assert table["value"].iloc[1] == pytest.approx(0.42)
    rc, out, err = run_cli(["show", str(path)], capsys)
    assert rc == 0, err
    assert "psth_r2_smoothed" in out and "psth_r2 " not in out


def test_score_dictionaries_answer_the_old_key_with_a_warning(arrays_fit):
    model, ds = arrays_fit
    scores = model.evaluate(ds.test)
    assert "psth_r2" not in scores and "psth_r2_smoothed" in scores
    with pytest.warns(DeprecationWarning, match="psth_r2_smoothed"):
        assert scores["psth_r2"] == scores["psth_r2_smoothed"]
    with pytest.raises(KeyError):
        scores["no_such_metric"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dict(scores) == {k: scores[k] for k in scores}
    rates = model.predict_rates(ds.test)
    with pytest.warns(DeprecationWarning, match="psth_r2_smoothed"):
        old = metrics.psth_r2(rates, ds.test.counts, ds.test.condition, ds.test.n_conditions,
                              ds.test.bin_size)
    assert old == scores["psth_r2_smoothed"]
    assert np.isfinite(old)
