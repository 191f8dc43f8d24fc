"""A small dataset with known dynamics, shared by the model tests (and by the subprocesses
and spawned workers of the checkpoint and distributed tests, which cannot use fixtures)."""

import numpy as np

from nwb_jedi.data.dataset import TrialDataset


def rotation_dataset(n_units=12, n_conditions=4, trials=8, n_bins=15, seed=0):
    """Poisson counts from rotational latent dynamics whose frequency depends on condition."""
    rng = np.random.default_rng(seed)
    dt = 0.02
    basis = rng.standard_normal((n_units, 2))
    t = np.arange(n_bins) * dt
    rates, labels = [], []
    for c in range(n_conditions):
        f = 1.0 + c
        latent = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)
        r = 15 * np.exp(np.tanh(latent @ basis.T))
        rates += [r] * trials
        labels += [f"cond{c}"] * trials
    rates = np.array(rates)
    return TrialDataset.from_arrays(rng.poisson(rates * dt), labels, dt,
                                    ground_truth={"trial_rates": rates})
