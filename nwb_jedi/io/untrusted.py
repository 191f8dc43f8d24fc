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

Damaged bytes make h5py raise whatever HDF5's failure maps to (OSError, RuntimeError, KeyError,
UnicodeDecodeError and other ValueErrors, TypeError, or a SystemError around one of these when it
happens inside a visit). `h5py_failures` turns exactly those, raised inside h5py, into one
"... is damaged" sentence; an error raised by this package's own code (a bug, even one in a
callback h5py runs) passes through unchanged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from typing import Any

import h5py
from h5py import h5d, h5z

from nwb_jedi._limits import array_limit, format_bytes
from nwb_jedi.errors import UserError

__all__ = ["check_dataset", "check_expansion", "check_links", "check_regular_file",
           "h5py_failures", "parse_json", "raised_by_h5py"]

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
#: Filters that change a dataset's size (fletcher32 adds 4 bytes a chunk, shuffle none).
_SIZE_CHANGING = {h5z.FILTER_DEFLATE, h5z.FILTER_SZIP, h5z.FILTER_NBIT, h5z.FILTER_SCALEOFFSET,
                  32000}
#: What h5py raises when HDF5 fails on a file's bytes.
H5PY_FAILURES = (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError)
#: The fix named in every "damaged" message.
DAMAGED_FIX = "the file cannot be used; get an undamaged copy (download or write it again)"

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


def _modules(tb) -> list[str]:
    """Module names of a traceback's frames, outermost first."""
    names = []
    while tb is not None:
        names.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    return names


def raised_by_h5py(err: BaseException) -> bool:
    """Whether `err` is h5py failing on a file's bytes: raised inside h5py (or numpy called by
    h5py), not in code that h5py called back. A callback that fails (ours or anyone's: a bug)
    shows as a SystemError whose context is that failure, and is never called damage."""
    modules = _modules(err.__traceback__)
    last = max((i for i, m in enumerate(modules) if m == "h5py" or m.startswith("h5py.")),
               default=-1)
    if last < 0 or not all(m == "numpy" or m.startswith("numpy.") for m in modules[last + 1:]):
        return False
    if isinstance(err, SystemError):
        return err.__context__ is not None and raised_by_h5py(err.__context__)
    return True


def _reason(err: BaseException) -> str:
    """HDF5's own words for a failure (a SystemError only wraps the one it interrupted)."""
    if isinstance(err, SystemError) and err.__context__ is not None:
        err = err.__context__
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


@contextlib.contextmanager
def h5py_failures(what: str, error: type[UserError] = UserError) -> Iterator[None]:
    """Turn h5py failing on damaged bytes inside the block into one `error` sentence,
    ``<what> is damaged: HDF5 could not read it (<HDF5's reason>); <fix>``.

    Only errors raised inside h5py (`raised_by_h5py`) are turned; a `UserError` (also one
    raised in a callback h5py ran, which h5py wraps in a SystemError) and any error raised by
    this package's own code pass through unchanged. The price of catching every kind of
    error h5py raises on damaged bytes: this package misusing h5py itself (a wrong member
    name) would also read as damage, so the callers check names and dtypes first.
    """
    try:
        yield
    except UserError:
        raise
    except H5PY_FAILURES as err:
        if isinstance(err, SystemError) and isinstance(err.__context__, UserError):
            raise err.__context__ from None
        if not raised_by_h5py(err):
            raise
        raise error(f"{what} is damaged: HDF5 could not read it ({_reason(err)}); "
                    f"{DAMAGED_FIX}") from err


def check_links(group: h5py.Group, error: type[UserError] = UserError) -> None:
    """Refuse soft and external links anywhere under `group` (and `group` itself being one
    is the caller's to check with ``parent.get(name, getlink=True)``).

    The visit walks the group's own links without following any of them; links that HDF5
    cannot list (damaged bytes) are `error` too.
    """
    found: list[str] = []

    def visit(name: str, link) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{group.name.rstrip('/')}/{name} (an external link to "
                         f"{link.filename}:{link.path})")
        elif isinstance(link, h5py.SoftLink):
            found.append(f"{group.name.rstrip('/')}/{name} (a soft link to {link.path})")

    with h5py_failures(f"the list of links under {group.name}", error):
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
    limit = array_limit(error)
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
    plist = ds.id.get_create_plist()
    compressed = any(plist.get_filter(i)[0] in _SIZE_CHANGING for i in range(plist.get_nfilters()))
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
