"""Small fits and comparisons shared by the io tests (a plain helper module, not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.model.jedi import JEDI

SESSION_META = {"session_start_time": "2021-03-04T10:00:00+00:00", "session_id": "arrays-1",
                "session_description": "synthetic counts",
                "subject": {"subject_id": "m1", "species": "Mus musculus", "sex": "F",
                            "age": "P90D"}}


def tiny(**kw) -> JEDI:
    """A small, fast JEDI for io round trips."""
    params = dict(hidden=16, embed_dim=3, rank=2, max_epochs=4, patience=2, device="cpu",
                  seed=0)
    params.update(kw)
    return JEDI(**params)


def assert_same_dataset(a: TrialDataset, b: TrialDataset) -> None:
    """Every array and table that load_dataset must give back exactly."""
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.condition, b.condition)
    pd.testing.assert_frame_equal(a.conditions.reset_index(drop=True),
                                  b.conditions.reset_index(drop=True))
    np.testing.assert_array_equal(a.trial_id, b.trial_id)
    assert a.trial_id.dtype.kind == b.trial_id.dtype.kind
    np.testing.assert_array_equal(a.unit_id, b.unit_id)
    assert a.unit_id.dtype.kind == b.unit_id.dtype.kind
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.align_time, b.align_time)
    assert a.bin_size == b.bin_size
    np.testing.assert_array_equal(a.split, b.split)


def stored_rates(path, module: str = "jedi") -> np.ndarray:
    """The fitted rates of every modelled trial (K x T x N), read back with h5py through the
    trials table's references into the 'rates' series (ndx-jedi 0.2)."""
    import h5py

    with h5py.File(path, "r") as h5:
        group = h5[f"processing/{module}"]
        refs = group["trials/rates"][()]
        data = group["rates/data"]
        return np.stack([data[int(r["idx_start"]):int(r["idx_start"]) + int(r["count"])]
                         for r in refs])
