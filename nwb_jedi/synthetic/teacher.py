"""Teacher RNNs: input-driven tanh networks with a fixed random bulk and a trained rank-R part.

As in the JEDI paper's synthetic validation, a teacher has N tanh units (default 200) with

    x_{t+1} = x_t + α (−x_t + W φ(x_t) + B u_t + b),   φ = tanh,   α = dt / τ,
    W = g χ / √N + M Nᵀ / N,

where χ (N x N, standard normal) is drawn once and kept fixed (g = 1.8, a chaotic bulk when
alone), and the rank-R part (M, N ∈ R^{N x R}, default R = 5), the input weights B, the bias b
and a linear readout ``z_t = W_out φ(x_t) + b_out`` are trained with BPTT (Adam) on a task or
a set of tasks. Training stops when the masked mean squared error falls below a threshold or
after a maximum number of iterations; the final loss and per-task performance are recorded.

Trained teachers are cached as pickle-free ``.npz`` files keyed by (tasks, n_units, seed,
version and a hash of every other setting), so a teacher is trained once per machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nwb_jedi._limits import array_limit, format_bytes
from nwb_jedi.errors import UserError
from nwb_jedi.synthetic.cache import save_npz_atomic, teacher_cache_dir
from nwb_jedi.synthetic.tasks import MultiTask

#: Bump when training or the file layout changes, so stale cache entries are not reused.
TEACHER_VERSION = 1

_TRAININGS = {"count": 0}


def training_count() -> int:
    """How many teachers this process has trained (not loaded); lets tests check the cache."""
    return _TRAININGS["count"]


def teacher_step(x: np.ndarray, u: np.ndarray, W: np.ndarray, B: np.ndarray, b: np.ndarray,
                 alpha: float) -> np.ndarray:
    """One teacher step ``x + α(−x + W tanh(x) + B u + b)``; x is (..., N), u is (..., I).

    Works on numpy arrays and on torch tensors alike (for fixed-point finders).
    """
    phi = np.tanh(x) if isinstance(x, np.ndarray) else torch.tanh(x)
    return x + alpha * (-x + phi @ W.T + u @ B.T + b)


@dataclass(eq=False)
class TeacherRNN:
    """A trained teacher network (numpy parameters) and how it was trained.

    Attributes
    ----------
    chi : (N, N) fixed random connectivity (unscaled, standard normal).
    M, N : (N, R) trained low-rank factors; the trained part of W is ``M @ N.T / n_units``.
    B : (N, I) input weights.  b : (N,) bias.
    W_out : (O, N) readout weights.  b_out : (O,) readout bias.
    g, tau, dt : gain of the random bulk, time constant (s) and time step (s); α = dt / τ.
    config : dict of the settings it was trained with (tasks, sizes, optimiser, seed).
    info : dict with ``final_loss``, ``iterations``, ``converged``, ``performance`` (per task,
        the fraction of noiseless condition trials solved) and ``loss_threshold``.
    from_cache : whether this object was loaded from the disk cache rather than trained now.
    """

    chi: np.ndarray
    M: np.ndarray
    N: np.ndarray
    B: np.ndarray
    b: np.ndarray
    W_out: np.ndarray
    b_out: np.ndarray
    g: float
    tau: float
    dt: float
    config: dict
    info: dict = field(default_factory=dict)
    from_cache: bool = False

    # ------------------------------------------------------------------ structure
    @property
    def n_units(self) -> int:
        return int(self.chi.shape[0])

    @property
    def rank(self) -> int:
        return int(self.M.shape[1])

    @property
    def alpha(self) -> float:
        return float(self.dt / self.tau)

    @property
    def W(self) -> np.ndarray:
        """Full recurrent weights ``g χ/√N + M Nᵀ/N`` (N x N)."""
        n = self.n_units
        return (self.g * self.chi / np.sqrt(n) + self.M @ self.N.T / n).astype(np.float32)

    @property
    def multitask(self) -> MultiTask:
        """The task set, with the input/output channel layout the teacher was trained on."""
        return _multitask_from_config(self.config)

    # ------------------------------------------------------------------ dynamics
    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One step from states x (..., N) with inputs u (..., I)."""
        return teacher_step(x, u, self.W, self.B, self.b, self.alpha)

    def step_fn(self, u: np.ndarray):
        """A torch callable ``x -> x_next`` of the autonomous teacher under a static input `u`,
        for fixed-point finders (the same map JEDI's ``step_fn(c)`` gives for a condition)."""
        W = torch.as_tensor(self.W, dtype=torch.float32)
        bias = torch.as_tensor(self.B @ np.asarray(u, np.float32) + self.b, dtype=torch.float32)
        alpha = self.alpha

        def step(x: torch.Tensor) -> torch.Tensor:
            return x + alpha * (-x + torch.tanh(x) @ W.T + bias)

        return step

    def run(self, inputs: np.ndarray, x0: np.ndarray | None = None,
            extra_drive: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run trials of inputs (K, T, I) from x0 (default zeros).

        `extra_drive` (K, T, N), optional, is added to every unit's input at every step (a
        trial's own input, beyond the task's). Returns states (K, T, N) and outputs (K, T, O),
        where ``states[:, t]`` is the state after the update that used ``inputs[:, t]`` (so
        step t's output reflects step t's input).
        """
        inputs = np.asarray(inputs, np.float32)
        k, t_steps, _ = inputs.shape
        x = np.zeros((k, self.n_units), np.float32) if x0 is None else np.array(x0, np.float32)
        W, alpha = self.W, self.alpha
        drive = inputs @ self.B.T.astype(np.float32) + self.b.astype(np.float32)
        if extra_drive is not None:
            drive = drive + np.asarray(extra_drive, np.float32)
        states = np.empty((k, t_steps, self.n_units), np.float32)
        for t in range(t_steps):
            x = x + alpha * (-x + np.tanh(x) @ W.T + drive[:, t])
            states[:, t] = x
        outputs = np.tanh(states) @ self.W_out.T + self.b_out
        return states, outputs.astype(np.float32)

    def weights(self) -> dict[str, np.ndarray]:
        """Ground-truth parameters as plain arrays (W is the full recurrent matrix)."""
        return {"W": self.W, "chi": self.chi, "M": self.M, "N": self.N, "B": self.B,
                "b": self.b, "W_out": self.W_out, "b_out": self.b_out}

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the teacher to a pickle-free .npz (atomically)."""
        arrays = {k: np.asarray(v, np.float32) for k, v in self.weights().items() if k != "W"}
        arrays["scalars"] = np.array([self.g, self.tau, self.dt], np.float64)
        arrays["config_json"] = np.array(json.dumps(self.config, sort_keys=True))
        arrays["info_json"] = np.array(json.dumps(self.info, sort_keys=True))
        save_npz_atomic(Path(path), arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TeacherRNN:
        """Read a teacher written by `save` (never unpickles)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                g, tau, dt = (float(v) for v in z["scalars"])
                return cls(chi=z["chi"], M=z["M"], N=z["N"], B=z["B"], b=z["b"],
                           W_out=z["W_out"], b_out=z["b_out"], g=g, tau=tau, dt=dt,
                           config=json.loads(str(z["config_json"])),
                           info=json.loads(str(z["info_json"])), from_cache=True)
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"teacher file {path} is unreadable ({err}); delete it so the "
                            f"teacher is trained again") from err


# ---------------------------------------------------------------------- training
def _teacher_config(tasks, n_units, seed, rank, g, tau, dt, lr, max_iters, loss_threshold,
                    train_noise, batch_repeats) -> dict:
    mt = MultiTask(tasks)
    return {"version": TEACHER_VERSION, "tasks": list(mt.names), "task_settings": mt.describe(),
            "n_units": int(n_units), "seed": int(seed), "rank": int(rank), "g": float(g),
            "tau": float(tau), "dt": float(dt), "lr": float(lr), "max_iters": int(max_iters),
            "loss_threshold": float(loss_threshold), "train_noise": float(train_noise),
            "batch_repeats": int(batch_repeats)}


def _multitask_from_config(config: dict) -> MultiTask:
    from nwb_jedi.synthetic.tasks import TASKS

    tasks = []
    for name, settings in zip(config["tasks"], config["task_settings"], strict=True):
        cls = TASKS[name]
        kwargs = {}
        if name == "sine":
            kwargs = {"frequencies": settings["conditions"], "grace": settings["grace"]}
        elif name == "memorypro":
            kwargs = {"n_angles": len(settings["conditions"]), **settings["durations"]}
        elif name == "dm":
            kwargs = {"coherences": settings["conditions"], **settings["durations"]}
        tasks.append(cls(**kwargs))
    return MultiTask(tasks)


@contextlib.contextmanager
def _torch_threads(n: int):
    """Train on a fixed number of threads so results do not depend on the machine's core count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


#: The teacher's integration step (s); simulated bins are whole multiples of it.
DEFAULT_DT = 0.01


def _check_teacher_size(n_units: int) -> None:
    """Refuse a teacher whose N x N connectivity would not fit the memory bound."""
    size = 4 * int(n_units) ** 2
    limit = array_limit(UserError)
    if size > limit:
        raise UserError(f"a teacher of {n_units} units needs a {n_units} x {n_units} "
                        f"connectivity ({format_bytes(size)}, float32), more than the "
                        f"{format_bytes(limit)} allowed; simulate fewer units (--units) or raise "
                        f"NWB_JEDI_MAX_ARRAY_GB")


def train_teacher(tasks=("sine",), n_units: int = 200, seed: int = 0, rank: int = 5,
                  g: float = 1.8, tau: float = 0.05, dt: float = DEFAULT_DT, lr: float = 0.03,
                  max_iters: int = 2000, loss_threshold: float = 0.02,
                  train_noise: float = 0.05, batch_repeats: int = 2,
                  verbose: bool = False) -> TeacherRNN:
    """Train a teacher on one task or jointly on several (with a task-identity input).

    Parameters
    ----------
    tasks : str or sequence of str
        Task names (see `nwb_jedi.synthetic.tasks.TASKS`).
    n_units, rank, g : int, int, float
        Network size, rank of the trained connectivity, gain of the fixed random bulk.
    tau, dt : float
        Unit time constant and time step, seconds.
    lr, max_iters, loss_threshold : float, int, float
        Adam learning rate; training stops once the loss of an iteration's batch (masked mean
        squared error) is below `loss_threshold`, or after `max_iters` iterations.
    train_noise : float
        Standard deviation of the Gaussian noise added to the inputs in training.
    batch_repeats : int
        Noisy trials per condition in each training batch.
    seed : int
        Seeds χ, the initial weights and the training noise; same seed, same teacher.
    verbose : bool
        Show the training as a one-line progress bar (stderr) with the loss.

    Returns
    -------
    TeacherRNN
        With ``info["final_loss"]`` (loss of noiseless condition trials after training),
        ``info["performance"]`` (fraction solved per task) and ``info["converged"]``.
    """
    if rank < 1:
        raise UserError(f"a teacher's trained part needs a rank of at least 1, got {rank}")
    if n_units < max(2, rank):
        raise UserError(f"a teacher with a rank-{rank} trained part needs at least "
                        f"{max(2, rank)} units, got {n_units}; simulate more units (--units)")
    _check_teacher_size(n_units)
    config = _teacher_config(tasks, n_units, seed, rank, g, tau, dt, lr, max_iters,
                             loss_threshold, train_noise, batch_repeats)
    mt = MultiTask(tasks)
    conds = mt.conditions()
    rng = np.random.default_rng(seed)
    with _torch_threads(1), torch.random.fork_rng():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        n, i_dim, o_dim = n_units, mt.n_inputs, mt.n_outputs
        chi = torch.randn(n, n, generator=gen)
        params = {
            "M": torch.randn(n, rank, generator=gen),
            "N": torch.randn(n, rank, generator=gen),
            "B": torch.randn(n, i_dim, generator=gen),
            "b": torch.zeros(n),
            "W_out": torch.randn(o_dim, n, generator=gen) / np.sqrt(n),
            "b_out": torch.zeros(o_dim),
        }
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=lr)
        alpha = dt / tau
        bulk = g * chi / np.sqrt(n)

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            W = bulk + params["M"] @ params["N"].T / n
            drive = inputs @ params["B"].T + params["b"]
            x = torch.zeros(inputs.shape[0], n)
            outs = []
            for t in range(inputs.shape[1]):
                x = x + alpha * (-x + torch.tanh(x) @ W.T + drive[:, t])
                outs.append(torch.tanh(x) @ params["W_out"].T + params["b_out"])
            return torch.stack(outs, 1)

        def loss_of(inputs, targets, mask):
            # Every trial weighs the same whatever its task's mask, so a task with large mask
            # weights (the response epochs) does not drown the others in a multitask batch.
            z = forward(torch.as_tensor(inputs))
            mask = torch.as_tensor(mask)
            mask = mask / mask.sum(dim=(1, 2), keepdim=True)
            return (mask * (z - torch.as_tensor(targets)) ** 2).sum(dim=(1, 2)).mean()

        batch_conds = conds * batch_repeats
        loss_value, it = float("inf"), 0
        bar = _progress_bar(max_iters, loss_threshold) if verbose else None
        for it in range(1, max_iters + 1):
            u, y, m = mt.batch(batch_conds, dt, rng=rng, noise=train_noise)
            loss = loss_of(u, y, m)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
            opt.step()
            loss_value = float(loss.detach())
            if bar is not None:
                bar.update(it - bar.n)
                bar.set_postfix_str(f"loss {loss_value:.4f}", refresh=False)
            if loss_value < loss_threshold:
                break
        if bar is not None:
            bar.close()

        with torch.no_grad():
            u, y, m = mt.batch(conds, dt)
            final_loss = float(loss_of(u, y, m))
    _TRAININGS["count"] += 1
    teacher = TeacherRNN(
        chi=chi.numpy().astype(np.float32),
        **{k: v.detach().numpy().astype(np.float32) for k, v in params.items()},
        g=float(g), tau=float(tau), dt=float(dt), config=config)
    _, outputs = teacher.run(u)
    perf: dict[str, list] = {name: [] for name in mt.names}
    for (name, value), out in zip(conds, outputs, strict=True):
        perf[name].append(mt.performance(name, value, out, dt))
    teacher.info = {"final_loss": final_loss, "last_batch_loss": loss_value, "iterations": it,
                    "converged": bool(loss_value < loss_threshold),
                    "loss_threshold": float(loss_threshold),
                    "performance": {k: float(np.mean(v)) for k, v in perf.items()}}
    return teacher


def _progress_bar(max_iters: int, loss_threshold: float):
    """One line on stderr: iterations (at most `max_iters`; training stops earlier once the
    loss is below `loss_threshold`) and the last batch's loss."""
    from tqdm.auto import tqdm  # here, not at import: the CLI sets tqdm's defaults first

    return tqdm(total=max_iters, desc=f"teacher RNN (stops at loss < {loss_threshold:g})",
                unit="iter", dynamic_ncols=True)


def _code_fingerprint() -> bytes:
    """The source of the code that trains teachers: editing it invalidates cached teachers
    even when nobody remembers to bump TEACHER_VERSION."""
    from nwb_jedi.synthetic import tasks

    return b"".join(Path(m.__file__).read_bytes() for m in (sys.modules[__name__], tasks))


def teacher_cache_path(config: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache file of a teacher config: tasks, size, seed and version in the name, plus a hash
    of every other setting so a changed setting never reuses a stale teacher."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()
                            + _code_fingerprint()).hexdigest()[:10]
    name = (f"teacher_{'+'.join(config['tasks'])}_n{config['n_units']}_s{config['seed']}"
            f"_v{config['version']}_{digest}.npz")
    return teacher_cache_dir(cache_dir) / name


def get_teacher(tasks=("sine",), n_units: int = 200, seed: int = 0,
                cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                **train_kwargs) -> TeacherRNN:
    """A trained teacher, from the disk cache when available, else trained now and cached.

    Parameters are those of `train_teacher`; `cache_dir` overrides ``$NWB_JEDI_CACHE`` /
    the platform cache dir; ``use_cache=False`` trains without reading or writing the cache.
    """
    verbose = train_kwargs.pop("verbose", False)
    defaults = {"rank": 5, "g": 1.8, "tau": 0.05, "dt": DEFAULT_DT, "lr": 0.03, "max_iters": 2000,
                "loss_threshold": 0.02, "train_noise": 0.05, "batch_repeats": 2}
    unknown = set(train_kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"unknown teacher settings: {sorted(unknown)}")
    settings = {**defaults, **train_kwargs}
    config = _teacher_config(tasks, n_units, seed, **settings)
    path = teacher_cache_path(config, cache_dir)
    if use_cache and path.exists():
        teacher = TeacherRNN.load(path)
        if teacher.config == config:
            return teacher
    teacher = train_teacher(tasks, n_units=n_units, seed=seed, verbose=verbose, **settings)
    if use_cache:
        teacher.save(path)
    return teacher
