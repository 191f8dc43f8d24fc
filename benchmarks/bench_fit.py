"""Speed and memory of JEDI fitting on an MC_Maze-sized synthetic dataset (issue 7).

Everything is measured side by side in one run and reported as ratios where a ratio is the
question:

1. hypernetwork overhead: training throughput (trial-bins/s, forward + backward) of JEDI vs the
   same RNN with one fixed set of weights shared by all trials;
2. achieved FLOP rate of the recurrent step vs the dense matmul FLOP rate of this machine;
3. wall time of a full fit to early stopping;
4. peak memory above the process baseline while fitting (separate processes, 1x and 4x trials);
5. time per epoch at 1x, 2x, 4x, 8x the trials.

Usage: python benchmarks/bench_fit.py [--quick] [--out FILE.md]
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
from nwb_jedi.model.rnn import Readout, poisson_nll

N_TRIALS, N_BINS, N_UNITS, N_CONDITIONS, RANK, BIN = 2295, 70, 182, 108, 4, 0.01


def mc_maze_sized(n_trials=N_TRIALS, seed=0) -> TrialDataset:
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
    return TrialDataset.from_arrays(counts, condition, BIN, seed=seed)


class SharedWeightsRNN(torch.nn.Module):
    """The same RNN and readout with one set of weights for every trial (no hypernetwork)."""

    def __init__(self, n_units, rank):
        super().__init__()
        self.M = torch.nn.Parameter(torch.randn(n_units, rank))
        self.U = torch.nn.Parameter(torch.randn(n_units, rank))
        self.b = torch.nn.Parameter(torch.zeros(n_units))
        self.x0 = torch.nn.Parameter(torch.zeros(n_units))
        self.readout = Readout(n_units, "poisson")

    def forward(self, batch, n_steps, alpha, noise_std):
        # Shared weights allow the most efficient form, two plain matmuls over the batch.
        n = self.b.shape[0]
        x = self.x0.expand(batch, -1)
        activity = [torch.tanh(x)]
        for _ in range(n_steps - 1):
            rec = (activity[-1] @ self.U / n) @ self.M.T
            x = x + alpha * (-x + rec + self.b)
            x = x + noise_std * alpha ** 0.5 * torch.randn_like(x)
            activity.append(torch.tanh(x))
        return self.readout(torch.stack(activity, 1))


def throughput(step, n_batches, batch_size, n_bins, repeats=3):
    """Trial-bins per second of forward + backward + optimizer step (best of `repeats`)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n_batches):
            step()
        elapsed = time.perf_counter() - start
        best = max(best, n_batches * batch_size * n_bins / elapsed)
    return best


def bench_overhead(ds, batch_size=64, n_batches=8):
    model = JEDI(rank=RANK, max_epochs=1, seed=0).fit(ds.subset(np.arange(batch_size)))
    module = model.module_
    counts = torch.as_tensor(ds.counts[:batch_size])
    condition = torch.as_tensor(ds.condition[:batch_size])
    alpha = model.alpha_
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)

    def jedi_step():
        opt.zero_grad()
        out = module(condition, N_BINS, alpha, None, 0.05)
        poisson_nll(out, counts).backward()
        opt.step()

    shared = SharedWeightsRNN(N_UNITS, RANK)
    opt2 = torch.optim.Adam(shared.parameters(), lr=1e-3)

    def shared_step():
        opt2.zero_grad()
        out = shared(batch_size, N_BINS, alpha, 0.05)
        poisson_nll(out, counts).backward()
        opt2.step()

    with threads_for_step_size(batch_size * N_UNITS):
        jedi_step(), shared_step()  # warm-up
        jedi = throughput(jedi_step, n_batches, batch_size, N_BINS)
        base = throughput(shared_step, n_batches, batch_size, N_BINS)
    return jedi, base


def recurrent_flops_per_trial_bin(n_units=N_UNITS, rank=RANK):
    """FLOPs of one recurrent step for one trial, forward only: two N×R matvecs + elementwise."""
    return 2 * 2 * n_units * rank + 6 * n_units


def dense_matmul_flops(size=1024, repeats=5):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch_seconds(ds, epochs=2):
    model = JEDI(rank=RANK, max_epochs=epochs, patience=epochs + 1, seed=0)
    model.fit(ds.train)
    sec = np.diff([0.0] + model.history_["seconds"])
    return float(np.min(sec))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(n_trials: int) -> None:
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
    JEDI(rank=RANK, max_epochs=2, seed=0).fit(train, val)
    done.set()
    sampler.join()
    print(json.dumps({"n_trials": n_trials, "peak_above_baseline_mb": peak[0] - baseline,
                      "data_mb": ds.counts.nbytes / 2**20}))


def peak_memory(n_trials: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(n_trials)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the full fit")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    rows = []
    ds = mc_maze_sized()
    print(f"dataset: {ds}  (threads: {torch.get_num_threads()})", flush=True)

    jedi_tp, shared_tp = bench_overhead(ds)
    rows.append(("1. hypernetwork overhead: JEDI / shared-weights RNN throughput",
                 f"{jedi_tp:,.0f} / {shared_tp:,.0f} trial-bins/s = {jedi_tp / shared_tp:.2f}",
                 "≥ 0.7"))
    print(rows[-1], flush=True)

    matmul = dense_matmul_flops()
    # forward + backward ≈ 3x the forward FLOPs
    achieved = jedi_tp * 3 * recurrent_flops_per_trial_bin()
    per_epoch = epoch_seconds(ds)
    rows.append(("2. recurrent step FLOP rate / dense matmul FLOP rate",
                 f"{achieved / 1e9:.2f} / {matmul / 1e9:.1f} GFLOP/s = {achieved / matmul:.4f}; "
                 f"{per_epoch:.2f} s per epoch ({ds.train.n_trials} train trials)", "report"))
    print(rows[-1], flush=True)

    if not args.quick:
        start = time.perf_counter()
        model = JEDI(rank=RANK, seed=0).fit(ds.train, ds.val)
        wall = time.perf_counter() - start
        scores = model.evaluate(ds.test)
        rows.append(("3. full fit to early stopping (2 CPU cores)",
                     f"{wall:.0f} s, {model.n_epochs_} epochs, held-out bits/spike "
                     f"{scores['bits_per_spike']:.3f}", "< 300 s"))
        print(rows[-1], flush=True)

    mem1, mem4 = peak_memory(N_TRIALS), peak_memory(4 * N_TRIALS)
    rows.append(("4. peak memory above baseline while fitting",
                 f"{mem1['peak_above_baseline_mb']:.0f} MB at 1x trials, "
                 f"{mem4['peak_above_baseline_mb']:.0f} MB at 4x (data {mem1['data_mb']:.0f} / "
                 f"{mem4['data_mb']:.0f} MB)", "< 2048 MB"))
    print(rows[-1], flush=True)

    times = {}
    for factor in (1, 2, 4, 8):
        big = mc_maze_sized(N_TRIALS * factor) if factor > 1 else ds
        times[factor] = epoch_seconds(big)
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
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
