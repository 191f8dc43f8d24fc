"""Small fitted models shared by the analysis tests (real fits, a few epochs, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.data.dataset import TrialDataset


def make_oscillation_dataset(n_per_condition: int = 16, n_bins: int = 30, n_units: int = 12,
                             n_conditions: int = 3, bin_size: float = 0.02,
                             seed: int = 0) -> TrialDataset:
    """Poisson trials whose rates oscillate at a condition-specific frequency."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_bins) * bin_size
    cond = np.repeat(np.arange(n_conditions), n_per_condition)
    phase = rng.uniform(0, 2 * np.pi, n_units)
    rates = np.stack([8 + 6 * np.sin(2 * np.pi * (2 + 2 * c) * t[:, None] + phase[None])
                      for c in cond])
    counts = rng.poisson(rates * bin_size)
    return TrialDataset.from_arrays(counts, [f"c{c}" for c in cond], bin_size, seed=seed,
                                    ground_truth={"trial_rates": rates})


@pytest.fixture(scope="session")
def oscillation_dataset() -> TrialDataset:
    return make_oscillation_dataset()


@pytest.fixture(scope="session")
def small_jedi(oscillation_dataset):
    from nwb_jedi.model.jedi import JEDI

    ds = oscillation_dataset
    return JEDI(embed_dim=3, hidden=32, rank=3, max_epochs=40, device="cpu",
                seed=0).fit(ds.train, ds.val)
