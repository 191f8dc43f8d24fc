"""Fixtures for the source tests: a DANDI-compatible server on 127.0.0.1 and NWB files."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.io.assets import BIG_PATH, PINNED, REAL_PATH, real_000006
from tests.io.dandi_server import DandiTestServer
from tests.io.fits import SESSION_META, tiny

if TYPE_CHECKING:
    pass


def write_big_nwb(path: Path, seed: int = 0, n_samples: int = 1_000_000,
                  n_channels: int = 8) -> Path:
    """Write an NWB file whose bulk (~32 MB) is one chunked, uncompressed acquisition series,
    next to a small units table (5 units) and trials table (40 trials)."""
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="bytes test", identifier=f"big-{seed}",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    bulk = rng.standard_normal((n_samples, n_channels)).astype(np.float32)
    nwb.add_acquisition(TimeSeries(
        name="raw", data=H5DataIO(bulk, chunks=(16384, n_channels)), unit="V", rate=1000.0))
    nwb.add_trial_column("target", "reach target id")
    for i in range(40):
        nwb.add_trial(start_time=10.0 * i, stop_time=10.0 * i + 5.0, target=int(i % 8))
    for u in range(5):
        spikes = np.sort(rng.uniform(0, n_samples / 1000.0, size=200 + 50 * u))
        nwb.add_unit(spike_times=spikes)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture(scope="session")
def big_nwb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_big_nwb(tmp_path_factory.mktemp("big") / "big.nwb")


@pytest.fixture(scope="session")
def dandi_server(big_nwb: Path, tmp_path_factory: pytest.TempPathFactory):
    """One server for the whole session, holding:

    - 000006: the real fixture, published 0.220113.0400 (and a draft);
    - 000100: several assets in a draft (two NWB files, one in a folder, plus a json file);
    - 000200: the big NWB file, draft only (never published);
    - 000300: embargoed, the real fixture and the big file.
    """
    real = real_000006()
    other = tmp_path_factory.mktemp("other") / "dataset_description.json"
    other.write_text('{"name": "not nwb"}')
    with DandiTestServer() as server:
        server.add_version("000006", PINNED, {REAL_PATH: real})
        server.add_version("000100", "draft", {REAL_PATH: real, BIG_PATH: big_nwb,
                                               "dataset_description.json": other})
        server.add_version("000200", "draft", {BIG_PATH: big_nwb})
        server.add_version("000300", "draft", {REAL_PATH: real, BIG_PATH: big_nwb},
                           embargoed=True)
        yield server


@pytest.fixture
def dandi_api(dandi_server: DandiTestServer, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> DandiTestServer:
    """Point the dandi client at the test server, with fast retries and a fresh cache dir."""
    monkeypatch.setenv("DANDI_API_URL", dandi_server.api_url)
    monkeypatch.setenv("DANDI_NO_ET", "1")  # no version check against the internet
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    monkeypatch.setenv("NWB_JEDI_HTTP_TRIES", "3")
    monkeypatch.setenv("NWB_JEDI_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("NWB_JEDI_CACHE", str(tmp_path / "cache"))
    dandi_server.token = "test-token-0123456789"
    dandi_server.drop_connections(0)
    dandi_server.reset_counters()
    return dandi_server


# ------------------------------------------------------------------ fitted models and their files
# Shared by test_write.py (writing) and test_load.py (reading back): fitted and written once.
@pytest.fixture(scope="session")
def arrays_fit():
    from nwb_jedi.data.dataset import TrialDataset

    rng = np.random.default_rng(3)
    counts = rng.poisson(1.5, size=(36, 8, 5))
    labels = [("maze", i % 4) for i in range(36)]
    ds = TrialDataset.from_arrays(counts, labels, 0.02, condition_names=["task", "target"],
                                  trial_ids=[f"t{i:03d}" for i in range(36)],
                                  align_time=10.0 + np.arange(36) * 1.0,
                                  metadata={"session": SESSION_META})
    return tiny().fit(ds.train, ds.val), ds


@pytest.fixture(scope="session")
def maze_fit(mc_maze_nwb):
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.io.read import read_session

    session = read_session(mc_maze_nwb, behavior=False)
    mapper = ConditionMapper(by="trial_type", align="move_onset_time", window=(-0.1, 0.2),
                             bin_size=0.02, behavior=False, verbose=False)
    ds = mapper.build(session)
    return tiny(trial_embeddings=True).fit(ds.train, ds.val), ds, session


@pytest.fixture(scope="session")
def written(tmp_path_factory, arrays_fit, maze_fit, mc_maze_nwb):
    """Every kind of file write_results makes, written once for the test run."""
    from nwb_jedi.io.write import write_results

    root = tmp_path_factory.mktemp("written")
    model, ds = arrays_fit
    maze_model, maze_ds, _ = maze_fit
    before = hashlib.sha256(Path(mc_maze_nwb).read_bytes()).hexdigest()
    files = {
        "minimal": write_results(model, ds, root / "minimal.nwb"),
        "derived": write_results(maze_model, maze_ds, root / "derived.nwb",
                                 source=mc_maze_nwb),
    }
    assert hashlib.sha256(Path(mc_maze_nwb).read_bytes()).hexdigest() == before
    return files
