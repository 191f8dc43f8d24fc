"""The embedded Yu et al. (2009) PMd reaching data: readable, honest, and exact to the source."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi import datasets, read_session
from nwb_jedi.errors import UserError

SOURCE_DIR = Path("/work/shared/data/datahigh_yu2009")
needs_source = pytest.mark.skipif(not (SOURCE_DIR / "ex1_spikecounts.mat").exists(),
                                  reason="the DataHigh .mat files are not on this machine")


@pytest.fixture(scope="module")
def session():
    return read_session(datasets.reaching_path())


def load_mat(name):
    import scipy.io

    mat = scipy.io.loadmat(SOURCE_DIR / name, squeeze_me=True, struct_as_record=False)
    return list(np.atleast_1d(mat["D"]))


def test_shipped_file_reads_like_any_nwb(session):
    assert Path(datasets.reaching_path()).stat().st_size < 2_000_000
    assert session.n_units == 61 and session.n_trials == 322
    assert session.trials["subset"].value_counts().to_dict() == {"ex1_delay": 210,
                                                                 "ex2_whole": 112}
    assert set(session.trials["reach_target"]) == {f"reach{i}" for i in range(1, 8)}
    assert session.metadata["subject"]["species"] == "Macaca mulatta"
    assert session.metadata["lab"] == "Shenoy lab"
    assert set(session.units["location"]) == {"PMd"}
    assert session.time_resolution == 0.001
    desc = session.metadata["session_description"]
    for phrase in ("GPL", "Yu BM", "DataHigh", "synthetic timeline", "not known"):
        assert phrase in desc
    with h5py.File(datasets.reaching_path(), "r") as f:
        col = f["intervals/trials/target_on_time"].attrs["description"]
        assert "not stored in the source" in col
    assert "GPL-3.0" in datasets.reaching_source()


def test_load_reaching_default_mapper():
    ds = datasets.load_reaching()
    assert ds.counts.shape == (210, 20, 61)
    assert list(ds.trials_per_condition()) == [30] * 7
    np.testing.assert_allclose(ds.time[[0, -1]], [0.11, 0.49])
    rate = ds.counts.sum() / (210 * 0.4 * 61)
    assert 8 < rate < 12  # the source's mean rate is ~9.8 Hz
    assert ds.metadata["report"]["trials_dropped"]["trial_filter {'subset': 'ex1_delay'}"] == 112


@needs_source
def test_1ms_bins_reconstruct_ex1_exactly(session):
    source = load_mat("ex1_spikecounts.mat")
    ds = datasets.reaching_mapper(bin_size=0.001).build(session)
    assert ds.n_trials == 210
    order = np.argsort(ds.trials["source_trial_index"].to_numpy())
    for k, d in zip(order, source, strict=True):
        np.testing.assert_array_equal(ds.counts[k].T, d.data)
        assert ds.trials["reach_target"].iloc[k] == d.condition


@needs_source
def test_1ms_bins_reconstruct_ex2_exactly(session):
    source = load_mat("ex2_rawspiketrains.mat")
    shortest = min(d.data.shape[1] for d in source)
    ds = datasets.reaching_mapper(bin_size=0.001, trial_filter={"subset": "ex2_whole"},
                                  window=(0.0, shortest / 1000)).build(session)
    assert ds.n_trials == 112 and ds.n_conditions == 2
    idx = ds.trials["source_trial_index"].to_numpy()
    for k in range(ds.n_trials):
        np.testing.assert_array_equal(ds.counts[k].T, source[idx[k]].data[:, :shortest])


def test_windows_outside_recorded_trials_are_dropped(session):
    mapper = datasets.reaching_mapper(window=(0.1, 0.6))  # 100 ms past the recorded 400 ms
    with pytest.raises(UserError, match="window outside obs_intervals removed all 210"):
        mapper.build(session)
