"""Cross-check of the package's Neural Latents Benchmark metrics against nlb_tools' own code.

Runs ``nlb_tools`` (0.0.4, the benchmark's evaluation code) and the package on the same inputs
and records nlb_tools' numbers as the expectations of
``tests/benchmarks/test_nlb_crosscheck.py``:

1. **Fixed arrays** (``tests/data/nlb_crosscheck.npz``, written by this script from a seeded
   generator and then only read): ``bits_per_spike`` (NaN counts, zero rates), velocity
   decoding (``velocity_decoding`` with NaN behavior, one and two decode masks, the grid
   search and a fixed penalty), ``eval_psth`` (a condition with NaN PSTH bins, one without
   evaluation trials), and the Poisson GLM of NLB's smoothing baseline (scikit-learn's
   ``PoissonRegressor``, which nlb_tools' baseline script uses).
2. **A file, end to end**: an MC_Maze-layout NWB file (`nwb_jedi.io.layouts`, 24 units, 72
   trials, 1 kHz hand velocity) read by nlb_tools (``NWBDataset``, ``resample``,
   ``make_eval_target_tensors(..., include_psth=True)``) and by the package
   (`nwb_jedi.data.nlb.nlb_trials` / `nlb_targets`) at 5 and 20 ms bins: each target array's
   checksums, and ``nlb_tools.evaluation.evaluate`` of a deterministic submission (condition
   PSTHs of the training trials, written with `nwb_jedi.io.nlb.write_submission`).

nlb_tools pins ``pandas<=1.3.4`` and needs scikit-learn, so it cannot join the test
environment; the tests compare against the numbers recorded here. To run this script::

    pip install --no-deps --target /tmp/nlbsite nlb-tools==0.0.4 scikit-learn==1.6.1 \\
        joblib threadpoolctl
    pip install --no-deps --target /tmp/nlbpandas pandas==2.2.3 pytz   # nlb_tools predates
                                                                       # pandas 3
    PYTHONPATH=/tmp/nlbpandas:/tmp/nlbsite:. python benchmarks/nlb_crosscheck.py [--write]

It prints, per metric, nlb_tools' value, the package's and their difference; ``--write``
(re)writes ``tests/data/nlb_crosscheck.json`` (and the fixed arrays, if absent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXED = ROOT / "tests" / "data" / "nlb_crosscheck.npz"
EXPECTED = ROOT / "tests" / "data" / "nlb_crosscheck.json"
FILE_SETTINGS = {"n_units": 24, "n_trials": 72, "n_conditions": 6, "seed": 1}
BINS_MS = (5, 20)
GLM_ALPHA = 0.01


# ---------------------------------------------------------------------------------- inputs
def make_fixed_arrays(seed: int = 20240601) -> dict[str, np.ndarray]:
    """The fixed inputs of part 1 (drawn once, stored as float32 to keep the file small; the
    tests read them from the .npz, and both sides compute in float64)."""
    rng = np.random.default_rng(seed)
    out = {}
    rates = rng.gamma(2.0, 0.06, size=(12, 20, 6))
    rates[0, :4, 1] = 0.0  # zero rates: nlb_tools counts them as 1e-9
    spikes = rng.poisson(rates * 1.3 + 0.01).astype(float)
    spikes[2, 5:9, :] = np.nan  # unobserved bins
    out.update(bps_rates=rates, bps_spikes=spikes)
    weights = rng.normal(size=(8, 2))
    for split, k in (("train", 30), ("eval", 10)):
        r = rng.gamma(2.0, 0.05, size=(k, 20, 8))
        b = r @ weights + rng.normal(0, 0.05, size=(k, 20, 2))
        out[f"vel_{split}_rates"], out[f"vel_{split}_behavior"] = r, b
    out["vel_train_behavior"][3, 7:10] = np.nan  # samples without behavior are left out
    out["vel_eval_behavior"][1, 0:2] = np.nan
    out["vel_train_mask"] = np.stack([np.arange(30) % 2 == 0, np.arange(30) % 2 == 1], axis=1)
    out["vel_eval_mask"] = np.stack([np.arange(10) % 2 == 0, np.arange(10) % 2 == 1], axis=1)
    psth = rng.gamma(2.0, 0.05, size=(5, 20, 8))
    psth[3, 15:] = np.nan  # a condition with fewer bins (NLB pads with NaN)
    condition = np.array([0, 0, 1, 2, 3, 3, 1, 0, 2, 3])  # condition 4: no evaluation trial
    out["psth"] = psth
    out["psth_eval_rates"] = np.nan_to_num(psth[condition], nan=0.1) + rng.normal(
        0, 0.02, size=(10, 20, 8))
    out["psth_condition"] = condition
    x = rng.normal(size=(400, 5))
    out["glm_x"] = x
    out["glm_y"] = rng.poisson(np.exp(x @ rng.normal(0, 0.3, size=(5, 3)) - 1.0)).astype(float)
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in out.items()}


def fixed_arrays() -> dict[str, np.ndarray]:
    """The stored fixed inputs, floats as float64."""
    with np.load(FIXED) as data:
        return {k: data[k].astype(np.float64) if data[k].dtype.kind == "f" else data[k]
                for k in data.files}


def write_fixture_file(directory: Path) -> Path:
    """The MC_Maze-layout file of part 2 (the same every time: seeded)."""
    from nwb_jedi.io.layouts import simulate_reaching, write_mc_maze_layout

    sim = simulate_reaching(**FILE_SETTINGS)
    path = Path(directory) / "sub-sim_ses-maze_desc-train_behavior+ecephys.nwb"
    write_mc_maze_layout(path, sim.spike_times, sim.trials, sim.behavior, heldout=sim.heldout,
                         locations=sim.locations)
    return path


def fingerprint(session) -> str:
    """SHA-256 of what the targets depend on: spike times, trial times and splits, hand
    velocity, held-out flags. If simulate_reaching changes, the expectations must be remade."""
    digest = hashlib.sha256()
    for spikes in session.spike_times:
        digest.update(np.round(np.asarray(spikes), 6).tobytes())
    trials = session.trials
    for column in ("start_time", "stop_time", "move_onset_time", "trial_type",
                   "trial_version"):
        digest.update(np.asarray(trials[column], dtype=np.float64).round(6).tobytes())
    digest.update("|".join(map(str, trials["split"])).encode())
    digest.update(np.round(session.behavior["hand_vel"].data, 9).tobytes())
    digest.update(np.asarray(session.units["heldout"], dtype=bool).tobytes())
    return digest.hexdigest()


def psth_submission(trials) -> dict[str, np.ndarray]:
    """A deterministic submission: the training trials' condition PSTHs (expected counts per
    bin), over the window and over the window extended by the forward bins."""
    from nwb_jedi.model.baselines import PSTHBaseline

    heldout = trials.heldout
    window = PSTHBaseline().fit(trials.window.subset(trials.train))
    extended = PSTHBaseline().fit(trials.extended.subset(trials.train))
    b = trials.window.bin_size
    n = trials.window.n_bins
    train = window.predict_rates(trials.window.subset(trials.train)) * b
    evaluation = extended.predict_rates(trials.extended.subset(trials.evaluation)) * b
    return {"train_rates_heldin": train[..., ~heldout],
            "train_rates_heldout": train[..., heldout],
            "eval_rates_heldin": evaluation[:, :n, ~heldout],
            "eval_rates_heldout": evaluation[:, :n, heldout],
            "eval_rates_heldin_forward": evaluation[:, n:, ~heldout],
            "eval_rates_heldout_forward": evaluation[:, n:, heldout]}


def checksums(values) -> dict:
    """Shape, NaN count, sum, sum of squares and an order-sensitive weighted sum (weights
    growing along the trial and time axes) of an array, NaN left out."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.ones(values.shape)
    for axis in range(min(2, values.ndim)):
        shape = [1] * values.ndim
        shape[axis] = values.shape[axis]
        weights = weights * (1.0 + np.arange(values.shape[axis])).reshape(shape)
    return {"shape": list(values.shape), "nan": int(np.isnan(values).sum()),
            "sum": float(np.nansum(values)), "sum_sq": float(np.nansum(values ** 2)),
            "weighted": float(np.nansum(values * weights))}


# ---------------------------------------------------------------------------------- the package
def package_fixed(a: dict[str, np.ndarray]) -> dict[str, float]:
    """The package's numbers on the fixed arrays (the tests compute the same)."""
    from nwb_jedi import metrics
    from nwb_jedi.model.baselines import fit_poisson_glm

    out = {"bits_per_spike": metrics.bits_per_spike(a["bps_rates"], a["bps_spikes"], 1.0)}
    vel = (a["vel_train_rates"], a["vel_train_behavior"], a["vel_eval_rates"],
           a["vel_eval_behavior"])
    out["vel_r2"] = metrics.velocity_r2(*vel)
    out["vel_r2_masks"] = metrics.velocity_r2(*vel, train_masks=a["vel_train_mask"],
                                              eval_masks=a["vel_eval_mask"])
    out["vel_r2_fixed_alpha"] = metrics.velocity_r2(*vel, alphas=1e-2)
    out["psth_r2"] = metrics.psth_r2_nlb(a["psth_eval_rates"], a["psth_condition"], a["psth"])
    weights, intercept = fit_poisson_glm(a["glm_x"], a["glm_y"], GLM_ALPHA)
    out["glm_coef"] = weights.T.ravel().tolist()
    out["glm_intercept"] = intercept.tolist()
    return out


def package_file(session, bin_ms: int) -> dict:
    """The package's targets (checksums) and evaluation of `psth_submission` at `bin_ms`."""
    from nwb_jedi.data import nlb
    from nwb_jedi.metrics import nlb_evaluate

    dataset = nlb.NLB_DATASETS["mc_maze"]
    trials = nlb.nlb_trials(session, dataset, bin_ms / 1000)
    targets = nlb.nlb_targets(session, dataset, trials).as_dict()
    # NLB's behavior is the file's numbers (mm/s); the package's is in SI units (m/s).
    for key in ("train_behavior", "eval_behavior"):
        targets[key] = targets[key] * 1e3
    sums = {k: checksums(v) for k, v in targets.items() if k != "eval_cond_idx"}
    sums["eval_cond_idx"] = [np.asarray(v).tolist() for v in targets["eval_cond_idx"]
                             if len(v)]
    return {"targets": sums, "evaluate": nlb_evaluate(targets, psth_submission(trials))}


# ---------------------------------------------------------------------------------- nlb_tools
def nlb_tools_fixed(a: dict[str, np.ndarray]) -> dict[str, float]:
    from nlb_tools import evaluation
    from sklearn.linear_model import PoissonRegressor

    out = {"bits_per_spike": float(evaluation.bits_per_spike(a["bps_rates"].copy(),
                                                              a["bps_spikes"].copy()))}
    a = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in a.items()}
    ones = (np.ones((len(a["vel_train_rates"]), 1), bool),
            np.ones((len(a["vel_eval_rates"]), 1), bool))
    args = (a["vel_train_rates"], a["vel_train_behavior"], ones[0], a["vel_eval_rates"],
            a["vel_eval_behavior"], ones[1])
    out["vel_r2"] = float(evaluation.velocity_decoding(*args))
    out["vel_r2_masks"] = float(evaluation.velocity_decoding(
        a["vel_train_rates"], a["vel_train_behavior"], a["vel_train_mask"],
        a["vel_eval_rates"], a["vel_eval_behavior"], a["vel_eval_mask"]))
    out["vel_r2_fixed_alpha"] = float(evaluation.velocity_decoding(*args, grid_search=False))
    idx = [np.flatnonzero(a["psth_condition"] == c) for c in range(len(a["psth"]))]
    out["psth_r2"] = float(evaluation.eval_psth(a["psth"], a["psth_eval_rates"], idx))
    coef, intercept = [], []
    for m in range(a["glm_y"].shape[1]):
        model = PoissonRegressor(alpha=GLM_ALPHA, max_iter=10000, tol=1e-10).fit(
            a["glm_x"], a["glm_y"][:, m])
        coef += model.coef_.tolist()
        intercept.append(float(model.intercept_))
    out["glm_coef"], out["glm_intercept"] = coef, intercept
    return out


def nlb_tools_file(path: Path, session, bin_ms: int, work: Path) -> dict:
    from nlb_tools.evaluation import evaluate
    from nlb_tools.make_tensors import make_eval_target_tensors
    from nlb_tools.nwb_interface import NWBDataset

    from nwb_jedi.data import nlb
    from nwb_jedi.io.nlb import write_submission

    dataset = NWBDataset(str(path))
    dataset.resample(bin_ms)
    group = "mc_maze" + ("" if bin_ms == 5 else f"_{bin_ms}")
    targets = make_eval_target_tensors(dataset, "mc_maze", "train", "val", save_file=False,
                                       include_psth=True)
    inner = targets[group]
    sums = {k: checksums(v) for k, v in inner.items()
            if k not in ("eval_cond_idx", "train_cond_idx")}
    sums["eval_cond_idx"] = [np.asarray(v).tolist() for v in inner["eval_cond_idx"]]
    trials = nlb.nlb_trials(session, nlb.NLB_DATASETS["mc_maze"], bin_ms / 1000)
    submission = work / f"submission_{bin_ms}.h5"
    write_submission(submission, group, psth_submission(trials), overwrite=True)
    result = evaluate(targets, str(submission))[0][f"{group}_split"]
    return {"targets": sums, "evaluate": {k: float(v) for k, v in result.items()}}


# ---------------------------------------------------------------------------------- main
def compare(name: str, theirs, ours) -> float:
    diff = float(np.max(np.abs(np.asarray(theirs, float) - np.asarray(ours, float))))
    print(f"  {name:<34} nlb_tools {np.asarray(theirs).ravel()[0]: .10f}   package "
          f"{np.asarray(ours).ravel()[0]: .10f}   max |diff| {diff:.2e}")
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="write tests/data/nlb_crosscheck.json (and the fixed arrays)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # nlb_tools logs every resampling and NaN it meets
    import nlb_tools
    import sklearn

    from nwb_jedi.io.read import read_session

    if args.write and not FIXED.exists():
        np.savez_compressed(FIXED, **make_fixed_arrays())
    arrays = fixed_arrays()
    theirs, ours = nlb_tools_fixed(arrays), package_fixed(arrays)
    print("fixed arrays:")
    for key in theirs:
        compare(key, theirs[key], ours[key])
    record = {"nlb_tools": getattr(nlb_tools, "__version__", "0.0.4"),
              "scikit_learn": sklearn.__version__, "fixed": theirs, "file": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fixture_file(Path(tmp))
        session = read_session(path)
        record["file_settings"] = FILE_SETTINGS
        record["fingerprint"] = fingerprint(session)
        for bin_ms in BINS_MS:
            print(f"MC_Maze-layout file, {bin_ms} ms bins:")
            t = nlb_tools_file(path, session, bin_ms, Path(tmp))
            o = package_file(session, bin_ms)
            for key, value in t["targets"].items():
                if key == "eval_cond_idx":
                    print(f"  eval_cond_idx equal: {value == o['targets'][key]}")
                    continue
                compare(f"{key} sum", value["sum"], o["targets"][key]["sum"])
                compare(f"{key} sum of squares", value["sum_sq"],
                        o["targets"][key]["sum_sq"])
                compare(f"{key} weighted sum", value["weighted"],
                        o["targets"][key]["weighted"])
            for key, value in t["evaluate"].items():
                compare(f"evaluate: {key}", value, o["evaluate"][key])
            record["file"][str(bin_ms)] = t
    if args.write:
        EXPECTED.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {EXPECTED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
