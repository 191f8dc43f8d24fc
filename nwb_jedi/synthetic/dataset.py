"""Synthetic spiking datasets with known ground truth, from a trained teacher RNN.

Design choices (and why):

- **One multitask teacher per task set.** JEDI models the *same recorded neurons* across all
  conditions, so every condition must come from the same units. Rather than stitching together
  separately trained networks (whose units would have nothing to do with each other), one
  teacher is trained jointly on all requested tasks with a one-hot task-identity ("rule") input
  (Yang et al. 2019). Each task is then a different input context for one fixed network, which is
  what the paper's multi-task validation needs: different conditions, one circuit.
- **Common trial length.** Every task lays out its epochs and lets its final epoch (the response,
  or the oscillation) absorb the rest of the common ``duration`` (default: the longest natural
  duration of the tasks, 1 s), so all trials have the same number of bins without padding by
  zeros or cutting off a response.
- **Neurons.** The "recorded" neurons are the teacher's units: firing rate
  ``λ_i = rate_scale · baseline_i · exp(gain_i · tanh(x_i))`` (baseline 5–20 Hz, gain 0.5–1.5 by
  default, so rates range roughly 2–90 Hz with most between 5 and 50 Hz), averaged over the
  teacher steps of each bin; counts are Poisson with mean ``λ · bin_size``.
- **Seeds.** ``teacher_seed`` picks the (cached) teacher; ``seed`` draws the readout (baselines,
  gains), the trials' input noise, the spikes and the split. So a new ``seed`` is a new
  recording from the same circuit, and costs no retraining.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.data.provenance import Provenance
from nwb_jedi.errors import UserError
from nwb_jedi.synthetic.tasks import MultiTask, n_steps
from nwb_jedi.synthetic.teacher import TeacherRNN, get_teacher


def _bin_mean(values: np.ndarray, steps_per_bin: int, n_bins: int) -> np.ndarray:
    """Average (K, T_steps, D) over groups of `steps_per_bin` steps -> (K, n_bins, D)."""
    k, _, d = values.shape
    cropped = values[:, : n_bins * steps_per_bin]
    return cropped.reshape(k, n_bins, steps_per_bin, d).mean(axis=2)


def make_dataset(
    tasks: str | Sequence[str] = ("sine", "memorypro"),
    n_units: int = 200,
    trials_per_condition: int = 20,
    bin_size: float = 0.02,
    seed: int = 0,
    rate_scale: float = 1.0,
    baseline_range: tuple[float, float] = (5.0, 20.0),
    gain_range: tuple[float, float] = (0.5, 1.5),
    input_noise: float = 0.05,
    start_jitter: float = 0.0,
    trial_input: float = 0.0,
    trial_input_dim: int = 2,
    trial_input_timescale: float = 0.1,
    duration: float | None = None,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    teacher_seed: int = 0,
    teacher: TeacherRNN | None = None,
    cache_dir: str | os.PathLike | None = None,
    **teacher_kwargs,
) -> TrialDataset:
    """A TrialDataset of Poisson spike counts from a teacher RNN trained on `tasks`.

    Parameters
    ----------
    tasks : str or sequence of str
        Task names ("sine", "memorypro", "dm"); one multitask teacher is trained on all of them.
    n_units : int
        Teacher size = number of recorded neurons.
    trials_per_condition : int
        Trials of every (task, condition value) pair, >= 2.
    bin_size : float
        Bin width in seconds; must be a whole multiple of the teacher's step (10 ms).
    seed : int
        Seeds the readout (baselines, gains), the input noise, the spikes and the split.
    rate_scale : float
        Multiplies every neuron's baseline rate.
    baseline_range, gain_range : (float, float)
        Ranges of the per-neuron baseline (Hz, log-uniform) and gain (uniform).
    input_noise : float
        Standard deviation of Gaussian noise added to the teacher's inputs at every step, per
        trial (trial-to-trial variability beyond Poisson noise). 0 gives noiseless trials.
    start_jitter : float
        Single-trial variability of where a trial starts: every trial's initial state is offset
        by a Gaussian vector of this root-mean-square size per unit, in a random 3-dimensional
        subspace (fixed for the dataset), so trials of a condition start at different points
        of its dynamics.
    trial_input : float
        Single-trial variability that persists: every trial receives its own smooth,
        time-varying input of this root-mean-square size per unit, `trial_input_dim` random
        time courses (smoothed white noise, Gaussian kernel of `trial_input_timescale` s)
        through fixed random directions.
    trial_input_dim : int
        Number of such input time courses per trial.
    trial_input_timescale : float
        Their smoothness, seconds.
    duration : float, optional
        Common trial duration in seconds (default: the longest natural task duration).
    split : (train, val, test) fractions
        Stratified by condition, drawn with `seed`.
    teacher_seed : int
        Seed of the teacher (connectivity and training); teachers are cached per seed.
    teacher : TeacherRNN, optional
        Use this trained teacher instead of fetching one (its tasks must be `tasks`; its size
        then overrides `n_units`).
    cache_dir : path, optional
        Cache root for teachers (default ``$NWB_JEDI_CACHE`` or the platform cache dir).
    **teacher_kwargs
        Training settings passed to `get_teacher` (e.g. ``max_iters``, ``loss_threshold``).

    Returns
    -------
    TrialDataset
        Conditions are ``(task, value)`` with columns ``task``, ``value``, ``label``. Ground
        truth in ``ds.ground_truth``: teacher weights (``W``, ``chi``, ``M``, ``N``, ``B``,
        ``b``, ``W_out``, ``b_out``), step parameters (``alpha``, ``dt``, ``tau``, ``g``),
        ``rates`` (C x T x N noiseless condition rates, Hz, rows in ``ds.conditions`` order),
        ``condition_inputs`` (C x T x I), ``condition_states`` (C x T x N),
        ``condition_task``, ``condition_value``, ``sine_frequency`` (C, NaN for non-sine
        conditions), per-trial ``trial_rates`` (K x T x N, Hz, the rates the spikes were
        drawn from), ``trial_inputs`` (K x T x I), ``trial_states`` (K x T x N),
        ``trial_outputs`` (K x T x O), ``trial_task``, ``trial_value``, the readout
        (``readout_baseline``, ``readout_gain``, ``rate_scale``), ``input_names``,
        ``output_names`` and the teacher's ``teacher_info`` / ``teacher_config``.
        States and inputs are bin averages of the teacher's steps.
    """
    mt = MultiTask(tasks)
    if trials_per_condition < 2:
        raise UserError(f"trials_per_condition must be at least 2 (for a train/val split), got "
                        f"{trials_per_condition}")
    if teacher is None:
        teacher = get_teacher(mt.tasks, n_units=n_units, seed=teacher_seed,
                              cache_dir=cache_dir, **teacher_kwargs)
    elif list(teacher.config["tasks"]) != list(mt.names):
        raise UserError(f"the teacher was trained on {teacher.config['tasks']} but tasks="
                        f"{list(mt.names)}; pass the same tasks or no teacher")
    else:
        mt = teacher.multitask
    dt = teacher.dt
    ratio = bin_size / dt
    if not (np.isfinite(ratio) and ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-6):
        raise UserError(f"bin_size {bin_size:g} s is not a whole multiple of the teacher's time "
                        f"step {dt:g} s; choose e.g. {dt:g}, {2 * dt:g} or {5 * dt:g} s")
    steps_per_bin = int(round(ratio))
    duration = mt.duration if duration is None else float(duration)
    n_bins = n_steps(duration, dt) // steps_per_bin
    if n_bins < 1:
        raise UserError(f"duration {duration:g} s is shorter than one bin of {bin_size:g} s")

    rng = np.random.default_rng(seed)
    lo, hi = baseline_range
    if not (0 < lo <= hi) or rate_scale <= 0:
        raise UserError(f"baseline_range must be 0 < low <= high and rate_scale > 0, got "
                        f"{baseline_range} and {rate_scale}")
    baseline = np.exp(rng.uniform(np.log(lo), np.log(hi), teacher.n_units))
    gain = rng.uniform(gain_range[0], gain_range[1], teacher.n_units)

    def rates_of(states: np.ndarray) -> np.ndarray:
        return rate_scale * baseline * np.exp(gain * np.tanh(states))

    # Trials, condition-major; each gets its own input noise.
    conds = mt.conditions()
    trial_conds = [c for c in conds for _ in range(trials_per_condition)]
    inputs, _, _ = mt.batch(trial_conds, dt, duration, rng=rng, noise=input_noise)
    variability = _single_trial_variability(len(trial_conds), inputs.shape[1], teacher.n_units,
                                            dt, start_jitter, trial_input, trial_input_dim,
                                            trial_input_timescale, seed)
    states, outputs = teacher.run(inputs, x0=variability["trial_start_offsets"],
                                  extra_drive=variability["trial_extra_drive"])
    step_rates = rates_of(states)
    trial_rates = _bin_mean(step_rates, steps_per_bin, n_bins)
    counts = rng.poisson(trial_rates * bin_size).astype(np.float32)

    # Noiseless condition trajectories.
    c_inputs, _, _ = mt.batch(conds, dt, duration)
    c_states, _ = teacher.run(c_inputs)
    c_rates = _bin_mean(rates_of(c_states), steps_per_bin, n_bins)

    labels = [(name, float(value)) for name, value in trial_conds]
    trials = pd.DataFrame({"task": [c[0] for c in labels], "value": [c[1] for c in labels]})
    units = pd.DataFrame({"baseline_hz": baseline * rate_scale, "gain": gain})
    time = (np.arange(n_bins) + 0.5) * bin_size
    ds = TrialDataset.from_arrays(
        counts, labels, bin_size, time=time, split=split, seed=seed,
        condition_names=("task", "value"), units=units, trials=trials,
        provenance=Provenance(
            source={"kind": "synthetic"},
            extras={"tasks": list(mt.names), "seed": int(seed), "teacher_seed": int(teacher_seed),
                    "input_noise": float(input_noise), "start_jitter": float(start_jitter),
                    "trial_input": float(trial_input), "duration": float(n_bins * bin_size)}),
    )

    # Condition-level ground truth in ds.conditions order.
    order = [conds.index((row.task, row.value)) for row in ds.conditions.itertuples()]
    ctask = np.array([conds[i][0] for i in order])
    cvalue = np.array([conds[i][1] for i in order], dtype=float)
    gt = {
        **teacher.weights(),
        "alpha": teacher.alpha, "dt": dt, "tau": teacher.tau, "g": teacher.g,
        "rates": c_rates[order].astype(np.float32),
        "condition_inputs": _bin_mean(c_inputs, steps_per_bin, n_bins)[order],
        "condition_states": _bin_mean(c_states, steps_per_bin, n_bins)[order],
        "condition_task": ctask,
        "condition_value": cvalue,
        "sine_frequency": np.where(ctask == "sine", cvalue, np.nan),
        "trial_rates": trial_rates.astype(np.float32),
        "trial_inputs": _bin_mean(inputs, steps_per_bin, n_bins),
        "trial_states": _bin_mean(states, steps_per_bin, n_bins),
        "trial_outputs": _bin_mean(outputs, steps_per_bin, n_bins),
        "trial_start_offsets": variability["trial_start_offsets"],
        "trial_extra_inputs": _bin_mean(variability["trial_extra_drive"], steps_per_bin,
                                        n_bins),
        "trial_task": np.array([c[0] for c in labels]),
        "trial_value": np.array([c[1] for c in labels], dtype=float),
        "readout_baseline": baseline.astype(np.float32),
        "readout_gain": gain.astype(np.float32),
        "rate_scale": float(rate_scale),
        "input_names": np.array(mt.input_names),
        "output_names": np.array(mt.output_names),
        "teacher_info": dict(teacher.info),
        "teacher_config": dict(teacher.config),
    }
    ds.ground_truth = gt
    return ds


def _single_trial_variability(n_trials: int, n_steps_total: int, n_units: int, dt: float,
                              start_jitter: float, trial_input: float, input_dim: int,
                              timescale: float, seed: int) -> dict[str, np.ndarray]:
    """Per-trial initial-state offsets (K, N) and extra drive (K, T, N); zeros when off.

    Drawn from their own generator (seeded by `seed`), so turning them on leaves every other
    draw of the dataset (readout, task-input noise, spikes, split) unchanged.
    """
    if start_jitter < 0 or trial_input < 0 or input_dim < 1 or timescale <= 0:
        raise UserError("start_jitter and trial_input must be >= 0, trial_input_dim >= 1 and "
                        "trial_input_timescale > 0")
    rng = np.random.default_rng([int(seed), 12])
    starts = np.zeros((n_trials, n_units), np.float32)
    drive = np.zeros((n_trials, n_steps_total, n_units), np.float32)
    if start_jitter > 0:
        basis = np.linalg.qr(rng.standard_normal((n_units, 3)))[0] * np.sqrt(n_units / 3)
        starts = (start_jitter * rng.standard_normal((n_trials, 3)) @ basis.T).astype(np.float32)
    if trial_input > 0:
        from scipy.ndimage import gaussian_filter1d

        directions = rng.standard_normal((n_units, input_dim))
        directions /= np.sqrt((directions ** 2).mean(0, keepdims=True) * input_dim)
        courses = gaussian_filter1d(rng.standard_normal((n_trials, n_steps_total, input_dim)),
                                    timescale / dt, axis=1, mode="nearest")
        courses /= courses.std()
        drive = (trial_input * courses @ directions.T).astype(np.float32)
    return {"trial_start_offsets": starts, "trial_extra_drive": drive}
