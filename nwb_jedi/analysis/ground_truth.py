"""Fitted dynamics against a synthetic teacher's ground truth (`nwb_jedi.synthetic`).

The teacher is a tanh RNN driven by task inputs, ``x ← x + α(−x + W tanh(x) + B u + b)``,
whose units are the recorded neurons (rate ``scale · baseline · exp(gain · tanh(x))``). A
fitted model has its own state space, so the two are compared where they meet: in the firing
rates of the recorded neurons (fixed points), and in continuous-time spectra (the teacher steps
every ``dt``, the model every bin; see `nwb_jedi.analysis.spectra.continuous_eigenvalues`).

``ground_truth`` below is ``ds.ground_truth`` of a dataset made by
`nwb_jedi.synthetic.make_dataset` (teacher weights, readout, noiseless condition states).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from nwb_jedi.analysis.dynamics import (
    JacobianFn,
    StepFn,
    model_jacobian,
    model_step,
    model_trajectory,
)
from nwb_jedi.analysis.fixedpoints import (
    find_fixed_points,
    match_fixed_points,
    trajectory_starts,
)
from nwb_jedi.analysis.spectra import (
    continuous_eigenvalues,
    leading_frequency,
    stability_summary,
)
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError
from nwb_jedi.synthetic.teacher import TeacherRNN

__all__ = ["compare_fixed_points", "model_rates", "sine_spearman", "teacher_input",
           "teacher_map", "teacher_rates"]


def teacher_rates(ground_truth: Mapping, states: np.ndarray) -> np.ndarray:
    """Firing rates (Hz) the synthetic neurons emit at teacher states x (..., N)."""
    return ground_truth["rate_scale"] * ground_truth["readout_baseline"] * np.exp(
        ground_truth["readout_gain"] * np.tanh(states))


def model_rates(model, states: np.ndarray) -> np.ndarray:
    """Firing rates (Hz) a fitted model's readout gives at its states x (..., N).

    Only Poisson models map states to rates directly (their readout gives expected counts per
    bin); a Gaussian model's readout gives normalized rates.
    """
    if getattr(model, "observation", "poisson") != "poisson":
        raise UserError("model_rates needs a model with a Poisson observation (its readout "
                        "gives counts per bin); refit with observation='poisson'")
    with torch.no_grad():
        out = model.module_.readout(torch.tanh(torch.as_tensor(states, dtype=torch.float32)))
    return out.numpy().astype(np.float64) / model.bin_size_


def teacher_input(teacher: TeacherRNN, task: str, value: float,
                  time: float | None = None) -> np.ndarray:
    """The teacher's noiseless input vector (I,) in a condition's trial at `time` (s).

    Parameters
    ----------
    teacher : TeacherRNN
    task, value : str, float
        The condition (e.g. ``"sine", 4.0``).
    time : float, optional
        Seconds from the trial start; default the last step (for a sine condition the input is
        static, so any time gives the same vector).
    """
    trial = teacher.multitask.trial(task, value, teacher.dt)
    index = -1 if time is None else int(round(time / teacher.dt))
    return np.asarray(trial.inputs[index], dtype=np.float64)


def teacher_map(ground_truth: Mapping, u: np.ndarray) -> tuple[StepFn, JacobianFn]:
    """The teacher's step under a static input `u`, and its Jacobian, in float64 (torch).

    ``F(x) = x + α(−x + W tanh(x) + B u + b)``. The teacher's own `step_fn` is float32, too
    coarse to locate fixed points to ~1e-10.
    """
    W = torch.as_tensor(np.asarray(ground_truth["W"], np.float64))
    bias = torch.as_tensor(np.asarray(ground_truth["B"], np.float64) @ u
                           + np.asarray(ground_truth["b"], np.float64))
    alpha = float(ground_truth["alpha"])
    eye = torch.eye(W.shape[0], dtype=torch.float64)

    def step(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        return x + alpha * (-x + torch.tanh(x) @ W.T + bias)

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        gain = 1.0 - torch.tanh(x.to(torch.float64)) ** 2
        return (1.0 - alpha) * eye + alpha * W.unsqueeze(0) * gain.unsqueeze(1)

    return step, jacobian


def compare_fixed_points(model, ds: TrialDataset, teacher: TeacherRNN, *, n_initial: int = 128,
                         max_iters: int = 5000, noise: float = 0.1, seed: int = 0
                         ) -> pd.DataFrame:
    """A fitted model's fixed points against the teacher's, per sine condition.

    The same search for both (`find_fixed_points`, `n_initial` starts from each one's own
    trial-long noiseless trajectory, `max_iters` Adam steps, then Newton): the teacher under
    the condition's static sine input, the model's network of that condition. The two sets are
    matched one to one (`match_fixed_points`) by the distance between the recorded neurons'
    firing rates at them.

    Parameters
    ----------
    model : fitted JEDI (Poisson observation)
    ds : TrialDataset
        Made by `nwb_jedi.synthetic.make_dataset` from `teacher` (its ``ground_truth`` and
        conditions with ``task`` and ``value`` columns).
    teacher : TeacherRNN
    n_initial, max_iters, noise : int, int, float
        Starts per search, Adam budget (slow saddles need many), perturbation of the starts.
    seed : int
        Seed of the starts (the same draw for every search).

    Returns
    -------
    DataFrame
        One row per sine condition: ``frequency_hz``, ``teacher_n``, ``jedi_n``, ``matched``,
        ``rms_distance_hz`` (mean matched distance / √N), ``distance_over_spread`` (mean matched
        distance / RMS distance of the teacher's rate trajectory from its mean),
        ``teacher_fp_to_mean_over_spread`` (the same for the teacher's fixed points and its
        mean rate: what guessing "the centre of the trajectory" would score),
        ``teacher_unstable_modes`` / ``jedi_unstable_modes`` (per matched pair, modes with
        Re s > 0), ``teacher_fp_freq_hz`` / ``jedi_fp_freq_hz`` (mean leading frequency at the
        matched fixed points).
    """
    gt = ds.ground_truth
    if not gt or "condition_states" not in gt:
        raise UserError("compare_fixed_points needs a synthetic dataset with ground truth "
                        "(nwb_jedi.synthetic.make_dataset)")

    def starts(trajectory: np.ndarray) -> np.ndarray:
        return trajectory_starts(trajectory, n_initial, noise, np.random.default_rng(seed))

    labels = list(model.conditions_["label"].astype(str))
    rows = []
    for c, cond in enumerate(ds.conditions.itertuples()):
        if cond.task != "sine":
            continue
        step, jac = teacher_map(gt, teacher_input(teacher, "sine", cond.value))
        found_t = find_fixed_points(step, starts(gt["condition_states"][c]), jacobian=jac,
                                    max_iters=max_iters)
        row = labels.index(cond.label)
        found_j = find_fixed_points(model_step(model, row),
                                    starts(model_trajectory(model, row, ds.n_bins)),
                                    jacobian=model_jacobian(model, row), max_iters=max_iters)
        rows.append({"frequency_hz": cond.value, "teacher_n": len(found_t),
                     "jedi_n": len(found_j),
                     **_matched_summary(found_t, found_j, gt["rates"][c], gt,
                                        (teacher.dt, model.bin_size_), model)})
    return pd.DataFrame(rows)


def _matched_summary(found_t, found_j, trajectory: np.ndarray, gt: Mapping,
                     dts: tuple[float, float], model) -> dict:
    """Distances and spectra of the matched teacher/model fixed points of one condition."""
    r_t = teacher_rates(gt, found_t.locations)
    r_j = model_rates(model, found_j.locations)
    ii, jj, dist = match_fixed_points(r_t, r_j)
    # Scale: how far the teacher's rates travel from their mean over the trial.
    spread = float(np.sqrt(((trajectory - trajectory.mean(0)) ** 2).sum(1).mean()))
    n = r_t.shape[1] if len(r_t) else gt["rates"].shape[-1]
    # Reference: how far the teacher's own fixed point lies from its mean rate (the trivial
    # guess "the fixed point is the centre of the trajectory").
    to_mean = np.linalg.norm(r_t - trajectory.mean(0), axis=1) if len(r_t) else np.zeros(0)
    pairs = (("teacher", found_t, ii, dts[0]), ("jedi", found_j, jj, dts[1]))
    freq = {who: [leading_frequency(found.eigenvalues[i], dt) for i in idx]
            for who, found, idx, dt in pairs}
    unstable = {who: [int((continuous_eigenvalues(found.eigenvalues[i], dt).real > 0).sum())
                      for i in idx] for who, found, idx, dt in pairs}
    return {
        "matched": len(dist),
        "rms_distance_hz": float(np.mean(dist) / np.sqrt(n)) if len(dist) else np.nan,
        "distance_over_spread": float(np.mean(dist) / spread) if len(dist) else np.nan,
        "teacher_fp_to_mean_over_spread": float(np.mean(to_mean) / spread)
        if len(to_mean) else np.nan,
        "teacher_unstable_modes": ",".join(map(str, unstable["teacher"])),
        "jedi_unstable_modes": ",".join(map(str, unstable["jedi"])),
        "teacher_fp_freq_hz": float(np.mean(freq["teacher"])) if freq["teacher"] else np.nan,
        "jedi_fp_freq_hz": float(np.mean(freq["jedi"])) if freq["jedi"] else np.nan,
    }


def sine_spearman(model, fixed: pd.DataFrame | None = None) -> dict:
    """Spearman(sine frequency, |Im λ|) for two definitions of λ (J's eigenvalues per condition).

    ``leading``: the eigenvalue of J_c with the largest modulus; ``max_imag``: the eigenvalue of
    J_c with the largest |Im λ|. With `fixed` (a `compare_fixed_points` table with at least
    three frequencies at the model's fixed points), also the frequency of the leading mode of
    the Jacobian at the model's fixed points.

    Parameters
    ----------
    model : fitted JEDI whose conditions have ``task`` and ``value`` columns (synthetic data)
    fixed : DataFrame, optional

    Returns
    -------
    dict
        ``frequencies``, ``leading_abs_imag``, ``max_abs_imag`` (per sine condition),
        ``rho_leading``, ``p_leading``, ``rho_max_imag``, ``p_max_imag``,
        ``step_jacobian_hz`` and ``rho_step_jacobian`` (the frequency of the step Jacobian's
        least stable mode along each sine condition's trajectory) and, with `fixed`,
        ``rho_fixed_point``.
    """
    from scipy.stats import spearmanr

    if "task" not in model.conditions_.columns:
        raise UserError("sine_spearman needs a model fitted on synthetic conditions (columns "
                        "task and value)")
    freqs, lead, max_im = [], [], []
    for row, cond in enumerate(model.conditions_.itertuples()):
        if cond.task != "sine":
            continue
        lam = model.eigenvalues(row)
        freqs.append(cond.value)
        lead.append(abs(lam[0].imag))
        max_im.append(float(np.abs(lam.imag).max()))
    rho_lead, p_lead = spearmanr(freqs, lead)
    rho_max, p_max = spearmanr(freqs, max_im)
    out = {"frequencies": freqs, "leading_abs_imag": lead, "max_abs_imag": max_im,
           "rho_leading": float(rho_lead), "p_leading": float(p_lead),
           "rho_max_imag": float(rho_max), "p_max_imag": float(p_max)}
    # The same claim on the dynamics themselves: the oscillation frequency of the step
    # Jacobian along each sine condition's trajectory (see spectra.stability_summary).
    table = stability_summary(model)
    sine = table[[t == "sine" for t in model.conditions_["task"]]]
    out["step_jacobian_hz"] = sine["DF_frequency_hz"].tolist()
    out["rho_step_jacobian"] = float(spearmanr(freqs, out["step_jacobian_hz"])[0])
    if fixed is not None and fixed["jedi_fp_freq_hz"].notna().sum() >= 3:
        ok = fixed["jedi_fp_freq_hz"].notna()
        out["rho_fixed_point"] = float(spearmanr(fixed["frequency_hz"][ok],
                                                 fixed["jedi_fp_freq_hz"][ok])[0])
    return out
