"""How torch runs on this machine: intra-op threads for small and large steps.

Used by model fitting and by the dynamics analyses alike, so it sits below both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Below this many elements per recurrent step, extra intra-op threads only add synchronization:
# on a 2-core machine a (64 x 40) tanh took 6 ms with 2 OpenMP threads and 8 us with one.
SMALL_STEP_ELEMENTS = 1 << 18

# The thread count the user chose (`set_threads`), which the small-step rule then leaves alone.
_CHOSEN: dict[str, int | None] = {"threads": None}


def set_threads(n: int | None) -> None:
    """Use `n` intra-op threads from now on, for small steps too (None: back to the default
    rule, one thread for small steps).

    Parameters
    ----------
    n : int or None
        Threads (>= 1), e.g. from ``nwb-jedi fit --threads N``.
    """
    if n is not None:
        if n < 1:
            raise ValueError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(int(n))
    _CHOSEN["threads"] = None if n is None else int(n)


@contextlib.contextmanager
def threads_for_step_size(elements_per_step: int) -> Iterator[None]:
    """Use one intra-op thread while the per-step tensors are small, then restore the setting;
    a count chosen with `set_threads` is kept as it is."""
    previous = torch.get_num_threads()
    if _CHOSEN["threads"] is None and elements_per_step < SMALL_STEP_ELEMENTS and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
