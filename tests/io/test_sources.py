"""SOURCE parsing, DANDI resolution and streaming, through a real HTTP server on 127.0.0.1
with the real dandi client, remfile and h5py."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from nwb_jedi.errors import SourceError, UserError
from nwb_jedi.io.sources import (
    ParsedSource,
    RetryPolicy,
    SourceInfo,
    open_source,
    parse_source,
)
from tests.io.assets import BIG_PATH, PINNED, REAL_PATH, real_000006

# --------------------------------------------------------------------------------------------
# parse_source
# --------------------------------------------------------------------------------------------

ASSET = "sub-anm369963/sub-anm369963_ses-20170228.nwb"


@pytest.mark.parametrize("text, expected", [
    ("DANDI:000128/0.220113.0400",
     dict(dandiset="000128", version="0.220113.0400", asset_path=None)),
    (f"DANDI:000006/0.220113.0400/{ASSET}",
     dict(dandiset="000006", version="0.220113.0400", asset_path=ASSET)),
    ("dandi:000128/draft", dict(dandiset="000128", version="draft")),
    ("DANDI:000128", dict(dandiset="000128", version=None)),
    ("https://dandiarchive.org/dandiset/000128/0.220113.0400",
     dict(dandiset="000128", version="0.220113.0400", asset_path=None, instance="dandi")),
    ("https://dandiarchive.org/dandiset/000128/0.220113.0400/files?location=sub-Jenkins%2F",
     dict(dandiset="000128", version="0.220113.0400", asset_path="sub-Jenkins")),
    (f"https://dandiarchive.org/dandiset/000006/draft/files?location={ASSET}",
     dict(dandiset="000006", version="draft", asset_path=ASSET)),
    ("https://dandiarchive.org/dandiset/000128", dict(dandiset="000128", version=None)),
    ("https://gui.dandiarchive.org/#/dandiset/000006/0.220113.0400",
     dict(dandiset="000006", version="0.220113.0400")),
    ("https://sandbox.dandiarchive.org/dandiset/000128/draft",
     dict(dandiset="000128", version="draft", instance="dandi-sandbox")),
    ("dandi://dandi/000128@0.220113.0400",
     dict(dandiset="000128", version="0.220113.0400", asset_path=None, instance="dandi")),
    (f"dandi://DANDI/000006@draft/{ASSET}",
     dict(dandiset="000006", version="draft", asset_path=ASSET, instance="dandi")),
    ("dandi://dandi-sandbox/000128", dict(dandiset="000128", version=None,
                                          instance="dandi-sandbox")),
    (f"dandi://dandi/000006/{ASSET}", dict(dandiset="000006", version=None, asset_path=ASSET)),
    ("000128", dict(dandiset="000128", version=None, asset_path=None, instance="dandi")),
    ("  000128 ", dict(dandiset="000128", version=None)),
])
def test_parse_dandi_forms(text: str, expected: dict) -> None:
    parsed = parse_source(text)
    assert parsed.kind == "dandi"
    for key, value in expected.items():
        assert getattr(parsed, key) == value, key


def test_parse_local_paths(tmp_path: Path) -> None:
    assert parse_source("session.nwb") == ParsedSource("local", "session.nwb", path="session.nwb")
    assert parse_source(tmp_path / "x.nwb").path == str(tmp_path / "x.nwb")
    # A file whose name happens to be six digits is a file, not a dandiset.
    digits = tmp_path / "000128"
    digits.write_bytes(b"")
    assert parse_source(str(digits)).kind == "local"


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("DANDI:128/0.220113.0400", "not a valid DANDI id"),
    ("DANDI:", "not a valid DANDI id"),
    ("DANDI:000128/latest", "not a DANDI version"),
    ("DANDI:000128//sub-1/x.nwb", "names an asset but no version"),
    ("dandi://nowhere/000128", "unknown DANDI instance"),
    ("dandi://dandi/12345", "not a valid dandi:// URL"),
    ("dandi://dandi/000128@v1", "not a DANDI version"),
    ("https://example.org/dandiset/000128/draft", "not a DANDI dandiset URL"),
    ("https://dandiarchive.org/dandisets/000128", "not a DANDI dandiset URL"),
    ("https://dandiarchive.org/dandiset/12/draft", "not a DANDI dandiset URL"),
    ("12345", "six digits"),
])
def test_parse_malformed(text: str, fragment: str) -> None:
    with pytest.raises(SourceError, match=fragment) as info:
        parse_source(text)
    assert isinstance(info.value, UserError)


# --------------------------------------------------------------------------------------------
# Local files
# --------------------------------------------------------------------------------------------


def test_local_file_opens() -> None:
    path = real_000006()
    with open_source(str(path)) as (h5, info):
        assert h5["units/spike_times"].shape == (1679,)
    assert info == SourceInfo(kind="local", path=str(path.resolve()))


def test_local_errors(tmp_path: Path) -> None:
    not_hdf5 = tmp_path / "notes.nwb"
    not_hdf5.write_text("this is not HDF5")
    truncated = tmp_path / "truncated.nwb"
    truncated.write_bytes(real_000006().read_bytes()[:5000])
    for path, fragment in [(not_hdf5, "not a readable HDF5"), (truncated, "not a readable HDF5"),
                           (tmp_path / "missing.nwb", "no such file"),
                           (tmp_path, "is a directory")]:
        with pytest.raises(SourceError, match=fragment):
            with open_source(str(path)):
                pass
    with pytest.raises(SourceError, match="only applies to DANDI"):
        with open_source(str(real_000006()), asset="x.nwb"):
            pass


# --------------------------------------------------------------------------------------------
# DANDI through the test server
# --------------------------------------------------------------------------------------------


def _read_units_and_trials(h5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    spikes = h5["units/spike_times"][:]
    index = h5["units/spike_times_index"][:]
    trials = {name: h5["intervals/trials"][name][:] for name in h5["intervals/trials"]
              if hasattr(h5["intervals/trials"][name], "shape")}
    assert index[-1] == spikes.size
    return spikes, trials


def test_pinned_version(dandi_api, tmp_path: Path) -> None:
    import h5py

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pinned: no unpinned warning
        with open_source(f"DANDI:000006/{PINNED}", cache_dir=tmp_path) as (h5, info):
            spikes, trials = _read_units_and_trials(h5)
    with h5py.File(real_000006(), "r") as local:
        np.testing.assert_array_equal(spikes, local["units/spike_times"][:])
        np.testing.assert_array_equal(trials["cue_start_time"],
                                      local["intervals/trials/cue_start_time"][:])
    assert (info.kind, info.dandiset, info.version, info.asset_path) == (
        "dandi", "000006", PINNED, REAL_PATH)
    assert info.asset_id and info.url.startswith(dandi_api.url + "/blobs/")
    assert dandi_api.blob_bytes() > 0


@pytest.mark.parametrize("source", [
    "000006", "DANDI:000006", "dandi://dandi/000006",
    "https://dandiarchive.org/dandiset/000006"])
def test_unpinned_warns_with_resolved_version(dandi_api, tmp_path: Path, source: str) -> None:
    with pytest.warns(UserWarning, match=rf"latest published version {PINNED}.*"
                                         rf"DANDI:000006/{PINNED}"):
        with open_source(source, cache_dir=tmp_path) as (h5, info):
            assert h5["units/spike_times"].shape == (1679,)
    assert info.version == PINNED


def test_unpinned_without_published_version_warns_draft(dandi_api, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="no published version.*draft"):
        with open_source("000200", cache_dir=tmp_path) as (_h5, info):
            pass
    assert (info.version, info.asset_path) == ("draft", BIG_PATH)


def test_several_assets_none_named(dandi_api, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        with open_source("DANDI:000100/draft", cache_dir=tmp_path):
            pass
    message = str(err.value)
    assert "2 NWB assets" in message and "--asset" in message and "asset=" in message
    assert f"{REAL_PATH} (276.6 KB)" in message and BIG_PATH in message
    assert "dataset_description.json" not in message
    assert dandi_api.blob_bytes() == 0
    # Named through asset=, through the SOURCE, and through a web UI folder location.
    for source, asset in [("DANDI:000100/draft", REAL_PATH),
                          (f"DANDI:000100/draft/{REAL_PATH}", None),
                          ("https://dandiarchive.org/dandiset/000100/draft/files"
                           "?location=sub-anm369963%2F", None)]:
        with open_source(source, asset=asset, cache_dir=tmp_path) as (h5, info):
            assert info.asset_path == REAL_PATH and "units" in h5


def test_asset_glob_pattern_must_match_exactly_one(dandi_api, tmp_path: Path) -> None:
    with open_source("DANDI:000100/draft", asset="sub-anm*/*.nwb", cache_dir=tmp_path) as (
            _h5, info):
        assert info.asset_path == REAL_PATH
    with pytest.raises(SourceError, match="matches 2 NWB assets") as err:
        with open_source("DANDI:000100/draft", asset="sub-*/*.nwb", cache_dir=tmp_path):
            pass
    assert REAL_PATH in str(err.value) and BIG_PATH in str(err.value)
    with pytest.raises(SourceError, match="no NWB asset .* matches"):
        with open_source("DANDI:000100/draft", asset="*desc-train*", cache_dir=tmp_path):
            pass


def test_not_found_messages(dandi_api, tmp_path: Path) -> None:
    cases = [("DANDI:000999/draft", None, "dandiset 000999 does not exist"),
             ("DANDI:000006/0.999999.9999", None, f"no version '0.999999.9999'.*{PINNED}"),
             (f"DANDI:000006/{PINNED}", "sub-x/missing.nwb",
              f"no asset 'sub-x/missing.nwb'.*{REAL_PATH}"),
             ("DANDI:000006/draft/sub-anm369963/other", None, "no asset")]
    for source, asset, fragment in cases:
        with pytest.raises(SourceError, match=fragment):
            with open_source(source, asset=asset, cache_dir=tmp_path):
                pass
    with pytest.raises(SourceError, match="give only one"):
        with open_source(f"DANDI:000006/{PINNED}/{REAL_PATH}", asset="other.nwb"):
            pass


def test_embargoed_needs_api_key(dandi_api, tmp_path: Path, monkeypatch) -> None:
    source = f"DANDI:000300/draft/{REAL_PATH}"
    with pytest.raises(SourceError, match=r"HTTP 401.*set DANDI_API_KEY"):
        with open_source(source, cache_dir=tmp_path):
            pass
    monkeypatch.setenv("DANDI_API_KEY", "wrong")
    with pytest.raises(SourceError, match="DANDI_API_KEY was rejected"):
        with open_source(source, cache_dir=tmp_path):
            pass
    monkeypatch.setenv("DANDI_API_KEY", dandi_api.token)
    with open_source(source, cache_dir=tmp_path) as (h5, info):
        assert h5["units/spike_times"].shape == (1679,)
    assert info.dandiset == "000300" and dandi_api.blob_bytes() > 0


def test_read_refused_midway_is_a_clear_error(dandi_api, tmp_path: Path, monkeypatch) -> None:
    # Access is revoked after the file was opened: the next uncached read fails with 403.
    monkeypatch.setenv("DANDI_API_KEY", dandi_api.token)
    with pytest.raises(SourceError, match=r"403.*DANDI_API_KEY"):
        with open_source(f"DANDI:000300/draft/{BIG_PATH}", cache_dir=tmp_path) as (h5, _):
            dandi_api.token = "revoked"
            h5["acquisition/raw/data"][-5000:]


def test_dropped_connections_retry_then_fail(dandi_api, tmp_path: Path) -> None:
    dandi_api.drop_connections(1000, "/api/dandisets/")
    policy = RetryPolicy(tries=3, backoff_s=0.01)
    with pytest.raises(SourceError, match=r"could not reach the DANDI API.*failed 3 times"):
        with open_source(f"DANDI:000006/{PINNED}", cache_dir=tmp_path, retry=policy):
            pass
    assert dandi_api.dropped == 3  # one request, tried three times, then given up


def test_blob_drops_retry_then_fail(dandi_api, tmp_path: Path, monkeypatch) -> None:
    import importlib

    # remfile retries blob reads itself (9 tries, ~25 s of backoff in all); fewer tries here so
    # the test stays fast. What is tested is that the failure reaches the user as one
    # SourceError rather than an h5py OSError.
    monkeypatch.setattr(importlib.import_module("remfile.RemFile"), "_num_request_retries", 2)
    with pytest.raises(SourceError, match=r"failed after 3 tries.*check your network"):
        with open_source(f"DANDI:000200/draft/{BIG_PATH}", cache_dir=tmp_path) as (h5, _):
            dandi_api.drop_connections(1000, "/blobs/")
            h5["acquisition/raw/data"][-5000:]
    assert dandi_api.dropped == 3


def test_transient_drops_are_retried(dandi_api, big_nwb: Path, tmp_path: Path) -> None:
    import h5py

    # One dropped API call, then one dropped blob request: both recovered by a retry.
    dandi_api.drop_connections(1, "/api/dandisets/")
    with open_source(f"DANDI:000200/draft/{BIG_PATH}", cache_dir=tmp_path) as (h5, _):
        assert dandi_api.dropped == 1
        dandi_api.drop_connections(1, "/blobs/")
        tail = h5["acquisition/raw/data"][-5000:]  # not read yet: needs a blob request
    assert dandi_api.dropped == 2
    with h5py.File(big_nwb, "r") as local:
        np.testing.assert_array_equal(tail, local["acquisition/raw/data"][-5000:])


def test_second_read_is_served_from_cache(dandi_api, tmp_path: Path) -> None:
    source = f"DANDI:000200/draft/{BIG_PATH}"
    with open_source(source) as (h5, info):  # cache dir from $NWB_JEDI_CACHE
        first = _read_units_and_trials(h5)
    served = dandi_api.blob_bytes()
    assert served > 0
    cache = Path(info.extra["cache_dir"])
    assert cache.is_relative_to(Path(os.environ["NWB_JEDI_CACHE"]))
    assert {"000200", "draft", info.asset_id} <= set(cache.parts)
    blocks = list(cache.glob("*.blk"))
    # each block: the bytes served, then their SHA-256 (32 bytes)
    assert sum(p.stat().st_size for p in blocks) == served + 32 * len(blocks)

    dandi_api.reset_counters()
    with open_source(source) as (h5, _):
        second = _read_units_and_trials(h5)
    assert dandi_api.blob_bytes() == 0
    assert not [p for _m, p in dandi_api.requests if p.startswith("/blobs/")]
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1].keys() == second[1].keys()


def test_units_and_trials_transfer_a_small_fraction(dandi_api, big_nwb: Path,
                                                    tmp_path: Path) -> None:
    from pynwb import NWBHDF5IO

    size = big_nwb.stat().st_size
    with open_source(f"DANDI:000200/draft/{BIG_PATH}", cache_dir=tmp_path) as (h5, _):
        spikes, trials = _read_units_and_trials(h5)
    fraction_h5py = dandi_api.blob_bytes() / size
    assert spikes.size == sum(200 + 50 * u for u in range(5))
    assert trials["target"].tolist() == [i % 8 for i in range(40)]

    dandi_api.reset_counters()
    with open_source(f"DANDI:000200/draft/{BIG_PATH}", cache_dir=tmp_path / "fresh") as (h5, _):
        with NWBHDF5IO(file=h5, load_namespaces=True) as io:
            nwb = io.read()
            units = nwb.units.to_dataframe()
            trials_df = nwb.trials.to_dataframe()
    fraction_pynwb = dandi_api.blob_bytes() / size
    assert len(units) == 5 and len(trials_df) == 40
    print(f"\nfile {size / 1e6:.1f} MB; bytes transferred for units + trials: "
          f"h5py {fraction_h5py:.2%}, pynwb {fraction_pynwb:.2%}")
    assert fraction_h5py < 0.10
    assert fraction_pynwb < 0.10


def test_streaming_shows_a_progress_bar_of_bytes(dandi_api, tmp_path: Path, capsys) -> None:
    with open_source(f"DANDI:000006/{PINNED}", cache_dir=tmp_path, progress=True) as (h5, _):
        h5["units/spike_times"][:]
    err = capsys.readouterr().err
    assert f"streaming {REAL_PATH}" in err and "B" in err
    # Quiet by default.
    with open_source(f"DANDI:000006/{PINNED}", cache_dir=tmp_path / "other") as (h5, _):
        h5["units/spike_times"][:]
    assert "streaming" not in capsys.readouterr().err
