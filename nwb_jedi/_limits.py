"""How much memory one array may take: the bound every size check of the package uses.

Files and settings can ask for arrays of any size (a model file declaring a huge shape, a
0.001 ms bin on a long window); every such request is checked against `max_array_bytes` before
anything is allocated, and refused with the number and the way out. ``$NWB_JEDI_MAX_ARRAY_GB``
sets the bound; by default it is half of the machine's physical memory.
"""

from __future__ import annotations

import os

ENV = "NWB_JEDI_MAX_ARRAY_GB"
_FALLBACK_BYTES = 8 * 1024**3  # when the physical memory cannot be read


def physical_memory_bytes() -> int | None:
    """Total physical memory of this machine, or None where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def max_array_bytes() -> int:
    """The most bytes one array (or one dataset read from a file) may take.

    ``$NWB_JEDI_MAX_ARRAY_GB`` (GB = 2**30 bytes) when set to a positive number, else half of
    the physical memory, else 8 GB. Raises ValueError (naming the variable) for a value that is
    not a positive number.
    """
    text = os.environ.get(ENV, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"{ENV} must be a positive number of GB, got {text!r}; fix or "
                             f"unset it")
        return int(value * 1024**3)
    total = physical_memory_bytes()
    return total // 2 if total else _FALLBACK_BYTES


def array_limit(error: type[Exception]) -> int:
    """`max_array_bytes`, with a bad ``$NWB_JEDI_MAX_ARRAY_GB`` raised as `error` (the
    caller's error class): the bound every size check compares with."""
    try:
        return max_array_bytes()
    except ValueError as err:
        raise error(str(err)) from None


def format_bytes(n: float) -> str:
    """``12.3 GB``, ``456 MB``, ``789 KB`` or ``12 B`` (powers of 1024)."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"
