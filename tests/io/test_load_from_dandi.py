"""Models load from where they are shared: `load_model`, `load_dataset`, `read_summary` and
the FILE of `show`, `analyze` and `predict` accept every DANDI SOURCE form, streamed through the
same resolver and block cache as `fit`, reading only the model's datasets. Served by the
loopback DANDI server with the real dandi client, remfile and h5py."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nwb_jedi.cli import main
from nwb_jedi.io.load import load_dataset, load_model, read_summary
from nwb_jedi.io.write import write_results
from tests.io.fits import assert_same_dataset

FIT_PATH = "sub-sim/sub-sim_ses-maze-jedi.nwb"
BIG_FIT_PATH = "sub-sim/sub-sim_ses-maze-jedi-big.nwb"
#: Spikes per unit in the file whose units table dwarfs the model.
BIG_SPIKES = 150_000


@pytest.fixture(scope="module")
def big_fit_file(tmp_path_factory, maze_fit) -> Path:
    """A fitted file whose copied units (24 units x 150,000 spike times, 29 MB) dwarf the
    model stored next to them."""
    model, ds, session = maze_fit
    rng = np.random.default_rng(0)
    dense = [np.sort(rng.uniform(0, 3000, BIG_SPIKES)) for _ in session.spike_times]
    big = dataclasses.replace(session, spike_times=dense)
    path = tmp_path_factory.mktemp("big_fit") / "big_fit.nwb"
    write_results(model, ds, path, source=big)
    return path


@pytest.fixture
def shared(dandi_api, written, big_fit_file):
    """The fitted files served at DANDI:000420 (published 0.240101.0000 and draft)."""
    dandi_api.add_version("000420", "0.240101.0000",
                          {FIT_PATH: written["derived"], BIG_FIT_PATH: big_fit_file})
    dandi_api.reset_counters()
    return dandi_api


SOURCES = [
    f"DANDI:000420/0.240101.0000/{FIT_PATH}",
    f"https://dandiarchive.org/dandiset/000420/0.240101.0000/files?location={FIT_PATH}",
    f"dandi://dandi/000420@0.240101.0000/{FIT_PATH}",
    f"DANDI:000420/draft/{FIT_PATH}",
]


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_form_loads_the_same_model(shared, written, maze_fit, source):
    model, ds, _ = maze_fit
    local = load_model(written["derived"])
    remote = load_model(source)
    assert shared.blob_bytes() > 0  # really streamed
    assert np.array_equal(remote.predict_rates(ds), local.predict_rates(ds))
    assert np.array_equal(remote.predict_rates(ds), model.predict_rates(ds))
    np.testing.assert_array_equal(remote.embeddings_, local.embeddings_)


def test_dataset_and_summary_stream_identically(shared, written):
    source = SOURCES[0]
    assert_same_dataset(load_dataset(source), load_dataset(written["derived"]))
    remote, local = read_summary(source), read_summary(written["derived"])
    assert remote["path"] == f"DANDI:000420/0.240101.0000/{FIT_PATH}"
    assert local["path"] == os.path.abspath(written["derived"])
    for key in ("module", "session", "source", "config", "n_parameters", "data_shape",
                "dataset_metadata"):
        assert remote[key] == local[key], key
    pd.testing.assert_frame_equal(remote["metrics"], local["metrics"])


def test_the_block_cache_serves_a_second_load(shared, tmp_path):
    load_model(SOURCES[0], cache_dir=tmp_path)
    assert shared.blob_bytes() > 0 and any(tmp_path.rglob("*.blk"))
    shared.reset_counters()
    load_model(SOURCES[0], cache_dir=tmp_path)
    assert shared.blob_bytes() == 0


def test_only_the_model_is_streamed_next_to_large_units(shared, big_fit_file, maze_fit,
                                                        tmp_path, capsys):
    """The model (a few kB of tensors) is read without the 29 MB of spike times beside it."""
    model, ds, _ = maze_fit
    size = big_fit_file.stat().st_size
    loaded = load_model(f"DANDI:000420/0.240101.0000/{BIG_FIT_PATH}", cache_dir=tmp_path / "a")
    model_bytes = shared.blob_bytes()
    assert np.array_equal(loaded.predict_rates(ds), model.predict_rates(ds))
    shared.reset_counters()
    read_summary(f"DANDI:000420/0.240101.0000/{BIG_FIT_PATH}", cache_dir=tmp_path / "b")
    summary_bytes = shared.blob_bytes()
    with capsys.disabled():
        print(f"\nmodel file {size / 1e6:.1f} MB: load_model streamed {model_bytes / 1e3:.0f} kB "
              f"({model_bytes / size:.2%}), read_summary {summary_bytes / 1e3:.0f} kB "
              f"({summary_bytes / size:.2%})")
    assert size > 25e6
    assert model_bytes < 0.05 * size and summary_bytes < 0.05 * size


def test_show_analyze_and_predict_take_a_dandi_file(shared, written, mc_maze_nwb, tmp_path,
                                                    monkeypatch, capsys):
    source = SOURCES[0]
    assert main(["show", source]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{source}  (module 'jedi')") and "bits_per_spike" in out

    monkeypatch.chdir(tmp_path)
    assert main(["analyze", source, "--fixed-point-conditions", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert (tmp_path / "sub-sim_ses-maze-jedi_analysis" / "embeddings.png").exists()

    out_remote, out_local = tmp_path / "remote.nwb", tmp_path / "local.nwb"
    common = [str(mc_maze_nwb), "--epochs", "2", "--quiet"]
    assert main(["predict", source, *common, "--out", str(out_remote)]) == 0
    assert main(["predict", str(written["derived"]), *common, "--out", str(out_local)]) == 0
    capsys.readouterr()
    remote, local = load_model(out_remote), load_model(out_local)
    ds = load_dataset(out_local)
    assert np.array_equal(remote.predict_rates(ds), local.predict_rates(ds))


def test_a_dandi_file_that_is_not_there_is_one_clear_error(shared, capsys):
    assert main(["show", "DANDI:000420/0.240101.0000/sub-sim/nothing.nwb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nwb-jedi: error: ") and "nothing.nwb" in err[0]
