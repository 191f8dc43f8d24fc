"""Checks for files nobody vouches for: what a shared model file may and may not make us do.

A model file is shared like any other data, so reading it must never follow, execute or
allocate what the file asks for without looking first. Before a dataset's bytes are read,
`check_dataset` looks at its HDF5 metadata only:

- layout: compact, contiguous or chunked inside the file; a virtual dataset (bytes taken from
  other files) or external storage (bytes in another file, e.g. ``/etc/passwd``) is refused, so
  a file can never copy another file's bytes into what we read or write;
- filters: only HDF5's built-in ones (deflate, shuffle, fletcher32, szip, n-bit, scale-offset)
  and LZF; any other filter id would make HDF5 search for and load a plugin library;
- size: the bytes the shape declares must fit `nwb_jedi._limits.max_array_bytes`, must be
  stored (no fill-value regions: a tiny file cannot declare gigabytes of zeros), and a
  compressed dataset cannot expand by more than deflate ever does (`MAX_EXPANSION`); a model's
  tensors together, by more than trained parameters ever compress (`check_expansion`).

`check_links` refuses soft and external links inside a group (a link can point into another
file, or make one object appear as another), `check_regular_file` refuses FIFOs and devices
(opening a FIFO blocks forever), and `parse_json` parses JSON text from a file with bounded size
and nesting.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from typing import Any

import h5py
from h5py import h5d, h5z

from nwb_jedi._limits import format_bytes, max_array_bytes
from nwb_jedi.errors import UserError

__all__ = ["check_dataset", "check_expansion", "check_links", "check_regular_file",
           "parse_json"]

#: Filters a dataset may use: HDF5's built-ins and LZF (no plugin is ever loaded for a file).
ALLOWED_FILTERS = {h5z.FILTER_DEFLATE: "deflate", h5z.FILTER_SHUFFLE: "shuffle",
                   h5z.FILTER_FLETCHER32: "fletcher32", h5z.FILTER_SZIP: "szip",
                   h5z.FILTER_NBIT: "nbit", h5z.FILTER_SCALEOFFSET: "scaleoffset",
                   32000: "lzf"}
#: Deflate expands at most ~1032:1; no real dataset compresses better than this.
MAX_EXPANSION = 1100
#: A model's tensors together: trained parameters barely compress (written files: ~1:1).
MAX_MODEL_EXPANSION = 100
#: Deepest nesting of JSON accepted from a file (the package writes at most 4 levels).
MAX_JSON_DEPTH = 32

_LAYOUTS = {h5d.COMPACT: "compact", h5d.CONTIGUOUS: "contiguous", h5d.CHUNKED: "chunked"}


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular_file(path: str | os.PathLike, error: type[UserError] = UserError) -> None:
    """Refuse anything but a regular file (symbolic links to one are fine).

    Opening a FIFO blocks until someone writes to it, and a device never ends, so either
    would hang a command; a missing path is left to the caller's own message.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise error(f"{os.fspath(path)} cannot be read ({err.strerror}); check the path") \
            from None
    if not stat.S_ISREG(mode):
        raise error(f"{os.fspath(path)} is {_file_kind(mode)}, not a file; give the path of an "
                    f"NWB file")


def check_links(group: h5py.Group, error: type[UserError] = UserError) -> None:
    """Refuse soft and external links anywhere under `group` (and `group` itself being one
    is the caller's to check with ``parent.get(name, getlink=True)``).

    The visit walks the group's own links without following any of them.
    """
    found: list[str] = []

    def visit(name: str, link) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{group.name.rstrip('/')}/{name} (an external link to "
                         f"{link.filename}:{link.path})")
        elif isinstance(link, h5py.SoftLink):
            found.append(f"{group.name.rstrip('/')}/{name} (a soft link to {link.path})")

    group.visititems_links(visit)
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise error(f"{found[0]}{more}: a model's data must be stored in its own group, not "
                    f"linked from elsewhere; refusing to load this file")


def link_kind(parent: h5py.Group, name: str) -> str | None:
    """"soft" or "external" when `parent[name]` is such a link, "hard" for a real member,
    None when there is no such member (nothing is followed)."""
    link = parent.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        return "external"
    if isinstance(link, h5py.SoftLink):
        return "soft"
    return "hard"


def declared_bytes(ds: h5py.Dataset) -> int:
    """Bytes the dataset's shape and type declare (variable-length items count their pointer:
    their data live in the file's heap, which is stored bytes)."""
    return int(math.prod(ds.shape or ())) * int(ds.dtype.itemsize)


def check_dataset(ds: h5py.Dataset, what: str, error: type[UserError] = UserError) -> None:
    """Refuse a dataset whose bytes are not in the file or that would take too much memory,
    from its metadata only (nothing of it is read).

    Raises
    ------
    UserError (or `error`)
        Virtual or external storage, an unknown layout or filter, a declared size over the
        memory bound, unstored (fill-value) regions, or an impossible compression ratio.
    """
    plist = ds.id.get_create_plist()
    layout = plist.get_layout()
    if layout == getattr(h5d, "VIRTUAL", -1) or ds.is_virtual:
        raise error(f"{what} ({ds.name}) is a virtual dataset whose bytes come from other files; "
                    f"refusing to read it")
    if plist.get_external_count():
        source = plist.get_external(0)[0].decode("utf-8", "replace")
        raise error(f"{what} ({ds.name}) keeps its bytes in another file ({source!r}), not in "
                    f"this one; refusing to read it")
    if layout not in _LAYOUTS:
        raise error(f"{what} ({ds.name}) has an unknown storage layout ({layout}); refusing to "
                    f"read it")
    _check_filters(ds, plist, what, error)
    _check_size(ds, layout, what, error)


def _check_filters(ds: h5py.Dataset, plist, what: str, error: type[UserError]) -> None:
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in ALLOWED_FILTERS:
            raise error(f"{what} ({ds.name}) is stored with HDF5 filter {code}, which is not "
                        f"one of {', '.join(sorted(ALLOWED_FILTERS.values()))}; refusing to "
                        f"read it (an unknown filter would make HDF5 load a plugin)")


def _check_size(ds: h5py.Dataset, layout: int, what: str, error: type[UserError]) -> None:
    declared = declared_bytes(ds)
    try:
        limit = max_array_bytes()
    except ValueError as err:
        raise error(str(err)) from None
    if declared > limit:
        raise error(f"{what} ({ds.name}) declares {format_bytes(declared)} (shape {ds.shape}, "
                    f"{ds.dtype}), more than the {format_bytes(limit)} allowed; the file is "
                    f"damaged or hostile (raise NWB_JEDI_MAX_ARRAY_GB if it is real)")
    if not declared or layout == h5d.COMPACT:
        return  # compact data live in the object header: stored whole, small by definition
    stored = ds.id.get_storage_size()
    if layout == h5d.CHUNKED:
        expected = math.prod(math.ceil(n / c) for n, c in zip(ds.shape, ds.chunks, strict=True))
        if ds.id.get_num_chunks() < expected:
            raise error(f"{what} ({ds.name}) declares shape {ds.shape} but stores only "
                        f"{ds.id.get_num_chunks()} of its {expected} chunks (the rest would be "
                        f"fill values); the file is damaged or hostile, refusing to read it")
    compressed = ds.id.get_create_plist().get_nfilters() > 0
    if not compressed and stored < declared:
        raise error(f"{what} ({ds.name}) declares {format_bytes(declared)} but stores "
                    f"{format_bytes(stored)} (the rest would be fill values); the file is "
                    f"damaged or hostile, refusing to read it")
    if compressed and declared > max(stored, 1) * MAX_EXPANSION:
        raise error(f"{what} ({ds.name}) would expand from {format_bytes(stored)} to "
                    f"{format_bytes(declared)}, more than any compression gives real data; the "
                    f"file is damaged or hostile, refusing to read it")


def check_expansion(datasets: list[h5py.Dataset], what: str,
                    error: type[UserError] = UserError) -> None:
    """Refuse a group of datasets (a model's tensors) that declares more than
    `MAX_MODEL_EXPANSION` times the bytes it stores (plus 1 MB).

    Trained parameters are close to random numbers, which no compression shrinks much; only a
    file built to exhaust memory (compressed zeros) declares far more than it stores.
    """
    declared = sum(declared_bytes(ds) for ds in datasets)
    stored = sum(ds.id.get_storage_size() for ds in datasets)
    if declared > stored * MAX_MODEL_EXPANSION + 2**20:
        raise error(f"{what} declare {format_bytes(declared)} but store {format_bytes(stored)}; "
                    f"trained parameters do not compress like that, the file is damaged or "
                    f"hostile, refusing to read it")


def parse_json(text: str, what: str, error: type[UserError] = UserError) -> Any:
    """Parse JSON text read from a file, refusing nesting deeper than `MAX_JSON_DEPTH`.

    The depth is measured on the text before parsing (brackets outside strings), so a deeply
    nested document never reaches the recursive parser.
    """
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise error(f"{what} is nested {depth} levels deep (at most {MAX_JSON_DEPTH}); the file "
                    f"is damaged or hostile")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise error(f"{what} is not valid JSON ({err}); the file is damaged") from None


def _json_depth(text: str) -> int:
    """Deepest bracket nesting of JSON text, ignoring brackets inside strings."""
    import numpy as np

    bare = _JSON_STRING.sub("", text).encode("utf-8", "replace")
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int64) - np.isin(codes, _CLOSE)
    return int(np.cumsum(steps).max(initial=0))


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN, _CLOSE = list(b"[{"), list(b"]}")
