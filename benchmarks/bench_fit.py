"""Speed and memory of JEDI fitting on an MC_Maze-sized synthetic dataset (issue 15).

MC_Maze-sized: 2,295 trials x 70 bins of 10 ms x 182 neurons, 108 conditions, rank 4, with
Poisson counts drawn from known condition-specific rates (so the truth's score is known).
Everything is measured side by side in one run; where the question is a ratio, the two sides
alternate and the best of several repeats of each is kept, so a busy machine slows both alike.

1. epoch time of JEDI / a plain PyTorch reference written here: per-condition low-rank
   factors as free parameters gathered per trial, `bmm` recurrence, the same readout, Poisson
   loss, process noise and Adam, the same minibatches and shapes (goal <= 0.5); with the
   package defaults, and without the per-trial contexts the reference does not have;
2. time to a converged model: a full fit with the package defaults (rank 4), against the
   stopping rule of the previous release (constant rate, patience 100) in the same run, with
   held-out bits/spike of both and of the true rates (goal <= 120 s, bits/spike no worse);
3. per-trial inference of 500 held-out trials (their contexts fitted with the network
   frozen; goal <= 10 s);
4. peak memory above baseline while fitting at 1x and 4x the trials (goal < 2 GB, growing
   with the batch, not the file);
5. epoch time at 1x / 2x / 4x / 8x the trials (goal: linear within 20%).

Usage: python benchmarks/bench_fit.py [--quick] [--device cpu|cuda] [--out FILE.md]
       [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from nwb_jedi import JEDI, TrialDataset
from nwb_jedi._runtime import threads_for_step_size
from nwb_jedi.metrics import bits_per_spike
from nwb_jedi.model.rnn import Readout, poisson_nll

N_TRIALS, N_BINS, N_UNITS, N_CONDITIONS, RANK, BIN = 2295, 70, 182, 108, 4, 0.01
# The previous release's stopping rule: constant learning rate, 100 epochs of patience.
PREVIOUS_RULE = dict(patience=100, n_decays=0, warmup=0, min_epochs=0)


def mc_maze_sized(n_trials: int = N_TRIALS, seed: int = 0) -> TrialDataset:
    """Poisson counts from condition-specific rotational dynamics, MC_Maze-sized."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_BINS) * BIN
    loadings = rng.standard_normal((N_UNITS, 4)) * 0.6
    base = np.log(rng.uniform(5, 30, N_UNITS))
    cond_freq = rng.uniform(0.5, 3.0, N_CONDITIONS)
    cond_phase = rng.uniform(0, 2 * np.pi, N_CONDITIONS)
    cond_amp = rng.uniform(0.5, 1.5, N_CONDITIONS)
    angle = 2 * np.pi * cond_freq[:, None] * t + cond_phase[:, None]
    latent = np.stack([cond_amp[:, None] * np.sin(angle), cond_amp[:, None] * np.cos(angle),
                       np.tile(np.exp(-t / 0.2), (N_CONDITIONS, 1)) * cond_amp[:, None],
                       np.tile(t / t[-1], (N_CONDITIONS, 1))], -1)
    rates = np.exp(base + latent @ loadings.T)  # C x T x N, Hz
    condition = np.arange(n_trials) % N_CONDITIONS
    counts = rng.poisson(rates[condition] * BIN).astype(np.float32)
    return TrialDataset.from_arrays(counts, condition, BIN, seed=seed,
                                    ground_truth={"trial_rates": rates[condition]})


class ReferenceRNN(torch.nn.Module):
    """The same model written plainly: per-condition factors gathered per trial, bmm steps."""

    def __init__(self, n_conditions: int, n_units: int, rank: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.M = torch.nn.Parameter(torch.randn(n_conditions, n_units, rank,
                                                generator=generator))
        self.U = torch.nn.Parameter(torch.randn(n_conditions, n_units, rank,
                                                generator=generator))
        self.b = torch.nn.Parameter(torch.zeros(n_conditions, n_units))
        self.x0 = torch.nn.Parameter(torch.zeros(n_conditions, n_units))
        self.readout = Readout(n_units, "poisson")

    def forward(self, condition, n_steps, alpha, noise):
        M, U, b, x = self.M[condition], self.U[condition], self.b[condition], self.x0[condition]
        n = x.shape[-1]
        activity = [torch.tanh(x)]
        for t in range(n_steps - 1):
            z = torch.bmm(U.transpose(1, 2), activity[-1].unsqueeze(-1)) / n
            x = x + alpha * (-x + torch.bmm(M, z).squeeze(-1) + b) + noise[:, t]
            activity.append(torch.tanh(x))
        return self.readout(torch.stack(activity, 1))


def reference_epoch_seconds(train: TrialDataset, device: str) -> float:
    """One epoch of the reference over minibatches like JEDI's, at JEDI's default settings."""
    model = JEDI(device=device)
    device = model._resolve_device()
    reference = ReferenceRNN(train.n_conditions, train.n_units, RANK).to(device)
    optimizer = torch.optim.Adam(reference.parameters(), lr=model.lr)
    counts = torch.as_tensor(train.counts, device=device)
    condition = torch.as_tensor(train.condition, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    alpha = train.bin_size / model.tau
    scale = model.noise_std * alpha ** 0.5
    order = np.random.default_rng(0).permutation(train.n_trials)
    _synchronize(device)
    start = time.perf_counter()
    with threads_for_step_size(model.batch_size * train.n_units):
        for i in range(0, len(order), model.batch_size):
            idx = torch.as_tensor(order[i:i + model.batch_size], device=device)
            noise = scale * torch.randn((len(idx), train.n_bins - 1, train.n_units),
                                        generator=generator, device=device)
            optimizer.zero_grad(set_to_none=True)
            out = reference(condition[idx], train.n_bins, alpha, noise)
            poisson_nll(out, counts[idx]).backward()
            torch.nn.utils.clip_grad_norm_(reference.parameters(), model.grad_clip)
            optimizer.step()
    _synchronize(device)
    return time.perf_counter() - start


def jedi_epoch_seconds(train: TrialDataset, device: str, **params) -> float:
    """Wall time of one JEDI training epoch (fit with one epoch; setup excluded)."""
    model = JEDI(rank=RANK, max_epochs=1, seed=0, device=device, **params).fit(train)
    return float(model.history_["seconds"][0])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


#: JEDI without its per-trial contexts: the condition-level model the reference writes out.
CONDITION_LEVEL = dict(trial_states=0, trial_inputs=0)


def epoch_ratio(ds: TrialDataset, device: str, repeats: int) -> tuple[float, float, float]:
    """Best-of-`repeats` epoch times of JEDI (package defaults), JEDI without per-trial
    contexts and the reference, alternating."""
    train = ds.train
    jedi, condition_level, reference = [], [], []
    for _ in range(repeats):
        jedi.append(jedi_epoch_seconds(train, device))
        condition_level.append(jedi_epoch_seconds(train, device, **CONDITION_LEVEL))
        reference.append(reference_epoch_seconds(train, device))
    return min(jedi), min(condition_level), min(reference)


def full_fit(ds: TrialDataset, device: str, **params) -> dict:
    start = time.perf_counter()
    model = JEDI(rank=RANK, seed=0, device=device, **params).fit(ds.train, ds.val)
    wall = time.perf_counter() - start
    scores = model.evaluate(ds.test)
    best = int(np.nanargmin(model.history_["val_loss"])) + 1
    return {"wall": wall, "epochs": model.n_epochs_, "best_epoch": best,
            "bps": scores["bits_per_spike"], "r2_true": scores["r2_true"], "model": model}


def truth_bits_per_spike(ds: TrialDataset) -> float:
    test = ds.test
    return bits_per_spike(test.ground_truth["trial_rates"], test.counts, test.bin_size)


def inference_seconds(model: JEDI, ds: TrialDataset, n_trials: int = 500) -> tuple[float, int]:
    """Per-trial contexts of `n_trials` held-out trials inferred with the network frozen."""
    held_out = ds.subset(np.flatnonzero(ds.split != "train")[:n_trials])
    start = time.perf_counter()
    model.infer_embeddings(held_out, per_trial=True)
    return time.perf_counter() - start, held_out.n_trials


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(n_trials: int, device: str) -> None:
    """Peak resident memory during a fit, above the resident memory just before it."""
    import threading

    ds = mc_maze_sized(n_trials)
    train, val = ds.train, ds.val  # the data themselves are the baseline, not the fit's cost
    baseline = _rss_mb()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    JEDI(rank=RANK, max_epochs=2, seed=0, device=device).fit(train, val)
    done.set()
    sampler.join()
    print(json.dumps({"n_trials": n_trials, "peak_above_baseline_mb": peak[0] - baseline,
                      "data_mb": ds.counts.nbytes / 2**20}))


def peak_memory(n_trials: int, device: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(n_trials),
                          "--device", device], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_profile(ds: TrialDataset, device: str, directory: str) -> str:
    """torch.profiler table of one training epoch, sorted by self time."""
    from torch.profiler import ProfilerActivity, profile

    os.makedirs(directory, exist_ok=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        JEDI(rank=RANK, max_epochs=1, seed=0, device=device).fit(ds.train)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    path = os.path.join(directory, "profile_epoch.txt")
    with open(path, "w") as f:
        f.write(table + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the full fits")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each epoch timing")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--profile", metavar="DIR", help="also write a profile of one epoch")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.device)
        return

    rows = []
    ds = mc_maze_sized()
    print(f"dataset: {ds}  (device {args.device}, threads {torch.get_num_threads()})",
          flush=True)
    if args.profile:
        print("profile:", write_profile(ds, args.device, args.profile), flush=True)

    jedi, condition_level, reference = epoch_ratio(ds, args.device, args.repeats)
    rows.append(("1. epoch time: JEDI / plain PyTorch reference (same batches and shapes)",
                 f"{jedi:.2f} / {reference:.2f} s = {jedi / reference:.2f} "
                 f"({ds.train.n_trials} train trials, batch 64)", "≤ 0.5"))
    rows.append(("   JEDI without per-trial contexts (trial_states=0, trial_inputs=0), "
                 "the model the reference writes out",
                 f"{condition_level:.2f} / {reference:.2f} s = "
                 f"{condition_level / reference:.2f}", "≤ 0.5"))
    print(*rows[-2:], sep="\n", flush=True)

    model = None
    if not args.quick:
        new = full_fit(ds, args.device)
        old = full_fit(ds, args.device, **PREVIOUS_RULE)
        truth = truth_bits_per_spike(ds)
        model = new["model"]
        rows.append(("2. time to a converged model, package defaults (rank 4)",
                     f"{new['wall']:.0f} s, {new['epochs']} epochs (best {new['best_epoch']}); "
                     f"held-out bits/spike {new['bps']:.3f} (R² vs true rates "
                     f"{new['r2_true']:.3f})", "≤ 120 s"))
        rows.append(("   previous stopping rule (constant rate, patience 100), same run",
                     f"{old['wall']:.0f} s, {old['epochs']} epochs (best {old['best_epoch']}); "
                     f"held-out bits/spike {old['bps']:.3f} (R² vs true rates "
                     f"{old['r2_true']:.3f}); true rates {truth:.3f}",
                     "bits/spike no worse"))
        print(rows[-2], rows[-1], sep="\n", flush=True)
    if model is None:
        model = JEDI(rank=RANK, seed=0, device=args.device, max_epochs=3).fit(ds.train)
    seconds, n = inference_seconds(model, ds)
    rows.append(("3. per-trial inference of held-out trials (network frozen)",
                 f"{seconds:.1f} s for {n} trials", "≤ 10 s"))
    print(rows[-1], flush=True)

    mem1, mem4 = peak_memory(N_TRIALS, args.device), peak_memory(4 * N_TRIALS, args.device)
    rows.append(("4. peak memory above baseline while fitting",
                 f"{mem1['peak_above_baseline_mb']:.0f} MB at 1x trials, "
                 f"{mem4['peak_above_baseline_mb']:.0f} MB at 4x (data {mem1['data_mb']:.0f} / "
                 f"{mem4['data_mb']:.0f} MB)", "< 2048 MB"))
    print(rows[-1], flush=True)

    times = {}
    for factor in (1, 2, 4, 8):
        big = mc_maze_sized(N_TRIALS * factor) if factor > 1 else ds
        times[factor] = min(jedi_epoch_seconds(big.train, args.device) for _ in range(2))
        print(f"  {factor}x trials: {times[factor]:.2f} s/epoch", flush=True)
    worst = max(abs(times[f] / (f * times[1]) - 1) for f in times)
    rows.append(("5. epoch time at 1x/2x/4x/8x trials",
                 " / ".join(f"{times[f]:.2f}" for f in times) + f" s; worst deviation from "
                 f"linear {worst:.0%}", "within 20%"))
    print(rows[-1], flush=True)

    table = ["| measurement | result | goal |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(table)
    print("\n" + text)
    if args.out:
        heading = (f"# Fit speed and memory (benchmarks/bench_fit.py)\n\n"
                   f"`python {' '.join(sys.argv)}` on {time.strftime('%Y-%m-%d')}: torch "
                   f"{torch.__version__}, device {args.device}, {torch.get_num_threads()} "
                   f"threads; {ds}.\n\n")
        with open(args.out, "w") as f:
            f.write(heading + text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
