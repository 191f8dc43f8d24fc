"""Write a fitted JEDI model and its results into NWB (``ndx-jedi``), and load them back.

Writing uses pynwb with the ``ndx-jedi`` extension (the spec is cached in every file, so the
file opens in plain pynwb without nwb_jedi). Reading (`load_model`, `load_dataset`) uses h5py
directly: every dataset's dtype is checked before a byte is converted, object / variable-length
/ compound / reference / opaque dtypes are refused, nothing is unpickled and nothing from the
file is executed.

Layout of the processing module (default name ``jedi``)::

    model          JEDIModel            config, fit state, provenance, parameter tensors
    conditions     JEDIConditionTable   one row per condition
    trials         JEDITrialTable       one row per modelled trial
    binned_counts  JEDIBinnedCounts     the modelled counts (K x T x N), bin centers, unit ids
    rates          TimeSeries           fitted rates (Hz), (K*T) x N, trial after trial
    metrics        JEDIMetricsTable     metric, value, split
    eigenvalues    JEDIEigenvalueTable  condition, real, imag
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import h5py
import numpy as np
import pandas as pd

from nwb_jedi._files import atomic_output
from nwb_jedi._version import __version__
from nwb_jedi.data.dataset import SPLIT_NAMES, TrialDataset
from nwb_jedi.data.session import Session
from nwb_jedi.errors import ModelFileError, UserError
from nwb_jedi.io import ndx
from nwb_jedi.model.jedi import JEDI

__all__ = ["write_results", "load_model", "load_dataset", "find_modules", "read_summary"]

# Keys of JEDI.get_state()'s config that grow with the data (neurons, conditions, trials,
# epochs): kept in the `fit_state` dataset, because HDF5 attributes must stay < 64 KB.
_FIT_STATE_KEYS = ("unit_id", "conditions", "trial_offset_ids", "history")
# Columns of JEDIConditionTable that are not condition-defining values.
_CONDITION_EXTRA = ("embedding", "n_trials")
_MODULE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_UNKNOWN_START = datetime(1970, 1, 1, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------- writing
def write_results(model: JEDI, dataset: TrialDataset, out_path: str | os.PathLike,
                  source: str | os.PathLike | Session | None = None, append: bool = False,
                  module_name: str = "jedi", overwrite: bool = False,
                  metrics: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Write a fitted model, the data it modelled and its results into an NWB file.

    Parameters
    ----------
    model : JEDI
        A fitted model whose units (and bin size) are those of `dataset`.
    dataset : TrialDataset
        The modelled data; every condition of it must be known to the model.
    out_path : str or path
        The NWB file to write.
    source : SOURCE string, path or Session, optional
        The session the data came from. Default mode: its session metadata, subject, the
        modelled units (ids, spike times) and trials are copied into a new derived file
        (same ``session_id``, new ``identifier``). Without it a minimal file is written from
        the dataset alone (session metadata from ``dataset.metadata`` where present).
    append : bool
        Instead of a derived file, add the processing module to a copy of a local NWB file:
        `source` (a local path; default `out_path` itself, edited in place). The copy is
        written to a temporary file and renamed into place, so a failure leaves the
        original untouched.
    module_name : str
        Name of the processing module (snake_case).
    overwrite : bool
        Replace an existing `out_path` (not needed to append to `out_path` in place).
    metrics : dict of split -> {metric: value}, optional
        Metrics to store; default: ``model.score`` on each non-empty split of `dataset`.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    UserError
        Unfitted model, data the model does not fit, an existing output without
        `overwrite`, a bad module name, or appending to a non-local source.
    """
    if not isinstance(model, JEDI):
        raise UserError(f"write_results expects a fitted JEDI model, got {type(model).__name__}")
    model._check_fitted()
    model.check_compatible(dataset)
    if not isinstance(module_name, str) or not _MODULE_NAME.fullmatch(module_name):
        raise UserError(f"module_name must be snake_case (lowercase letters, digits, _), got "
                        f"{module_name!r}")
    out_path = os.path.abspath(os.fspath(out_path))
    if os.path.isdir(out_path):
        raise UserError(f"{out_path} is a directory; give the path of the .nwb file to write")

    if append:
        base = _append_base(source, out_path)
        if base != out_path and os.path.exists(out_path) and not overwrite:
            raise UserError(f"{out_path} already exists; pass overwrite=True (--overwrite) to "
                            f"replace it")
        session_source = _read_source_info(base)
    else:
        if os.path.exists(out_path) and not overwrite:
            raise UserError(f"{out_path} already exists; pass overwrite=True (--overwrite) to "
                            f"replace it")
        session = _resolve_session(source)
        if session is not None and _same_file(session.source.get("path"), out_path):
            raise UserError(f"{out_path} is the source file; write the derived file elsewhere "
                            f"or use append=True to add the results to it")
        session_source = dict(session.source) if session is not None else \
            dict(dataset.metadata.get("source", {}) or {})
        if session is not None and session.metadata.get("identifier"):
            session_source.setdefault("identifier", str(session.metadata["identifier"]))
        path = session_source.get("path")
        if session_source.get("kind") == "local" and path and os.path.isfile(path) \
                and not session_source.get("sha256"):
            from nwb_jedi.io.sources import file_sha256

            session_source["sha256"] = file_sha256(path)

    # Everything that can fail for model/data reasons happens before any file is touched.
    contents = _module_contents(model, dataset, session_source, metrics)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    # Without overwrite the final rename is exclusive: a file that appeared at out_path while
    # this one was being written (another process) is never replaced.
    replace = overwrite or (append and base == out_path)
    with atomic_output(out_path, overwrite=replace) as tmp:
        if append:
            _append_module(base, tmp, contents, module_name)
        else:
            nwbfile = _derived_file(dataset, session, session_source)
            _add_module(nwbfile, contents, module_name)
            _write_nwb(nwbfile, tmp)
    return out_path


def _append_base(source, out_path: str) -> str:
    if source is None:
        base = out_path
    elif isinstance(source, Session):
        if source.source.get("kind") != "local" or not source.source.get("path"):
            raise UserError("append=True needs a local NWB file, but the Session was read from "
                            "DANDI; write a derived file instead (append=False)")
        base = source.source["path"]
    else:
        from nwb_jedi.io.sources import parse_source

        parsed = parse_source(source)
        if parsed.kind != "local":
            raise UserError(f"append=True needs a local NWB file, but {source!s} is a DANDI "
                            f"source; download it first or write a derived file (append=False)")
        base = parsed.path or os.fspath(source)
    base = os.path.abspath(base)
    if not os.path.isfile(base):
        raise UserError(f"cannot append to {base}: no such file; give an existing local .nwb "
                        f"file")
    return base


def _read_source_info(path: str) -> dict[str, Any]:
    from nwb_jedi.io.sources import file_sha256

    info = {"kind": "local", "path": path, "sha256": file_sha256(path)}
    try:
        with h5py.File(path, "r") as h5:
            if "identifier" in h5:
                info["identifier"] = _scalar_text(h5["identifier"])
    except OSError as err:
        raise UserError(f"{path} is not a readable HDF5/NWB file ({err}); append to an NWB "
                        f"file") from None
    return info


def _resolve_session(source) -> Session | None:
    if source is None or isinstance(source, Session):
        return source
    from nwb_jedi.io.read import read_session

    return read_session(source, behavior=False)


def _same_file(a: str | None, b: str) -> bool:
    if not a or not os.path.exists(a) or not os.path.exists(b):
        return False
    return os.path.samefile(a, b)


def _write_nwb(nwbfile, path: str) -> None:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(path, "w") as io:
        io.write(nwbfile)  # cache_spec=True by default: the file carries ndx-jedi's spec


def _append_module(base: str, tmp: str, contents: list, module_name: str) -> None:
    from pynwb import NWBHDF5IO

    shutil.copyfile(base, tmp)
    original = _attribute_snapshot(tmp)
    with NWBHDF5IO(tmp, "a") as io:
        nwbfile = io.read()
        if module_name in nwbfile.processing:
            raise UserError(f"{base} already has a processing module named {module_name!r}; "
                            f"choose another module_name (--module-name)")
        _add_module(nwbfile, contents, module_name)
        io.write(nwbfile)
    _restore_attributes(tmp, original)


def _attribute_snapshot(path: str) -> dict[str, dict[str, tuple[Any, np.dtype]]]:
    """Every attribute of every object, with its stored dtype."""
    snapshot: dict[str, dict[str, tuple[Any, np.dtype]]] = {}

    def record(name: str, obj) -> None:
        snapshot[name] = {key: (obj.attrs[key], obj.attrs.get_id(key).dtype)
                          for key in obj.attrs}

    with h5py.File(path, "r") as h5:
        record("/", h5)
        h5.visititems(record)
    return snapshot


def _restore_attributes(path: str, snapshot: dict[str, dict[str, tuple[Any, np.dtype]]]) -> None:
    """Undo what pynwb's append rewrote in objects that were already in the file.

    On write, pynwb migrates old files' metadata (the root ``nwb_version``, renamed core
    types such as ``DynamicTable`` -> ``ElectrodesTable``). The file's existing content must
    stay exactly as it was, so those attributes get their original values back; only the new
    processing module and the cached ndx-jedi spec are added.
    """
    with h5py.File(path, "a") as h5:
        for name, attrs in snapshot.items():
            obj = h5 if name == "/" else h5[name]
            for key in list(obj.attrs):
                if key not in attrs:
                    del obj.attrs[key]
            for key, (value, dtype) in attrs.items():
                if key not in obj.attrs or not _attr_equal(obj.attrs[key], value):
                    obj.attrs.create(key, value, dtype=dtype)


def _attr_equal(a, b) -> bool:
    if isinstance(a, h5py.Reference) or isinstance(b, h5py.Reference):
        return type(a) is type(b) and bool(a) == bool(b)
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False


def _add_module(nwbfile, contents: list, module_name: str) -> None:
    module = nwbfile.create_processing_module(
        name=module_name,
        description=f"JEDI model of population dynamics across conditions (nwb_jedi "
                    f"{__version__}): the fitted model, condition embeddings, per-trial "
                    f"assignments, the modelled counts, fitted rates, metrics and "
                    f"connectivity eigenvalues (ndx-jedi {ndx.VERSION}).")
    for item in contents:
        module.add(item)


# ---------------------------------------------------------------------------------- contents
def _compressed(data: np.ndarray):
    from hdmf.backends.hdf5 import H5DataIO

    if data.size < 1024:  # compression of tiny arrays costs more than it saves
        return data
    return H5DataIO(data, compression="gzip", compression_opts=4, shuffle=True)


def _module_contents(model: JEDI, ds: TrialDataset, source: Mapping[str, Any],
                     metrics: Mapping[str, Mapping[str, float]] | None) -> list:
    """All containers of the processing module; computed before any file is opened."""
    from hdmf.common import DynamicTableRegion, VectorData
    from pynwb import TimeSeries

    rates = model.predict_rates(ds)  # also checks that every condition is known
    if metrics is None:
        metrics = {split: model.evaluate(ds.subset(ds.split == split)) for split in SPLIT_NAMES
                   if np.any(ds.split == split)}
    items = [_model_container(model, source)]

    # conditions
    model_rows = {lab: i for i, lab in enumerate(model.conditions_["label"].astype(str))}
    embeddings = model.embeddings_
    embed = np.full((ds.n_conditions, embeddings.shape[1]), np.nan, dtype=np.float32)
    for i, label in enumerate(ds.conditions["label"].astype(str)):
        if label in model_rows:
            embed[i] = embeddings[model_rows[label]]
    columns = [_table_column(name, ds.conditions[name],
                             "Unique string label of the condition." if name == "label" else
                             f"Value of {name!r} that defines the condition.")
               for name in ds.conditions.columns]
    columns.append(VectorData(name="embedding", data=embed,
                              description="Learned embedding of the condition (NaN when the "
                                          "model has no embedding for it)."))
    columns.append(VectorData(name="n_trials", data=ds.trials_per_condition().astype(np.int64),
                              description="Number of modelled trials of the condition."))
    conditions = ndx.JEDIConditionTable(
        name="conditions", columns=columns,
        description="Conditions of the modelled data: defining values, label, learned "
                    "embedding and trial count.")
    items.append(conditions)

    # trials
    trial_columns = [
        _table_column("trial_id", pd.Series(ds.trial_id), "Id of the trial in the source "
                                                          "trials table."),
        DynamicTableRegion(name="condition", data=ds.condition.astype(np.int64),
                           table=conditions,
                           description="Row of the trial's condition in the conditions "
                                       "table."),
        VectorData(name="split", data=[str(s) for s in ds.split],
                   description="Data split of the trial: train, val or test."),
        VectorData(name="align_time", data=ds.align_time.astype(np.float64),
                   description="Session time (s) of the trial's alignment event; NaN when "
                               "unknown."),
    ]
    if model.module_.trial_offsets.shape[0]:
        per_trial = model.embed_trials(ds)
        trial_columns.append(VectorData(
            name="embedding", data=per_trial.astype(np.float32),
            description="Per-trial embedding: condition embedding plus the trial's fitted "
                        "offset (no offset for trials the model was not fitted on)."))
    items.append(ndx.JEDITrialTable(name="trials", columns=trial_columns,
                                    description="Modelled trials, in the order of the rows "
                                                "of 'rates' and 'binned_counts'."))

    # the modelled counts, exactly
    items.append(ndx.JEDIBinnedCounts(
        name="binned_counts",
        description=f"Spike counts of {ds.n_trials} trials x {ds.n_bins} bins x "
                    f"{ds.n_units} neurons in {ds.bin_size * 1e3:g} ms bins, as modelled.",
        bin_size=float(ds.bin_size),
        counts=_compressed(ds.counts.astype(np.float32)),
        bin_centers=ds.time.astype(np.float64),
        unit_ids=_id_data(ds.unit_id),
        dataset_metadata=json.dumps(ds.metadata, default=_json_default, allow_nan=False,
                                    sort_keys=True)))

    # fitted rates over the modelled windows
    if ds.n_trials:
        flat = rates.reshape(ds.n_trials * ds.n_bins, ds.n_units)
        timing, where = _rate_timing(ds)
        items.append(TimeSeries(
            name="rates", data=_compressed(flat), unit="Hz", **timing,
            description=f"Firing rates predicted by the JEDI model for the modelled trials "
                        f"({ds.n_trials} trials x {ds.n_bins} bins, concatenated trial after "
                        f"trial in the order of the 'trials' table; columns are the neurons "
                        f"of binned_counts/unit_ids). {where}",
            comments="Samples are bin centers; gaps between trials are not modelled."))

    # metrics
    rows = [(str(name), float(value), str(split)) for split, values in metrics.items()
            for name, value in values.items() if _is_number(value)]
    if rows:
        items.append(ndx.JEDIMetricsTable(
            name="metrics", description="Goodness of fit of the model on each data split.",
            columns=[
                VectorData(name="metric", data=[r[0] for r in rows],
                           description="Name of the metric."),
                VectorData(name="value", data=np.array([r[1] for r in rows]),
                           description="Value of the metric."),
                VectorData(name="split", data=[r[2] for r in rows],
                           description="Trials the metric was computed on."),
            ]))

    # eigenvalues of each condition's connectivity
    cond_rows, real, imag = [], [], []
    for i, label in enumerate(ds.conditions["label"].astype(str)):
        if label in model_rows:
            values = model.eigenvalues(model_rows[label])
            cond_rows.extend([i] * len(values))
            real.extend(values.real.tolist())
            imag.extend(values.imag.tolist())
    if cond_rows:
        items.append(ndx.JEDIEigenvalueTable(
            name="eigenvalues",
            description="Nonzero eigenvalues of each condition's connectivity J = M U^T / N, "
                        "sorted by decreasing modulus within a condition.",
            columns=[
                DynamicTableRegion(name="condition", data=np.array(cond_rows, dtype=np.int64),
                                   table=conditions,
                                   description="Row of the condition in the conditions "
                                               "table."),
                VectorData(name="real", data=np.array(real, dtype=np.float64),
                           description="Real part of the eigenvalue."),
                VectorData(name="imag", data=np.array(imag, dtype=np.float64),
                           description="Imaginary part of the eigenvalue."),
            ]))
    return items


def _model_container(model: JEDI, source: Mapping[str, Any]):
    config, tensors = model.get_state()
    fit_state = {k: config.pop(k) for k in _FIT_STATE_KEYS if k in config}
    versions = config.get("versions", {})
    provenance = {}
    kind = source.get("kind") or "arrays"
    for key, attr in (("dandiset", "source_dandiset"), ("version", "source_version"),
                      ("asset_path", "source_asset_path"), ("url", "source_url"),
                      ("path", "source_path"), ("sha256", "source_sha256"),
                      ("identifier", "source_identifier")):
        if source.get(key):
            provenance[attr] = str(source[key])
    parameters = [ndx.JEDIParameter(name=_dataset_name(name), data=np.asarray(value),
                                    tensor_name=name)
                  for name, value in tensors.items() if np.asarray(value).ndim >= 1]
    return ndx.JEDIModel(
        name="model",
        description=f"JEDI model fitted with nwb_jedi {versions.get('nwb_jedi', __version__)}: "
                    f"{model!r}; load it with nwb_jedi.load_model(path).",
        config=json.dumps(config, allow_nan=False, sort_keys=True),
        fit_state=json.dumps(fit_state, default=_json_default, allow_nan=False),
        nwb_jedi_version=str(versions.get("nwb_jedi", __version__)),
        torch_version=str(versions.get("torch", "")),
        source_kind=str(kind), jedi_parameters=parameters, **provenance)


def _dataset_name(tensor_name: str) -> str:
    """'hypernet.layers.0.weight' -> 'hypernet__layers__0__weight' (the exact name is kept in
    the dataset's 'tensor_name' attribute, so the mapping need not be invertible)."""
    return re.sub(r"[^A-Za-z0-9_]", "__", tensor_name)


def _rate_timing(ds: TrialDataset) -> tuple[dict[str, Any], str]:
    if np.all(np.isfinite(ds.align_time)):
        stamps = (ds.align_time[:, None] + ds.time[None, :]).ravel()
        where = "Timestamps are session times: alignment time + bin center."
    else:
        # No session times: trials are laid back to back, one bin apart, on their own clock.
        span = ds.n_bins * ds.bin_size
        stamps = (np.arange(ds.n_trials)[:, None] * span + (ds.time - ds.time[0])[None, :]
                  + ds.bin_size / 2).ravel()
        where = ("The trials have no session times, so they are laid back to back "
                 "(timestamps are not session times).")
    diffs = np.diff(stamps)
    if len(stamps) > 1 and np.allclose(diffs, diffs[0], rtol=0, atol=1e-9) and diffs[0] > 0:
        return {"starting_time": float(stamps[0]), "rate": float(1.0 / diffs[0])}, where
    return {"timestamps": _compressed(stamps)}, where


def _table_column(name: str, values: pd.Series, description: str):
    from hdmf.common import VectorData

    return VectorData(name=name, data=_column_data(values), description=description)


def _column_data(values: pd.Series):
    """A pandas column as data pynwb can store: numbers/bools as arrays, else strings."""
    arr = values.to_numpy()
    if arr.dtype.kind in "biuf":
        return arr
    items = list(arr)
    if items and all(isinstance(v, bool | np.bool_) for v in items):
        return np.array(items, dtype=bool)
    if items and all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                     for v in items):
        return np.array(items, dtype=np.int64)
    if items and all(isinstance(v, int | float | np.integer | np.floating)
                     and not isinstance(v, bool) for v in items):
        return np.array(items, dtype=np.float64)
    return [str(v) for v in items]


def _id_data(ids: np.ndarray):
    ids = np.asarray(ids)
    if ids.dtype.kind in "iub":
        return ids.astype(np.int64)
    if ids.dtype.kind == "f":
        return ids.astype(np.float64)
    return [str(v) for v in ids]


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool)


def _json_default(value):
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    if isinstance(value, np.ndarray):
        return [_json_default(v) if isinstance(v, np.generic) else v for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return {"columns": [str(c) for c in value.columns],
                "rows": value.astype(object).where(value.notna(), None).values.tolist()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


# ---------------------------------------------------------------------------------- derived file
def _derived_file(ds: TrialDataset, session: Session | None, source: Mapping[str, Any]):
    """A new NWBFile for the same session, with the modelled units and trials copied in."""
    from pynwb import NWBFile

    meta = dict(session.metadata) if session is not None else \
        dict(ds.metadata.get("session", {}) or {})
    start = _parse_time(meta.get("session_start_time"))
    described = meta.get("session_description") or "session"
    kwargs: dict[str, Any] = {
        "session_description": f"JEDI results for: {described}" if start is not None else
        f"JEDI results for: {described} (session start time unknown; set to 1970-01-01)",
        "identifier": str(uuid.uuid4()),
        "session_start_time": start or _UNKNOWN_START,
    }
    for key in ("session_id", "institution", "lab", "experiment_description", "protocol",
                "notes"):
        if isinstance(meta.get(key), str) and meta[key]:
            kwargs[key] = meta[key]
    for key in ("experimenter", "related_publications", "keywords"):
        value = meta.get(key)
        if value:
            kwargs[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
    nwbfile = NWBFile(**{k: v for k, v in kwargs.items() if v is not None})
    subject = _subject(meta.get("subject"))
    if subject is not None:
        nwbfile.subject = subject
    if session is not None:
        _copy_units(nwbfile, ds, session)
        _copy_trials(nwbfile, ds, session)
    return nwbfile


def _parse_time(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _subject(meta) -> Any:
    from pynwb.file import Subject

    if not isinstance(meta, Mapping) or not meta:
        return None
    fields = {}
    for key in ("subject_id", "species", "sex", "age", "genotype", "description", "strain",
                "weight"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            fields[key] = value
    birth = _parse_time(meta.get("date_of_birth"))
    if birth is not None:
        fields["date_of_birth"] = birth
    # NWB's explicit "unknown" values, so the copy is complete without inventing facts.
    fields.setdefault("sex", "U")
    if "age" not in fields and "date_of_birth" not in fields:
        fields["age"] = "P0D/"  # an open range: age unknown
    return Subject(**fields)


def _copy_units(nwbfile, ds: TrialDataset, session: Session) -> None:
    from hdmf.common import VectorData
    from pynwb.misc import Units

    lookup = {str(u): i for i, u in enumerate(session.unit_ids)}
    missing = [u for u in ds.unit_id if str(u) not in lookup]
    if missing:
        raise UserError(f"{len(missing)} modelled unit(s) (e.g. {missing[0]!r}) are not in the "
                        f"source session; pass the session the dataset was built from")
    rows = [lookup[str(u)] for u in ds.unit_id]
    resolution = session.time_resolution
    # Whole columns as flat arrays with their index: adding unit by unit makes hdmf check
    # every spike time on its own (15 s for 2.6 M spikes; this takes well under a second).
    spikes = [np.asarray(session.spike_times[row], dtype=np.float64) for row in rows]
    columns = _ragged("spike_times", "Spike times of the unit (s), copied from the source.",
                      spikes)
    if session.obs_intervals is not None:
        intervals = [np.asarray(session.obs_intervals[row], dtype=np.float64).reshape(-1, 2)
                     for row in rows]
        columns += _ragged("obs_intervals", "Observation intervals of the unit (s), copied "
                                            "from the source.", intervals)
    int_ids = np.asarray(ds.unit_id).dtype.kind in "iu"
    if not int_ids:
        columns.append(VectorData(name="source_unit_id", description="Id of the unit in the "
                                  "source units table.", data=[str(u) for u in ds.unit_id]))
    ids = [int(u) for u in ds.unit_id] if int_ids else list(range(len(rows)))
    units = Units(name="units", description="The units modelled by JEDI, copied from the "
                                            "source session (ids and spike times).",
                  id=ids, columns=columns,
                  resolution=float(resolution) if resolution else None)
    nwbfile.units = units


def _ragged(name: str, description: str, arrays: list[np.ndarray]) -> list:
    """A ragged column as (VectorData, VectorIndex) built from whole arrays."""
    from hdmf.common import VectorData, VectorIndex

    flat = (np.concatenate(arrays) if arrays else np.zeros(0))
    data = VectorData(name=name, description=description, data=flat)
    return [data, VectorIndex(name=f"{name}_index", target=data,
                              data=np.cumsum([len(a) for a in arrays]).astype(np.int64))]


def _copy_trials(nwbfile, ds: TrialDataset, session: Session) -> None:
    from hdmf.common import VectorData
    from pynwb.epoch import TimeIntervals

    trials = session.trials
    if trials is None or not len(trials) or not {"start_time", "stop_time"} <= set(
            trials.columns):
        return
    wanted = {str(t) for t in ds.trial_id}
    keep = [i for i, t in enumerate(trials.index) if str(t) in wanted]
    table = trials.iloc[keep]
    ids = np.asarray(table.index)
    int_ids = ids.dtype.kind in "iu"
    columns = []
    for name in table.columns:
        if name == "id":
            continue
        desc = {"start_time": "Start time of the trial (s).",
                "stop_time": "Stop time of the trial (s)."}.get(
            name, f"{name}, copied from the source trials table.")
        values = list(table[name])
        if values and all(isinstance(v, np.ndarray | list) for v in values):
            arrays = [np.asarray(v) for v in values]
            if not all(a.dtype.kind in "biuf" for a in arrays) or \
                    len({a.shape[1:] for a in arrays}) != 1:
                continue  # ragged columns of mixed content cannot be stored faithfully
            columns.extend(_ragged(name, desc, arrays))
            continue
        data = _column_data(table[name])
        if isinstance(data, list) and any(isinstance(v, np.ndarray | list | dict)
                                          for v in values):
            continue
        columns.append(VectorData(name=name, description=desc, data=data))
    if not int_ids:
        columns.append(VectorData(name="source_trial_id", data=[str(t) for t in ids],
                                  description="Id of the trial in the source trials table."))
    nwbfile.trials = TimeIntervals(
        name="trials", description="The trials modelled by JEDI, copied from the source "
                                   "session's trials table.",
        columns=columns, id=ids.astype(np.int64) if int_ids else np.arange(len(ids)))


# ---------------------------------------------------------------------------------- reading
def _open(path: str | os.PathLike) -> h5py.File:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"no such file: {path}; give the path of an NWB file written by "
                             f"nwb_jedi")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ModelFileError(f"{path} is not a readable HDF5/NWB file ({err}); check the "
                             f"path and that the file is complete") from None


def _type_of(obj) -> str:
    value = obj.attrs.get("neurodata_type")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if isinstance(value, str) else ""


def find_modules(h5: h5py.File) -> list[str]:
    """Names of the processing modules of an open file that hold a JEDIModel."""
    processing = h5.get("processing")
    if not isinstance(processing, h5py.Group):
        return []
    return [name for name, group in processing.items()
            if isinstance(group, h5py.Group) and isinstance(group.get("model"), h5py.Group)
            and _type_of(group["model"]) == "JEDIModel"]


def _module(h5: h5py.File, path: str, module_name: str | None) -> h5py.Group:
    names = find_modules(h5)
    if module_name is None:
        if not names:
            raise ModelFileError(f"{path} holds no JEDI model (no processing module with a "
                                 f"JEDIModel); write one with nwb_jedi.write_results")
        if len(names) > 1:
            raise ModelFileError(f"{path} holds several JEDI models ({', '.join(names)}); "
                                 f"choose one with module_name")
        module_name = names[0]
    if module_name not in names:
        raise ModelFileError(f"{path} has no JEDI model in a processing module named "
                             f"{module_name!r} (found: {', '.join(names) or 'none'})")
    return h5["processing"][module_name]


def _dataset(group: h5py.Group, name: str, where: str) -> h5py.Dataset:
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
    return ds[()]


def _read_text(ds: h5py.Dataset, what: str) -> np.ndarray | str:
    """Read a string dataset (scalar -> str, array -> ndarray of str)."""
    if h5py.check_string_dtype(ds.dtype) is None:
        raise ModelFileError(f"{what} ({ds.name}) has dtype {ds.dtype}, not text; refusing "
                             f"to load it")
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
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{what} is not valid JSON ({err}); the file is damaged") \
            from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{what} is not a JSON object; the file is damaged")
    return value


def _scalar_text(ds: h5py.Dataset) -> str:
    value = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) is not None else ""
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
    tensors: dict[str, np.ndarray] = {}
    for obj in group.values():
        if _type_of(obj) != "JEDIParameter":
            continue
        if not isinstance(obj, h5py.Dataset):
            raise ModelFileError(f"{obj.name} is not a dataset; the file is damaged")
        tensor = _attr_text(obj, "tensor_name", obj.name)
        if tensor in tensors:
            raise ModelFileError(f"tensor {tensor!r} is stored twice in {where}; the file is "
                                 f"damaged")
        tensors[tensor] = np.asarray(_read_numeric(obj, "f", f"tensor {tensor!r}"))
    return {**config, **fit_state}, tensors


def load_model(path: str | os.PathLike, module_name: str | None = None) -> JEDI:
    """Rebuild the JEDI model stored in an NWB file by `write_results`.

    Reads with h5py only; refuses non-float parameter datasets (objects, strings, compound,
    references, opaque bytes such as a pickle), missing or unexpected tensors, wrong shapes,
    NaN/inf values and unknown format versions. Never unpickles, never executes anything.

    Parameters
    ----------
    path : str or path
        The NWB file.
    module_name : str, optional
        Processing module holding the model; needed only when the file holds several.

    Returns
    -------
    JEDI
        On CPU, with predictions bit-identical to the model that was written.

    Raises
    ------
    ModelFileError
        No model in the file, or a model that is damaged or unsafe to load.
    """
    path = os.fspath(path)
    with _open(path) as h5:
        module = _module(h5, path, module_name)
        config, tensors = _read_model_group(module["model"])
    return JEDI.from_state(config, tensors)


def load_dataset(path: str | os.PathLike, module_name: str | None = None) -> TrialDataset:
    """Rebuild the TrialDataset a model in an NWB file was fitted to (counts exact).

    Returns a dataset with the same counts, conditions, trial and unit ids, bin centers,
    alignment times, bin size and split as the one given to `write_results`.
    """
    path = os.fspath(path)
    with _open(path) as h5:
        module = _module(h5, path, module_name)
        where = module.name
        for part in ("conditions", "trials", "binned_counts"):
            if not isinstance(module.get(part), h5py.Group):
                raise ModelFileError(f"{where}/{part} is missing; the file is damaged or was "
                                     f"not written by nwb_jedi")
        binned = module["binned_counts"]
        counts = np.asarray(_read_numeric(_dataset(binned, "counts", binned.name), "biuf",
                                          "counts"), dtype=np.float32)
        time = np.asarray(_read_numeric(_dataset(binned, "bin_centers", binned.name), "f",
                                        "bin_centers"), dtype=np.float64)
        unit_ids = _read_ids(_dataset(binned, "unit_ids", binned.name), "unit_ids")
        bin_size = binned.attrs.get("bin_size")
        if not isinstance(bin_size, float | np.floating):
            raise ModelFileError(f"{binned.name} has no numeric bin_size; the file is damaged")
        metadata = _json(_read_text(_dataset(binned, "dataset_metadata", binned.name),
                                    "dataset_metadata"), "dataset_metadata")
        conditions = _read_table(module["conditions"], exclude=_CONDITION_EXTRA)
        trials = module["trials"]
        trial_id = _read_ids(_dataset(trials, "trial_id", trials.name), "trial_id")
        condition = _read_numeric(_dataset(trials, "condition", trials.name), "iu",
                                  "condition")
        split = _read_text(_dataset(trials, "split", trials.name), "split")
        align = _read_numeric(_dataset(trials, "align_time", trials.name), "f", "align_time")
    try:
        return TrialDataset(counts=counts, condition=condition, conditions=conditions,
                            trial_id=trial_id, unit_id=unit_ids, time=time, align_time=align,
                            bin_size=float(bin_size), split=split, metadata=metadata)
    except ValueError as err:
        raise ModelFileError(f"the modelled data in {path} are inconsistent ({err}); the file "
                             f"is damaged") from None


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


def read_summary(path: str | os.PathLike, module_name: str | None = None) -> dict[str, Any]:
    """What `nwb-jedi show` prints: source, conditions, metrics, config, versions."""
    path = os.fspath(path)
    with _open(path) as h5:
        module = _module(h5, path, module_name)
        model_group = module["model"]
        config, tensors = _read_model_group(model_group)
        source = {}
        for key in ("source_kind", "source_dandiset", "source_version", "source_asset_path",
                    "source_url", "source_path", "source_sha256", "source_identifier"):
            value = _attr_text(model_group, key, model_group.name, required=False)
            if value:
                source[key.removeprefix("source_")] = value
        conditions = _read_table(module["conditions"], exclude=("embedding",)) \
            if isinstance(module.get("conditions"), h5py.Group) else pd.DataFrame()
        metrics = _read_table(module["metrics"]) \
            if isinstance(module.get("metrics"), h5py.Group) else pd.DataFrame()
        session = {}
        for key in ("identifier", "session_description", "session_start_time"):
            if isinstance(h5.get(key), h5py.Dataset):
                session[key] = _scalar_text(h5[key])
        if isinstance(h5.get("general/session_id"), h5py.Dataset):
            session["session_id"] = _scalar_text(h5["general/session_id"])
        info = {
            "path": os.path.abspath(path), "module": module.name.rsplit("/", 1)[-1],
            "modules": find_modules(h5), "session": session, "source": source,
            "nwb_jedi_version": _attr_text(model_group, "nwb_jedi_version",
                                           model_group.name, required=False),
            "torch_version": _attr_text(model_group, "torch_version", model_group.name,
                                        required=False),
            "config": config, "n_parameters": int(sum(t.size for t in tensors.values())),
            "conditions": conditions, "metrics": metrics,
        }
        binned = module.get("binned_counts")
        if isinstance(binned, h5py.Group) and isinstance(binned.get("counts"), h5py.Dataset):
            info["data_shape"] = tuple(binned["counts"].shape)
            info["dataset_metadata"] = _json(_read_text(binned["dataset_metadata"],
                                                        "dataset_metadata"),
                                             "dataset_metadata")
    return info
