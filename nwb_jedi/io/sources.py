"""Resolve a SOURCE string (local path, DANDI id/URL) and open it as an h5py file.

Minimal version: local files only. DANDI resolution, streaming and caching are added here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import h5py

from nwb_jedi.errors import SourceError


@dataclass
class SourceInfo:
    """Where the data came from, as recorded in outputs.

    kind is "local" or "dandi". For local files `path` (absolute) and, when asked for,
    `sha256`; for DANDI `dandiset`, `version`, `asset_path`, `asset_id` and `url`.
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


@contextlib.contextmanager
def open_source(source: str | os.PathLike, asset: str | None = None,
                cache_dir: str | os.PathLike | None = None) -> Iterator[tuple[h5py.File, SourceInfo]]:
    """Open SOURCE read-only and yield ``(h5py.File, SourceInfo)``; closes everything on exit."""
    path = os.fspath(source)
    if not os.path.exists(path):
        raise SourceError(f"no such file: {path}; give a local .nwb path, a DANDI id such as "
                          f"DANDI:000128/0.220113.0400, or a dandiarchive.org URL")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise SourceError(f"{path} is not a readable HDF5/NWB file ({err}); check that the "
                          f"download finished and the file is NWB") from None
    try:
        yield h5, SourceInfo(kind="local", path=os.path.abspath(path))
    finally:
        h5.close()
