"""Cognitive tasks for teacher RNNs: inputs, targets and loss masks, one condition at a time.

Every task is a small object with

- ``name`` and ``conditions`` (the condition values, in a fixed order),
- ``input_names`` / ``output_names`` (the channels it uses),
- ``trial(value, dt, duration, rng=None, noise=0.0)`` -> a `TaskTrial` with ``inputs``
  (T x I), ``targets`` (T x O) and ``mask`` (T x O weights of the squared error),
- ``performance(value, outputs, trial)`` -> 1.0 when the output solves the trial, else 0.0.

Time is in seconds and is discretised with step ``dt`` (default 10 ms). Every task takes the
trial ``duration`` as an argument and lets its *last* epoch absorb the remaining time, so tasks of
different natural lengths can share one common number of time steps: a longer duration simply
holds the final epoch (the response, or the oscillation) for longer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nwb_jedi.errors import UserError


@dataclass
class TaskTrial:
    """One trial of one task: inputs, targets and loss weights on a common time grid."""

    inputs: np.ndarray   # (T, I) float32
    targets: np.ndarray  # (T, O) float32
    mask: np.ndarray     # (T, O) float32, weight of each squared error
    epochs: dict         # name -> (first step, stop step)


def n_steps(duration: float, dt: float) -> int:
    """Number of time steps of length `dt` in `duration` seconds (rounded to the nearest)."""
    if not (np.isfinite(dt) and dt > 0):
        raise UserError(f"dt must be a positive number of seconds, got {dt}")
    return int(round(duration / dt))


def _epochs(spec: list[tuple[str, float]], duration: float, dt: float) -> dict:
    """Lay out named epochs of given lengths (s); the last one is stretched to fill `duration`."""
    total = n_steps(duration, dt)
    fixed = sum(n_steps(length, dt) for _, length in spec[:-1])
    last_min = n_steps(spec[-1][1], dt)
    if fixed + last_min > total:
        need = (fixed + last_min) * dt
        raise UserError(f"trial duration {duration:g} s is shorter than the task needs "
                        f"({need:g} s); pass a longer duration")
    out, start = {}, 0
    for name, length in spec[:-1]:
        stop = start + n_steps(length, dt)
        out[name] = (start, stop)
        start = stop
    out[spec[-1][0]] = (start, total)
    return out


class Task:
    """Base class; subclasses set the class attributes and implement `trial`."""

    name: str = ""
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    natural_duration: float = 1.0

    def __init__(self) -> None:
        self.conditions: tuple = ()

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    def check_value(self, value) -> None:
        if not any(np.isclose(value, c) for c in self.conditions):
            raise UserError(f"{value!r} is not a condition of task '{self.name}'; choose one "
                            f"of {list(self.conditions)}")

    def trial(self, value, dt: float, duration: float | None = None,
              rng: np.random.Generator | None = None, noise: float = 0.0) -> TaskTrial:
        raise NotImplementedError

    def performance(self, value, outputs: np.ndarray, trial: TaskTrial) -> float:
        raise NotImplementedError

    def describe(self) -> dict:
        """Plain-JSON description of the task's settings (part of the teacher cache key)."""
        return {"name": self.name, "conditions": [float(c) for c in self.conditions],
                "natural_duration": self.natural_duration}

    @staticmethod
    def _noisy(inputs: np.ndarray, rng, noise: float) -> np.ndarray:
        if noise > 0:
            if rng is None:
                raise ValueError("input noise needs a random generator (rng)")
            inputs = inputs + noise * rng.standard_normal(inputs.shape)
        return inputs.astype(np.float32)


class SineTask(Task):
    """Generate ``sin(2π f t)`` for a frequency ``f`` given as a static input level.

    Input: one channel held at ``f / f_max`` for the whole trial (Sussillo & Barak 2013).
    Output: one channel, target ``sin(2π f t)`` with t = 0 at the first step. The first
    ``grace`` seconds are not scored, so the network may ramp up from rest.
    Conditions: the frequencies in Hz (default 8 values from 1 to 10 Hz).
    """

    name = "sine"
    input_names = ("sine_freq",)
    output_names = ("sine_out",)
    natural_duration = 1.0

    def __init__(self, frequencies=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0),
                 grace: float = 0.1) -> None:
        super().__init__()
        self.conditions = tuple(float(f) for f in frequencies)
        self.f_max = max(self.conditions)
        self.grace = float(grace)

    def trial(self, value, dt, duration=None, rng=None, noise=0.0):
        self.check_value(value)
        duration = self.natural_duration if duration is None else duration
        epochs = _epochs([("ramp", self.grace), ("oscillate", 0.1)], duration, dt)
        t_steps = n_steps(duration, dt)
        t = np.arange(t_steps) * dt
        inputs = np.full((t_steps, 1), value / self.f_max)
        targets = np.sin(2 * np.pi * value * t)[:, None]
        mask = np.ones((t_steps, 1))
        mask[: epochs["oscillate"][0]] = 0.0
        return TaskTrial(self._noisy(inputs, rng, noise), targets.astype(np.float32),
                         mask.astype(np.float32), epochs)

    def performance(self, value, outputs, trial):
        """1 when the scored output explains at least 80% of the target's variance."""
        m = trial.mask[:, 0] > 0
        y, z = trial.targets[m, 0], outputs[m, 0]
        r2 = 1 - np.sum((y - z) ** 2) / np.sum((y - y.mean()) ** 2)
        return float(r2 >= 0.8)

    def describe(self):
        return {**super().describe(), "grace": self.grace}


class MemoryProTask(Task):
    """Memory-guided pro-saccade (Yang et al. 2019, "MemoryPro").

    Epochs: fixation (0.1 s), stimulus (0.2 s), memory delay (0.4 s), response (the rest,
    ≥ 0.2 s). Inputs: a fixation channel (1 until the response epoch) and the stimulus angle θ as
    ``(cos θ, sin θ)`` during the stimulus epoch only. Outputs: a fixation output (target 1 while
    fixation is on, 0 after) and the response ``(cos θ, sin θ)`` during the response epoch (0
    before). The response epoch's errors weigh 5 times more, and its first 50 ms are not scored.
    Conditions: the stimulus angles in degrees (default 8, evenly spaced from 0).
    """

    name = "memorypro"
    input_names = ("memorypro_fix", "memorypro_cos", "memorypro_sin")
    output_names = ("memorypro_fix_out", "memorypro_cos_out", "memorypro_sin_out")
    natural_duration = 1.0

    def __init__(self, n_angles: int = 8, fixation: float = 0.1, stimulus: float = 0.2,
                 delay: float = 0.4, response: float = 0.2) -> None:
        super().__init__()
        self.conditions = tuple(float(a) for a in np.arange(n_angles) * 360.0 / n_angles)
        self.durations = {"fixation": fixation, "stimulus": stimulus, "delay": delay,
                          "response": response}

    def trial(self, value, dt, duration=None, rng=None, noise=0.0):
        self.check_value(value)
        duration = self.natural_duration if duration is None else duration
        epochs = _epochs(list(self.durations.items()), duration, dt)
        t_steps = n_steps(duration, dt)
        theta = np.deg2rad(value)
        inputs = np.zeros((t_steps, 3))
        targets = np.zeros((t_steps, 3))
        mask = np.ones((t_steps, 3))
        r0 = epochs["response"][0]
        s0, s1 = epochs["stimulus"]
        inputs[:r0, 0] = 1.0
        inputs[s0:s1, 1] = np.cos(theta)
        inputs[s0:s1, 2] = np.sin(theta)
        targets[:r0, 0] = 1.0
        targets[r0:, 1] = np.cos(theta)
        targets[r0:, 2] = np.sin(theta)
        mask[r0:] = 5.0
        mask[r0: r0 + n_steps(0.05, dt)] = 0.0  # let the output turn, as in Yang et al. 2019
        return TaskTrial(self._noisy(inputs, rng, noise), targets.astype(np.float32),
                         mask.astype(np.float32), epochs)

    def performance(self, value, outputs, trial):
        """1 when fixation is held (> 0.5) before the response and the mean response angle is
        within 36° (π/5) of the stimulus angle."""
        r0 = trial.epochs["response"][0]
        held = np.all(outputs[:r0, 0] > 0.5)
        scored = trial.mask[r0:, 1] > 0
        resp = outputs[r0:][scored].mean(axis=0)
        angle = np.arctan2(resp[2], resp[1])
        err = np.angle(np.exp(1j * (angle - np.deg2rad(value))))
        return float(held and abs(err) < np.pi / 5 and np.hypot(resp[1], resp[2]) > 0.5)

    def describe(self):
        return {**super().describe(), "durations": self.durations}


class DecisionTask(Task):
    """Perceptual decision making ("DM", Yang et al. 2019): integrate a noisy stimulus, report
    its sign after a delay.

    Epochs: fixation (0.1 s), stimulus (0.4 s), delay (0.2 s), response (the rest, ≥ 0.2 s).
    Inputs: a fixation channel (1 until the response) and the stimulus, held at the coherence
    ``c`` during the stimulus epoch (plus the input noise of the trial, which is what makes the
    task a decision). Outputs: a fixation output and a choice output whose target is ``sign(c)``
    during the response (0 before). Response errors weigh 5 times more, first 50 ms unscored.
    Conditions: the signed coherences (default ±0.1, ±0.2, ±0.4, ±0.8).
    """

    name = "dm"
    input_names = ("dm_fix", "dm_stim")
    output_names = ("dm_fix_out", "dm_choice_out")
    natural_duration = 1.0

    def __init__(self, coherences=(-0.8, -0.4, -0.2, -0.1, 0.1, 0.2, 0.4, 0.8),
                 fixation: float = 0.1, stimulus: float = 0.4, delay: float = 0.2,
                 response: float = 0.2) -> None:
        super().__init__()
        if any(c == 0 for c in coherences):
            raise UserError("coherence 0 has no correct answer; use non-zero coherences")
        self.conditions = tuple(float(c) for c in coherences)
        self.durations = {"fixation": fixation, "stimulus": stimulus, "delay": delay,
                          "response": response}

    def trial(self, value, dt, duration=None, rng=None, noise=0.0):
        self.check_value(value)
        duration = self.natural_duration if duration is None else duration
        epochs = _epochs(list(self.durations.items()), duration, dt)
        t_steps = n_steps(duration, dt)
        inputs = np.zeros((t_steps, 2))
        targets = np.zeros((t_steps, 2))
        mask = np.ones((t_steps, 2))
        r0 = epochs["response"][0]
        s0, s1 = epochs["stimulus"]
        inputs[:r0, 0] = 1.0
        inputs[s0:s1, 1] = value
        targets[:r0, 0] = 1.0
        targets[r0:, 1] = np.sign(value)
        mask[r0:] = 5.0
        mask[r0: r0 + n_steps(0.05, dt)] = 0.0
        return TaskTrial(self._noisy(inputs, rng, noise), targets.astype(np.float32),
                         mask.astype(np.float32), epochs)

    def performance(self, value, outputs, trial):
        """1 when fixation is held (> 0.5) and the mean scored choice output has the sign of c."""
        r0 = trial.epochs["response"][0]
        held = np.all(outputs[:r0, 0] > 0.5)
        scored = trial.mask[r0:, 1] > 0
        choice = outputs[r0:, 1][scored].mean()
        return float(held and np.sign(choice) == np.sign(value))

    def describe(self):
        return {**super().describe(), "durations": self.durations}


TASKS: dict[str, type[Task]] = {"sine": SineTask, "memorypro": MemoryProTask, "dm": DecisionTask}


def get_task(task: str | Task) -> Task:
    """A task object from its name (``"sine"``, ``"memorypro"``, ``"dm"``) or a Task itself."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    return TASKS[task]()


class MultiTask:
    """Several tasks on one network: each task has its own input and output channels plus a
    one-hot task-identity ("rule") input, as in Yang et al. 2019.

    Input layout: ``[rule one-hot (n_tasks) | task 0 inputs | task 1 inputs | ...]``;
    output layout: ``[task 0 outputs | task 1 outputs | ...]``. The loss mask of a trial is zero
    on the outputs of other tasks, so each readout is only trained on its own task.
    """

    def __init__(self, tasks) -> None:
        if isinstance(tasks, str | Task):
            tasks = (tasks,)
        self.tasks = [get_task(t) for t in tasks]
        names = [t.name for t in self.tasks]
        if not names:
            raise UserError("give at least one task")
        if len(set(names)) != len(names):
            raise UserError(f"tasks are repeated in {names}; give each task once")
        self.names = tuple(names)
        self.input_names = tuple(f"rule_{n}" for n in names) + sum(
            (t.input_names for t in self.tasks), ())
        self.output_names = sum((t.output_names for t in self.tasks), ())
        self._in_off, self._out_off = [], []
        i, o = len(names), 0
        for t in self.tasks:
            self._in_off.append(i)
            self._out_off.append(o)
            i += t.n_inputs
            o += t.n_outputs

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def duration(self) -> float:
        """Common trial duration: the longest natural duration of the tasks."""
        return max(t.natural_duration for t in self.tasks)

    def conditions(self) -> list[tuple[str, float]]:
        """All (task name, condition value) pairs, tasks in the given order."""
        return [(t.name, v) for t in self.tasks for v in t.conditions]

    def task_index(self, name: str) -> int:
        if name not in self.names:
            raise UserError(f"task {name!r} is not one of {list(self.names)}")
        return self.names.index(name)

    def trial(self, name: str, value, dt: float, duration: float | None = None,
              rng=None, noise: float = 0.0) -> TaskTrial:
        """One trial of task `name` laid out on the multitask channels."""
        k = self.task_index(name)
        task = self.tasks[k]
        duration = self.duration if duration is None else duration
        tt = task.trial(value, dt, duration, rng=rng, noise=noise)
        t_steps = tt.inputs.shape[0]
        inputs = np.zeros((t_steps, self.n_inputs), np.float32)
        targets = np.zeros((t_steps, self.n_outputs), np.float32)
        mask = np.zeros((t_steps, self.n_outputs), np.float32)
        inputs[:, k] = 1.0
        inputs[:, self._in_off[k]: self._in_off[k] + task.n_inputs] = tt.inputs
        o = slice(self._out_off[k], self._out_off[k] + task.n_outputs)
        targets[:, o] = tt.targets
        mask[:, o] = tt.mask
        return TaskTrial(inputs, targets, mask, tt.epochs)

    def batch(self, conditions, dt: float, duration: float | None = None, rng=None,
              noise: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stacked inputs, targets and masks (K x T x ·) of a list of (task, value) pairs."""
        trials = [self.trial(n, v, dt, duration, rng=rng, noise=noise) for n, v in conditions]
        return (np.stack([t.inputs for t in trials]), np.stack([t.targets for t in trials]),
                np.stack([t.mask for t in trials]))

    def performance(self, name: str, value, outputs: np.ndarray, dt: float,
                    duration: float | None = None) -> float:
        """Task performance (0 or 1) of a multitask output (T x O) on one noiseless trial."""
        k = self.task_index(name)
        task = self.tasks[k]
        tt = task.trial(value, dt, self.duration if duration is None else duration)
        o = slice(self._out_off[k], self._out_off[k] + task.n_outputs)
        return task.performance(value, outputs[:, o], tt)

    def describe(self) -> list[dict]:
        return [t.describe() for t in self.tasks]
