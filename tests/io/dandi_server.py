"""A small DANDI-compatible HTTP server for tests, run on 127.0.0.1 in a thread.

It answers the REST calls the real ``dandi`` client (0.81) makes to resolve an asset:

- ``GET /server-info`` and ``GET /api/info/``: server info read by ``dandi.utils.get_instance``;
- ``GET /api/auth/token``: token check made by ``DandiAPIClient.authenticate``;
- ``GET /api/dandisets/<id>/``: dandiset data with draft and most recent published version;
- ``GET /api/dandisets/<id>/versions/``: all versions;
- ``GET /api/dandisets/<id>/versions/<v>/info/``: one version;
- ``GET /api/dandisets/<id>/versions/<v>/``: the version's metadata (what ``dandi download
  --download dandiset.yaml`` writes);
- ``GET /api/dandisets/<id>/versions/<v>/assets/?path=&page=&page_size=``: paginated asset list;
- ``GET /api/dandisets/<id>/versions/<v>/assets/<asset id>/``: asset metadata with ``contentUrl``;
- ``GET|HEAD /api/assets/<asset id>/download/``: 302 to the blob URL on this same server (for
  embargoed dandisets a presigned URL: its query holds a signature, as S3's do);
- ``GET|HEAD /blobs/<blob id>``: the file's bytes, honouring ``Range: bytes=a-b`` (206).

JSON answers are gzip-encoded when the client accepts it, as the real API's are. It counts the
body bytes served per path, can require a token for embargoed dandisets (401
without), and can be told to misbehave on the requests whose path starts with a prefix
(`DandiTestServer.fault`), for N requests or until cleared:

- ``drop``: close the connection without any response;
- ``status``: answer an HTTP error status (``503`` by default: a 503 storm);
- ``stall``: read the request and never answer (until the fault is cleared or the server stops);
- ``trickle``: answer, but send the body one byte every ``delay`` seconds;
- ``drop_mid_body``: send the headers and half the body, then close the connection;
- ``corrupt``: send a body of the right length whose bytes are flipped;
- ``wrong_range``: answer a range request with 206 and the bytes (and Content-Range) of another
  part of the file (what a broken cache or proxy does).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import socket
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

CREATED = "2022-01-13T04:00:00.000000Z"
FAULTS = ("drop", "status", "stall", "trickle", "drop_mid_body", "corrupt", "wrong_range")
TOKEN = "test-token-0123456789"
#: The signature in the query of the presigned URLs of embargoed assets (never to be printed).
PRESIGNED_SECRET = "c2VjcmV0LXNpZ25hdHVyZS0wMTIzNDU2Nzg5"


@dataclass
class FakeAsset:
    asset_id: str
    blob_id: str
    path: str
    file: str  # local file served as the blob
    size: int


@dataclass
class Fault:
    """One kind of misbehaviour, for requests whose path starts with `prefix`."""

    kind: str
    prefix: str = "/"
    left: int | None = None  # requests still to spoil; None = until cleared
    status: int = 503
    delay: float = 0.2  # trickle: seconds between bytes


@dataclass
class FakeDandiset:
    identifier: str
    embargoed: bool = False
    versions: dict[str, list[FakeAsset]] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)  # in publication order


class _ServerCore:
    """The server itself: state, controls and the HTTP server, in the process that serves."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.dandisets: dict[str, FakeDandiset] = {}
        self.assets: dict[str, tuple[FakeDandiset, FakeAsset]] = {}
        self.blobs: dict[str, tuple[FakeDandiset, FakeAsset]] = {}
        self.bytes_served: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._released = threading.Event()  # wakes stalled and trickling handlers
        self.dropped = 0  # requests spoiled by a fault (any kind)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content -----------------------------------------------------------------------------

    def add_version(self, dandiset_id: str, version: str, files: dict[str, str | os.PathLike],
                    *, embargoed: bool = False) -> list[FakeAsset]:
        """Add a version (``"draft"`` or a published id) holding ``{asset path: local file}``.

        Published versions become the dandiset's most recent published version in the order
        they are added.
        """
        ds = self.dandisets.setdefault(dandiset_id, FakeDandiset(dandiset_id, embargoed))
        ds.embargoed = ds.embargoed or embargoed
        assets = []
        for path, file in files.items():
            file = os.fspath(file)
            asset = FakeAsset(str(uuid.uuid4()), str(uuid.uuid4()), path, file,
                              os.path.getsize(file))
            self.assets[asset.asset_id] = (ds, asset)
            self.blobs[asset.blob_id] = (ds, asset)
            assets.append(asset)
        ds.versions[version] = assets
        if version != "draft":
            ds.published.append(version)
        ds.versions.setdefault("draft", list(assets))
        return assets

    # -- control -----------------------------------------------------------------------------

    def drop_connections(self, n: int, path_prefix: str = "/") -> None:
        """Close the next ``n`` connections whose path starts with ``path_prefix`` unanswered
        (``n = 0`` clears every fault)."""
        if n <= 0:
            self.clear_faults()
        else:
            self.fault("drop", path_prefix, n=n)

    def fault(self, kind: str, path_prefix: str = "/", *, n: int | None = None,
              status: int = 503, delay: float = 0.2) -> None:
        """Misbehave (see the module docstring) on the next `n` requests (None: until
        `clear_faults`) whose path starts with `path_prefix`; replaces earlier faults."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._released.clear()
            self._faults = [Fault(kind, path_prefix, n, status, delay)]

    def clear_faults(self) -> None:
        """Behave again, and let go of every stalled or trickling response."""
        with self._lock:
            self._faults = []
        self._released.set()

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_served.clear()
            self.requests.clear()
            self.dropped = 0

    def blob_bytes(self) -> int:
        """Body bytes served from ``/blobs/`` since the last reset."""
        with self._lock:
            return sum(n for p, n in self.bytes_served.items() if p.startswith("/blobs/"))

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def start(self) -> _ServerCore:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- helpers used by the handler -----------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self._faults:
                if path.startswith(fault.prefix) and (fault.left is None or fault.left > 0):
                    if fault.left is not None:
                        fault.left -= 1
                    self.dropped += 1
                    return fault
            return None

    def _count(self, path: str, n: int) -> None:
        with self._lock:
            self.bytes_served[path] += n

    def _version_json(self, ds: FakeDandiset, version: str) -> dict:
        assets = ds.versions[version]
        return {
            "version": version, "name": f"Test dandiset {ds.identifier}",
            "asset_count": len(assets), "size": sum(a.size for a in assets),
            "created": CREATED, "modified": CREATED,
            "status": "Published" if version != "draft" else "Valid",
        }

    def _dandiset_json(self, ds: FakeDandiset) -> dict:
        return {
            "identifier": ds.identifier, "created": CREATED, "modified": CREATED,
            "contact_person": "Test, Person",
            "embargo_status": "EMBARGOED" if ds.embargoed else "OPEN",
            "most_recent_published_version": (self._version_json(ds, ds.published[-1])
                                              if ds.published else None),
            "draft_version": self._version_json(ds, "draft"),
        }

    def _asset_json(self, asset: FakeAsset) -> dict:
        return {"asset_id": asset.asset_id, "blob": asset.blob_id, "zarr": None,
                "path": asset.path, "size": asset.size, "created": CREATED, "modified": CREATED}

    def _asset_metadata(self, asset: FakeAsset) -> dict:
        return {
            "id": f"dandiasset:{asset.asset_id}", "identifier": asset.asset_id,
            "path": asset.path, "contentSize": asset.size,
            "encodingFormat": "application/x-nwb",
            "contentUrl": [f"{self.api_url}/assets/{asset.asset_id}/download/",
                           f"{self.url}/blobs/{asset.blob_id}"],
        }


_VERSION_RE = r"(?P<v>[^/]+)"
_ROUTES = [
    ("info", re.compile(r"^/(server-info|api/info/?)$")),
    ("token", re.compile(r"^/api/auth/token/?$")),
    ("dandiset", re.compile(r"^/api/dandisets/(?P<d>\d+)/$")),
    ("versions", re.compile(r"^/api/dandisets/(?P<d>\d+)/versions/$")),
    ("version", re.compile(rf"^/api/dandisets/(?P<d>\d+)/versions/{_VERSION_RE}/info/$")),
    ("metadata", re.compile(rf"^/api/dandisets/(?P<d>\d+)/versions/{_VERSION_RE}/$")),
    ("assets", re.compile(rf"^/api/dandisets/(?P<d>\d+)/versions/{_VERSION_RE}/assets/$")),
    ("asset", re.compile(
        rf"^/api/dandisets/(?P<d>\d+)/versions/{_VERSION_RE}/assets/(?P<a>[0-9a-f-]+)/$")),
    ("download", re.compile(r"^/api/assets/(?P<a>[0-9a-f-]+)/download/$")),
    ("blob", re.compile(r"^/blobs/(?P<b>[0-9a-f-]+)$")),
]


class _Handler(BaseHTTPRequestHandler):
    owner: _ServerCore  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep tests quiet
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # -- plumbing ----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              head: bool = False, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self._write_body(body)

    def _write_body(self, body: bytes) -> None:
        """Send `body`, spoiled as the current fault (if any) says."""
        fault = self.fault
        kind = fault.kind if fault is not None else None
        if kind == "corrupt":
            body = bytes(b ^ 0xFF for b in body)
        if kind == "drop_mid_body":
            body = body[: len(body) // 2]
        try:
            if kind == "trickle":
                for i in range(len(body)):
                    if self.owner._released.wait(fault.delay):
                        break
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    self.owner._count(self.path_only, 1)
            else:
                # counted before it goes out: the client may read it (and the test look at the
                # count) before this thread runs again
                self.owner._count(self.path_only, len(body))
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: count only what went out
        if kind in ("drop_mid_body", "trickle"):
            self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _json(self, obj: object, status: int = 200, head: bool = False) -> None:
        body = json.dumps(obj).encode()
        if "gzip" in self.headers.get("Accept-Encoding", ""):  # as the real API answers
            self._send(status, gzip.compress(body), {"Content-Encoding": "gzip"}, head=head)
        else:
            self._send(status, body, head=head)

    def _error(self, status: int, detail: str, head: bool = False) -> None:
        self._json({"detail": detail}, status=status, head=head)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"token {self.owner.token}"

    def _dispatch(self, head: bool) -> None:
        parts = urlsplit(self.path)
        self.path_only = parts.path
        self.fault = self.owner._take_fault(self.command, parts.path)
        kind = self.fault.kind if self.fault is not None else None
        if kind == "drop":
            self.close_connection = True  # say nothing: the client sees a dropped connection
            return
        if kind == "status":
            status, self.fault = self.fault.status, None
            self._error(status, "Service Unavailable", head)
            return
        if kind == "stall":
            # Read the request, answer nothing, keep the connection open.
            self.owner._released.wait(120)
            self.close_connection = True
            return
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        for name, pattern in _ROUTES:
            m = pattern.match(parts.path)
            if m:
                getattr(self, f"_r_{name}")(head=head, query=query, **m.groupdict())
                return
        self._error(404, "Not found.", head)

    def _lookup(self, d: str, head: bool, v: str | None = None) -> FakeDandiset | None:
        ds = self.owner.dandisets.get(d)
        if ds is None:
            self._error(404, "No Dandiset matches the given query.", head)
            return None
        if ds.embargoed and not self._authorized():
            self._error(401, "Authentication credentials were not provided.", head)
            return None
        if v is not None and v not in ds.versions:
            self._error(404, "No Version matches the given query.", head)
            return None
        return ds

    # -- routes ------------------------------------------------------------------------------

    def _r_info(self, head: bool, query: dict) -> None:
        self._json({"version": "0.0.0-test", "cli-minimal-version": "0.60.0",
                    "cli-bad-versions": [],
                    "services": {"api": {"url": self.owner.api_url},
                                 "webui": {"url": self.owner.url}}}, head=head)

    def _r_token(self, head: bool, query: dict) -> None:
        if self._authorized():
            self._json({"token": self.owner.token}, head=head)
        else:
            self._error(401, "Invalid token.", head)

    def _r_dandiset(self, head: bool, query: dict, d: str) -> None:
        ds = self._lookup(d, head)
        if ds:
            self._json(self.owner._dandiset_json(ds), head=head)

    def _r_versions(self, head: bool, query: dict, d: str) -> None:
        ds = self._lookup(d, head)
        if ds:
            order = [*ds.published, "draft"]
            self._json({"count": len(order), "next": None, "previous": None,
                        "results": [self.owner._version_json(ds, v) for v in order]}, head=head)

    def _r_version(self, head: bool, query: dict, d: str, v: str) -> None:
        ds = self._lookup(d, head, v)
        if ds:
            self._json({**self.owner._version_json(ds, v), "asset_validation_errors": [],
                        "version_validation_errors": []}, head=head)

    def _r_metadata(self, head: bool, query: dict, d: str, v: str) -> None:
        ds = self._lookup(d, head, v)
        if ds:
            self._json({"schemaKey": "Dandiset", "identifier": f"DANDI:{d}",
                        "id": f"DANDI:{d}/{v}", "version": v,
                        "name": f"Test dandiset {d}", "description": "Served by the tests.",
                        "license": ["spdx:CC-BY-4.0"]}, head=head)

    def _r_assets(self, head: bool, query: dict, d: str, v: str) -> None:
        ds = self._lookup(d, head, v)
        if not ds:
            return
        assets = [a for a in ds.versions[v] if a.path.startswith(query.get("path", ""))]
        if query.get("order") in ("path", "-path"):
            assets.sort(key=lambda a: a.path, reverse=query["order"].startswith("-"))
        page, size = int(query.get("page", 1)), int(query.get("page_size", 100))
        chunk = assets[(page - 1) * size: page * size]
        nxt = None
        if page * size < len(assets):
            nxt = f"{self.owner.url}{self.path_only}?{urlencode({**query, 'page': page + 1})}"
        self._json({"count": len(assets), "next": nxt, "previous": None,
                    "results": [self.owner._asset_json(a) for a in chunk]}, head=head)

    def _r_asset(self, head: bool, query: dict, d: str, v: str, a: str) -> None:
        ds = self._lookup(d, head, v)
        if not ds:
            return
        match = [x for x in ds.versions[v] if x.asset_id == a]
        if not match:
            self._error(404, "No Asset matches the given query.", head)
            return
        self._json(self.owner._asset_metadata(match[0]), head=head)

    def _r_download(self, head: bool, query: dict, a: str) -> None:
        found = self.owner.assets.get(a)
        if found is None:
            self._error(404, "No Asset matches the given query.", head)
            return
        ds, asset = found
        if ds.embargoed and not self._authorized():
            self._error(401, "Authentication credentials were not provided.", head)
            return
        location = f"{self.owner.url}/blobs/{asset.blob_id}"
        if ds.embargoed:  # as S3 does for embargoed assets: a presigned URL, signature in query
            location += f"?X-Amz-Credential=AKIA-TEST&X-Amz-Signature={PRESIGNED_SECRET}"
        self._send(302, b"", {"Location": location}, head=head)

    def _r_blob(self, head: bool, query: dict, b: str) -> None:
        found = self.owner.blobs.get(b)
        if found is None:
            self._error(404, "NoSuchKey", head)
            return
        ds, asset = found
        if ds.embargoed and not self._authorized():
            self._error(403, "AccessDenied", head)
            return
        total = asset.size
        rng = self.headers.get("Range")
        start, end, status = 0, total - 1, 200
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m.group(1)) >= total:
                self._send(416, b"", {"Content-Range": f"bytes */{total}"}, head=head)
                return
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else total - 1, total - 1)
            status = 206
        length = end - start + 1
        if self.fault is not None and self.fault.kind == "wrong_range" and status == 206:
            # another part of the file, of the requested length, labelled as what it is
            start = (start + length) % max(1, total - length + 1)
            end = start + length - 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if head:
            return
        if self.fault is not None:
            # A spoiled body: read the range whole (test files are small) and spoil it.
            with open(asset.file, "rb") as f:
                f.seek(start)
                self._write_body(f.read(length))
            return
        with open(asset.file, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                self.owner._count(self.path_only, len(block))  # before the client can see it
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    break  # the client hung up
                left -= len(block)


# ------------------------------------------------------------------------------ in its own process
def _serve(conn, token: str) -> None:
    """Run a `_ServerCore` and obey the parent's calls until it says stop (None)."""
    core = _ServerCore(token).start()
    conn.send(core.url)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the test process is gone: so is its server
            message = None
        if message is None:
            core.stop()
            with contextlib.suppress(OSError):
                conn.send(None)
            return
        kind, name, args, kwargs = message
        try:
            if kind == "get":
                result = getattr(core, name)
            elif kind == "set":
                setattr(core, name, args[0])
                result = None
            else:
                result = getattr(core, name)(*args, **kwargs)
            conn.send(("ok", result))
        except Exception as err:  # handed to the caller
            conn.send(("error", err))


class DandiTestServer:
    """Serve fake dandisets over HTTP on 127.0.0.1 at a random port, from a process of its own.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Every control method and
    counter of the server (`add_version`, `fault`, `drop_connections`, `clear_faults`,
    `reset_counters`, `blob_bytes`, `token`, `dropped`, `requests`, `bytes_served`) is forwarded
    to that process. A separate process, like a real server: served from threads of the test
    process, the server would share its interpreter lock and garbage collector with the client,
    and a collection of h5py objects in a server thread could wait for the h5py lock that the
    client holds while it waits for the server.
    """

    def __init__(self, token: str = TOKEN) -> None:
        self._token = token
        self._process = None
        self._conn = None
        self._url: str | None = None
        self._lock = threading.Lock()

    # -- process ---------------------------------------------------------------------------------

    def start(self) -> DandiTestServer:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # nothing of this process is inherited
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self._token), daemon=True,
                                        name="dandi-test-server")
        self._process.start()
        child.close()
        if not self._conn.poll(60):
            raise RuntimeError("the DANDI test server did not start within 60 s")
        self._url = self._conn.recv()
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        with self._lock:
            try:
                self._conn.send(None)
                self._conn.poll(10) and self._conn.recv()
            except (OSError, EOFError):
                pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()
        self._process = None

    def __enter__(self) -> DandiTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, kind: str, name: str, *args, **kwargs):
        assert self._process is not None, "server not started"
        with self._lock:
            self._conn.send((kind, name, args, kwargs))
            status, value = self._conn.recv()
        if status == "error":
            raise value
        return value

    # -- forwarded -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._url is not None, "server not started"
        return self._url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def add_version(self, dandiset_id: str, version: str, files: dict[str, str | os.PathLike],
                    *, embargoed: bool = False) -> list[FakeAsset]:
        """Add a version (``"draft"`` or a published id) holding ``{asset path: local file}``.

        Published versions become the dandiset's most recent published version in the order
        they are added.
        """
        files = {path: os.path.abspath(os.fspath(file)) for path, file in files.items()}
        return self._call("call", "add_version", dandiset_id, version, files,
                          embargoed=embargoed)

    def fault(self, kind: str, path_prefix: str = "/", *, n: int | None = None,
              status: int = 503, delay: float = 0.2) -> None:
        """Misbehave (see the module docstring) on the next `n` requests (None: until
        `clear_faults`) whose path starts with `path_prefix`; replaces earlier faults."""
        self._call("call", "fault", kind, path_prefix, n=n, status=status, delay=delay)

    def drop_connections(self, n: int, path_prefix: str = "/") -> None:
        """Close the next ``n`` connections whose path starts with ``path_prefix`` unanswered
        (``n = 0`` clears every fault)."""
        self._call("call", "drop_connections", n, path_prefix)

    def clear_faults(self) -> None:
        """Behave again, and let go of every stalled or trickling response."""
        self._call("call", "clear_faults")

    def reset_counters(self) -> None:
        self._call("call", "reset_counters")

    def blob_bytes(self) -> int:
        """Body bytes served from ``/blobs/`` since the last reset."""
        return self._call("call", "blob_bytes")

    @property
    def token(self) -> str:
        return self._call("get", "token")

    @token.setter
    def token(self, value: str) -> None:
        self._call("set", "token", value)

    @property
    def dropped(self) -> int:
        """Requests spoiled by a fault (any kind) since the last reset."""
        return self._call("get", "dropped")

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request since the last reset."""
        return self._call("get", "requests")

    @property
    def bytes_served(self) -> Counter[str]:
        """Body bytes served per path since the last reset."""
        return self._call("get", "bytes_served")
