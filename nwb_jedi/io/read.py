"""Read an NWB file (local or streamed from DANDI) into a plain `Session`.

The reader walks the HDF5 tree by the NWB ``neurodata_type`` attributes instead of building the
whole pynwb object tree. Why: it reads every 2.x schema the same way (the DANDI:000006 fixture is
NWB 2.0.2, whose cached namespace pynwb 4 refuses to build in places), it never touches
``acquisition`` or other bulk datasets (which matters when each read is an HTTP range request),
and it costs almost nothing over raw h5py (see benchmarks/bench_read.py). The layouts it reads
are the NWB core ones: DynamicTable columns (VectorData, ragged via VectorIndex, references via
DynamicTableRegion) and TimeSeries (data, timestamps or starting_time + rate, conversion, offset).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import h5py
import numpy as np
import pandas as pd

from nwb_jedi.data.session import BehaviorSeries, Session
from nwb_jedi.errors import SourceError
from nwb_jedi.io.load import find_modules
from nwb_jedi.io.sources import open_source

# TimeSeries types under `processing` that are recordings, not behavior: never read them.
_NOT_BEHAVIOR = {
    "ElectricalSeries", "SpikeEventSeries", "ImageSeries", "ImageMaskSeries", "OpticalSeries",
    "TwoPhotonSeries", "OnePhotonSeries", "RoiResponseSeries", "PatchClampSeries",
    "CurrentClampSeries", "VoltageClampSeries", "IZeroClampSeries", "DecompositionSeries",
    "IndexSeries", "AbstractFeatureSeries", "AnnotationSeries", "IntervalSeries",
}
# Processing modules that hold recordings rather than behavior.
_NOT_BEHAVIOR_MODULES = {"ecephys", "ophys", "icephys"}


# ---------------------------------------------------------------------------------- public API
def read_session(source: str | os.PathLike, asset: str | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 behavior: bool | list[str] = True, progress: bool = False,
                 intervals: str | None = None) -> Session:
    """Read units, trials and behavior of an NWB file into a `Session`.

    Parameters
    ----------
    source : str or path
        A local ``.nwb`` path or a DANDI SOURCE (see `nwb_jedi.io.sources.open_source`).
    asset : str, optional
        Asset path inside a dandiset holding several NWB files.
    cache_dir : str or path, optional
        Block cache for streamed files.
    behavior : bool or list of str
        Read every behavioral series under ``processing`` (True), none (False), or only those
        with these names. Ask only for what you use: in a streamed file, 1 kHz behavior is
        usually most of the bytes (``nwb-jedi fit`` reads none).
    progress : bool
        Show the bytes streamed from DANDI as a progress bar (stderr).
    intervals : str, optional
        Read this interval table of ``/intervals`` (a TimeIntervals table such as ``epochs``)
        as the session's trials, for files without a trials table (default: the trials
        table). The name is recorded as ``source["trials_table"]``.

    Returns
    -------
    Session
        Plain data; the file is closed on return.

    Raises
    ------
    SourceError
        The source is not an NWB file, is truncated or damaged, has no units table, or has
        no interval table named `intervals`.
    """
    with open_source(source, asset, cache_dir, progress=progress) as (h5, info):
        where = info.path or info.url or str(source)
        try:
            return _read_open_file(h5, info.as_dict(), where, behavior, intervals)
        except SourceError:
            raise
        except Exception as err:
            raise _unreadable(where, err) from None


def describe_source(source: str | os.PathLike, asset: str | None = None,
                    cache_dir: str | os.PathLike | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """A cheap summary of an NWB file for ``nwb-jedi info``: reads no spike times or behavior.

    Returns a dict with ``metadata``, ``source``, ``units`` (DataFrame of unit metadata),
    ``n_spikes``, ``trials`` (DataFrame, or None when the file has no trials table),
    ``intervals`` (every interval table under ``/intervals`` other than the trials: list of
    dicts name, n_rows, columns) and ``behavior`` (list of dicts: name, path, shape, unit,
    rate).
    """
    with open_source(source, asset, cache_dir, progress=progress) as (h5, info):
        where = info.path or info.url or str(source)
        try:
            _check_nwb(h5, where)
            units_group = _find_units(h5, where)
            units, _ = _read_units_table(h5, units_group, spikes=False)
            n_spikes = int(units_group["spike_times"].shape[0]) if "spike_times" in units_group \
                else 0
            trials = _read_trials(h5)
            behavior = []
            for path, group in _behavior_groups(h5):
                data = group["data"]
                behavior.append({"name": path.rsplit("/", 1)[-1], "path": path,
                                 "shape": tuple(data.shape),
                                 "unit": _attr_str(data, "unit"),
                                 "rate": _series_rate(group)})
            return {"metadata": _read_metadata(h5), "source": info.as_dict(), "units": units,
                    "n_spikes": n_spikes, "trials": trials,
                    "intervals": [t for t in interval_tables(h5) if t["name"] != "trials"],
                    "behavior": behavior}
        except SourceError:
            raise
        except Exception as err:
            raise _unreadable(where, err) from None


def _unreadable(where: str, err: Exception) -> SourceError:
    """One sentence for a file that h5py opened but whose content is not readable NWB."""
    if isinstance(err, OSError | KeyError | RuntimeError):
        # h5py raises these when a dataset's bytes are missing or corrupt (truncated file).
        return SourceError(f"{where} could not be read ({err}); the file is truncated or "
                           f"damaged, download it again")
    # Anything else: a table or column laid out other than NWB specifies (e.g. a ragged column
    # without its _index). Name it rather than show a traceback.
    return SourceError(f"{where} is not laid out as NWB expects ({type(err).__name__}: {err}); "
                       f"check the file with nwbinspector or pynwb")


# ---------------------------------------------------------------------------------- reading
def _read_open_file(h5: h5py.File, source: dict, where: str, behavior,
                    intervals: str | None = None) -> Session:
    _check_nwb(h5, where)
    trials = _read_trials(h5) if intervals is None else _read_intervals(h5, intervals, where)
    if intervals is not None:
        source = {**source, "trials_table": intervals}
    units_group = _find_units(h5, where)
    units, ragged = _read_units_table(h5, units_group, spikes=True)
    if not len(units):
        raise SourceError(f"{where} has a units table without any unit; nwb_jedi needs sorted "
                          f"spikes of at least one unit (run `nwb-jedi info` to see what the "
                          f"file holds)")
    spike_times = ragged.pop("spike_times")
    spike_times = [_sorted(s) for s in _finite_spikes(
        [np.asarray(s, dtype=np.float64) for s in spike_times], units["id"].to_numpy(), where)]
    obs = ragged.get("obs_intervals")
    resolution = None
    if "spike_times" in units_group:
        resolution = _attr_float(units_group["spike_times"], "resolution")
    if resolution is None:
        resolution = _attr_float(units_group, "resolution")
    if resolution is not None and resolution <= 0:  # NWB writes -1 for "unknown"
        resolution = None
    series = {}
    if behavior is not False:
        wanted = None if behavior is True else set(behavior)
        for path, group in _behavior_groups(h5):
            name = path.rsplit("/", 1)[-1]
            if wanted is not None and name not in wanted:
                continue
            key = name if name not in series else path.strip("/").replace("/", ".")
            series[key] = _read_series(group, path, name)
    return Session(
        unit_ids=units["id"].to_numpy(),
        spike_times=spike_times,
        units=units,
        obs_intervals=obs,
        trials=trials,
        behavior=series,
        metadata=_read_metadata(h5),
        source=source,
        time_resolution=resolution,
    )


def _check_nwb(h5: h5py.File, where: str) -> None:
    attrs = h5.attrs
    if "nwb_version" in attrs or _attr_str(h5, "neurodata_type") == "NWBFile":
        return
    if "nwb_version" in h5 or "identifier" in h5 and "session_start_time" in h5:
        return  # NWB 1.x-era or unusual writers: let the table checks decide
    raise SourceError(f"{where} is an HDF5 file but not an NWB file (no nwb_version); give an "
                      f"NWB file")


def _find_units(h5: h5py.File, where: str) -> h5py.Group:
    if "units" in h5 and isinstance(h5["units"], h5py.Group):
        return h5["units"]
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _attr_str(obj, "neurodata_type") == "Units":
            found.append(obj)
    if "processing" in h5:
        h5["processing"].visititems(visit)
    if found:
        return found[0]
    raise SourceError(f"{where} has no units table: nwb_jedi needs sorted spikes in /units "
                      f"(spike_times per unit); run `nwb-jedi info` on it to see what it holds")


def _read_units_table(h5, group: h5py.Group, spikes: bool):
    """Units metadata as a DataFrame, plus the ragged columns (spike_times, obs_intervals)."""
    ids = np.asarray(group["id"][()]) if "id" in group else None
    n = len(ids) if ids is not None else 0
    colnames = _colnames(group)
    table: dict[str, Any] = {"id": ids}
    ragged: dict[str, list] = {}
    for name in colnames:
        if name not in group or name.startswith("waveform"):
            continue
        if name == "spike_times":
            if spikes:
                ragged["spike_times"] = _read_column(group, name, n)
            continue
        if name == "obs_intervals":
            if spikes:
                ragged["obs_intervals"] = [np.asarray(v, dtype=float).reshape(-1, 2)
                                           for v in _read_column(group, name, n)]
            continue
        dtype = _attr_str(group[name], "neurodata_type")
        if dtype == "DynamicTableRegion" and name == "electrodes":
            table.update(_electrode_columns(h5, group, n))
            continue
        values = _read_column(group, name, n)
        if isinstance(values, list) or values.ndim > 1:  # per-unit arrays: not scalar metadata
            continue
        table[name] = _to_python_column(values)
    if spikes and "spike_times" not in ragged:
        ragged["spike_times"] = [np.empty(0)] * n
    return pd.DataFrame(table), ragged


def _electrode_columns(h5, group, n) -> dict[str, list]:
    """Per-unit electrode location (brain area) and group name, from the electrodes table."""
    region = group["electrodes"]
    try:
        table = h5[region.attrs["table"]]
    except (KeyError, ValueError):
        return {}
    rows = _read_column(group, "electrodes", n)
    rows = [np.atleast_1d(r) for r in rows] if isinstance(rows, list) else \
        [np.atleast_1d(r) for r in np.asarray(rows)]
    out = {}
    for col in ("location", "group_name"):
        if col not in table:
            continue
        values = _decode(np.asarray(table[col][()]))
        if values.ndim != 1:
            continue
        per_unit = []
        for r in rows:
            picked = sorted({str(values[int(i)]) for i in r if 0 <= int(i) < len(values)})
            per_unit.append("/".join(picked) if picked else None)
        out[col if col not in ("group_name",) else "electrode_group"] = per_unit
    return out


def interval_tables(h5: h5py.File) -> list[dict[str, Any]]:
    """Every table under ``/intervals`` (trials, epochs, invalid_times, any TimeIntervals):
    ``name``, ``n_rows`` and ``columns``, in the file's order."""
    group = h5.get("intervals")
    if not isinstance(group, h5py.Group):
        return []
    tables = []
    for name, table in group.items():
        if isinstance(table, h5py.Group) and isinstance(table.get("id"), h5py.Dataset):
            columns = _colnames(table) or [k for k in table if k != "id"
                                           and not k.endswith("_index")]
            tables.append({"name": name, "n_rows": int(table["id"].shape[0]),
                           "columns": columns})
    return tables


def _read_intervals(h5: h5py.File, name: str, where: str) -> pd.DataFrame:
    """The interval table `name` of ``/intervals``, read like the trials table."""
    group = h5.get("intervals")
    table = group.get(name) if isinstance(group, h5py.Group) else None
    if not isinstance(table, h5py.Group) or "id" not in table:
        names = [t["name"] for t in interval_tables(h5)]
        raise SourceError(f"{where} has no interval table {name!r} under /intervals (it has: "
                          f"{', '.join(names) or 'none'}); `nwb-jedi info` lists them")
    return _read_table_group(table)


def _read_trials(h5) -> pd.DataFrame:
    """The trials table, every column; empty DataFrame when the file has none."""
    group = None
    if "intervals" in h5 and "trials" in h5["intervals"]:
        group = h5["intervals"]["trials"]
    elif "trials" in h5 and isinstance(h5["trials"], h5py.Group):
        group = h5["trials"]
    if group is None or "id" not in group:
        return pd.DataFrame()
    return _read_table_group(group)


def _read_table_group(group: h5py.Group) -> pd.DataFrame:
    """A DynamicTable as a DataFrame indexed by its ids (``id``), every column."""
    ids = np.asarray(group["id"][()])
    n = len(ids)
    columns: dict[str, Any] = {}
    names = _colnames(group) or [k for k in group if k != "id" and not k.endswith("_index")]
    for name in names:
        if name not in group or not isinstance(group[name], h5py.Dataset):
            continue
        values = _read_column(group, name, n)
        if isinstance(values, list):
            columns[name] = values
        elif isinstance(values, np.ndarray) and values.ndim > 1:
            columns[name] = list(values)
        else:
            columns[name] = _to_python_column(values)
    df = pd.DataFrame(columns, index=pd.Index(ids, name="id"))
    return df


def _read_column(group: h5py.Group, name: str, n: int):
    """A DynamicTable column: ndarray (n, ...) or, when indexed, a list of n arrays.

    Handles double indexing (``name_index_index``), object references (-> object names) and
    byte strings (-> str).
    """
    data = group[name]
    values = data[()]
    if isinstance(values, np.ndarray) and values.dtype == object and len(values) and \
            isinstance(values.flat[0], h5py.Reference):
        values = np.array([_ref_name(group.file, r) for r in values.ravel()],
                          dtype=object).reshape(values.shape)
    values = _decode(np.asarray(values))
    if values.dtype.names:  # compound columns (e.g. TimeSeriesReference: start, count, series)
        values = _compound_to_objects(group.file, values)
    index_name = f"{name}_index"
    if index_name not in group:
        return values
    ends = np.asarray(group[index_name][()], dtype=np.int64)
    parts = _split_ragged(values, ends)
    if f"{index_name}_index" in group:
        outer = np.asarray(group[f"{index_name}_index"][()], dtype=np.int64)
        parts = [parts[a:b] for a, b in zip(np.r_[0, outer[:-1]], outer, strict=True)]
    return parts


def _compound_to_objects(f: h5py.File, values: np.ndarray) -> np.ndarray:
    """Compound rows as tuples, with object references replaced by the objects' names."""
    out = np.empty(values.shape, dtype=object)
    for i, row in enumerate(values.ravel()):
        out.flat[i] = tuple(_ref_name(f, v) if isinstance(v, h5py.Reference) else
                            (v.decode() if isinstance(v, bytes) else
                             v.item() if isinstance(v, np.generic) else v) for v in row)
    return out


def _split_ragged(values: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    if not len(ends):
        return []  # a table without rows
    starts = np.r_[0, ends[:-1]]
    return [values[a:b] for a, b in zip(starts, ends, strict=True)]


def _behavior_groups(h5):
    """(path, group) of every TimeSeries-like group under /processing that is behavior."""
    if "processing" not in h5:
        return []
    out = []
    # A fitted model's module (nwb_jedi's own, any name) holds its rates, not behavior.
    models = set(find_modules(h5))

    def visit(name, obj):
        if not isinstance(obj, h5py.Group) or "data" not in obj:
            return
        if not isinstance(obj["data"], h5py.Dataset):
            return
        if "timestamps" not in obj and "starting_time" not in obj:
            return
        top = name.split("/", 1)[0]
        ntype = _attr_str(obj, "neurodata_type")
        if top in _NOT_BEHAVIOR_MODULES or top in models or ntype in _NOT_BEHAVIOR:
            return
        data = obj["data"]
        if data.ndim > 2 or data.dtype.kind not in "iufb":
            return
        out.append((f"/processing/{name}", obj))
    h5["processing"].visititems(visit)
    return out


def _read_series(group: h5py.Group, path: str, name: str) -> BehaviorSeries:
    data_ds = group["data"]
    conversion = _attr_float(data_ds, "conversion")
    conversion = 1.0 if conversion is None else conversion
    offset = _attr_float(data_ds, "offset") or 0.0
    data = np.asarray(data_ds[()], dtype=np.float64)
    if conversion != 1.0:
        data *= conversion
    if offset != 0.0:
        data += offset
    if "timestamps" in group:
        timestamps = np.asarray(group["timestamps"][()], dtype=np.float64)
    else:
        start = group["starting_time"]
        rate = _attr_float(start, "rate")
        if not rate:
            raise SourceError(f"behavior series {path} has starting_time but no rate; the file "
                              f"does not follow the NWB TimeSeries layout")
        timestamps = float(start[()]) + np.arange(data.shape[0]) / rate
    return BehaviorSeries(name=name, data=data, timestamps=timestamps,
                          unit=_attr_str(data_ds, "unit"), path=path)


def _series_rate(group: h5py.Group) -> float | None:
    if "starting_time" in group:
        rate = _attr_float(group["starting_time"], "rate")
        return rate if rate and rate > 0 else None
    ts = group["timestamps"]
    if ts.shape[0] < 2:
        return None
    head = np.asarray(ts[: min(ts.shape[0], 1000)], dtype=float)
    step = float(np.median(np.diff(head)))
    return 1.0 / step if step > 0 else None


def _read_metadata(h5) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in ("identifier", "session_description", "session_start_time"):
        if key in h5:
            meta[key] = _scalar(h5[key])
    meta["nwb_version"] = _attr_str(h5, "nwb_version") or None
    general = h5.get("general")
    if isinstance(general, h5py.Group):
        for key in ("session_id", "institution", "lab", "experimenter", "experiment_description",
                    "related_publications", "keywords", "protocol", "notes"):
            if key in general and isinstance(general[key], h5py.Dataset):
                meta[key] = _scalar(general[key])
        subject = general.get("subject")
        if isinstance(subject, h5py.Group):
            meta["subject"] = {k: _scalar(v) for k, v in subject.items()
                               if isinstance(v, h5py.Dataset)}
    return meta


# ---------------------------------------------------------------------------------- helpers
def _colnames(group) -> list[str]:
    raw = group.attrs.get("colnames")
    if raw is None:
        return []
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(raw)]


def _decode(values: np.ndarray) -> np.ndarray:
    """Byte strings (fixed-length or variable-length) to str."""
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8", errors="replace").astype(object)
    if values.dtype == object and values.size and isinstance(values.flat[0], bytes):
        return np.array([v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v
                         for v in values.ravel()], dtype=object).reshape(values.shape)
    return values


def _to_python_column(values: np.ndarray):
    if values.dtype == object:
        return list(values)
    return values


def _scalar(ds: h5py.Dataset):
    value = ds[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        value = _decode(value)
        return [v.item() if isinstance(v, np.generic) else v for v in value.ravel()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _ref_name(f: h5py.File, ref) -> str | None:
    try:
        return f[ref].name.rsplit("/", 1)[-1]
    except (KeyError, ValueError):
        return None


def _attr_str(obj, key: str) -> str:
    value = obj.attrs.get(key)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
        return value.decode() if isinstance(value, bytes) else str(value)
    return str(value)


def _attr_float(obj, key: str) -> float | None:
    value = obj.attrs.get(key)
    if value is None:
        return None
    try:
        value = float(np.asarray(value).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None


def _finite_spikes(spike_times: list[np.ndarray], unit_ids: np.ndarray,
                   where: str) -> list[np.ndarray]:
    """Spike times without NaN or infinite values, warning (by unit) when there were any.

    Such values are damage in the file: NaN would look like a window outside the recording and
    inf would stretch the recording span and zero every unit's rate.
    """
    bad = {}
    for u, spikes in enumerate(spike_times):
        finite = np.isfinite(spikes)
        if not finite.all():
            bad[u] = int((~finite).sum())
            spike_times[u] = spikes[finite]
    if bad:
        shown = ", ".join(f"unit {unit_ids[u]} ({n})" for u, n in list(bad.items())[:5])
        more = f" and {len(bad) - 5} more units" if len(bad) > 5 else ""
        warnings.warn(f"{where}: dropped {sum(bad.values())} spike times that are NaN or "
                      f"infinite ({shown}{more}); the file's spike_times are damaged, check it "
                      f"with nwbinspector", UserWarning, stacklevel=4)
    return spike_times


def _sorted(spikes: np.ndarray) -> np.ndarray:
    spikes = np.asarray(spikes, dtype=np.float64)
    if len(spikes) > 1 and np.any(spikes[1:] < spikes[:-1]):
        spikes = np.sort(spikes)
    return spikes
