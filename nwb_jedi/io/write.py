"""Write a fitted model, the data it modelled and its results into NWB (``ndx-jedi``).

`write_results` serializes a `nwb_jedi.model.results.FitResults` (computed once by the model
side: rates, metrics, embeddings, eigenvalues, the model's state) into a processing module, and
puts that module into a new derived file (the source session's metadata, subject, modelled
units and trials copied in, built with `nwb_jedi.io.nwbfile`) or into a copy of an existing
local file (append). It computes nothing about the model itself. Reading the files back is
`nwb_jedi.io.load`.

Writing uses pynwb with the ``ndx-jedi`` extension (the spec is cached in every file, so the
file opens in plain pynwb without nwb_jedi).

Layout of the processing module (default name ``jedi``; ndx-jedi 0.2)::

    model          JEDIModel            config, fit state, provenance, parameter tensors (each
                                        with HDF5's Fletcher-32 checksum, verified on read)
    conditions     JEDIConditionTable   one row per condition
    trials         JEDITrialTable       one row per modelled trial: its id and row in
                                        /intervals/trials, condition, split, alignment time,
                                        embedding, its event in binned_counts and its samples
                                        in rates
    binned_counts  BinnedAlignedSpikes  (ndx-binned-spikes) the modelled counts, units x events
                                        x bins, events sorted by time, region of /units,
                                        condition of each event
    modelled_data  JEDIModelledData     bin size, exact bin centers, unit ids, dataset settings
    rates          TimeSeries           fitted rates (Hz) on a regular grid of one bin over the
                                        session, NaN outside the modelled windows
    metrics        JEDIMetricsTable     metric, value, split
    eigenvalues    JEDIEigenvalueTable  condition, real, imag

Files of ndx-jedi 0.1 (counts in a JEDIBinnedCounts, rates trial after trial) are still read by
`nwb_jedi.io.load`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from nwb_jedi._files import atomic_output
from nwb_jedi._version import __version__
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.data.session import Session
from nwb_jedi.data.units import unit_identity
from nwb_jedi.errors import UserError
from nwb_jedi.io import ndx
from nwb_jedi.io.dandi_metadata import (
    SUBJECT_FIELDS,
    clean_label,
    default_label,
    derived_session_id,
    merge_subject,
    warn_dandi_gaps,
)
from nwb_jedi.io.load import _scalar_text
from nwb_jedi.io.nwbfile import (
    add_trials,
    add_units,
    column_data,
    compressed,
    generated_by,
    new_nwbfile,
)
from nwb_jedi.io.nwbfile import write_nwb as _write_nwb  # a module global: tests replace it
from nwb_jedi.io.rates_grid import GridRates, RateGrid, plan_grid
from nwb_jedi.model.results import FitResults, compute_results

if TYPE_CHECKING:
    from nwb_jedi.model.base import Estimator

__all__ = ["write_results"]

# Keys of JEDI.get_state()'s config that grow with the data (neurons, conditions, trials,
# epochs): kept in the `fit_state` dataset, because HDF5 attributes must stay < 64 KB.
_FIT_STATE_KEYS = ("unit_id", "conditions", "trial_offset_ids", "history")
_MODULE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_UNKNOWN_START = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Readers that lived here until 0.1; `from nwb_jedi.io.write import load_model` keeps working
# for one release (module __getattr__ below).
_MOVED_TO_LOAD = ("load_model", "load_dataset", "read_summary", "find_modules")


def __getattr__(name: str):
    if name in _MOVED_TO_LOAD:
        warnings.warn(f"nwb_jedi.io.write.{name} moved to nwb_jedi.io.load; this alias will be "
                      f"removed in the next release", DeprecationWarning, stacklevel=2)
        from nwb_jedi.io import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------- writing
def write_results(model: Estimator, dataset: TrialDataset, out_path: str | os.PathLike,
                  source: str | os.PathLike | Session | None = None, append: bool = False,
                  module_name: str = "jedi", overwrite: bool = False,
                  metrics: Mapping[str, Mapping[str, float]] | None = None,
                  results: FitResults | None = None,
                  subject: Mapping[str, Any] | None = None, label: str | None = None) -> str:
    """Write a fitted model, the data it modelled and its results into an NWB file.

    Parameters
    ----------
    model : JEDI (or another estimator with ``get_state``)
        A fitted model whose units (and bin size) are those of `dataset`.
    dataset : TrialDataset
        The modelled data; every condition of it must be known to the model.
    out_path : str or path
        The NWB file to write.
    source : SOURCE string, path or Session, optional
        The session the data came from. Default mode: its session metadata, subject, the
        modelled units (ids, spike times) and trials are copied into a new derived file
        (new ``identifier``; ``session_id`` the source's followed by `label`). Without it a
        minimal file is written from the dataset alone (session metadata from
        ``dataset.provenance`` where present).
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
        Metrics to store (they replace those of `results`); default: every non-empty split
        of `dataset`, scored on the predicted rates.
    results : FitResults, optional
        `nwb_jedi.model.results.compute_results(model, dataset)`, when the caller already
        has it: then nothing is predicted again and the model is not used. Default: computed
        here.
    subject : dict, optional
        Subject fields the source lacks (``age``, ``date_of_birth``, ``species``, ...), for
        the derived file: DANDI requires an age or a date of birth, and nothing is invented
        (see `nwb_jedi.io.dandi_metadata`). A field that contradicts the source is refused.
        When a field DANDI requires is still missing, a `DandiMetadataWarning` says so.
    label : str, optional
        Names this output among others of the same session: the derived file's
        ``session_id`` is ``<source session id>-<label>``, which ``dandi organize`` puts in
        the file name (default ``<model>-rank<R>``, e.g. ``jedi-rank6``).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    UserError
        Unfitted model, data the model does not fit, results of other data, an existing
        output without `overwrite`, a bad module name, appending to a non-local source, or
        `subject`/`label` with `append` (an appended file keeps its metadata).
    """
    if not isinstance(module_name, str) or not _MODULE_NAME.fullmatch(module_name):
        raise UserError(f"module_name must be snake_case (lowercase letters, digits, _), got "
                        f"{module_name!r}")
    out_path = os.path.abspath(os.fspath(out_path))
    if os.path.isdir(out_path):
        raise UserError(f"{out_path} is a directory; give the path of the .nwb file to write")
    base = _append_base(source, out_path) if append else None
    # Appending to out_path in place needs no overwrite; any other existing output does.
    if base != out_path and os.path.exists(out_path) and not overwrite:
        raise UserError(f"{out_path} already exists; pass overwrite=True (--overwrite) to "
                        f"replace it")

    # Everything that can fail for model/data reasons happens before any file is touched.
    if results is None:
        results = compute_results(model, dataset, metrics)
    elif metrics is not None:
        results = dataclasses.replace(results, metrics={s: dict(v) for s, v in metrics.items()})
    results.check_matches(dataset)
    session, header = None, {}
    if append:
        if subject or label:
            raise UserError("subject and label apply to derived files; appending keeps the "
                            "file's own session and subject metadata as they are")
        session_source = _read_source_info(base)
    else:
        session, session_source = _session_and_source(source, dataset, out_path)
        meta = dict(session.metadata) if session is not None else \
            dict(dataset.provenance.session)
        header = _derived_header(meta, subject, label or default_label(results.config))
    contents = Contents(results, dataset, session_source)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    # Without overwrite the final rename is exclusive: a file that appeared at out_path while
    # this one was being written (another process) is never replaced.
    with atomic_output(out_path, overwrite=overwrite or base == out_path) as tmp:
        if append:
            _append_module(base, tmp, contents, module_name)
        else:
            nwbfile = _derived_file(dataset, session, header)
            _add_module(nwbfile, contents.build(nwbfile), module_name)
            _write_nwb(nwbfile, tmp)
    if not append:
        warn_dandi_gaps(out_path, header.get("subject"))
    return out_path


def _session_and_source(source, dataset: TrialDataset,
                        out_path: str) -> tuple[Session | None, dict[str, Any]]:
    """The session a derived file copies (or None), and the provenance of the modelled data."""
    session = _resolve_session(source)
    if session is not None and _same_file(session.source.get("path"), out_path):
        raise UserError(f"{out_path} is the source file, which is never overwritten: write "
                        f"the derived file elsewhere, or add the results to the source with "
                        f"append=True (nwb-jedi fit/predict --append)")
    session_source = dict(session.source) if session is not None else \
        dict(dataset.provenance.source)
    if session is not None and session.metadata.get("identifier"):
        session_source.setdefault("identifier", str(session.metadata["identifier"]))
    path = session_source.get("path")
    if session_source.get("kind") == "local" and path and os.path.isfile(path) \
            and not session_source.get("sha256"):
        from nwb_jedi.io.sources import file_sha256

        session_source["sha256"] = file_sha256(path)
    return session, session_source


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


def _append_module(base: str, tmp: str, contents: Contents, module_name: str) -> None:
    from pynwb import NWBHDF5IO

    shutil.copyfile(base, tmp)
    original = _attribute_snapshot(tmp)
    with NWBHDF5IO(tmp, "a") as io:
        nwbfile = io.read()
        if module_name in nwbfile.processing:
            raise UserError(f"{base} already has a processing module named {module_name!r}; "
                            f"write the fit to a new file (--out without --append), or give "
                            f"write_results another module_name")
        _add_module(nwbfile, contents.build(nwbfile), module_name)
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
@dataclasses.dataclass
class Contents:
    """What goes into the processing module, checked before any file is touched; `build` makes
    the containers once the target file exists, so that rows can refer to its ``/units`` and
    ``/intervals/trials`` tables."""

    results: FitResults
    dataset: TrialDataset
    source: Mapping[str, Any]

    def __post_init__(self) -> None:
        ds = self.dataset
        self.grid = plan_grid(ds.align_time, ds.time, ds.bin_size)
        # Events of binned_counts are sorted by time (ndx-binned-spikes asks for it); event[k]
        # is trial k's position among them.
        times = self.event_times()
        order = np.argsort(times, kind="stable")
        self.order = order
        self.event = np.empty(len(order), dtype=np.int64)
        self.event[order] = np.arange(len(order))

    def event_times(self) -> np.ndarray:
        """Alignment time of each trial: session times, or the grid's own clock when the trials
        have none (then the rates are on that clock too)."""
        ds = self.dataset
        if np.all(np.isfinite(ds.align_time)):
            return ds.align_time.astype(np.float64)
        grid = self.grid  # without session times the trials are back to back: never None
        assert grid is not None
        return grid.starting_time + grid.starts * grid.step - float(ds.time[0])

    def build(self, nwbfile) -> list:
        """All containers of the module, linked to `nwbfile`'s units and trials tables."""
        results, ds = self.results, self.dataset
        conditions = _conditions_table(results, ds)
        rates = _rates_series(results, ds, self.grid) if ds.n_trials else None
        items = [_model_container(results, self.source), conditions,
                 _trials_table(results, ds, conditions, self.event, rates, self.grid,
                               nwbfile.trials),
                 _binned_counts(ds, self.order, self.event_times()[self.order],
                                nwbfile.units),
                 _modelled_data(ds)]
        if rates is not None:
            items.append(rates)
        items.extend(_metrics_table(results.metrics))
        items.extend(_eigenvalue_table(results.eigenvalues, conditions))
        return items


def _conditions_table(results: FitResults, ds: TrialDataset):
    from hdmf.common import VectorData

    columns = [_table_column(name, ds.conditions[name],
                             "Unique string label of the condition." if name == "label" else
                             f"Value of {name!r} that defines the condition.")
               for name in ds.conditions.columns]
    if results.condition_embeddings is not None:
        columns.append(VectorData(name="embedding", data=results.condition_embeddings,
                                  description="Learned embedding of the condition (NaN when "
                                              "the model has no embedding for it)."))
    columns.append(VectorData(name="n_trials", data=ds.trials_per_condition().astype(np.int64),
                              description="Number of modelled trials of the condition."))
    return ndx.JEDIConditionTable(
        name="conditions", columns=columns,
        description="Conditions of the modelled data: defining values, label, learned "
                    "embedding and trial count.")


def _trials_table(results: FitResults, ds: TrialDataset, conditions, event: np.ndarray,
                  rates, grid: RateGrid | None, file_trials):
    from hdmf.common import DynamicTableRegion, VectorData

    columns = [
        _table_column("trial_id", pd.Series(ds.trial_id), "Id of the trial in the source "
                                                          "trials table."),
    ]
    rows = _rows_in(file_trials, ds.trial_id, "source_trial_id")
    if rows is not None:
        columns.append(DynamicTableRegion(
            name="trial", data=rows, table=file_trials,
            description="Row of the trial in this file's trials table (/intervals/trials)."))
    columns += [
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
    if results.trial_embeddings is not None:
        columns.append(VectorData(
            name="embedding", data=results.trial_embeddings.astype(np.float32),
            description="Per-trial embedding: condition embedding plus the trial's fitted "
                        "offset (no offset for trials the model was not fitted on)."))
    columns.append(VectorData(
        name="event", data=event,
        description="Index of the trial among the events of 'binned_counts' (sorted by "
                    "time): its counts are binned_counts.data[:, event, :]."))
    if rates is not None:
        from pynwb.base import TimeSeriesReference, TimeSeriesReferenceVectorData

        starts = grid.starts if grid is not None else np.arange(ds.n_trials) * ds.n_bins
        columns.append(TimeSeriesReferenceVectorData(
            name="rates", description="The trial's samples in 'rates' (first sample, number "
                                      "of bins).",
            data=[TimeSeriesReference(int(a), ds.n_bins, rates) for a in starts]))
    return ndx.JEDITrialTable(name="trials", columns=columns,
                              description="Modelled trials, in the order of the modelled "
                                          "dataset; each row links to its row of the file's "
                                          "trials table, its counts and its rates.")


def _rows_in(table, ids: np.ndarray, source_column: str) -> np.ndarray | None:
    """Rows of `table` (``/units`` or ``/intervals/trials``) holding `ids`, matched as text
    with the table's ids (or its `source_column` when the ids had to be renumbered); None when
    there is no table or it lacks one of them."""
    if table is None or not len(table):
        return None
    column = table[source_column] if source_column in table.colnames else table.id
    lookup = {str(v): row for row, v in enumerate(np.asarray(column.data[:]))}
    rows = [lookup.get(str(i)) for i in ids]
    if any(r is None for r in rows):
        return None
    return np.asarray(rows, dtype=np.int64)


def _binned_counts(ds: TrialDataset, order: np.ndarray, event_times: np.ndarray,
                   file_units):
    """The modelled counts, exactly, as the community type: units x events x bins."""
    from hdmf.common import DynamicTableRegion
    from ndx_binned_spikes import BinnedAlignedSpikes

    labels = [str(v) for v in ds.conditions["label"]] if "label" in ds.conditions else \
        [str(i) for i in range(ds.n_conditions)]
    rows = _rows_in(file_units, ds.unit_id, "source_unit_id")
    region = None if rows is None else DynamicTableRegion(
        name="units_region", data=rows, table=file_units,
        description="Rows of the modelled neurons in this file's units table.")
    data = np.ascontiguousarray(ds.counts.astype(np.float32).transpose(2, 0, 1)[:, order])
    counts = BinnedAlignedSpikes(
        name="binned_counts", bin_width_in_ms=float(ds.bin_size * 1e3),
        event_to_bin_offset_in_ms=float((ds.time[0] - ds.bin_size / 2) * 1e3),
        data=data, event_timestamps=np.asarray(event_times, dtype=np.float64),
        condition_indices=ds.condition[order].astype(np.uint64),
        condition_labels=labels, units_region=region)
    wrapped = compressed(data)
    if wrapped is not data:  # the type's constructor takes plain arrays only
        counts.set_data_io("data", type(wrapped), {k: wrapped.io_settings[k] for k in (
            "compression", "compression_opts", "shuffle")})
    return counts


def _modelled_data(ds: TrialDataset):
    clock = "" if np.all(np.isfinite(ds.align_time)) else (
        " The trials have no session times: the event times of binned_counts and the times "
        "of rates are on a clock of their own, trials laid back to back.")
    return ndx.JEDIModelledData(
        name="modelled_data",
        description=f"The modelled dataset: {ds.n_trials} trials x {ds.n_bins} bins x "
                    f"{ds.n_units} neurons in {ds.bin_size * 1e3:g} ms bins; its counts are "
                    f"'binned_counts' (events in time order; the trials table's 'event' "
                    f"column maps each trial to its event).{clock}",
        bin_size=float(ds.bin_size),
        bin_centers=ds.time.astype(np.float64),
        unit_ids=_id_data(ds.unit_id),
        dataset_metadata=json.dumps(_dataset_metadata(ds), default=_json_default,
                                    allow_nan=False, sort_keys=True))


def _dataset_metadata(ds: TrialDataset) -> dict[str, Any]:
    """The dataset's provenance, plus where its units were recorded (``units``: the
    `nwb_jedi.data.units.unit_identity` of ``ds.units``), which `nwb-jedi predict` compares
    with the units of the data a model is applied to."""
    metadata = ds.provenance.to_dict()
    identity = unit_identity(ds.units)
    if identity:
        metadata["units"] = identity
    return metadata


def _rates_series(results: FitResults, ds: TrialDataset, grid: RateGrid | None):
    """The fitted rates on one regular grid (NaN outside the modelled windows), or trial after
    trial with timestamps when the windows overlap."""
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import TimeSeries

    what = (f"Firing rates predicted by the JEDI model for the {ds.n_trials} modelled trials "
            f"({ds.n_bins} bins each); columns are the neurons of modelled_data/unit_ids. "
            f"The 'rates' column of the 'trials' table gives each trial's samples.")
    if grid is not None:
        data = H5DataIO(GridRates(results.rates, grid), compression="gzip",
                        compression_opts=4, shuffle=True, fillvalue=np.nan)
        return TimeSeries(name="rates", data=data, unit="Hz",
                          starting_time=float(grid.starting_time), rate=float(1.0 / grid.step),
                          description=f"{what} {grid.describe()}",
                          comments="Samples are bin centers; NaN where nothing was modelled.")
    flat = results.rates.reshape(ds.n_trials * ds.n_bins, ds.n_units)
    stamps = (ds.align_time[:, None] + ds.time[None, :]).ravel()
    return TimeSeries(
        name="rates", data=compressed(flat), unit="Hz", timestamps=compressed(stamps),
        description=f"{what} The trials' windows overlap in time, so they are stored trial "
                    f"after trial in the order of the 'trials' table, with session "
                    f"timestamps (not regularly sampled).",
        comments="Samples are bin centers; gaps between trials are not modelled.")


def _metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> list:
    """[the metrics table], or [] when there is no number to store."""
    from hdmf.common import VectorData

    rows = [(str(name), float(value), str(split)) for split, values in metrics.items()
            for name, value in values.items() if _is_number(value)]
    if not rows:
        return []
    return [ndx.JEDIMetricsTable(
        name="metrics", description="Goodness of fit of the model on each data split.",
        columns=[
            VectorData(name="metric", data=[r[0] for r in rows],
                       description="Name of the metric."),
            VectorData(name="value", data=np.array([r[1] for r in rows]),
                       description="Value of the metric."),
            VectorData(name="split", data=[r[2] for r in rows],
                       description="Trials the metric was computed on."),
        ])]


def _eigenvalue_table(eigenvalues: Mapping[int, np.ndarray], conditions) -> list:
    """[the eigenvalues of each condition's connectivity], or [] when there are none."""
    from hdmf.common import DynamicTableRegion, VectorData

    cond_rows, real, imag = [], [], []
    for row, values in sorted(eigenvalues.items()):
        cond_rows.extend([row] * len(values))
        real.extend(np.real(values).tolist())
        imag.extend(np.imag(values).tolist())
    if not cond_rows:
        return []
    return [ndx.JEDIEigenvalueTable(
        name="eigenvalues",
        description="Nonzero eigenvalues of each condition's connectivity J = M U^T / N, "
                    "sorted by decreasing modulus within a condition.",
        columns=[
            DynamicTableRegion(name="condition", data=np.array(cond_rows, dtype=np.int64),
                               table=conditions,
                               description="Row of the condition in the conditions table."),
            VectorData(name="real", data=np.array(real, dtype=np.float64),
                       description="Real part of the eigenvalue."),
            VectorData(name="imag", data=np.array(imag, dtype=np.float64),
                       description="Imaginary part of the eigenvalue."),
        ])]


def _model_container(results: FitResults, source: Mapping[str, Any]):
    config = dict(results.config)  # a copy: the fit state is moved out of it
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
    parameters = [ndx.JEDIParameter(name=_dataset_name(name), data=_checksummed(value),
                                    tensor_name=name)
                  for name, value in results.tensors.items() if np.asarray(value).ndim >= 1]
    return ndx.JEDIModel(
        name="model",
        description=f"JEDI model fitted with nwb_jedi {versions.get('nwb_jedi', __version__)}: "
                    f"{results.estimator}; load it with nwb_jedi.load_model(path).",
        config=json.dumps(config, allow_nan=False, sort_keys=True),
        fit_state=json.dumps(fit_state, default=_json_default, allow_nan=False),
        nwb_jedi_version=str(versions.get("nwb_jedi", __version__)),
        torch_version=str(versions.get("torch", "")),
        source_kind=str(kind), jedi_parameters=parameters, **provenance)


def _checksummed(value):
    """A parameter tensor stored with HDF5's Fletcher-32 checksum (a built-in filter, chunked
    storage), so that HDF5 verifies its bytes on every read: a flipped bit fails the read, as
    a damaged file (`nwb_jedi.io.load`), instead of loading other weights."""
    from hdmf.backends.hdf5 import H5DataIO

    values = np.asarray(value)
    return H5DataIO(values, fletcher32=True) if values.size else values


def _dataset_name(tensor_name: str) -> str:
    """'hypernet.layers.0.weight' -> 'hypernet__layers__0__weight' (the exact name is kept in
    the dataset's 'tensor_name' attribute, so the mapping need not be invertible)."""
    return re.sub(r"[^A-Za-z0-9_]", "__", tensor_name)


def _table_column(name: str, values: pd.Series, description: str):
    from hdmf.common import VectorData

    return VectorData(name=name, data=column_data(values), description=description)


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
def _derived_header(meta: Mapping[str, Any], subject: Mapping[str, Any] | None,
                    label: str) -> dict[str, Any]:
    """The NWBFile arguments of a derived file: the source's session metadata, its subject
    (plus the given fields; nothing invented) and a session id naming this output."""
    label = clean_label(label)
    start = _parse_time(meta.get("session_start_time"))
    described = meta.get("session_description") or "session"
    fields: dict[str, Any] = {}
    for key in ("institution", "lab", "experiment_description", "protocol", "notes"):
        if isinstance(meta.get(key), str) and meta[key]:
            fields[key] = meta[key]
    for key in ("experimenter", "related_publications", "keywords"):
        value = meta.get(key)
        if value:
            fields[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
    source_id = meta.get("session_id") if isinstance(meta.get("session_id"), str) else None
    merged = merge_subject(_source_subject(meta.get("subject")), subject)
    if merged is not None and isinstance(merged.get("date_of_birth"), str):
        birth = _parse_time(merged["date_of_birth"])
        if birth is None:
            raise UserError(f"subject date_of_birth {merged['date_of_birth']!r} is not an ISO "
                            f"8601 date; write e.g. 2019-05-01")
        merged["date_of_birth"] = birth
    what = f"JEDI results ({label}) for: {described}"
    return {"session_description": what if start is not None else
            f"{what} (session start time unknown; set to 1970-01-01)",
            "session_start_time": start or _UNKNOWN_START, "subject": merged,
            "session_id": derived_session_id(source_id, label), **fields}


def _derived_file(ds: TrialDataset, session: Session | None, header: Mapping[str, Any]):
    """A new NWBFile for the same session, with the modelled units and trials copied in."""
    nwbfile = new_nwbfile(**header, **generated_by())
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


def _source_subject(meta) -> dict[str, Any] | None:
    """The fields of the source's subject that NWB accepts, as the source has them."""
    if not isinstance(meta, Mapping) or not meta:
        return None
    fields: dict[str, Any] = {key: meta[key] for key in SUBJECT_FIELDS
                              if key != "date_of_birth" and isinstance(meta.get(key), str)
                              and meta[key]}
    birth = _parse_time(meta.get("date_of_birth"))
    if birth is not None:
        fields["date_of_birth"] = birth
    return fields


def _copy_units(nwbfile, ds: TrialDataset, session: Session) -> None:
    """The modelled units of `session` (ids, exact spike times, observation intervals)."""
    lookup = {str(u): i for i, u in enumerate(session.unit_ids)}
    missing = [u for u in ds.unit_id if str(u) not in lookup]
    if missing:
        raise UserError(f"{len(missing)} modelled unit(s) (e.g. {missing[0]!r}) are not in the "
                        f"source session; pass the session the dataset was built from")
    rows = [lookup[str(u)] for u in ds.unit_id]
    int_ids = np.asarray(ds.unit_id).dtype.kind in "iu"
    add_units(
        nwbfile, [session.spike_times[row] for row in rows],
        ids=[int(u) for u in ds.unit_id] if int_ids else list(range(len(rows))),
        obs_intervals=None if session.obs_intervals is None else
        [session.obs_intervals[row] for row in rows],
        resolution=session.time_resolution,
        columns=None if int_ids else {"source_unit_id": (
            [str(u) for u in ds.unit_id], "Id of the unit in the source units table.")},
        descriptions={
            "spike_times": "Spike times of the unit (s), copied from the source.",
            "obs_intervals": "Observation intervals of the unit (s), copied from the source."},
        description="The units modelled by JEDI, copied from the source session (ids and "
                    "spike times).")


def _copy_trials(nwbfile, ds: TrialDataset, session: Session) -> None:
    """The modelled trials of `session`'s trials table, with every column NWB can store."""
    trials = session.trials
    if trials is None or not len(trials) or not {"start_time", "stop_time"} <= set(
            trials.columns):
        return
    wanted = {str(t) for t in ds.trial_id}
    table = trials.iloc[[i for i, t in enumerate(trials.index) if str(t) in wanted]]
    ids = np.asarray(table.index)
    int_ids = ids.dtype.kind in "iu"
    if not int_ids:
        table = table.assign(source_trial_id=[str(t) for t in ids])
    add_trials(nwbfile, table, descriptions={
        "start_time": "Start time of the trial (s).", "stop_time": "Stop time of the trial (s).",
        "source_trial_id": "Id of the trial in the source trials table."},
        default_description="{name}, copied from the source trials table.",
        ids=ids.astype(np.int64) if int_ids else np.arange(len(ids)),
        description="The trials modelled by JEDI, copied from the source session's trials "
                    "table.",
        skip_unstorable=True)  # e.g. ragged columns of mixed content: left out, not mangled
