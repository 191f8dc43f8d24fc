"""Resolve a SOURCE string (local path, DANDI id or URL) and open it read-only as an h5py file.

SOURCE forms (DESIGN §3.1), all parsed by `parse_source`:

- a local ``.nwb`` path;
- ``DANDI:000128/0.220113.0400`` (dandiset + version, ``draft`` allowed), optionally followed by
  ``/<asset path>``; ``DANDI:000128`` alone is unpinned;
- ``https://dandiarchive.org/dandiset/000128/0.220113.0400[/files?location=<path>]`` (the
  sandbox and other known DANDI web UIs too, and the old ``/#/dandiset/...`` form);
- ``dandi://<instance>/<id>[@<version>][/<path>]`` with a known dandi instance name;
- a bare dandiset ID ``000128``: the latest published version is used and a `UserWarning` names
  it so the user can pin it.

DANDI assets are resolved with the ``dandi`` client against the instance's API, or against
``$DANDI_API_URL`` when set (tests point it at a server on 127.0.0.1). ``$DANDI_API_KEY`` is
sent for embargoed dandisets. The asset is streamed with ``remfile`` into ``h5py.File``; every
block read is kept in a persistent on-disk cache keyed by (API host, dandiset, version, asset
id) under ``cache_dir``, ``$NWB_JEDI_CACHE`` or the platform cache dir, so a second read of the
same datasets makes no blob requests. Only the blocks h5py asks for are fetched.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h5py
import requests

from nwb_jedi._files import atomic_write_bytes
from nwb_jedi._files import cache_root as default_cache_dir
from nwb_jedi.errors import SourceError

__all__ = [
    "AssetBlockCache", "ParsedSource", "ResolvedAsset", "RetryPolicy", "SourceInfo",
    "default_cache_dir", "file_sha256", "open_source", "parse_source", "resolve_dandi",
]

DANDISET_ID_RE = re.compile(r"\d{6}")
VERSION_RE = re.compile(r"draft|\d+\.\d{6}\.\d{4}")
EXAMPLE = "DANDI:000128/0.220113.0400"
# HTTP statuses worth retrying (throttling and server-side failures), as in dandi.consts.
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Web UI hosts that are not listed in dandi.consts.known_instances but mean the main archive.
_EXTRA_GUI_HOSTS = {"gui.dandiarchive.org": "dandi", "www.dandiarchive.org": "dandi"}


@dataclass
class SourceInfo:
    """Where the data came from, as recorded in outputs.

    kind is "local" or "dandi". For local files `path` (absolute) and, when asked for,
    `sha256`; for DANDI `dandiset`, `version`, `asset_path`, `asset_id` and `url` (the content
    URL without its query string, so no signature is ever recorded).
    """

    kind: str
    path: str | None = None
    sha256: str | None = None
    dandiset: str | None = None
    version: str | None = None
    asset_path: str | None = None
    asset_id: str | None = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {})}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSource:
    """A SOURCE string taken apart; no network access has happened yet.

    kind is "local" (then `path` is set) or "dandi" (then `dandiset` is set; `version` is None
    when the SOURCE is unpinned; `asset_path` is None when no asset was named; `instance` is a
    name from ``dandi.consts.known_instances``).
    """

    kind: str
    text: str
    path: str | None = None
    dandiset: str | None = None
    version: str | None = None
    asset_path: str | None = None
    instance: str = "dandi"


def parse_source(source: str | os.PathLike) -> ParsedSource:
    """Parse a SOURCE string into a `ParsedSource` without touching the network.

    Parameters
    ----------
    source
        A local path, ``DANDI:<id>[/<version>[/<asset path>]]``, a dandiarchive.org dandiset
        URL, ``dandi://<instance>/<id>[@<version>][/<path>]`` or a bare six-digit dandiset ID.

    Returns
    -------
    ParsedSource

    Raises
    ------
    SourceError
        When the string looks like a DANDI reference but is malformed.
    """
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        return ParsedSource("local", str(path), path=str(path))
    if not isinstance(source, str):
        raise SourceError(f"SOURCE must be a string or path, not {type(source).__name__}; give "
                          f"a local .nwb path or a DANDI id such as {EXAMPLE}")
    text = source.strip()
    if not text:
        raise SourceError(f"SOURCE is empty; give a local .nwb path or a DANDI id such as "
                          f"{EXAMPLE}")
    lower = text.lower()
    if lower.startswith("dandi://"):
        return _parse_dandi_scheme(text)
    if lower.startswith("dandi:"):
        return _parse_dandi_colon(text)
    if lower.startswith(("http://", "https://")):
        return _parse_web_url(text)
    if not os.path.exists(text):
        if DANDISET_ID_RE.fullmatch(text):
            return ParsedSource("dandi", text, dandiset=text)
        if text.isdigit():
            raise SourceError(f"{text!r} is neither a file nor a DANDI dandiset ID (those have "
                              f"six digits, e.g. 000128); check the SOURCE")
    return ParsedSource("local", text, path=text)


def _check_version(version: str | None, text: str) -> str | None:
    if version is None or version == "":
        return None
    if version.lower() == "draft":
        return "draft"
    if not VERSION_RE.fullmatch(version):
        raise SourceError(f"{version!r} in {text!r} is not a DANDI version; use a published "
                          f"version such as 0.220113.0400, or draft")
    return version


def _clean_path(path: str | None) -> str | None:
    if path is None:
        return None
    path = unquote(path).strip().strip("/")
    return path or None


def _parse_dandi_colon(text: str) -> ParsedSource:
    m = re.fullmatch(r"(?P<id>[^/]*)(?:/(?P<ver>[^/]*))?(?:/(?P<path>.*))?", text[len("dandi:"):])
    if not m or not DANDISET_ID_RE.fullmatch(m["id"]):
        raise SourceError(f"{text!r} is not a valid DANDI id; write DANDI:<six-digit id>/<version>"
                          f"[/<asset path>], e.g. {EXAMPLE}")
    if m["path"] is not None and not m["ver"]:
        raise SourceError(f"{text!r} names an asset but no version; write "
                          f"DANDI:{m['id']}/<version>/<asset path>, e.g. {EXAMPLE}/<path>")
    return ParsedSource("dandi", text, dandiset=m["id"], version=_check_version(m["ver"], text),
                        asset_path=_clean_path(m["path"]))


def _parse_dandi_scheme(text: str) -> ParsedSource:
    m = re.fullmatch(r"dandi://(?P<inst>[^/]+)/(?P<id>[^/@]*)(?:@(?P<ver>[^/]*))?(?:/(?P<path>.*))?",
                     text, flags=re.IGNORECASE)
    if not m or not DANDISET_ID_RE.fullmatch(m["id"]):
        raise SourceError(f"{text!r} is not a valid dandi:// URL; write "
                          f"dandi://<instance>/<six-digit id>[@<version>][/<asset path>], e.g. "
                          f"dandi://dandi/000128@0.220113.0400")
    instance = m["inst"].lower()
    known = _known_instances()
    if instance not in known:
        raise SourceError(f"unknown DANDI instance {m['inst']!r} in {text!r}; use one of "
                          f"{', '.join(sorted(known))}")
    return ParsedSource("dandi", text, dandiset=m["id"], version=_check_version(m["ver"], text),
                        asset_path=_clean_path(m["path"]), instance=instance)


def _parse_web_url(text: str) -> ParsedSource:
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    instance = _gui_hosts().get(host)
    path, query = parts.path, parts.query
    if parts.fragment.startswith("/"):  # old web UI: https://gui.dandiarchive.org/#/dandiset/...
        frag = urlsplit(parts.fragment)
        path, query = frag.path, frag.query or query
    m = re.fullmatch(r"/dandiset/(?P<id>[^/]+)(?:/(?P<ver>[^/]+))?(?P<files>/files)?/?", path)
    if instance is None or not m or not DANDISET_ID_RE.fullmatch(m["id"]):
        raise SourceError(f"{text!r} is not a DANDI dandiset URL; use e.g. "
                          f"https://dandiarchive.org/dandiset/000128/0.220113.0400"
                          f"[/files?location=<asset path>] or {EXAMPLE}")
    version = m["ver"]
    if version == "files":  # /dandiset/<id>/files?location=... has no version
        version = None
    location = parse_qs(query).get("location", [None])[-1]
    return ParsedSource("dandi", text, dandiset=m["id"], version=_check_version(version, text),
                        asset_path=_clean_path(location), instance=instance)


def _known_instances() -> dict[str, Any]:
    from dandi.consts import known_instances

    return known_instances


def _gui_hosts() -> dict[str, str]:
    hosts = dict(_EXTRA_GUI_HOSTS)
    for name, inst in _known_instances().items():
        if inst.gui:
            host = urlsplit(inst.gui).hostname
            if host and host not in ("localhost", "127.0.0.1"):
                hosts.setdefault(host.lower(), name)
    return hosts


# --------------------------------------------------------------------------------------------
# Network: retries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How network requests to the DANDI API are retried.

    `tries` attempts in all; the wait before retry k (1-based) is ``backoff_s * 2**(k-1)``.
    Defaults come from ``$NWB_JEDI_HTTP_TRIES`` (4) and ``$NWB_JEDI_HTTP_BACKOFF`` (0.5 s).
    Blob reads are retried by remfile itself (9 attempts, 0.1 s doubling backoff).
    """

    tries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        try:
            tries = int(os.environ.get("NWB_JEDI_HTTP_TRIES", cls.tries))
            backoff = float(os.environ.get("NWB_JEDI_HTTP_BACKOFF", cls.backoff_s))
        except ValueError as err:
            raise SourceError(f"NWB_JEDI_HTTP_TRIES / NWB_JEDI_HTTP_BACKOFF must be numbers "
                              f"({err}); fix or unset them") from None
        return cls(tries=max(1, tries), backoff_s=max(0.0, backoff))

    def delay(self, attempt: int) -> float:
        return self.backoff_s * 2 ** (attempt - 1)


class _NetworkError(Exception):
    """A request that failed on every try (not a requests exception, so that the dandi
    client's own, much longer tenacity retry loop passes it straight through)."""


class _RetryingSession(requests.Session):
    """A requests session that retries connection failures and 429/5xx with backoff."""

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__()
        self.policy = policy

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.policy.timeout_s)
        problem = ""
        for attempt in range(1, self.policy.tries + 1):
            try:
                response = super().request(method, url, *args, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as err:
                problem = _short_reason(err)
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status_code}"
                response.close()
            if attempt < self.policy.tries:
                time.sleep(self.policy.delay(attempt))
        raise _NetworkError(f"{method} {url} failed {self.policy.tries} times (last: {problem})")


_REASONS = [("NameResolutionError", "host name not found"),
            ("Failed to resolve", "host name not found"),
            ("RemoteDisconnected", "connection closed without a response"),
            ("Connection refused", "connection refused"),
            ("Connection reset", "connection reset"),
            ("timed out", "timed out")]


def _short_reason(err: BaseException, fallback: str | None = None) -> str:
    """A few words for a requests failure instead of urllib3's nested repr."""
    text = str(err)
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return fallback if fallback is not None else type(err).__name__


def _retry(fn: Any, policy: RetryPolicy, what: str) -> Any:
    """Call fn() with the policy's retries on network-ish failures."""
    for attempt in range(1, policy.tries + 1):
        try:
            return fn()
        except (requests.ConnectionError, requests.Timeout, RuntimeError) as err:
            if attempt == policy.tries:
                raise _NetworkError(f"{what} failed {policy.tries} times (last: "
                                    f"{_short_reason(err)})") from err
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


@dataclass
class ResolvedAsset:
    """A DANDI asset pinned down: where its bytes are and what they are called."""

    api_url: str
    dandiset: str
    version: str
    asset_path: str
    asset_id: str
    size: int
    content_url: str
    embargoed: bool
    token: str | None = None

    @property
    def label(self) -> str:
        return f"DANDI:{self.dandiset}/{self.version}/{self.asset_path}"


def _api_url_for(parsed: ParsedSource) -> str:
    override = os.environ.get("DANDI_API_URL", "").strip()
    if override:
        return override.rstrip("/")
    return _known_instances()[parsed.instance].api.rstrip("/")


def _fmt_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _listing(assets: list[Any], limit: int = 20) -> str:
    shown = "; ".join(f"{a.path} ({_fmt_size(a.size)})" for a in assets[:limit])
    if len(assets) > limit:
        shown += f"; ... and {len(assets) - limit} more"
    return shown


def _is_nwb(path: str) -> bool:
    return path.lower().endswith(".nwb")


def _is_pattern(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _choose_asset(ds: Any, asset_path: str | None, where: str) -> Any:
    from dandi.exceptions import NotFoundError

    if asset_path and _is_pattern(asset_path):
        # A glob pattern (e.g. a preset's "*desc-train*") must name exactly one NWB asset.
        nwb = [a for a in ds.get_assets(order="path") if _is_nwb(a.path)]
        matches = [a for a in nwb if fnmatch.fnmatchcase(a.path, asset_path)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise SourceError(f"the asset pattern {asset_path!r} matches {len(matches)} NWB "
                              f"assets in {where}; choose one with --asset PATH: "
                              f"{_listing(matches)}")
        raise SourceError(f"no NWB asset in {where} matches {asset_path!r}; its NWB assets "
                          f"are: {_listing(nwb) or 'none'}")
    if asset_path:
        try:
            return ds.get_asset_by_path(asset_path)
        except NotFoundError:
            pass
        # A folder (e.g. a web UI ``location=sub-01``): accept it when it holds one NWB file.
        under = [a for a in ds.get_assets_with_path_prefix(asset_path.rstrip("/") + "/",
                                                           order="path") if _is_nwb(a.path)]
        if len(under) == 1:
            return under[0]
        if under:
            raise SourceError(f"{asset_path!r} in {where} is a folder with {len(under)} NWB "
                              f"assets; choose one with --asset PATH (or asset=PATH): "
                              f"{_listing(under)}")
        nwb = [a for a in ds.get_assets(order="path") if _is_nwb(a.path)]
        raise SourceError(f"no asset {asset_path!r} in {where}; its NWB assets are: "
                          f"{_listing(nwb) or 'none'}")
    nwb = [a for a in ds.get_assets(order="path") if _is_nwb(a.path)]
    if not nwb:
        raise SourceError(f"{where} holds no .nwb assets; check the dandiset ID and version")
    if len(nwb) > 1:
        raise SourceError(f"{where} holds {len(nwb)} NWB assets and none was named; choose one "
                          f"with --asset PATH (or asset=PATH): {_listing(nwb)}")
    return nwb[0]


def _merge_asset(parsed: ParsedSource, asset: str | None) -> str | None:
    named = _clean_path(asset)
    if named and parsed.asset_path and named != parsed.asset_path:
        raise SourceError(f"the SOURCE names asset {parsed.asset_path!r} but asset/--asset names "
                          f"{named!r}; give only one")
    return named or parsed.asset_path


def _quiet_dandi_logger() -> None:
    """Give the dandi logger a NullHandler, as the logging docs ask libraries to do.

    Without any handler Python's last-resort handler prints dandi's ERROR records (with
    tracebacks) to stderr ahead of our one-line SourceError. Records still propagate to any
    handler the user configured.
    """
    logger = logging.getLogger("dandi")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def resolve_dandi(parsed: ParsedSource, asset: str | None = None, *,
                  retry: RetryPolicy | None = None) -> ResolvedAsset:
    """Find a DANDI asset's content URL with the ``dandi`` client.

    Parameters
    ----------
    parsed
        A DANDI `ParsedSource` from `parse_source`.
    asset
        Asset path inside the dandiset (overrides nothing: it must agree with the SOURCE's).
    retry
        Retry policy for the API requests (default `RetryPolicy.from_env()`).

    Returns
    -------
    ResolvedAsset

    Raises
    ------
    SourceError
        Unknown dandiset/version/asset, several NWB assets and none named, access refused
        (names ``DANDI_API_KEY``), or the API unreachable after retries.
    """
    from dandi.dandiapi import DandiAPIClient, RemoteZarrAsset
    from dandi.exceptions import NotFoundError

    _quiet_dandi_logger()
    policy = retry or RetryPolicy.from_env()
    api_url = _api_url_for(parsed)
    token = os.environ.get("DANDI_API_KEY", "").strip() or None
    asset_path = _merge_asset(parsed, asset)
    dandiset_id = parsed.dandiset
    assert dandiset_id is not None
    unreachable = (f"could not reach the DANDI API at {api_url}; check your network connection "
                   f"(or DANDI_API_URL) and run again")
    try:
        # Creating the client asks the server for its info page (plain requests, no retry).
        client = _retry(lambda: DandiAPIClient(api_url=api_url), policy, f"GET {api_url} info")
        session = _RetryingSession(policy)
        session.headers.update(client.session.headers)
        client.session.close()
        client.session = session
        if token:
            try:
                client.authenticate(token)
            except requests.HTTPError:
                raise SourceError(f"DANDI_API_KEY was rejected by {api_url}; set it to a valid "
                                  f"API key for this DANDI instance") from None
        try:
            ds = client.get_dandiset(dandiset_id, lazy=False)
        except NotFoundError:
            raise SourceError(f"dandiset {dandiset_id} does not exist on {api_url}; check the "
                              f"ID") from None
        if parsed.version is None:
            version = ds.version_id
            if ds.most_recent_published_version is None:
                note = (f"dandiset {dandiset_id} has no published version, so its mutable draft "
                        f"was used; results can change when the draft is edited")
            else:
                note = (f"{parsed.text!r} names no version, so the latest published version "
                        f"{version} was used; pin it for reproducible results: "
                        f"DANDI:{dandiset_id}/{version}")
            warnings.warn(note, UserWarning, stacklevel=4)
        elif parsed.version != ds.version_id:
            try:
                ds = ds.for_version(ds.draft_version if parsed.version == "draft"
                                    else parsed.version)
            except NotFoundError:
                versions = ", ".join(str(v) for v in ds.get_versions())
                raise SourceError(f"dandiset {dandiset_id} has no version {parsed.version!r}; "
                                  f"available: {versions}") from None
        version = ds.version_id
        where = f"DANDI:{dandiset_id}/{version}"
        chosen = _choose_asset(ds, asset_path, where)
        if isinstance(chosen, RemoteZarrAsset):
            raise SourceError(f"{chosen.path} in {where} is a Zarr asset; only HDF5 NWB "
                              f"files can be read")
        embargoed = getattr(ds.embargo_status, "value", str(ds.embargo_status)) != "OPEN"
        # Embargoed content redirects to a presigned URL whose query is its signature: keep it.
        content_url = chosen.get_content_url(follow_redirects=1, strip_query=not embargoed)
    except requests.HTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            hint = ("set DANDI_API_KEY to an API key with access to it" if not token else
                    "the key in DANDI_API_KEY has no access to it; use a key that does")
            raise SourceError(f"dandiset {dandiset_id} on {api_url} refused access (HTTP "
                              f"{status}); {hint}") from None
        raise SourceError(f"the DANDI API at {api_url} answered HTTP {status} for dandiset "
                          f"{dandiset_id}; try again later") from None
    except _NetworkError as err:
        raise SourceError(f"{unreachable} ({err})") from None
    return ResolvedAsset(api_url=api_url, dandiset=dandiset_id, version=version,
                         asset_path=chosen.path, asset_id=chosen.identifier,
                         size=int(chosen.size), content_url=content_url, embargoed=embargoed,
                         token=token)


# --------------------------------------------------------------------------------------------
# Streaming with a persistent block cache
# --------------------------------------------------------------------------------------------


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part) or "_"


class AssetBlockCache:
    """On-disk block store for one DANDI asset, used as remfile's ``disk_cache``.

    remfile asks for blocks by key ``"<url>|<block size>|<block index>"``. The URL part is
    ignored on purpose: this cache's directory already names (API host, dandiset, version,
    asset id), and content URLs can change (presigned URLs) while the asset's bytes cannot —
    an asset id always names the same bytes. Blocks are written to a temporary file then
    renamed, so an interrupted run never leaves a torn block.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        # Called with the size of every block fetched over the network (a progress bar).
        self.on_download: Any = None
        self.bytes_written = 0

    @classmethod
    def for_asset(cls, root: str | os.PathLike, resolved: ResolvedAsset) -> AssetBlockCache:
        host = urlsplit(resolved.api_url).netloc or "local"
        cache = cls(Path(root) / "dandi" / _safe(host) / _safe(resolved.dandiset)
                    / _safe(resolved.version) / _safe(resolved.asset_id))
        about = cache.directory / "asset.json"
        if not about.exists():
            atomic_write_bytes(about, json.dumps(
                {"api_url": resolved.api_url, "dandiset": resolved.dandiset,
                 "version": resolved.version, "asset_id": resolved.asset_id,
                 "asset_path": resolved.asset_path, "size": resolved.size}, indent=1).encode())
        return cache

    def _block_file(self, key: str) -> Path:
        _url, block_size, index = key.rsplit("|", 2)
        return self.directory / f"{int(block_size)}-{int(index)}.blk"

    def get(self, key: str) -> bytes | None:
        try:
            data = self._block_file(key).read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        self.hits += 1
        return data

    def set(self, key: str, value: bytes) -> None:
        atomic_write_bytes(self._block_file(key), value, clean_stale=False)
        self.bytes_written += len(value)
        if self.on_download is not None:
            self.on_download(len(value))


class _RemoteReader:
    """The file object h5py reads: remfile underneath, remembering any network failure so
    that `open_source` can report it as one clear `SourceError` instead of an h5py OSError."""

    def __init__(self, remote: Any, size: int) -> None:
        self._remote = remote
        self._size = size
        self.failure: BaseException | None = None
        self.on_close: Any = None

    def read(self, size: int = -1) -> bytes:
        pos = self._remote.tell()
        if size is None or size < 0 or pos + size > self._size:
            size = max(0, self._size - pos)
        if size == 0:
            return b""
        try:
            return self._remote.read(size)
        except Exception as err:
            self.failure = err
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        self._remote.seek(offset, whence)
        return self._remote.tell()

    def tell(self) -> int:
        return self._remote.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self._remote.close()
        if self.on_close is not None:
            self.on_close()


def _open_remote(resolved: ResolvedAsset, cache_root: Path) -> tuple[_RemoteReader,
                                                                     AssetBlockCache]:
    import remfile

    cache = AssetBlockCache.for_asset(cache_root, resolved)
    # The size comes from the API, so remfile makes no request to learn it: a fully cached
    # read then makes no blob request at all.
    remote = remfile.File(resolved.content_url, disk_cache=cache, _size=resolved.size)
    # remfile retries blob requests itself; our session only adds a timeout and, for blobs
    # served by the API host itself, the API key (never sent to other hosts such as S3,
    # which would reject it; embargoed S3 URLs are presigned instead).
    session = _RetryingSession(RetryPolicy(tries=1))
    if resolved.token and (urlsplit(resolved.content_url).netloc
                           == urlsplit(resolved.api_url).netloc):
        session.headers["Authorization"] = f"token {resolved.token}"
    remote.session = session
    return _RemoteReader(remote, resolved.size), cache


def _read_failure(label: str, failure: BaseException, cache: AssetBlockCache) -> SourceError:
    text = str(failure)
    if re.search(r"\b(401|403)\b", text):
        return SourceError(f"reading {label} was refused ({text}); set DANDI_API_KEY to an API "
                           f"key with access to this dandiset")
    reason = _short_reason(failure, fallback=text[:200])
    return SourceError(f"reading {label} failed after retries ({reason}); check your network "
                       f"connection and run again (blocks already read stay cached in "
                       f"{cache.directory})")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_source(source: str | os.PathLike, asset: str | None = None,
                cache_dir: str | os.PathLike | None = None, *,
                retry: RetryPolicy | None = None,
                progress: bool = False) -> Iterator[tuple[h5py.File, SourceInfo]]:
    """Open SOURCE read-only and yield ``(h5py.File, SourceInfo)``; closes everything on exit.

    Parameters
    ----------
    source
        Any SOURCE form accepted by `parse_source`.
    asset
        Path of the asset inside a DANDI dandiset (the CLI's ``--asset``).
    cache_dir
        Root of the persistent block cache for DANDI assets (default `default_cache_dir`).
    retry
        Retry policy for DANDI API requests (default `RetryPolicy.from_env`).
    progress
        Show a progress bar (tqdm, stderr) of the bytes streamed from DANDI.

    Raises
    ------
    SourceError
        For any SOURCE that cannot be resolved, reached or read as HDF5.
    """
    parsed = parse_source(source)
    if parsed.kind == "local":
        if asset:
            raise SourceError(f"asset {asset!r} was given but {parsed.text!r} is a local file; "
                              f"--asset only applies to DANDI sources")
        with _open_local(parsed.path or "") as opened:
            yield opened
        return

    resolved = resolve_dandi(parsed, asset, retry=retry)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    reader, cache = _open_remote(resolved, root)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"streaming {resolved.asset_path}", unit="B", unit_scale=True,
                   unit_divisor=1024, leave=False, dynamic_ncols=True)
        cache.on_download = bar.update
        reader.on_close = bar.close
    try:
        h5 = h5py.File(reader, "r")
    except Exception as err:
        reader.close()
        if reader.failure is not None:
            raise _read_failure(resolved.label, reader.failure, cache) from err
        raise SourceError(f"{resolved.label} is not a readable HDF5/NWB file ({err}); check "
                          f"that the asset is an NWB file") from None
    plain_url = resolved.content_url.split("?", 1)[0]
    info = SourceInfo(kind="dandi", dandiset=resolved.dandiset, version=resolved.version,
                      asset_path=resolved.asset_path, asset_id=resolved.asset_id, url=plain_url,
                      extra={"api_url": resolved.api_url, "size": resolved.size,
                             "cache_dir": str(cache.directory)})
    try:
        yield h5, info
    except Exception as err:
        # Reads happen inside the caller's with-block; a network failure surfaces there as an
        # h5py error, which we turn into one clear message.
        if reader.failure is not None:
            raise _read_failure(resolved.label, reader.failure, cache) from err
        raise
    finally:
        h5.close()
        reader.close()


@contextlib.contextmanager
def _open_local(path: str) -> Iterator[tuple[h5py.File, SourceInfo]]:
    if not os.path.exists(path):
        raise SourceError(f"no such file: {path}; give a local .nwb path, a DANDI id such as "
                          f"{EXAMPLE}, or a dandiarchive.org URL")
    if os.path.isdir(path):
        raise SourceError(f"{path} is a directory; give the path of one .nwb file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise SourceError(f"{path} is not a readable HDF5/NWB file ({err}); check that the "
                          f"download finished and the file is NWB") from None
    try:
        yield h5, SourceInfo(kind="local", path=os.path.abspath(path))
    finally:
        h5.close()
