"""A small, reusable training loop: minibatches, Adam, clipping, early stopping, progress,
checkpoints and data-parallel training.

Used by the JEDI estimator (fit and embedding inference) and by the baselines, so that every
model is trained with the same budget and the same stopping rule.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
        damaged = (f"the checkpoint {self.path} is damaged or not a nwb_jedi checkpoint; "
                   f"remove it or choose another --checkpoint directory")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except OSError as err:  # unreadable, not damaged: say why
            raise UserError(f"cannot read the checkpoint {self.path} ({err.strerror or err}); "
                            f"check its permissions, or choose another --checkpoint "
                            f"directory") from None
        except Exception:  # noqa: BLE001 - whatever the unpickler makes of damaged bytes
            raise UserError(damaged) from None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            raise UserError(f"the checkpoint in {self.directory} belongs to a different fit "
                            f"(other data or settings); remove it or choose another "
                            f"--checkpoint directory")
        try:
            self.loaded_epoch = int(state["epoch"])
        except (KeyError, TypeError, ValueError):
            raise UserError(damaged) from None
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


@dataclass(frozen=True)
class Schedule:
    """When the learning rate changes and when a fit stops.

    The rate rises linearly over the first `warmup` epochs (from 1/`warmup` of its value);
    then, each time the monitored loss has not improved for `patience` epochs, it is multiplied
    by `decay`. After `n_decays` decays, the next such plateau ends the fit: by then further
    epochs only confirm that the best state has passed. No fit ends before `min_epochs`.

    A loss spike (a training loss that is not finite, or that undoes more than `spike` of the
    improvement made since the first epoch, and by more than the loss's own epoch-to-epoch
    noise) restores the best state and lowers the rate, instead of letting a fit end flat after
    one bad step; at most `n_decays` times. Epochs of the warm-up are never kept as the best
    state: on noisy validation data an almost untrained model can look best by chance.
    """

    patience: int = 10
    decay: float = 0.5
    n_decays: int = 4
    warmup: int = 5
    min_epochs: int = 20
    spike: float = 0.5

    def scale_at(self, epoch: int, decays: int) -> float:
        """The factor on every group's base learning rate during `epoch` (0-based)."""
        ramp = min(1.0, (epoch + 1) / self.warmup) if self.warmup > 0 else 1.0
        return ramp * self.decay ** decays

    def epochs_left(self, stale: int, decays: int) -> int:
        """Epochs until the fit would end if the monitored loss never improved again."""
        return max(0, self.patience - stale) + (self.n_decays - decays) * self.patience


def run_training(
    batch_loss: Callable[[np.ndarray, np.ndarray, torch.nn.Module], torch.Tensor],
    n_items: int,
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[torch.nn.Parameter],
    module: torch.nn.Module,
    *,
    val_loss: Callable[[], float] | None = None,
    max_epochs: int = 300,
    schedule: Schedule | None = None,
    ema: float = 0.0,
    batch_size: int = 64,
    grad_clip: float | None = 5.0,
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
        Already set up over the trainable parameters, each group at its base learning rate.
    parameters : iterable of Parameter
        The parameters whose gradient norm is clipped.
    module : torch.nn.Module
        Holds every tensor whose best state is kept and restored.
    val_loss : callable, optional
        Returns the validation loss; monitored for early stopping. Without it the epoch's mean
        training loss is monitored.
    max_epochs : int
        Budget: the fit never runs longer.
    schedule : Schedule, optional
        Warm-up, decay on plateau and stopping (default `Schedule()`).
    ema : float
        Decay of an exponential moving average of the parameters, updated after every step
        and used for validation and as the fitted state (0: the parameters themselves). The
        average of the last few hundred steps is a less noisy iterate than the last one.
    strata : ndarray, optional
        A label per item (the condition) used to deal each minibatch across ranks.
    generator : torch.Generator, optional
        The generator of training noise, saved in checkpoints.
    checkpoint : Checkpoint, optional
        Save every `checkpoint.every` epochs; resume from it when asked.

    Returns
    -------
    dict of lists
        ``epoch``, ``train_loss``, ``val_loss`` (NaN without validation), ``lr_scale`` (the
        factor on the base learning rates) and ``seconds``.

    Notes
    -----
    Under torch.distributed every rank draws the same global minibatches (same seed), takes a
    condition-stratified share, and DistributedDataParallel all-reduces the gradients. Each
    rank's loss is weighted by its share of the global batch, so the update equals that of one
    process on the whole batch.
    """
    from tqdm.auto import tqdm  # here, not at import: the CLI sets tqdm's defaults first

    schedule = schedule or Schedule()
    parameters = [p for p in parameters if p.requires_grad]
    rank, world = rank_and_world()
    net: torch.nn.Module = module
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(module)
    rng = np.random.default_rng(seed)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    averaged = _Average(module, parameters, ema)
    clip = _RelativeClip(grad_clip or 0.0)
    state = _Progress(module, optimizer)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        state.resume(saved, optimizer, rng, generator, averaged)
        clip.typical = saved.get("typical_grad_norm")
    start = time.perf_counter() - (state.history["seconds"][-1] if state.history["seconds"]
                                   else 0.0)
    bar = tqdm(total=min(max_epochs, state.epoch + schedule.epochs_left(0, 0)),
               initial=state.epoch, desc=description, disable=not (progress and rank == 0),
               leave=False, dynamic_ncols=True, unit="epoch")
    for epoch in range(state.epoch, max_epochs):
        if state.finished(schedule, epoch):
            break
        scale = schedule.scale_at(epoch, state.decays)
        for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = lr * scale
        module.train()
        train_loss = _train_epoch(batch_loss, net, optimizer, parameters, clip,
                                  minibatches(n_items, batch_size, rng), strata, rank, world,
                                  averaged)
        module.eval()
        current_val = float("nan")
        if val_loss is not None and math.isfinite(train_loss):
            with torch.no_grad(), averaged.swapped_in():
                current_val = float(val_loss())
        state.record(epoch + 1, train_loss, current_val, scale, time.perf_counter() - start)
        if not math.isfinite(train_loss) and state.decays >= schedule.n_decays:
            break  # diverged again with no recovery left: keep the best state seen
        if state.spiked(train_loss, schedule):
            state.recover(optimizer, averaged)  # back to the best state, at a lower rate
        else:
            with averaged.swapped_in():
                # (With a budget shorter than the warm-up, its last epoch is eligible.)
                state.update(current_val if val_loss is not None else train_loss, schedule,
                             eligible=epoch + 1 >= min(schedule.warmup, max_epochs))
        # The bar counts toward the end of the fit the schedule foresees, not the budget.
        bar.total = min(max_epochs, epoch + 1 + schedule.epochs_left(state.stale, state.decays))
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{current_val:.4f}",
                        best=f"{state.best:.4f}", lr=f"{scale:.2g}", refresh=False)
        bar.update(1)  # redraws follow tqdm's mininterval
        if checkpoint is not None and (epoch + 1) % checkpoint.every == 0:
            checkpoint.save({**state.snapshot(optimizer, rng, generator, averaged),
                             "typical_grad_norm": clip.typical})
    bar.close()
    module.load_state_dict(state.best_state)
    module.eval()
    return state.history


def _train_epoch(batch_loss, net, optimizer, parameters, clip, batches, strata, rank,
                 world, averaged) -> float:
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
        clip(parameters)
        optimizer.step()
        averaged.update()
        # Summed on the device and read once per epoch: no host synchronization per step.
        total = total + loss.detach() * (len(local) * (weight > 0))
        count += len(local) * (weight > 0)
    total, count = all_reduce_sum([float(total), count])
    return total / max(count, 1)


class _RelativeClip:
    """Clip the gradient norm at `factor` times its typical recent size.

    The typical size is a moving average of past (clipped) norms, so clipping engages on
    outliers whatever the scale of the loss: a fixed threshold on a per-element mean
    likelihood never engaged (typical norms 0.004-0.02 against a threshold of 1). It stays on
    the device (no host synchronization).
    """

    def __init__(self, factor: float, decay: float = 0.95) -> None:
        self.factor = float(factor)
        self.decay = decay
        self.typical: torch.Tensor | None = None

    def __call__(self, parameters: list[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in parameters if p.grad is not None]
        if self.factor <= 0 or not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads)
        if self.typical is None:  # the first step sets the scale
            self.typical = norm.detach().clone()
            return
        limit = self.factor * self.typical
        torch._foreach_mul_(grads, torch.clamp(limit / (norm + 1e-12), max=1.0))
        self.typical.mul_(self.decay).add_(torch.minimum(norm, limit), alpha=1 - self.decay)


class _Average:
    """An exponential moving average of the trained parameters (nothing when `decay` is 0)."""

    def __init__(self, module: torch.nn.Module, parameters: list[torch.nn.Parameter],
                 decay: float) -> None:
        self.decay = float(decay)
        self.parameters = parameters if self.decay > 0 else []
        self.values = [p.detach().clone() for p in self.parameters]
        self.steps = 0

    def update(self) -> None:
        # The decay grows to its value over the first steps, so the average does not drag the
        # untrained initial weights along for hundreds of steps.
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for avg, p in zip(self.values, self.parameters, strict=True):
                avg.lerp_(p.detach(), 1 - decay)

    def reset(self) -> None:
        with torch.no_grad():
            for avg, p in zip(self.values, self.parameters, strict=True):
                avg.copy_(p.detach())

    @contextlib.contextmanager
    def swapped_in(self):
        """The module holds the averaged values inside the block, its own values after."""
        if not self.parameters:
            yield
            return
        with torch.no_grad():
            for avg, p in zip(self.values, self.parameters, strict=True):
                swap = p.detach().clone()
                p.copy_(avg)
                avg.copy_(swap)
        try:
            yield
        finally:
            with torch.no_grad():
                for avg, p in zip(self.values, self.parameters, strict=True):
                    swap = p.detach().clone()
                    p.copy_(avg)
                    avg.copy_(swap)

    def state(self) -> dict[str, Any]:
        return {"values": [v.clone() for v in self.values], "steps": self.steps}

    def load(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        with torch.no_grad():
            for avg, v in zip(self.values, state["values"], strict=True):
                avg.copy_(v)


class _Progress:
    """What a fit has done so far: history, best monitored loss and state, staleness, decays."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.module = module
        self.optimizer = optimizer
        self.history: dict[str, list] = {"epoch": [], "train_loss": [], "val_loss": [],
                                          "lr_scale": [], "seconds": []}
        self.best = math.inf
        self.best_state = copy.deepcopy(module.state_dict())
        self.best_optimizer = copy.deepcopy(optimizer.state_dict())
        self.best_train = math.inf
        self.first_train = math.nan
        self.stale = 0
        self.decays = 0
        self.epoch = 0

    def record(self, epoch: int, train_loss: float, val_loss: float, scale: float,
               seconds: float) -> None:
        self.epoch = epoch
        for key, value in (("epoch", epoch), ("train_loss", train_loss), ("val_loss", val_loss),
                           ("lr_scale", scale), ("seconds", seconds)):
            self.history[key].append(value)
        if math.isnan(self.first_train):
            self.first_train = train_loss

    def finished(self, schedule: Schedule, epoch: int) -> bool:
        """Whether the schedule ends the fit before `epoch` (0-based)."""
        if epoch < schedule.min_epochs:
            return False
        return self.decays >= schedule.n_decays and self.stale >= schedule.patience

    def spiked(self, train_loss: float, schedule: Schedule) -> bool:
        """A non-finite loss, or one that undid more than `schedule.spike` of the progress and
        more than five times the typical change between epochs; never more than
        `schedule.n_decays` recoveries."""
        if self.decays >= schedule.n_decays:
            return False
        if not math.isfinite(train_loss):
            return True
        if math.isinf(self.best):
            return False
        gained = self.first_train - self.best_train
        losses = np.asarray(self.history["train_loss"][:-1], dtype=float)
        steps = np.abs(np.diff(losses[np.isfinite(losses)]))
        noise = float(np.median(steps)) if len(steps) >= 3 else math.inf
        return (math.isfinite(gained) and gained > 0
                and train_loss > self.best_train + max(schedule.spike * gained, 5 * noise))

    def recover(self, optimizer: torch.optim.Optimizer, averaged: _Average) -> None:
        """Return to the best state (parameters and optimizer moments) at a lower rate."""
        self.module.load_state_dict(self.best_state)
        optimizer.load_state_dict(self.best_optimizer)
        averaged.reset()
        self.decays += 1
        self.stale = 0

    def update(self, monitored: float, schedule: Schedule, eligible: bool = True) -> None:
        """Keep the state when the monitored loss improved (and the epoch is `eligible`); on a
        plateau, lower the rate."""
        train_loss = self.history["train_loss"][-1]
        self.best_train = min(self.best_train, train_loss)
        improved = monitored < self.best - 1e-6 * abs(self.best) or (
            math.isinf(self.best) and math.isfinite(monitored))
        if not eligible:
            return
        if improved:
            self.best = monitored
            self.best_state = copy.deepcopy(self.module.state_dict())
            self.best_optimizer = copy.deepcopy(self.optimizer.state_dict())
            self.stale = 0
            return
        self.stale += 1
        if self.stale >= schedule.patience and self.decays < schedule.n_decays:
            self.decays += 1
            self.stale = 0

    def snapshot(self, optimizer, rng: np.random.Generator, generator: torch.Generator | None,
                 averaged: _Average) -> dict[str, Any]:
        """Everything a resumed fit needs to continue exactly."""
        return {
            "module": self.module.state_dict(), "optimizer": optimizer.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state),
            **({"torch_rng": generator.get_state()} if generator is not None else {}),
            "best": self.best, "best_state": self.best_state,
            "best_optimizer": self.best_optimizer, "best_train": self.best_train,
            "first_train": self.first_train, "stale": self.stale, "decays": self.decays,
            "average": averaged.state(), "history": self.history, "epoch": self.epoch,
        }

    def resume(self, saved: dict[str, Any], optimizer, rng: np.random.Generator,
               generator: torch.Generator | None, averaged: _Average) -> None:
        self.module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = json.loads(saved["numpy_rng"])
        if generator is not None and "torch_rng" in saved:
            generator.set_state(saved["torch_rng"])
        for key in ("best", "best_state", "best_optimizer", "best_train", "first_train",
                    "stale", "decays", "history", "epoch"):
            setattr(self, key, saved[key])
        averaged.load(saved["average"])
