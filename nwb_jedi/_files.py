"""Files the package writes: one atomic-write scheme and one cache directory.

Every output (NWB files, figures, checkpoints, cached blocks and teachers, summaries) is written
to a hidden temporary file next to its destination and renamed into place, so a crash or a kill
never leaves a half-written file under the real name. Temporary names follow one scheme,
``.<name>.nwbjedi-tmp.<pid>.<random><extension>``, so that leftovers of a killed process can be
recognised and removed by the next write to the same place.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".nwbjedi-tmp."
# A temporary file older than this is a leftover even if its pid now names a live process
# (pids are reused).
STALE_AFTER_S = 24 * 3600


def cache_root() -> Path:
    """The package's cache directory: ``$NWB_JEDI_CACHE`` if set, else the platform's user
    cache directory (platformdirs: ``~/.cache/nwb_jedi`` on Linux, ``~/Library/Caches/nwb_jedi``
    on macOS, ``%LOCALAPPDATA%\\nwb_jedi\\Cache`` on Windows)."""
    env = os.environ.get("NWB_JEDI_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("nwb_jedi", appauthor=False))


def temporary_name(path: str | os.PathLike) -> str:
    """A fresh hidden temporary path in the directory of `path` (same file system)."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    # The extension is kept at the end: some writers check it (pynwb warns unless ".nwb").
    extension = os.path.splitext(name)[1]
    return os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}.{uuid.uuid4().hex[:12]}"
                                   f"{extension}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: keep it
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Remove temporary files left next to `path` by processes that died while writing it.

    A temporary file counts as stale when the process that made it no longer runs, or when it
    is older than a day. Returns the paths removed.
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = f".{name}{TMP_MARK}"
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        full = os.path.join(directory, entry)
        try:
            pid = int(entry[len(prefix):].split(".", 1)[0])
            old = now - os.lstat(full).st_mtime > STALE_AFTER_S
        except (ValueError, OSError):
            continue
        if old or not _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.remove(full)
                removed.append(full)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True,
                  clean_stale: bool = True) -> Iterator[str]:
    """Yield a temporary path to write; on success it is renamed to `path`.

    Parameters
    ----------
    path : path
        The destination.
    overwrite : bool
        Replace an existing `path`. With False the rename is exclusive: if `path` appeared
        meanwhile (another process), FileExistsError is raised and nothing is replaced.
    clean_stale : bool
        First remove temporaries that killed processes left next to `path`.

    The temporary file is removed when the block raises.
    """
    path = os.fspath(path)
    if clean_stale:
        remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _exclusive_rename(tmp, path)
    finally:
        if os.path.lexists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _exclusive_rename(tmp: str, path: str) -> None:
    """Move `tmp` to `path` only if `path` does not exist, atomically where the file system
    allows it (a hard link fails if the name exists)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(17, "already exists", path) from None
    except OSError:  # no hard links here (some network or FAT file systems): best effort
        if os.path.lexists(path):
            raise FileExistsError(17, "already exists", path) from None
        os.replace(tmp, path)
        return
    os.remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, clean_stale: bool = True
                       ) -> None:
    """Write `data` to `path` atomically (temporary file, then rename)."""
    with atomic_output(path, clean_stale=clean_stale) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
