"""Where synthetic teachers are cached on disk, and safe (atomic, pickle-free) npz writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nwb_jedi._files import atomic_output
from nwb_jedi._files import cache_root as default_cache_dir

__all__ = ["default_cache_dir", "save_npz_atomic", "teacher_cache_dir"]


def teacher_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of cached teachers: ``<cache_dir or the package cache dir>/teachers``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "teachers"


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as .npz through a temporary file renamed into place, so a crash
    never leaves a half-written cache entry. Object arrays are refused (they would need pickle)."""
    for key, val in arrays.items():
        if np.asarray(val).dtype == object:
            raise TypeError(f"array {key!r} has dtype object and would need pickle")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
