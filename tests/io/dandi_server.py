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
- ``GET|HEAD /api/assets/<asset id>/download/``: 302 to the blob URL on this same server;
- ``GET|HEAD /blobs/<blob id>``: the file's bytes, honouring ``Range: bytes=a-b`` (206).

It counts the body bytes served per path, can require a token for embargoed dandisets (401
without), and can be told to drop connections (close without any response) for N requests.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

CREATED = "2022-01-13T04:00:00.000000Z"
TOKEN = "test-token-0123456789"


@dataclass
class FakeAsset:
    asset_id: str
    blob_id: str
    path: str
    file: str  # local file served as the blob
    size: int


@dataclass
class FakeDandiset:
    identifier: str
    embargoed: bool = False
    versions: dict[str, list[FakeAsset]] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)  # in publication order


class DandiTestServer:
    """Serve fake dandisets over HTTP on 127.0.0.1 at a random port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.dandisets: dict[str, FakeDandiset] = {}
        self.assets: dict[str, tuple[FakeDandiset, FakeAsset]] = {}
        self.blobs: dict[str, tuple[FakeDandiset, FakeAsset]] = {}
        self.bytes_served: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._drop_left = 0
        self._drop_prefix = "/"
        self.dropped = 0
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
        """Close the next ``n`` connections whose path starts with ``path_prefix`` unanswered."""
        with self._lock:
            self._drop_left = n
            self._drop_prefix = path_prefix

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

    def start(self) -> DandiTestServer:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> DandiTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers used by the handler -----------------------------------------------------------

    def _take_drop(self, method: str, path: str) -> bool:
        with self._lock:
            self.requests.append((method, path))
            if self._drop_left > 0 and path.startswith(self._drop_prefix):
                self._drop_left -= 1
                self.dropped += 1
                return True
            return False

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
    owner: DandiTestServer  # set on the per-server subclass

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
            self.wfile.write(body)
            self.owner._count(self.path_only, len(body))

    def _json(self, obj: object, status: int = 200, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), head=head)

    def _error(self, status: int, detail: str, head: bool = False) -> None:
        self._json({"detail": detail}, status=status, head=head)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"token {self.owner.token}"

    def _dispatch(self, head: bool) -> None:
        parts = urlsplit(self.path)
        self.path_only = parts.path
        if self.owner._take_drop(self.command, parts.path):
            self.close_connection = True  # say nothing: the client sees a dropped connection
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
        self._send(302, b"", {"Location": f"{self.owner.url}/blobs/{asset.blob_id}"}, head=head)

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
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if head:
            return
        with open(asset.file, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    break  # the client hung up: count only what went out
                self.owner._count(self.path_only, len(block))
                left -= len(block)
