"""Read what `write_results` stored in an NWB file: the fitted model, the modelled data and a
summary, with h5py only.

Every dataset's dtype is checked before a byte is converted: object / variable-length /
compound / reference / opaque dtypes are refused, nothing is unpickled and nothing from the
file is executed. A model file is untrusted input: before any dataset is read its layout,
filters and sizes are checked against its own HDF5 metadata, links inside the model's module
are refused, and JSON nesting is bounded (`nwb_jedi.io.untrusted`). Damaged bytes anywhere
(HDF5 failing on the file's structure, undecodable text, a parameter tensor failing its Fletcher-32
checksum) are one "... is damaged" ModelFileError. Only `load_model` needs
torch, and imports it (through `nwb_jedi.model`) when called, so reading a summary
(`nwb-jedi show`) stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import ModelFileError
from nwb_jedi.io.untrusted import (
    check_dataset,
    check_expansion,
    check_links,
    check_regular_file,
    h5py_failures,
    link_kind,
    parse_json,
)

if TYPE_CHECKING:
    from nwb_jedi.model.base import Estimator

__all__ = ["load_model", "load_dataset", "read_summary", "find_modules"]

# Columns of JEDIConditionTable that are not condition-defining values.
_CONDITION_EXTRA = ("embedding", "n_trials")


def _is_remote(source: str | os.PathLike) -> bool:
    """Whether `source` names a DANDI asset rather than a local file."""
    from nwb_jedi.io.sources import parse_source

    return parse_source(source).kind == "dandi"


@contextlib.contextmanager
def _open(source: str | os.PathLike,
          cache_dir: str | os.PathLike | None = None) -> Iterator[tuple[h5py.File, str]]:
    """Open a fitted file read-only: yield ``(h5py.File, label)``, the label naming it in
    messages (the local path, or ``DANDI:<id>/<version>/<asset path>``).

    Any SOURCE form `fit` accepts: a local path, or a DANDI id/URL streamed through
    `nwb_jedi.io.sources.open_source` and its block cache, so only the blocks holding what
    the caller reads (the model group, say) are fetched.

    h5py failing on damaged bytes anywhere in the caller's block is one ModelFileError
    (`nwb_jedi.io.untrusted.h5py_failures`); a streamed file's read failures are first
    `open_source`'s to explain.
    """
    from nwb_jedi.io.sources import open_source

    if _is_remote(source):
        with h5py_failures(f"the model file {source}", ModelFileError), \
                open_source(source, cache_dir=cache_dir) as (h5, info):
            yield h5, f"DANDI:{info.dandiset}/{info.version}/{info.asset_path}"
        return
    path = os.fspath(source)
    if not os.path.exists(path):
        raise ModelFileError(f"no such file: {path}; give the path of an NWB file written by "
                             f"nwb_jedi")
    check_regular_file(path, ModelFileError)
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ModelFileError(f"{path} is not a readable HDF5/NWB file ({err}); check the "
                             f"path and that the file is complete") from None
    with h5py_failures(path, ModelFileError), h5:
        yield h5, path


def _type_of(obj) -> str:
    if not isinstance(obj, h5py.Group | h5py.Dataset):
        return ""
    value = obj.attrs.get("neurodata_type")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if isinstance(value, str) else ""


def find_modules(h5: h5py.File) -> list[str]:
    """Names of the processing modules of an open file that hold a JEDIModel.

    Parameters
    ----------
    h5 : h5py.File
        An NWB file opened for reading.

    Returns
    -------
    list of str
        Module names, in the file's order (empty when there is none).
    """
    if link_kind(h5, "processing") != "hard":
        return []
    processing = h5["processing"]
    if not isinstance(processing, h5py.Group):
        return []
    # Links are never followed: a module or model reached through one is not this file's.
    return [name for name in processing
            if link_kind(processing, name) == "hard" and isinstance(processing[name], h5py.Group)
            and link_kind(processing[name], "model") == "hard"
            and isinstance(processing[name]["model"], h5py.Group)
            and _type_of(processing[name]["model"]) == "JEDIModel"]


def _module(h5: h5py.File, path: str, module_name: str | None) -> h5py.Group:
    names = find_modules(h5)
    if module_name is None:
        if not names:
            raise ModelFileError(f"{path} holds no JEDI model (no processing module with a "
                                 f"JEDIModel); fit one with `nwb-jedi fit {path}` (or "
                                 f"nwb_jedi.write_results in Python)")
        if len(names) > 1:
            raise ModelFileError(f"{path} holds several JEDI models ({', '.join(names)}); "
                                 f"choose one with --module-name (module_name in Python)")
        module_name = names[0]
    if module_name not in names:
        raise ModelFileError(f"{path} has no JEDI model in a processing module named "
                             f"{module_name!r} (found: {', '.join(names) or 'none'})")
    module = h5["processing"][module_name]
    check_links(module, ModelFileError)
    return module


def _dataset(group: h5py.Group, name: str, where: str) -> h5py.Dataset:
    if link_kind(group, name) not in (None, "hard"):
        raise ModelFileError(f"{where}/{name} is a link to data elsewhere; refusing to load it")
    obj = group.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise ModelFileError(f"{where}/{name} is missing; the file is damaged or was not "
                             f"written by nwb_jedi")
    return obj


def _read_numeric(ds: h5py.Dataset, kinds: str, what: str) -> np.ndarray:
    """Read a dataset only if its dtype is a plain number kind (never objects, never pickle)."""
    kind = ds.dtype.kind
    if kind not in kinds or ds.dtype.fields is not None or h5py.check_vlen_dtype(ds.dtype) \
            or h5py.check_ref_dtype(ds.dtype) is not None:
        raise ModelFileError(f"{what} ({ds.name}) has dtype {ds.dtype}, not a plain "
                             f"{'floating point' if kinds == 'f' else 'numeric'} array; "
                             f"refusing to load it")
    check_dataset(ds, what, ModelFileError)
    with _data_of(ds, what):
        return ds[()]


def _data_of(ds: h5py.Dataset, what: str):
    """The one message for a dataset whose bytes HDF5 cannot read or decode (a failed
    Fletcher-32 checksum, a damaged chunk or heap, text that is not UTF-8)."""
    where = what if what == ds.name else f"{what} ({ds.name})"
    return h5py_failures(f"the data of {where}", ModelFileError)


def _read_text(ds: h5py.Dataset, what: str) -> np.ndarray | str:
    """Read a string dataset (scalar -> str, array -> ndarray of str)."""
    if h5py.check_string_dtype(ds.dtype) is None:
        raise ModelFileError(f"{what} ({ds.name}) has dtype {ds.dtype}, not text; refusing "
                             f"to load it")
    check_dataset(ds, what, ModelFileError)
    with _data_of(ds, what):
        value = ds.asstr()[()]
    if isinstance(value, np.ndarray):
        return np.array([str(v) for v in value.ravel()], dtype=str).reshape(value.shape) \
            if value.size else np.array([], dtype=str)
    return str(value)


def _read_ids(ds: h5py.Dataset, what: str) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return _read_text(ds, what)
    return np.asarray(_read_numeric(ds, "biuf", what))


def _attr_text(obj, key: str, what: str, required: bool = True) -> str | None:
    value = obj.attrs.get(key)
    if value is None:
        if required:
            raise ModelFileError(f"{what} has no {key!r} attribute; the file is damaged or "
                                 f"was not written by nwb_jedi")
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise ModelFileError(f"attribute {key!r} of {what} is not text; refusing to load it")


def _json(text: str, what: str) -> dict:
    value = parse_json(text, what, ModelFileError)
    if not isinstance(value, dict):
        raise ModelFileError(f"{what} is not a JSON object; the file is damaged")
    return value


def _scalar_text(ds: h5py.Dataset) -> str:
    if h5py.check_string_dtype(ds.dtype) is None:
        return ""
    check_dataset(ds, ds.name, ModelFileError)
    with _data_of(ds, ds.name):
        value = ds.asstr()[()]
    return value if isinstance(value, str) else ""


def _read_model_group(group: h5py.Group) -> tuple[dict, dict[str, np.ndarray]]:
    where = group.name
    config = _json(_attr_text(group, "config", where), f"the config of {where}")
    fit_state = _json(_read_text(_dataset(group, "fit_state", where), "fit_state"),
                      f"{where}/fit_state")
    overlap = set(fit_state) & set(config)
    if overlap:
        raise ModelFileError(f"{where}: fit_state repeats config keys {sorted(overlap)}; the "
                             f"file is damaged")
    # group[name], not group.values(): a member HDF5 cannot open is an error, never skipped.
    parameters = [obj for obj in (group[name] for name in group)
                  if _type_of(obj) == "JEDIParameter"]
    for obj in parameters:  # every tensor's metadata is checked before any is read
        if not isinstance(obj, h5py.Dataset):
            raise ModelFileError(f"{obj.name} is not a dataset; the file is damaged")
        check_dataset(obj, f"tensor {_attr_text(obj, 'tensor_name', obj.name)!r}",
                      ModelFileError)
    check_expansion(parameters, f"the tensors of {where}", ModelFileError)
    tensors: dict[str, np.ndarray] = {}
    for obj in parameters:
        tensor = _attr_text(obj, "tensor_name", obj.name)
        if tensor in tensors:
            raise ModelFileError(f"tensor {tensor!r} is stored twice in {where}; the file is "
                                 f"damaged")
        tensors[tensor] = np.asarray(_read_numeric(obj, "f", f"tensor {tensor!r}"))
    return {**config, **fit_state}, tensors


def load_model(path: str | os.PathLike, module_name: str | None = None, *,
               cache_dir: str | os.PathLike | None = None) -> Estimator:
    """Rebuild the fitted estimator stored in an NWB file by `write_results`.

    The class is chosen by the ``format`` name in the stored config
    (`nwb_jedi.model.estimator_from_state`), so every estimator that can be written can be
    read back. Reads with h5py only; refuses non-float parameter datasets (objects, strings,
    compound, references, opaque bytes such as a pickle), missing or unexpected tensors, wrong
    shapes, NaN/inf values and unknown formats or format versions. Never unpickles, never
    executes anything.

    Parameters
    ----------
    path : str or path
        The NWB file: a local path or any DANDI SOURCE that ``nwb-jedi fit`` accepts
        (``DANDI:<id>/<version>/<asset path>``, a dandiarchive.org URL, ``dandi://...``),
        streamed through the verified block cache.
    module_name : str, optional
        Processing module holding the model; needed only when the file holds several.
    cache_dir : str or path, optional
        Block cache for streamed files (default ``$NWB_JEDI_CACHE`` or the platform cache).

    Returns
    -------
    Estimator
        A fitted estimator (`JEDI` for files written by ``nwb-jedi fit``), on CPU, with
        predictions bit-identical to the model that was written.

    Raises
    ------
    ModelFileError
        No model in the file, or a model that is damaged or unsafe to load.
    SourceError
        A DANDI SOURCE that cannot be resolved or read.
    """
    # torch comes with the model layer: imported here so that reading anything else from a
    # file (`read_summary`, `load_dataset`) never pays for it.
    from nwb_jedi.model import estimator_from_state

    with _open(path, cache_dir) as (h5, label):
        module = _module(h5, label, module_name)
        config, tensors = _read_model_group(module["model"])
    return estimator_from_state(config, tensors)


def load_dataset(path: str | os.PathLike, module_name: str | None = None, *,
                 cache_dir: str | os.PathLike | None = None) -> TrialDataset:
    """Rebuild the TrialDataset a model in an NWB file was fitted to (counts exact).

    Parameters
    ----------
    path : str or path
        The NWB file: a local path or any DANDI SOURCE that ``nwb-jedi fit`` accepts
        (``DANDI:<id>/<version>/<asset path>``, a dandiarchive.org URL, ``dandi://...``),
        streamed through the verified block cache.
    module_name : str, optional
        Processing module holding the model; needed only when the file holds several.
    cache_dir : str or path, optional
        Block cache for streamed files (default ``$NWB_JEDI_CACHE`` or the platform cache).

    Returns
    -------
    TrialDataset
        The same counts, conditions, trial and unit ids, bin centers, alignment times, bin
        size, split and metadata as the dataset given to `write_results`.

    Raises
    ------
    ModelFileError
        No model in the file, or modelled data that are missing, damaged or unsafe to read.
    """
    with _open(path, cache_dir) as (h5, label):
        module = _module(h5, label, module_name)
        where = module.name
        for part in ("conditions", "trials", "binned_counts"):
            if not isinstance(module.get(part), h5py.Group):
                raise ModelFileError(f"{where}/{part} is missing; the file is damaged or was "
                                     f"not written by nwb_jedi")
        described = _modelled_data_group(module)
        time = np.asarray(_read_numeric(_dataset(described, "bin_centers", described.name),
                                        "f", "bin_centers"), dtype=np.float64)
        unit_ids = _read_ids(_dataset(described, "unit_ids", described.name), "unit_ids")
        bin_size = described.attrs.get("bin_size")
        if not isinstance(bin_size, float | np.floating):
            raise ModelFileError(f"{described.name} has no numeric bin_size; the file is "
                                 f"damaged")
        metadata = _json(_read_text(_dataset(described, "dataset_metadata", described.name),
                                    "dataset_metadata"), "dataset_metadata")
        conditions = _read_table(module["conditions"], exclude=_CONDITION_EXTRA)
        trials = module["trials"]
        trial_id = _read_ids(_dataset(trials, "trial_id", trials.name), "trial_id")
        counts = _read_counts(module["binned_counts"], trials,
                              (len(trial_id), len(time), len(unit_ids)))
        condition = _read_numeric(_dataset(trials, "condition", trials.name), "iu",
                                  "condition")
        split = _read_text(_dataset(trials, "split", trials.name), "split")
        align = _read_numeric(_dataset(trials, "align_time", trials.name), "f", "align_time")
    units = _units_table(metadata.pop("units", None), len(unit_ids))
    try:
        return TrialDataset(counts=counts, condition=condition, conditions=conditions,
                            trial_id=trial_id, unit_id=unit_ids, time=time, align_time=align,
                            bin_size=float(bin_size), split=split, metadata=metadata,
                            units=units)
    except ValueError as err:
        raise ModelFileError(f"the modelled data in {label} are inconsistent ({err}); the file "
                             f"is damaged") from None


def _units_table(identity: Any, n_units: int) -> pd.DataFrame | None:
    """The units' recording metadata stored with the data (``units`` of dataset_metadata:
    column -> one string per unit), or None when absent or not of that form."""
    if not isinstance(identity, dict) or not identity:
        return None
    columns = {}
    for name, values in identity.items():
        if not isinstance(values, list) or len(values) != n_units or not all(
                isinstance(v, str) for v in values):
            raise ModelFileError(f"the stored units metadata ({name!r}) is not one string per "
                                 f"unit; the file is damaged")
        columns[str(name)] = values
    return pd.DataFrame(columns)


def _modelled_data_group(module: h5py.Group) -> h5py.Group:
    """The group holding bin size, bin centers, unit ids and dataset settings: `modelled_data`
    (ndx-jedi 0.2), or the counts group itself in files of ndx-jedi 0.1 (JEDIBinnedCounts)."""
    binned = module.get("binned_counts")
    if _type_of(binned) == "JEDIBinnedCounts":
        return binned
    described = module.get("modelled_data")
    if not isinstance(described, h5py.Group) or _type_of(described) != "JEDIModelledData":
        raise ModelFileError(f"{module.name}/modelled_data is missing; the file is damaged or "
                             f"was not written by nwb_jedi")
    return described


def _read_counts(binned: h5py.Group, trials: h5py.Group,
                 shape: tuple[int, int, int]) -> np.ndarray:
    """The modelled counts, trials x bins x units, from either layout; the stored shape is
    checked against the trials, bins and units before anything is read."""
    n_trials, n_bins, n_units = shape
    if _type_of(binned) == "JEDIBinnedCounts":  # ndx-jedi 0.1: stored as modelled
        counts = _dataset(binned, "counts", binned.name)
        if counts.shape != shape:
            raise _shape_error(counts, shape)
        return np.asarray(_read_numeric(counts, "biuf", "counts"), dtype=np.float32)
    if _type_of(binned) != "BinnedAlignedSpikes":
        raise ModelFileError(f"{binned.name} is neither a BinnedAlignedSpikes nor a "
                             f"JEDIBinnedCounts; the file was not written by nwb_jedi")
    data = _dataset(binned, "data", binned.name)
    if data.shape != (n_units, n_trials, n_bins):
        raise _shape_error(data, (n_units, n_trials, n_bins))
    event = np.asarray(_read_numeric(_dataset(trials, "event", trials.name), "iu", "event"))
    if event.shape != (n_trials,) or not np.array_equal(np.sort(event), np.arange(n_trials)):
        raise ModelFileError(f"{trials.name}/event does not map the trials one to one onto "
                             f"the events of {binned.name}; the file is damaged")
    values = np.asarray(_read_numeric(data, "biuf", "counts"))
    return np.ascontiguousarray(values[:, event, :].transpose(1, 2, 0), dtype=np.float32)


def _shape_error(ds: h5py.Dataset, expected: tuple[int, ...]) -> ModelFileError:
    return ModelFileError(f"{ds.name} has shape {ds.shape}, but the trials, bins and units "
                          f"stored with it make {expected}; the file is damaged")


def _read_table(group: h5py.Group, exclude: tuple[str, ...] = ()) -> pd.DataFrame:
    raw = group.attrs.get("colnames")
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(raw)] \
        if raw is not None else []
    data = {}
    for name in names:
        if name in exclude:
            continue
        ds = _dataset(group, name, group.name)
        if h5py.check_string_dtype(ds.dtype) is not None:
            data[name] = list(_read_text(ds, name))
        else:
            values = _read_numeric(ds, "biuf", name)
            data[name] = values.astype(bool) if values.dtype.kind == "b" or (
                ds.attrs.get("dtype") == "bool") else values
    return pd.DataFrame(data)


# Metrics renamed since files were first written: old name -> current name. Files keep what
# they hold; readers show the current name, so an old file's numbers are never read as a
# metric they are not (``psth_r2`` was the package's own PSTH R², not NLB's).
RENAMED_METRICS = {"psth_r2": "psth_r2_smoothed"}


def _renamed_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with old metric names replaced by their current ones."""
    if "metric" in table.columns:
        table["metric"] = [RENAMED_METRICS.get(str(m), m) for m in table["metric"]]
    return table


def read_summary(path: str | os.PathLike, module_name: str | None = None, *,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """What `nwb-jedi show` prints: source, conditions, metrics, config, versions.

    Parameters
    ----------
    path : str or path
        The NWB file: a local path or any DANDI SOURCE that ``nwb-jedi fit`` accepts
        (``DANDI:<id>/<version>/<asset path>``, a dandiarchive.org URL, ``dandi://...``),
        streamed through the verified block cache.
    module_name : str, optional
        Processing module holding the model; needed only when the file holds several.
    cache_dir : str or path, optional
        Block cache for streamed files (default ``$NWB_JEDI_CACHE`` or the platform cache).

    Returns
    -------
    dict
        ``path`` (absolute for a local file, ``DANDI:<id>/<version>/<asset path>`` for a
        streamed one), ``module``, ``modules`` (all JEDI modules of the file), ``session``,
        ``source`` (provenance of the modelled data), ``nwb_jedi_version``,
        ``torch_version``, ``config`` (with the fit state), ``n_parameters``, ``conditions``
        and ``metrics`` (DataFrames), and, when the modelled counts are stored, ``data_shape``
        and ``dataset_metadata``.

    Raises
    ------
    ModelFileError
        No model in the file, or a model that is damaged or unsafe to read.
    """
    with _open(path, cache_dir) as (h5, label):
        module = _module(h5, label, module_name)
        model_group = module["model"]
        config, tensors = _read_model_group(model_group)
        # The config's structure and sizes, as load_model would check them (without torch):
        # what `nwb-jedi show` prints from it is then well formed.
        from nwb_jedi.model.bounds import check_state

        check_state(config, tensors)
        source = {}
        for key in ("source_kind", "source_dandiset", "source_version", "source_asset_path",
                    "source_url", "source_path", "source_sha256", "source_identifier"):
            value = _attr_text(model_group, key, model_group.name, required=False)
            if value:
                source[key.removeprefix("source_")] = value
        conditions = _read_table(module["conditions"], exclude=("embedding",)) \
            if isinstance(module.get("conditions"), h5py.Group) else pd.DataFrame()
        metrics = _renamed_metrics(_read_table(module["metrics"])) \
            if isinstance(module.get("metrics"), h5py.Group) else pd.DataFrame()
        session = {}
        for key in ("identifier", "session_description", "session_start_time"):
            if link_kind(h5, key) == "hard" and isinstance(h5[key], h5py.Dataset):
                session[key] = _scalar_text(h5[key])
        general = h5["general"] if link_kind(h5, "general") == "hard" else None
        if isinstance(general, h5py.Group) and link_kind(general, "session_id") == "hard" \
                and isinstance(general["session_id"], h5py.Dataset):
            session["session_id"] = _scalar_text(general["session_id"])
        info = {
            "path": label if _is_remote(path) else os.path.abspath(label),
            "module": module.name.rsplit("/", 1)[-1],
            "modules": find_modules(h5), "session": session, "source": source,
            "nwb_jedi_version": _attr_text(model_group, "nwb_jedi_version",
                                           model_group.name, required=False),
            "torch_version": _attr_text(model_group, "torch_version", model_group.name,
                                        required=False),
            "config": config, "n_parameters": int(sum(t.size for t in tensors.values())),
            "conditions": conditions, "metrics": metrics,
        }
        info.update(_modelled_summary(module))
    # The source session's id (a derived file's own session_id carries a label).
    recorded = info.get("dataset_metadata", {}).get("session")
    if isinstance(recorded, dict) and isinstance(recorded.get("session_id"), str):
        source["session_id"] = recorded["session_id"]
    return info


def _modelled_summary(module: h5py.Group) -> dict[str, Any]:
    """``data_shape`` (trials, bins, units) and ``dataset_metadata`` of the modelled data,
    read without the counts; empty when the module stores none."""
    binned = module.get("binned_counts")
    if not isinstance(binned, h5py.Group):
        return {}
    if isinstance(binned.get("counts"), h5py.Dataset) and binned["counts"].ndim == 3:
        shape, described = tuple(binned["counts"].shape), binned  # ndx-jedi 0.1
    elif isinstance(binned.get("data"), h5py.Dataset) and binned["data"].ndim == 3 and \
            isinstance(module.get("modelled_data"), h5py.Group):
        n_units, n_trials, n_bins = binned["data"].shape
        shape, described = (n_trials, n_bins, n_units), module["modelled_data"]
    else:
        return {}
    metadata = _json(_read_text(_dataset(described, "dataset_metadata", described.name),
                                "dataset_metadata"), "dataset_metadata")
    return {"data_shape": shape, "dataset_metadata": metadata}
