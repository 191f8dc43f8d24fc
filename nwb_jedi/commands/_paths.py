"""Checks of the paths a command writes, made before anything is read or fitted.

A fit can take hours; an output path that cannot be written (a read-only directory, a
checkpoint directory under a file, a name too long for the file system) must be found before
it starts, not when it ends. Inputs are protected: an output that is one of the command's inputs
(``predict M S --out M --overwrite``) is refused, even with ``--overwrite``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable

from nwb_jedi._files import remove_stale_temporaries
from nwb_jedi.errors import UserError

__all__ = ["check_output_dir", "check_output_file", "same_file"]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (links and relative paths resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare what they would resolve to
        return os.path.realpath(a) == os.path.realpath(b)


def _why(err: OSError) -> str:
    if err.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system (most allow 255 characters)"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "it is not writable" + (" (read-only file system)" if err.errno == errno.EROFS
                                       else "")
    if err.errno == errno.ENOSPC:
        return "the disk is full"
    return err.strerror or type(err).__name__


def _probe(directory: str, flag: str, shown: str) -> None:
    """Create and remove a file in `directory`: the one honest test that we may write there
    (permission bits do not tell, e.g. for root or on read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".nwbjedi-probe.", dir=directory)
    except OSError as err:
        raise UserError(f"{flag} {shown} cannot be written: {_why(err)}; choose another "
                        f"{flag}") from None
    os.close(fd)
    os.remove(probe)


def _existing_ancestor(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _check_names(path: str, flag: str) -> None:
    for part in os.path.abspath(path).split(os.sep):
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            raise UserError(f"{flag} {path} cannot be written: the name {part[:40]}... is "
                            f"{len(part)} characters long, more than most file systems allow "
                            f"(255); choose a shorter {flag}")


def check_output_dir(path: str | os.PathLike, flag: str) -> str:
    """Check that directory `path` exists and is writable, or can be created; returns it.

    Raises
    ------
    UserError
        `path` (or the first of its ancestors that exists) is a file, not writable, or has a
        name too long for the file system.
    """
    path = os.fspath(path)
    _check_names(path, flag)
    existing = _existing_ancestor(path)
    if not os.path.isdir(existing):
        what = "is a file" if existing == os.path.abspath(path) else f"is under a file ({existing})"
        raise UserError(f"{flag} {path} {what}; give a directory")
    _probe(existing, flag, path)
    return path


def check_output_file(path: str | os.PathLike, flag: str, *, overwrite: bool,
                      inputs: Iterable[str | os.PathLike | None] = ()) -> str:
    """Check that file `path` can be written, before any work; returns it.

    Also removes temporary files that a killed run left next to it.

    Raises
    ------
    UserError
        `path` is a directory, is one of `inputs` (never replaced, even with `overwrite`),
        exists without `overwrite`, or its directory is missing, not writable, or the name is
        too long.
    """
    path = os.fspath(path)
    if not path.strip():
        raise UserError(f"{flag} is empty; give a file name such as out.nwb")
    _check_names(path, flag)
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a directory; give a file name such as "
                        f"{os.path.join(path, 'out.nwb')}")
    for given in inputs:
        if given is not None and os.path.exists(given) and same_file(path, given):
            raise UserError(f"{flag} {path} is the input {os.fspath(given)}; an input is never "
                            f"replaced, choose another {flag}")
    if os.path.lexists(path) and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it or choose "
                        f"another {flag}")
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise UserError(f"the directory of {flag} ({directory}) is a file, not a directory; "
                        f"choose another {flag}")
    if not os.path.isdir(directory):
        raise UserError(f"the directory of {flag} ({directory}) does not exist; create it first")
    _probe(directory, flag, path)
    remove_stale_temporaries(path)
    return path
