"""Issue 11, the network and the block cache are untrusted input: a damaged cache never changes
a result (item 5), every network operation ends at its deadline saying what stalled (7), a failed
remote read exits with status 2 instead of SIGSEGV (8), and printed URLs carry no signature and
the right number of tries (18). The faults are served by the loopback DANDI server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi.errors import SourceError
from nwb_jedi.io.sources import (
    AssetBlockCache,
    ResolvedAsset,
    RetryPolicy,
    cache_part,
    open_source,
    plain_url,
    strip_url_queries,
)
from tests.io.assets import BIG_PATH, PINNED, REAL_PATH, real_000006
from tests.io.dandi_server import PRESIGNED_SECRET

REAL = f"DANDI:000006/{PINNED}"
DEADLINE = 1.5  # seconds: short, so the suite stays fast


def _spikes(source: str, cache_dir: Path) -> np.ndarray:
    with open_source(source, cache_dir=cache_dir) as (h5, _):
        return h5["units/spike_times"][:]


def _local_spikes() -> np.ndarray:
    with h5py.File(real_000006(), "r") as h5:
        return h5["units/spike_times"][:]


def _blocks(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.blk"))


def _valid(block: Path) -> bool:
    data = block.read_bytes()
    return hashlib.sha256(data[:-32]).digest() == data[-32:]


# ------------------------------------------------------------------ 5. the block cache
@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty"])
def test_a_damaged_cached_block_is_fetched_again(dandi_api, tmp_path, damage):
    first = _spikes(REAL, tmp_path)
    blocks = _blocks(tmp_path)
    assert blocks and all(_valid(b) for b in blocks)
    for block in blocks:
        data = bytearray(block.read_bytes())
        if damage == "flipped":
            data[len(data) // 3] ^= 0xFF
        block.write_bytes(bytes(data[: len(data) // 2]) if damage == "truncated" else
                          b"" if damage == "empty" else bytes(data))
    dandi_api.reset_counters()
    again = _spikes(REAL, tmp_path)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(again, _local_spikes())
    assert dandi_api.blob_bytes() > 0  # the damaged blocks were fetched again
    assert all(_valid(b) for b in _blocks(tmp_path))


def test_a_cached_block_with_wrong_bytes_is_dropped_and_fetched_again(dandi_api, tmp_path):
    # Bytes that pass their digest but are not the file's (what an old cache, or a bad answer
    # that no check could catch, leaves behind): they do not parse, so they are fetched again.
    _spikes(REAL, tmp_path)
    for block in _blocks(tmp_path):
        junk = os.urandom(len(block.read_bytes()) - 32)
        block.write_bytes(junk + hashlib.sha256(junk).digest())
    np.testing.assert_array_equal(_spikes(REAL, tmp_path), _local_spikes())
    np.testing.assert_array_equal(_spikes(REAL, tmp_path), _local_spikes())  # and stays right


def test_blocks_whose_bytes_fail_to_parse_later_are_dropped(dandi_api, tmp_path):
    # h5py raises OSError when bytes read inside the with-block do not parse (a bad object
    # header): the blocks this run used leave the cache, so the next run fetches them afresh.
    with pytest.raises(SourceError, match=r"the bytes of DANDI:000006/.* did not read as HDF5 "
                                          r"\(bad object header\); the \d+ cached blocks this "
                                          r"run used were removed, so run again"):
        with open_source(REAL, cache_dir=tmp_path) as (h5, _):
            h5["units/spike_times"][:]
            assert _blocks(tmp_path)
            raise OSError("bad object header")
    assert _blocks(tmp_path) == []
    np.testing.assert_array_equal(_spikes(REAL, tmp_path), _local_spikes())


@pytest.mark.parametrize("fault", ["wrong_range", "corrupt", "drop_mid_body"])
def test_a_bad_answer_is_never_cached(dandi_api, tmp_path, fault):
    dandi_api.fault(fault, "/blobs/", n=1)
    np.testing.assert_array_equal(_spikes(REAL, tmp_path), _local_spikes())
    assert dandi_api.dropped == 1
    local = real_000006().read_bytes()
    for block in _blocks(tmp_path):  # every cached block holds exactly the file's bytes
        size, index = (int(v) for v in block.stem.split("-"))
        assert block.read_bytes()[:-32] == local[index * size:(index + 1) * size]
    dandi_api.reset_counters()
    np.testing.assert_array_equal(_spikes(REAL, tmp_path), _local_spikes())
    assert dandi_api.blob_bytes() == 0  # all from the cache now


def test_cache_folders_are_named_injectively(tmp_path):
    parts = ["a/b", "a_b", "a%2Fb", "A_b", ".", "..", "", "0.220113.0400", "x y"]
    names = [cache_part(p) for p in parts]
    assert len(set(names)) == len(names)
    assert all(n and "/" not in n and n not in (".", "..") for n in names)
    assert cache_part("0.220113.0400") == "0.220113.0400"  # readable where it can be
    assert cache_part("7cfef63a-465d-4826-b4e1-7ec93ad6369c") == \
        "7cfef63a-465d-4826-b4e1-7ec93ad6369c"

    def folder(asset_id: str) -> Path:
        resolved = ResolvedAsset("http://h/api", "000006", "draft", "x.nwb", asset_id, 10,
                                 "http://h/blob", False)
        return AssetBlockCache.for_asset(tmp_path, resolved).directory

    assert folder("a/b") != folder("a_b")
    assert folder("..").is_relative_to(tmp_path / "dandi")


# ------------------------------------------------------------------ 7. deadlines
@pytest.fixture
def short_deadline(dandi_api, monkeypatch):
    monkeypatch.setenv("NWB_JEDI_NET_DEADLINE", str(DEADLINE))
    yield dandi_api
    dandi_api.clear_faults()


@pytest.mark.parametrize("fault, prefix, message", [
    ("trickle", "/blobs/", r"reading DANDI:000006/.* stalled: GET http://127.0.0.1:\d+/blobs/\S+ "
                           r"\(bytes 0-102399\) sent only \d+ of 102,400 bytes in 1.5 s; check "
                           r"your network connection.*NWB_JEDI_NET_DEADLINE \(seconds, now 1.5\)"),
    ("stall", "/blobs/", r"stalled: GET .*/blobs/\S+ \(bytes 0-102399\) got no answer within "
                         r"1.5 s"),
    ("stall", "/api/dandisets/", r"the DANDI API at http://127.0.0.1:\d+/api stalled: GET "
                                 r"http://127.0.0.1:\d+/api/dandisets/000006/ got no answer "
                                 r"within 1.5 s"),
    ("trickle", "/api/dandisets/", r"the DANDI API at .* stalled: GET .*/api/dandisets/000006/ "
                                   r"sent only \d+ of \d+ bytes in 1.5 s"),
])
def test_a_stalled_or_trickling_server_fails_at_the_deadline(short_deadline, tmp_path, fault,
                                                             prefix, message):
    short_deadline.fault(fault, prefix, delay=0.3)
    start = time.monotonic()
    with pytest.raises(SourceError, match=message):
        _spikes(REAL, tmp_path)
    elapsed = time.monotonic() - start
    assert DEADLINE <= elapsed < DEADLINE + 3, elapsed


def test_answers_are_read_whole_whatever_their_encoding():
    # The deadline reads bodies piece by piece: gzip and chunked answers (as real servers
    # send them) must come out as requests would give them.
    import gzip
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from nwb_jedi.io.sources import _RetryingSession

    body = json.dumps({"ids": list(range(20_000))}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            data = gzip.compress(body) if "gzip" in self.path else body
            self.send_response(200)
            if "gzip" in self.path:
                self.send_header("Content-Encoding", "gzip")
            if "chunked" in self.path:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(data), 1000):
                    piece = data[i:i + 1000]
                    self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = _RetryingSession(RetryPolicy(tries=1, deadline_s=10))
    try:
        for path in ("/plain", "/gzip", "/chunked", "/gzip-chunked", "/plain"):
            answer = session.get(f"http://127.0.0.1:{server.server_port}{path}")
            assert answer.json()["ids"] == list(range(20_000)), path
    finally:
        session.close()
        server.shutdown()
        server.server_close()


def _cli(argv: list[str], server, cache: Path, deadline: float = DEADLINE,
         tries: int = 3) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, DANDI_API_URL=server.api_url, DANDI_NO_ET="1",
               NWB_JEDI_CACHE=str(cache), NWB_JEDI_HTTP_TRIES=str(tries),
               NWB_JEDI_HTTP_BACKOFF="0.01", NWB_JEDI_NET_DEADLINE=str(deadline))
    env.pop("DANDI_API_KEY", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nwb_jedi", *argv], env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - start


def test_a_stalled_server_info_fails_at_the_deadline(short_deadline, tmp_path):
    # The dandi client asks for /server-info with no timeout at all (and remembers the answer
    # for the life of the process): a fresh process, as a user runs it.
    short_deadline.fault("stall", "/server-info")
    proc, elapsed = _cli(["info", REAL], short_deadline, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "the DANDI API at" in lines[0] and "stalled: GET" in lines[0]
    assert "server info (/server-info) got no answer within 1.5 s" in lines[0]
    assert elapsed < DEADLINE + 20  # the process start included; without the deadline: forever


def test_the_deadline_is_configured_from_the_environment(monkeypatch):
    monkeypatch.delenv("NWB_JEDI_NET_DEADLINE", raising=False)
    assert RetryPolicy.from_env().deadline_s == 120.0
    monkeypatch.setenv("NWB_JEDI_NET_DEADLINE", "7.5")
    assert RetryPolicy.from_env().deadline_s == 7.5
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv("NWB_JEDI_NET_DEADLINE", bad)
        with pytest.raises(SourceError, match="NWB_JEDI_NET_DEADLINE"):
            RetryPolicy.from_env()


# ------------------------------------------------------------------ 8. exit status
@pytest.mark.parametrize("command, fault, status, expected", [
    ("info", "status", 503, r"failed after 3 tries \(last: HTTP 503, GET "),
    ("info", "drop", 503, r"failed after 3 tries \(last: connection closed without a response"),
    ("info", "status", 403, r"was refused \(.*403.*\); set DANDI_API_KEY"),
    ("fit", "status", 503, r"failed after 3 tries \(last: HTTP 503"),
])
def test_a_failed_remote_read_exits_with_status_2(dandi_api, tmp_path, command, fault, status,
                                                  expected):
    dandi_api.fault(fault, "/blobs/", status=status)
    argv = [command, REAL] + (["--condition-by", "cue", "--align", "start_time", "--window",
                               "0,0.2", "--out", str(tmp_path / "fit.nwb"), "--quiet"]
                              if command == "fit" else [])
    proc, _ = _cli(argv, dandi_api, tmp_path / "cache", deadline=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # was -11 (SIGSEGV)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nwb-jedi: error: reading DANDI:000006/")
    assert __import__("re").search(expected, lines[0]), lines[0]
    dandi_api.clear_faults()


# ------------------------------------------------------------------ 18. URLs and counts
def test_printed_urls_carry_no_signature_and_tries_are_counted(dandi_api, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("DANDI_API_KEY", dandi_api.token)
    source = f"DANDI:000300/draft/{REAL_PATH}"  # embargoed: a presigned content URL
    with open_source(source, cache_dir=tmp_path) as (h5, info):
        h5["units/spike_times"][:]
    assert "?" not in info.url and PRESIGNED_SECRET not in info.url
    dandi_api.fault("status", "/blobs/")
    with pytest.raises(SourceError) as err:
        with open_source(f"DANDI:000300/draft/{BIG_PATH}", cache_dir=tmp_path) as (h5, _):
            h5["acquisition/raw/data"][-5000:]
    message = str(err.value)
    assert PRESIGNED_SECRET not in message and "X-Amz" not in message and "?" not in message
    assert "failed after 3 tries (last: HTTP 503, GET http://127.0.0.1:" in message
    assert dandi_api.dropped == 3  # the three tries the message counts
    assert "1 times" not in message


def test_url_queries_are_stripped_from_any_text():
    url = "https://bucket.s3.amazonaws.com/blobs/abc?X-Amz-Signature=s3cr3t&X-Amz-Date=1#frag"
    assert plain_url(url) == "https://bucket.s3.amazonaws.com/blobs/abc"
    assert plain_url("https://user:pw@host:8443/a?b") == "https://host:8443/a"
    text = f"GET {url} failed (see {url}); also 'http://h/x?sig=1'"
    assert strip_url_queries(text) == ("GET https://bucket.s3.amazonaws.com/blobs/abc failed "
                                       "(see https://bucket.s3.amazonaws.com/blobs/abc); also "
                                       "'http://h/x'")
