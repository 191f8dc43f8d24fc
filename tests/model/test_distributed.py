"""Data-parallel training with torch.distributed (gloo, 2 CPU processes) equals one process."""

import os

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from nwb_jedi import JEDI
from nwb_jedi.model.distributed import shard
from tests.model.rotation import rotation_dataset

# With training noise: every rank draws the noise of the whole global batch and uses its share,
# so the data-parallel fit sees exactly the noise of a single-process fit.
PARAMS = dict(hidden=16, embed_dim=3, rank=2, max_epochs=3, patience=100, batch_size=10,
              noise_std=0.1, seed=5)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        ds = rotation_dataset()
        model = JEDI(**PARAMS).fit(ds.train, ds.val)
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **model.get_state()[1])
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_fit_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ds = rotation_dataset()
    single = JEDI(**PARAMS).fit(ds.train, ds.val).get_state()[1]
    with np.load(tmp_path / "rank0.npz") as r0, np.load(tmp_path / "rank1.npz") as r1:
        for name, value in single.items():
            assert np.array_equal(r0[name], r1[name]), f"ranks disagree on {name}"
            assert np.allclose(r0[name], value, atol=1e-5, rtol=0), name
        moved = JEDI(**{**PARAMS, "max_epochs": 1}).fit(ds.train, ds.val).get_state()[1]
        assert not np.allclose(r0["embeddings"], moved["embeddings"])  # training did happen


@pytest.mark.parametrize("world", [2, 3])
def test_shard_partitions_batch_stratified(world):
    batch = np.arange(12)
    strata = np.repeat([0, 1, 2], 4)
    parts = [batch[shard(batch, strata, r, world)] for r in range(world)]
    assert sorted(np.concatenate(parts)) == list(batch)
    for part in parts:
        counts = np.bincount(strata[part], minlength=3)
        assert counts.max() - counts.min() <= 1
