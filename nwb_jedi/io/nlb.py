"""Neural Latents Benchmark submission files (HDF5), in the layout ``nlb_tools`` reads.

A submission holds one group per dataset (``mc_maze``, ``mc_maze_20`` for 20 ms bins,
``mc_maze_large``, ...) with float32 arrays of expected spike counts per bin, trials in the
order of the benchmark's trials table, neurons in the order of its units table (held-in and
held-out separately):

    <group>/train_rates_heldin           (K_train, T, N_heldin)
    <group>/train_rates_heldout          (K_train, T, N_heldout)
    <group>/eval_rates_heldin            (K_eval, T, N_heldin)
    <group>/eval_rates_heldout           (K_eval, T, N_heldout)
    <group>/eval_rates_heldin_forward    (K_eval, T_forward, N_heldin)     optional
    <group>/eval_rates_heldout_forward   (K_eval, T_forward, N_heldout)    optional

``nlb_tools.evaluation.evaluate(targets, "submission.h5")`` scores it (``nlb_tools`` saves its
own with gzip and 32-bit floats; so does `write_submission`). Written atomically; read with
h5py only, with sizes checked before reading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import h5py
import numpy as np

from nwb_jedi._files import atomic_output
from nwb_jedi.errors import ModelFileError, UserError

REQUIRED = ("train_rates_heldin", "train_rates_heldout", "eval_rates_heldin",
            "eval_rates_heldout")
FORWARD = ("eval_rates_heldin_forward", "eval_rates_heldout_forward")
MAX_ELEMENTS = 1 << 31  # refuse arrays beyond 8 GB of float32 in a submission


def write_submission(path: str | os.PathLike, group: str, arrays: Mapping[str, np.ndarray], *,
                     overwrite: bool = False) -> str:
    """Write one dataset's submission arrays to `path` (HDF5), atomically.

    Parameters
    ----------
    path : path
        Output file (e.g. ``submission.h5``).
    group : str
        The benchmark's dataset name (`nwb_jedi.data.nlb.submission_group`).
    arrays : mapping
        The four required arrays and optionally the two forward ones
        (`nwb_jedi.analysis.evaluation.nlb_submission_rates`).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    missing = [k for k in REQUIRED if k not in arrays]
    unknown = sorted(set(arrays) - set(REQUIRED) - set(FORWARD))
    if missing or unknown:
        raise UserError(f"an NLB submission needs {', '.join(REQUIRED)} (and may have "
                        f"{', '.join(FORWARD)}); missing {missing}, unknown {unknown}")
    if os.path.exists(path) and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it")
    for key, values in arrays.items():
        values = np.asarray(values)
        if values.ndim != 3 or not np.all(np.isfinite(values)) or (values < 0).any():
            raise UserError(f"submission array {key} must be 3-D, finite and non-negative")
    with atomic_output(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as h5:
            target = h5.create_group(group)
            for key, values in arrays.items():
                target.create_dataset(key, data=np.asarray(values, dtype=np.float32),
                                      compression="gzip")
    return path


def read_submission(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of a submission file: {group: {name: float64 array}}.

    Raises
    ------
    ModelFileError
        Not HDF5, a group without the required arrays, a non-numeric or oversized array.
    """
    path = os.fspath(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ModelFileError(f"{path} is not a readable HDF5 submission file ({err})") from None
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5:
        for group_name, group in h5.items():
            if not isinstance(group, h5py.Group):
                raise ModelFileError(f"{path}: {group_name} is not a dataset group")
            arrays = {}
            for key in (*REQUIRED, *FORWARD):
                ds = group.get(key)
                if ds is None:
                    continue
                if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu" or \
                        ds.ndim != 3 or ds.size > MAX_ELEMENTS:
                    raise ModelFileError(f"{path}: {group_name}/{key} is not a 3-D numeric "
                                         f"array of a plausible size")
                arrays[key] = ds[()].astype(np.float64)
            if any(k not in arrays for k in REQUIRED):
                raise ModelFileError(f"{path}: group {group_name} lacks some of "
                                     f"{', '.join(REQUIRED)}")
            out[group_name] = arrays
    return out
