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
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h5py
import requests
from urllib3 import exceptions as urllib3_exceptions

from nwb_jedi._files import atomic_write_bytes
from nwb_jedi._files import cache_root as default_cache_dir
from nwb_jedi.errors import SourceError
from nwb_jedi.io.untrusted import check_regular_file

__all__ = [
    "AssetBlockCache", "ParsedSource", "ResolvedAsset", "RetryPolicy", "SourceInfo",
    "default_cache_dir", "file_sha256", "open_source", "parse_source", "resolve_dandi",
]

DANDISET_ID_RE = re.compile(r"\d{6}")
VERSION_RE = re.compile(r"draft|\d+\.\d{6}\.\d{4}")
EXAMPLE = "DANDI:000128/0.220113.0400"
# HTTP statuses worth retrying (throttling and server-side failures), as in dandi.consts.
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Seconds any one network operation may take (retries included), unless NWB_JEDI_NET_DEADLINE.
DEFAULT_DEADLINE_S = 120.0
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
    """How network requests are retried, and how long any one network operation may take.

    `tries` attempts in all for a DANDI API request; the wait before retry k (1-based) is
    ``backoff_s * 2**(k-1)``. `timeout_s` bounds each wait for the server (connecting, or
    silence while receiving). `deadline_s` bounds a whole operation, retries included:
    resolving an asset (every API request it needs), or one read of the file's bytes (remfile
    retries blob requests itself, up to 9 attempts): a server that stalls, or trickles bytes
    slowly enough to never be silent for `timeout_s`, fails at the deadline with a message
    saying what stalled. Defaults come from ``$NWB_JEDI_HTTP_TRIES`` (4),
    ``$NWB_JEDI_HTTP_BACKOFF`` (0.5 s) and ``$NWB_JEDI_NET_DEADLINE`` (120 s).
    """

    tries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 60.0
    deadline_s: float = DEFAULT_DEADLINE_S

    @classmethod
    def from_env(cls) -> RetryPolicy:
        try:
            tries = int(os.environ.get("NWB_JEDI_HTTP_TRIES", cls.tries))
            backoff = float(os.environ.get("NWB_JEDI_HTTP_BACKOFF", cls.backoff_s))
            deadline = float(os.environ.get("NWB_JEDI_NET_DEADLINE", cls.deadline_s))
        except ValueError as err:
            raise SourceError(f"NWB_JEDI_HTTP_TRIES / NWB_JEDI_HTTP_BACKOFF / "
                              f"NWB_JEDI_NET_DEADLINE must be numbers ({err}); fix or unset "
                              f"them") from None
        if not deadline > 0 or deadline == float("inf"):
            raise SourceError(f"NWB_JEDI_NET_DEADLINE must be a positive number of seconds, got "
                              f"{deadline:g}; fix or unset it")
        return cls(tries=max(1, tries), backoff_s=max(0.0, backoff), deadline_s=deadline)

    def delay(self, attempt: int) -> float:
        return self.backoff_s * 2 ** (attempt - 1)


class _NetworkError(Exception):
    """A request that failed on every try (not a requests exception, so that the dandi
    client's own, much longer tenacity retry loop passes it straight through)."""

    def __init__(self, message: str, what: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.what, self.problem = what, problem


class _GaveUp(BaseException):  # noqa: N818
    """A `_NetworkError` for a caller that would retry any Exception once more: remfile, whose
    own retries (nine, with pauses growing to 12.8 s) would ignore our policy and deadline."""

    def __init__(self, message: str, what: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.what, self.problem = what, problem


class NetworkStall(BaseException):  # noqa: N818 - a stall, not an error of the program
    """A network operation that passed its deadline; the message says what stalled.

    A BaseException on purpose: remfile and the dandi client retry every `Exception` (remfile
    nine times with growing pauses), which would take the operation far past its deadline.
    It never reaches the user as such: `resolve_dandi` and `open_source` turn it into a
    `SourceError`.
    """


class _Deadline:
    """A point in time by which a network operation must be done."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


def plain_url(url: str) -> str:
    """`url` without its query string, fragment or user info: what may be printed (presigned
    URLs carry their signature in the query)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else str(url).split("?")[0]


_URL_WITH_QUERY = re.compile(r"(https?://[^\s?#'\"()<>]+)[?#][^\s'\"()<>]*")


def strip_url_queries(text: str) -> str:
    """`text` with the query string and fragment of every http(s) URL in it removed."""
    return _URL_WITH_QUERY.sub(r"\1", str(text))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


class _BadResponse(Exception):
    """An answer that cannot be the bytes asked for (another range, a truncated body)."""


def _requested_range(headers: Any) -> tuple[int, int] | None:
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", str((headers or {}).get("Range", "")).strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _check_range(response: requests.Response, wanted: tuple[int, int] | None) -> None:
    """A 206 must carry exactly the range asked for (a broken proxy or cache can answer another
    part of the file, which would be cached as this one)."""
    if wanted is None:
        return
    if response.status_code == 200:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) != wanted[1] - wanted[0] + 1:
            raise _BadResponse(f"the whole file answered for a request of bytes "
                               f"{wanted[0]}-{wanted[1]} (the server ignored the range)")
        return
    if response.status_code != 206:
        return
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)",
                     response.headers.get("Content-Range", "").strip())
    if not m:
        raise _BadResponse(f"a partial answer without a valid Content-Range for bytes "
                           f"{wanted[0]}-{wanted[1]}")
    start, end = int(m.group(1)), int(m.group(2))
    total = int(m.group(3)) if m.group(3) != "*" else None
    if start != wanted[0] or (end != wanted[1] and not (total and end == total - 1
                                                       and wanted[1] >= total - 1)):
        raise _BadResponse(f"bytes {start}-{end} answered for a request of bytes "
                           f"{wanted[0]}-{wanted[1]}")


_READ_ERRORS = (requests.RequestException, urllib3_exceptions.HTTPError, OSError)


def _read_body(response: requests.Response, deadline: _Deadline, what: str) -> None:
    """Read the whole body within the deadline (requests' own timeout only bounds silences, so
    a server sending a byte now and then would never trip it)."""
    if response.request is not None and response.request.method == "HEAD":
        response._content = b""
        response._content_consumed = True
        response.close()
        return
    length = response.headers.get("Content-Length", "")
    length = int(length) if length.isdigit() else None  # of the body as sent (maybe encoded)
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    chunks, got = [], 0
    try:
        while True:
            if deadline.expired():
                sent = response.raw.tell()  # bytes received, before any decoding
                size = f" of {length:,}" if length is not None else ""
                raise NetworkStall(f"{what} sent only {sent:,}{size} bytes in "
                                   f"{deadline.seconds:g} s")
            # Raw bytes as they arrive: a decoder (gzip) may need many bytes before it gives
            # any, and would wait for them past the deadline.
            chunk = response.raw.read1(1 << 16, decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except _READ_ERRORS as err:
        response.close()
        if deadline.expired():
            raise NetworkStall(f"{what} sent only {response.raw.tell():,} bytes in "
                               f"{deadline.seconds:g} s") from None
        raise _BadResponse(f"the answer broke off after {got:,} bytes "
                           f"({_short_reason(err)})") from None
    except BaseException:
        response.close()
        raise
    if length is not None and not encoded and got != length:
        response.close()
        raise _BadResponse(f"the answer ended after {got:,} of {length:,} bytes")
    body = b"".join(chunks)
    if encoded:
        body = _decoded(body, response.headers["Content-Encoding"], what)
    response._content = body
    response._content_consumed = True
    response.raw.release_conn()


def _decoded(body: bytes, encoding: str, what: str) -> bytes:
    """`body` decoded as its Content-Encoding says (gzip, deflate, br, zstd), with urllib3's
    decoders (those requests itself would use)."""
    from urllib3.response import _get_decoder

    try:
        decoder = _get_decoder(encoding.lower())
        return decoder.decompress(body) + decoder.flush()
    except Exception as err:  # a body that is not what its header says
        raise _BadResponse(f"the answer to {what} is not valid {encoding} ({err})") from None


class _RetryingSession(requests.Session):
    """A requests session that retries connection failures, 429/5xx and wrong ranges with
    backoff (never sleeping past the deadline), reads every answer whole within the deadline,
    and counts its attempts.

    `deadline`, when set (`begin`), bounds every request until `end`; otherwise each request
    (with its retries) gets its own `RetryPolicy.deadline_s`.
    """

    def __init__(self, policy: RetryPolicy, give_up: type[BaseException] = _NetworkError
                 ) -> None:
        super().__init__()
        self.policy = policy
        self.give_up = give_up  # raised when every try failed
        # Answers are small JSON or binary ranges: ask for them as they are, which also keeps
        # the deadline's byte counts those of the wire.
        self.headers["Accept-Encoding"] = "identity"
        self.deadline: _Deadline | None = None
        self.attempts = 0  # requests sent since `begin`
        self.last_problem = ""

    def begin(self, seconds: float | None = None) -> _Deadline:
        """Start an operation: one deadline for every request until `end`."""
        self.deadline = _Deadline(self.policy.deadline_s if seconds is None else seconds)
        self.attempts, self.last_problem = 0, ""
        return self.deadline

    def end(self) -> None:
        self.deadline = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        deadline = self.deadline or _Deadline(self.policy.deadline_s)
        wanted = _requested_range(kwargs.get("headers"))
        what = f"{method} {plain_url(url)}" + (f" (bytes {wanted[0]}-{wanted[1]})" if wanted
                                                else "")
        problem = ""
        for attempt in range(1, self.policy.tries + 1):
            remaining = deadline.remaining()
            if remaining <= 0:
                last = problem or self.last_problem
                raise NetworkStall(f"{what} did not succeed within {deadline.seconds:g} s"
                                   + (f" (last: {last})" if last else ""))
            kwargs["timeout"] = min(self.policy.timeout_s, remaining)
            kwargs["stream"] = True
            self.attempts += 1
            try:
                response = super().request(method, url, *args, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    _check_range(response, wanted)
                    _read_body(response, deadline, what)
                    return response
                problem = f"HTTP {response.status_code}"
                response.close()
            except (requests.ConnectionError, requests.Timeout) as err:
                if deadline.expired():
                    raise NetworkStall(f"{what} got no answer within {deadline.seconds:g} s") \
                        from None
                problem = _short_reason(err)
            except _BadResponse as err:
                problem = str(err)
            self.last_problem = problem
            if attempt < self.policy.tries:
                time.sleep(max(0.0, min(self.policy.delay(attempt), deadline.remaining())))
        raise self.give_up(f"{what} failed {_times(self.policy.tries)} (last: {problem})",
                           what, problem)


_REASONS = [("NameResolutionError", "host name not found"),
            ("Failed to resolve", "host name not found"),
            ("RemoteDisconnected", "connection closed without a response"),
            ("Connection refused", "connection refused"),
            ("Connection reset", "connection reset"),
            ("IncompleteRead", "connection broken mid-answer"),
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
                raise _NetworkError(f"{what} failed {_times(policy.tries)} (last: "
                                    f"{_short_reason(err)})") from None
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")


def _within(fn: Any, deadline: _Deadline, what: str) -> Any:
    """fn() in a daemon thread, given up at the deadline.

    For calls into the dandi client that make plain requests without any timeout (creating a
    `DandiAPIClient` asks the server for its ``/server-info``): a stalled server would hang
    them forever. The abandoned thread is a daemon, so it never keeps the program alive.
    """
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            result["error"] = err

    thread = threading.Thread(target=work, name="nwb-jedi-network", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline.remaining()))
    if thread.is_alive():
        raise NetworkStall(f"{what} got no answer within {deadline.seconds:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


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


def _api_client(api_url: str, policy: RetryPolicy, deadline: _Deadline) -> Any:
    """A `DandiAPIClient` whose requests go through our retrying session, all within
    `deadline`."""
    from dandi.dandiapi import DandiAPIClient

    # Creating the client asks the server for its info page (plain requests, no timeout, no
    # retry): retried here, and abandoned at the deadline.
    client = _within(lambda: _retry(lambda: DandiAPIClient(api_url=api_url), policy,
                                    f"GET {plain_url(api_url)} server info"),
                     deadline, f"GET {plain_url(api_url)} server info (/server-info)")
    session = _RetryingSession(policy)
    session.deadline = deadline
    session.headers.update({k: v for k, v in client.session.headers.items()
                            if k.lower() != "accept-encoding"})
    client.session.close()
    client.session = session
    return client


def _pinned_version(ds: Any, parsed: ParsedSource, dandiset_id: str) -> Any:
    """The dandiset at the SOURCE's version; with none named, the latest published one (or the
    draft), with a warning that names it so the user can pin it."""
    from dandi.exceptions import NotFoundError

    if parsed.version is None:
        version = ds.version_id
        if ds.most_recent_published_version is None:
            note = (f"dandiset {dandiset_id} has no published version, so its mutable draft "
                    f"was used; results can change when the draft is edited")
        else:
            note = (f"{parsed.text!r} names no version, so the latest published version "
                    f"{version} was used; pin it for reproducible results: "
                    f"DANDI:{dandiset_id}/{version}")
        warnings.warn(note, UserWarning, stacklevel=5)
    elif parsed.version != ds.version_id:
        try:
            ds = ds.for_version(ds.draft_version if parsed.version == "draft"
                                else parsed.version)
        except NotFoundError:
            versions = ", ".join(str(v) for v in ds.get_versions())
            raise SourceError(f"dandiset {dandiset_id} has no version {parsed.version!r}; "
                              f"available: {versions}") from None
    return ds


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
    from dandi.dandiapi import RemoteZarrAsset
    from dandi.exceptions import NotFoundError

    _quiet_dandi_logger()
    policy = retry or RetryPolicy.from_env()
    api_url = _api_url_for(parsed)
    token = os.environ.get("DANDI_API_KEY", "").strip() or None
    asset_path = _merge_asset(parsed, asset)
    dandiset_id = parsed.dandiset
    assert dandiset_id is not None
    unreachable = (f"could not reach the DANDI API at {plain_url(api_url)}; check your network "
                   f"connection (or DANDI_API_URL) and run again")
    deadline = _Deadline(policy.deadline_s)  # for the whole resolution
    try:
        client = _api_client(api_url, policy, deadline)
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
        ds = _pinned_version(ds, parsed, dandiset_id)
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
        raise SourceError(f"{unreachable} ({strip_url_queries(err)})") from None
    except NetworkStall as err:
        raise SourceError(f"the DANDI API at {plain_url(api_url)} stalled: "
                          f"{strip_url_queries(err)}; check your network connection and run "
                          f"again, or allow more time with NWB_JEDI_NET_DEADLINE (seconds, now "
                          f"{policy.deadline_s:g})") from None
    return ResolvedAsset(api_url=api_url, dandiset=dandiset_id, version=version,
                         asset_path=chosen.path, asset_id=chosen.identifier,
                         size=int(chosen.size), content_url=content_url, embargoed=embargoed,
                         token=token)


# --------------------------------------------------------------------------------------------
# Streaming with a persistent block cache
# --------------------------------------------------------------------------------------------


_CACHE_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def cache_part(part: str) -> str:
    """A folder name for one part of a cache key, injective (two different parts never share a
    folder): lowercase letters, digits, ``-``, ``_`` and non-leading ``.`` stay, every other
    byte becomes ``%XX`` (uppercase letters too, for case-insensitive file systems)."""
    out = []
    for i, byte in enumerate(str(part).encode("utf-8")):
        char = chr(byte)
        out.append(char if char in _CACHE_SAFE and not (char == "." and i == 0)
                   else f"%{byte:02X}")
    return "".join(out) or "%"


class AssetBlockCache:
    """On-disk block store for one DANDI asset, used as remfile's ``disk_cache``.

    remfile asks for blocks by key ``"<url>|<block size>|<block index>"``. The URL part is
    ignored on purpose: this cache's directory already names (API host, dandiset, version,
    asset id), each part encoded injectively (`cache_part`), and content URLs can change
    (presigned URLs) while the asset's bytes cannot — an asset id always names the same bytes.

    The cache is untrusted input too: every block is stored with the SHA-256 of its bytes after
    them, and a block whose bytes no longer match, or whose length is not the length of that
    block of the asset, is discarded and fetched again (so a damaged cache never changes a
    result). Blocks are written to a temporary file then renamed, so an interrupted run never
    leaves a torn block. `touched` lists the blocks this instance read or wrote, which
    `open_source` drops when their bytes turn out not to parse.
    """

    SUFFIX = ".blk"
    DIGEST = 32  # bytes of SHA-256 after each block's data

    def __init__(self, directory: str | os.PathLike, size: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.size = size  # the asset's size, when known: every block's length follows from it
        self.hits = 0
        self.misses = 0
        self.discarded = 0  # blocks found damaged and dropped
        self.touched: set[Path] = set()
        # Called with the size of every block fetched over the network (a progress bar).
        self.on_download: Any = None
        self.bytes_written = 0

    @classmethod
    def for_asset(cls, root: str | os.PathLike, resolved: ResolvedAsset) -> AssetBlockCache:
        host = urlsplit(resolved.api_url).netloc or "local"
        cache = cls(Path(root) / "dandi" / cache_part(host) / cache_part(resolved.dandiset)
                    / cache_part(resolved.version) / cache_part(resolved.asset_id),
                    size=resolved.size)
        about = cache.directory / "asset.json"
        if not about.exists():
            atomic_write_bytes(about, json.dumps(
                {"api_url": resolved.api_url, "dandiset": resolved.dandiset,
                 "version": resolved.version, "asset_id": resolved.asset_id,
                 "asset_path": resolved.asset_path, "size": resolved.size}, indent=1).encode())
        return cache

    def _block(self, key: str) -> tuple[Path, int | None]:
        """The block's file and the length its data must have (None when unknown)."""
        _url, block_size, index = key.rsplit("|", 2)
        size, i = int(block_size), int(index)
        expected = None if self.size is None else max(0, min(size, self.size - i * size))
        return self.directory / f"{size}-{i}{self.SUFFIX}", expected

    def get(self, key: str) -> bytes | None:
        path, expected = self._block(key)
        try:
            stored = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        data, digest = stored[:-self.DIGEST], stored[-self.DIGEST:]
        if len(stored) < self.DIGEST or hashlib.sha256(data).digest() != digest or (
                expected is not None and len(data) != expected):
            # Damaged on disk (or written by an older version without a digest): fetch again.
            with contextlib.suppress(OSError):
                path.unlink()
            self.discarded += 1
            self.misses += 1
            return None
        self.hits += 1
        self.touched.add(path)
        return data

    def set(self, key: str, value: bytes) -> None:
        path, expected = self._block(key)
        if expected is not None and len(value) != expected:
            return  # not this block's bytes: never cache them
        atomic_write_bytes(path, bytes(value) + hashlib.sha256(value).digest(),
                           clean_stale=False)
        self.touched.add(path)
        self.bytes_written += len(value)
        if self.on_download is not None:
            self.on_download(len(value))

    def drop_touched(self) -> int:
        """Remove every block this instance read or wrote; returns how many were removed."""
        removed = 0
        for path in self.touched:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        self.touched.clear()
        return removed


@dataclass
class _ReadFailure:
    """Why a read of the streamed file failed: plain text, no exception kept (an exception's
    traceback holds h5py's driver frames, and keeping them alive until the interpreter exits
    made it crash with SIGSEGV)."""

    kind: str  # "refused", "stalled" or "failed"
    text: str
    attempts: int


class _RemoteReader:
    """The file object h5py reads: remfile underneath, each read bounded by the network
    deadline, remembering any network failure so that `open_source` can report it as one clear
    `SourceError` instead of an h5py error."""

    def __init__(self, remote: Any, size: int, session: _RetryingSession) -> None:
        self._remote = remote
        self._size = size
        self._session = session
        self.failure: _ReadFailure | None = None
        self.on_close: Any = None

    def read(self, size: int = -1) -> bytes:
        pos = self._remote.tell()
        if size is None or size < 0 or pos + size > self._size:
            size = max(0, self._size - pos)
        if size == 0:
            return b""
        self._session.begin()  # one deadline for this read, remfile's own retries included
        try:
            return self._remote.read(size)
        except NetworkStall as err:
            self.failure = _ReadFailure("stalled", strip_url_queries(err),
                                        self._session.attempts)
        except _GaveUp as err:
            self.failure = _ReadFailure("failed", strip_url_queries(
                f"{err.problem}, {err.what}"), self._session.attempts)
        except Exception as err:  # remfile's own: an HTTP status no retry can fix
            text = strip_url_queries(err)
            refused = re.search(r"\b(401|403)\b", text) is not None
            self.failure = _ReadFailure("refused" if refused else "failed", text,
                                        self._session.attempts)
        finally:
            self._session.end()
        raise OSError(f"reading bytes {pos}-{pos + size - 1} failed: {self.failure.text}")

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
        self._session.close()
        if self.on_close is not None:
            self.on_close()


def _open_remote(resolved: ResolvedAsset, cache_root: Path,
                 policy: RetryPolicy) -> tuple[_RemoteReader, AssetBlockCache]:
    import remfile

    cache = AssetBlockCache.for_asset(cache_root, resolved)
    # The size comes from the API, so remfile makes no request to learn it: a fully cached
    # read then makes no blob request at all.
    remote = remfile.File(resolved.content_url, disk_cache=cache, _size=resolved.size)
    # Our session retries blob requests with the same policy as the API's, within the
    # deadline, and gives up with a BaseException so that remfile's own retry loop never
    # adds its pauses; it reads every answer whole, checks that it is the range asked for and,
    # for blobs served by the API host itself, sends the API key (never to other hosts such
    # as S3, which would reject it; embargoed S3 URLs are presigned instead).
    session = _RetryingSession(policy, give_up=_GaveUp)
    if resolved.token and (urlsplit(resolved.content_url).netloc
                           == urlsplit(resolved.api_url).netloc):
        session.headers["Authorization"] = f"token {resolved.token}"
    remote.session = session
    return _RemoteReader(remote, resolved.size, session), cache


def _read_failure(label: str, failure: _ReadFailure, cache: AssetBlockCache,
                  policy: RetryPolicy) -> SourceError:
    if failure.kind == "refused":
        return SourceError(f"reading {label} was refused ({failure.text}); set DANDI_API_KEY to "
                           f"an API key with access to this dandiset")
    if failure.kind == "stalled":
        return SourceError(f"reading {label} stalled: {failure.text}; check your network "
                           f"connection and run again, or allow more time with "
                           f"NWB_JEDI_NET_DEADLINE (seconds, now {policy.deadline_s:g})")
    return SourceError(f"reading {label} failed after {failure.attempts} "
                       f"tr{'y' if failure.attempts == 1 else 'ies'} (last: {failure.text}); "
                       f"check your "
                       f"network connection and run again (blocks already read stay cached in "
                       f"{cache.directory})")


def _damaged(label: str, err: BaseException, cache: AssetBlockCache) -> SourceError:
    removed = cache.drop_touched()
    return SourceError(f"the bytes of {label} did not read as HDF5 ({strip_url_queries(err)}); "
                       f"the {removed} cached blocks this run used were removed, so run again "
                       f"to fetch them afresh (if it fails again, the asset itself is damaged)")


def _parse_error(err: BaseException) -> bool:
    """Whether an error raised while reading the streamed file is h5py failing on its bytes
    (possibly wrapped by the reader in one clear message), rather than a missing object or a
    problem of the layout."""
    for error in (err, err.__cause__, err.__context__):
        if isinstance(error, OSError | RuntimeError) and not isinstance(
                error, FileNotFoundError | PermissionError):
            return True
    return False


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

    policy = retry or RetryPolicy.from_env()
    resolved = resolve_dandi(parsed, asset, retry=policy)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"streaming {resolved.asset_path}", unit="B", unit_scale=True,
                   unit_divisor=1024, leave=False, dynamic_ncols=True)
    try:
        h5, reader, cache = _open_h5(resolved, root, policy, bar)
    except BaseException:
        if bar is not None:
            bar.close()
        raise
    info = SourceInfo(kind="dandi", dandiset=resolved.dandiset, version=resolved.version,
                      asset_path=resolved.asset_path, asset_id=resolved.asset_id,
                      url=plain_url(resolved.content_url),
                      extra={"api_url": resolved.api_url, "size": resolved.size,
                             "cache_dir": str(cache.directory)})
    try:
        yield h5, info
    except Exception as err:
        # Reads happen inside the caller's with-block; a network failure surfaces there as an
        # h5py error, which we turn into one clear message.
        if reader.failure is not None:
            raise _read_failure(resolved.label, reader.failure, cache, policy) from None
        if _parse_error(err):
            raise _damaged(resolved.label, err, cache) from None
        raise
    finally:
        # The h5py file first: closing it may still read through the reader.
        h5.close()
        reader.close()
        if bar is not None:
            bar.close()


def _open_h5(resolved: ResolvedAsset, root: Path, policy: RetryPolicy,
             bar: Any) -> tuple[h5py.File, _RemoteReader, AssetBlockCache]:
    """Open the streamed asset with h5py. When its bytes do not parse and some came from the
    cache (or from a bad answer), those blocks are dropped and the file opened once more from
    the network, so a damaged cache never stands between the user and the data."""
    for attempt in (1, 2):
        reader, cache = _open_remote(resolved, root, policy)
        if bar is not None:
            cache.on_download = bar.update
        try:
            return h5py.File(reader, "r"), reader, cache
        except Exception as err:
            reader.close()
            if reader.failure is not None:
                raise _read_failure(resolved.label, reader.failure, cache, policy) from None
            if attempt == 1 and cache.touched:
                cache.drop_touched()
                continue
            raise SourceError(f"{resolved.label} is not a readable HDF5/NWB file "
                              f"({strip_url_queries(err)}); check that the asset is an NWB "
                              f"file") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _open_local(path: str) -> Iterator[tuple[h5py.File, SourceInfo]]:
    if not os.path.exists(path):
        raise SourceError(f"no such file: {path}; give a local .nwb path, a DANDI id such as "
                          f"{EXAMPLE}, or a dandiarchive.org URL")
    if os.path.isdir(path):
        raise SourceError(f"{path} is a directory; give the path of one .nwb file")
    check_regular_file(path, SourceError)  # a FIFO or a device would hang the open
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise SourceError(f"{path} is not a readable HDF5/NWB file ({err}); check that the "
                          f"download finished and the file is NWB") from None
    try:
        yield h5, SourceInfo(kind="local", path=os.path.abspath(path))
    finally:
        h5.close()
