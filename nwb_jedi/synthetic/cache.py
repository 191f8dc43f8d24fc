"""Where synthetic teachers are cached on disk, and safe (atomic, pickle-free) npz writing."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    """The package cache root: ``$NWB_JEDI_CACHE`` if set, else the platform's user cache dir.

    Linux: ``$XDG_CACHE_HOME/nwb_jedi`` (default ``~/.cache/nwb_jedi``); macOS:
    ``~/Library/Caches/nwb_jedi``; Windows: ``%LOCALAPPDATA%\\nwb_jedi\\Cache``.
    """
    env = os.environ.get("NWB_JEDI_CACHE")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "nwb_jedi"
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "nwb_jedi" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(home / ".cache")
    return Path(base) / "nwb_jedi"


def teacher_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of cached teachers: ``<cache_dir or default_cache_dir()>/teachers``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "teachers"


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as .npz through a temporary file renamed into place, so a crash
    never leaves a half-written cache entry. Object arrays are refused (they would need pickle)."""
    for key, val in arrays.items():
        if np.asarray(val).dtype == object:
            raise TypeError(f"array {key!r} has dtype object and would need pickle")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
