"""`nwb-jedi predict` rebuilds exactly the mapper the model was fitted with (from the settings
stored in the file), flags on top; a mapper setting that was a callable must be given again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nwb_jedi.cli import main
from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.io.read import read_session
from nwb_jedi.io.write import load_dataset, write_results
from nwb_jedi.model.jedi import JEDI

# A dict `by` out of alphabetical order (JSON writers sort keys), a split and seed of its own.
MAPPER = dict(by={"trial_version": None, "trial_type": None}, align="move_onset_time",
              window=(-0.1, 0.2), bin_size=0.02, split=(0.6, 0.2, 0.2), seed=4,
              behavior=False, verbose=False)


def _fit_and_write(session, mapper: ConditionMapper, path) -> None:
    ds = mapper.build(session)
    model = JEDI(hidden=16, embed_dim=3, rank=2, max_epochs=2, device="cpu", progress=False)
    write_results(model.fit(ds.train, ds.val), ds, path, source=session)


def _first_trial(trials: pd.DataFrame) -> np.ndarray:
    return np.arange(len(trials)) < 40


@pytest.fixture(scope="module")
def session(mc_maze_nwb):
    return read_session(mc_maze_nwb, behavior=False)


def test_predict_rebuilds_the_fitted_mapper(session, mc_maze_nwb, tmp_path, capsys):
    fitted = ConditionMapper(**MAPPER).build(session)
    _fit_and_write(session, ConditionMapper(**MAPPER), tmp_path / "fit.nwb")
    out = tmp_path / "predicted.nwb"
    assert main(["predict", str(tmp_path / "fit.nwb"), str(mc_maze_nwb), "--out", str(out),
                 "--quiet", "--epochs", "1"]) == 0
    applied = load_dataset(out)
    assert list(applied.conditions.columns) == ["trial_version", "trial_type", "label"]
    pd.testing.assert_frame_equal(applied.conditions, fitted.conditions)
    np.testing.assert_array_equal(applied.trial_id, fitted.trial_id)
    np.testing.assert_array_equal(applied.split, fitted.split)
    np.testing.assert_array_equal(applied.counts, fitted.counts)
    assert applied.provenance.mapper == fitted.provenance.mapper


def test_a_callable_setting_must_be_given_again(session, mc_maze_nwb, tmp_path, capsys):
    path = tmp_path / "fit.nwb"
    _fit_and_write(session, ConditionMapper(**{**MAPPER, "trial_filter": _first_trial}), path)
    out = tmp_path / "predicted.nwb"
    assert main(["predict", str(path), str(mc_maze_nwb), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trial_filter was a callable (_first_trial)" in err[0], err
    assert not out.exists()
    assert main(["predict", str(path), str(mc_maze_nwb), "--out", str(out), "--quiet",
                 "--epochs", "1", "--trial-filter", "success == True"]) == 0
    applied = load_dataset(out)
    assert applied.provenance.mapper["trial_filter"] == "success == True"
    assert "callables" not in applied.provenance.mapper
