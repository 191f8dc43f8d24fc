"""A small, reusable training loop: minibatches, Adam, clipping, early stopping, progress,
checkpoints and data-parallel training.

Used by the JEDI estimator (fit and embedding inference) and by the baselines, so that every
model is trained with the same budget and the same stopping rule.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from nwb_jedi._files import atomic_output
from nwb_jedi.errors import UserError
from nwb_jedi.model.distributed import all_reduce_sum, is_main_process, rank_and_world, shard


def minibatches(n_items: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled partition of ``range(n_items)`` into batches of at most `batch_size`."""
    order = rng.permutation(n_items)
    return [order[i:i + batch_size] for i in range(0, n_items, batch_size)]


class Checkpoint:
    """Periodic, atomic training checkpoints in a directory, for resumable fits.

    A checkpoint holds the module and optimizer states, the random generators, the epoch, the
    best state so far and the history, so a resumed fit continues exactly where it stopped.
    `fingerprint` identifies the fit (hyperparameters and data); resuming a different fit is
    refused.
    """

    FILE = "checkpoint.pt"

    def __init__(self, directory: str | os.PathLike, every: int = 10, resume: bool = False,
                 fingerprint: str = ""):
        if every < 1:
            raise UserError(f"checkpoint interval must be >= 1 epoch, got {every}")
        self.directory = os.fspath(directory)
        self.every = every
        self.resume = resume
        self.fingerprint = fingerprint
        self.loaded_epoch = 0  # the epoch a resumed fit continued from (0: started afresh)

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.FILE)

    def save(self, state: dict[str, Any]) -> None:
        if not is_main_process():
            return
        os.makedirs(self.directory, exist_ok=True)
        # A kill mid-write leaves the previous checkpoint intact (and its temporary file is
        # removed by the next save).
        with atomic_output(self.path) as tmp:
            torch.save({**state, "fingerprint": self.fingerprint}, tmp)

    def load(self) -> dict[str, Any] | None:
        if not (self.resume and os.path.exists(self.path)):
            return None
        # weights_only: tensors, numbers, strings and containers only; nothing is executed.
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as err:
            raise UserError(f"the checkpoint {self.path} is damaged or not a nwb_jedi checkpoint "
                            f"({type(err).__name__}); remove it or choose another --checkpoint "
                            f"directory") from None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            raise UserError(f"the checkpoint in {self.directory} belongs to a different fit "
                            f"(other data or settings); remove it or choose another "
                            f"--checkpoint directory")
        self.loaded_epoch = int(state["epoch"])
        return state


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able settings and arrays, to recognise the same fit again."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
            digest.update(str(part.shape).encode())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def run_training(
    batch_loss: Callable[[np.ndarray, np.ndarray, torch.nn.Module], torch.Tensor],
    n_items: int,
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[torch.nn.Parameter],
    module: torch.nn.Module,
    *,
    val_loss: Callable[[], float] | None = None,
    max_epochs: int = 300,
    patience: int = 30,
    batch_size: int = 64,
    grad_clip: float | None = 1.0,
    seed: int = 0,
    progress: bool = False,
    description: str = "fit",
    strata: np.ndarray | None = None,
    generator: torch.Generator | None = None,
    checkpoint: Checkpoint | None = None,
) -> dict[str, list]:
    """Optimize `module` and restore the state with the lowest monitored loss.

    Parameters
    ----------
    batch_loss : callable
        ``batch_loss(batch, local, net)`` returns the mean loss over the trials
        ``batch[local]``: `batch` holds the item indices of the global minibatch, `local` the
        positions in it that this process computes (all of them unless distributed), and the
        forward pass runs through `net` (the module, or its DistributedDataParallel wrapper).
        Random draws (training noise) should be made for the whole `batch` and indexed by
        `local`, so that every rank sees the noise of a single-process fit.
    n_items : int
        Number of training items (trials).
    optimizer : torch.optim.Optimizer
        Already set up over the trainable parameters.
    parameters : iterable of Parameter
        The parameters whose gradient norm is clipped.
    module : torch.nn.Module
        Holds every tensor whose best state is kept and restored.
    val_loss : callable, optional
        Returns the validation loss; monitored for early stopping. Without it the epoch's mean
        training loss is monitored.
    max_epochs, patience : int
        Stop after `max_epochs`, or when the monitored loss has not improved for `patience`
        epochs.
    strata : ndarray, optional
        A label per item (the condition) used to deal each minibatch across ranks.
    generator : torch.Generator, optional
        The generator of training noise, saved in checkpoints.
    checkpoint : Checkpoint, optional
        Save every `checkpoint.every` epochs; resume from it when asked.

    Returns
    -------
    dict of lists
        ``epoch``, ``train_loss``, ``val_loss`` (NaN without validation) and ``seconds``.

    Notes
    -----
    Under torch.distributed every rank draws the same global minibatches (same seed), takes a
    condition-stratified share, and DistributedDataParallel all-reduces the gradients. Each
    rank's loss is weighted by its share of the global batch, so the update equals that of one
    process on the whole batch.
    """
    from tqdm.auto import tqdm  # here, not at import: the CLI sets tqdm's defaults first

    parameters = [p for p in parameters if p.requires_grad]
    rank, world = rank_and_world()
    net: torch.nn.Module = module
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(module)
    rng = np.random.default_rng(seed)
    state = _Progress(module)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        state.resume(saved, optimizer, rng, generator)
    start = time.perf_counter() - (state.history["seconds"][-1] if state.history["seconds"]
                                   else 0.0)
    bar = tqdm(range(state.epoch, max_epochs), desc=description,
               disable=not (progress and rank == 0), leave=False, dynamic_ncols=True)
    for epoch in bar:
        if state.stale >= patience:
            break
        module.train()
        train_loss = _train_epoch(batch_loss, net, optimizer, parameters, grad_clip,
                                  minibatches(n_items, batch_size, rng), strata, rank, world)
        module.eval()
        current_val = float("nan")
        if val_loss is not None:
            with torch.no_grad():
                current_val = float(val_loss())
        state.record(epoch + 1, train_loss, current_val, time.perf_counter() - start)
        if not math.isfinite(train_loss):
            break  # diverged: keep the best state seen so far
        state.update(current_val if val_loss is not None else train_loss)
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{current_val:.4f}",
                        best=f"{state.best:.4f}", refresh=False)  # redraws follow mininterval
        if checkpoint is not None and (epoch + 1) % checkpoint.every == 0:
            checkpoint.save(state.snapshot(optimizer, rng, generator))
    bar.close()
    module.load_state_dict(state.best_state)
    module.eval()
    return state.history


def _train_epoch(batch_loss, net, optimizer, parameters, grad_clip, batches, strata, rank,
                 world) -> float:
    """One pass over the minibatches; returns the mean training loss over all ranks."""
    total, count = 0.0, 0
    for batch in batches:
        local = shard(batch, strata, rank, world)
        weight = len(local) / len(batch) * world
        if len(local) == 0:  # more ranks than trials in this batch: join with zero weight
            local, weight = np.arange(1), 0.0
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(batch, local, net)
        (loss * weight).backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
        total += float(loss.detach()) * len(local) * (weight > 0)
        count += len(local) * (weight > 0)
    total, count = all_reduce_sum([total, count])
    return total / max(count, 1)


class _Progress:
    """What a fit has done so far: history, best monitored loss and state, staleness."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.history: dict[str, list] = {"epoch": [], "train_loss": [], "val_loss": [],
                                          "seconds": []}
        self.best = math.inf
        self.best_state = copy.deepcopy(module.state_dict())
        self.stale = 0
        self.epoch = 0

    def record(self, epoch: int, train_loss: float, val_loss: float, seconds: float) -> None:
        self.epoch = epoch
        for key, value in (("epoch", epoch), ("train_loss", train_loss), ("val_loss", val_loss),
                           ("seconds", seconds)):
            self.history[key].append(value)

    def update(self, monitored: float) -> None:
        """Keep the state when the monitored loss improved, else count a stale epoch."""
        if monitored < self.best - 1e-6 * abs(self.best) or (math.isinf(self.best) and
                                                             math.isfinite(monitored)):
            self.best = monitored
            self.best_state = copy.deepcopy(self.module.state_dict())
            self.stale = 0
        else:
            self.stale += 1

    def snapshot(self, optimizer, rng: np.random.Generator,
                 generator: torch.Generator | None) -> dict[str, Any]:
        """Everything a resumed fit needs to continue exactly."""
        return {
            "module": self.module.state_dict(), "optimizer": optimizer.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state),
            **({"torch_rng": generator.get_state()} if generator is not None else {}),
            "best": self.best, "best_state": self.best_state, "stale": self.stale,
            "history": self.history, "epoch": self.epoch,
        }

    def resume(self, saved: dict[str, Any], optimizer, rng: np.random.Generator,
               generator: torch.Generator | None) -> None:
        self.module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = json.loads(saved["numpy_rng"])
        if generator is not None and "torch_rng" in saved:
            generator.set_state(saved["torch_rng"])
        self.best, self.best_state, self.stale = saved["best"], saved["best_state"], \
            saved["stale"]
        self.history = saved["history"]
        self.epoch = saved["epoch"]
