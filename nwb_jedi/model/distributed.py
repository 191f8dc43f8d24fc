"""Data-parallel training across processes with PyTorch's own distributed engine.

Launch with ``torchrun --nproc-per-node K -m nwb_jedi fit ...`` (or several nodes with
``--nnodes``/``--rdzv-endpoint``). Each rank takes a condition-stratified share of every
minibatch; gradients are all-reduced by DistributedDataParallel, so all ranks hold the same
parameters after every step, and only rank 0 writes files or shows progress.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def init_from_env(device: torch.device | str = "cpu") -> bool:
    """Join the process group described by torchrun's environment; True when distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0, or when not distributed: the process that writes files and progress."""
    return rank_and_world()[0] == 0


def shard(batch: np.ndarray, strata: np.ndarray | None, rank: int, world: int) -> np.ndarray:
    """Positions in a global minibatch that this rank computes, stratified by `strata`.

    Sorting the batch by condition and dealing round-robin gives every rank a near-equal share
    of each condition, so no rank's gradient is dominated by one condition.
    """
    positions = np.arange(len(batch))
    if world == 1:
        return positions
    if strata is not None:
        positions = positions[np.argsort(strata[batch], kind="stable")]
    return positions[rank::world]


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum scalars over all ranks (identity when not distributed)."""
    if rank_and_world()[1] == 1:
        return values
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()
