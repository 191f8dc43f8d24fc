"""Building blocks of every NWB file the package writes: one way to make a new file, add a
units table and a trials table, compress, and write atomically.

Used by `nwb_jedi.io.write` (derived files holding a fitted model) and `nwb_jedi.io.layouts`
(files in the layouts of public datasets). Tables are built from whole columns (flat data plus
an index for ragged columns), never row by row: adding units one at a time makes hdmf check
every spike time on its own (15 s for 2.6 M spikes; whole columns take well under a second).
"""

from __future__ import annotations

import os
import shlex
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from nwb_jedi._files import atomic_output
from nwb_jedi.errors import UserError

__all__ = ["new_nwbfile", "add_units", "add_trials", "column_data", "ragged_column",
           "compressed", "write_nwb", "save_nwbfile", "generated_by", "MIN_COMPRESSED_SIZE"]

# Arrays with fewer values than this are stored uncompressed: compressing them costs more
# (filter metadata, chunk lookups) than it saves.
MIN_COMPRESSED_SIZE = 1024

# Default column descriptions: pynwb's own (Units.__columns__, TimeIntervals.__columns__),
# spelled out so that importing this module does not import pynwb.
_UNITS_DESCRIPTIONS = {
    "spike_times": "the spike times for each unit in seconds",
    "obs_intervals": "the observation intervals for each unit",
    "electrodes": "the electrodes that each spike unit came from",
}
_TRIALS_DESCRIPTIONS = {
    "start_time": "Start time of epoch, in seconds",
    "stop_time": "Stop time of epoch, in seconds",
}


def new_nwbfile(*, session_description: str, session_start_time: datetime,
                identifier: str | None = None, subject: Mapping[str, Any] | None = None,
                **fields: Any):
    """A new, empty NWBFile.

    Parameters
    ----------
    session_description : str
    session_start_time : datetime
        Timezone-aware.
    identifier : str, optional
        Default: a new UUID (every file gets its own identifier).
    subject : mapping, optional
        Keyword arguments of `pynwb.file.Subject` (``subject_id``, ``species``, ``sex``...).
    **fields
        Other NWBFile arguments (``session_id``, ``lab``, ``experimenter``...); None values
        are left out.

    Returns
    -------
    pynwb.NWBFile
    """
    from pynwb import NWBFile
    from pynwb.file import Subject

    kwargs = {"session_description": session_description,
              "identifier": identifier or str(uuid.uuid4()),
              "session_start_time": session_start_time, **fields}
    nwbfile = NWBFile(**{k: v for k, v in kwargs.items() if v is not None})
    if subject:
        nwbfile.subject = Subject(**subject)
    return nwbfile


def generated_by() -> dict[str, Any]:
    """NWBFile fields saying what wrote the file: ``was_generated_by`` (software name and
    version, NWB 2.7) and ``source_script`` (the command line of this process) with its file
    name. Every file the package makes carries them, besides the model's own attributes."""
    from nwb_jedi._version import __version__

    argv = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
            *sys.argv[1:]]
    return {"was_generated_by": [["nwb_jedi", __version__]],
            "source_script": shlex.join(argv),
            "source_script_file_name": argv[0]}


def add_units(nwbfile, spike_times: Sequence[np.ndarray], *,
              ids: Sequence[int] | np.ndarray | None = None,
              obs_intervals: Sequence[np.ndarray] | None = None,
              electrodes: Sequence[Sequence[int]] | None = None,
              resolution: float | None = None,
              columns: Mapping[str, tuple[Any, str]] | None = None,
              descriptions: Mapping[str, str] | None = None,
              description: str = "sorted units") -> None:
    """Set ``nwbfile.units`` from whole columns.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
    spike_times : sequence of N arrays
        Spike times (s) of each unit, stored exactly as given.
    ids : N ints, optional
        Unit ids (default 0..N-1).
    obs_intervals : sequence of N (n, 2) arrays, optional
        Observation intervals (s) of each unit.
    electrodes : sequence of N lists of int, optional
        Rows of ``nwbfile.electrodes`` each unit was recorded on (add the electrodes first).
    resolution : float, optional
        Resolution of the spike times (s).
    columns : mapping name -> (N values, description), optional
        Further columns (e.g. ``heldout``), after the standard ones, in the mapping's order.
    descriptions : mapping, optional
        Descriptions of the standard columns (``spike_times``, ``obs_intervals``,
        ``electrodes``); default pynwb's.
    description : str
        Description of the table.
    """
    from hdmf.common import DynamicTableRegion, VectorData
    from pynwb.misc import Units

    describe = {**_UNITS_DESCRIPTIONS, **(descriptions or {})}
    table = [*ragged_column("spike_times", describe["spike_times"],
                            [np.asarray(s, dtype=np.float64) for s in spike_times])]
    if obs_intervals is not None:
        table += ragged_column("obs_intervals", describe["obs_intervals"],
                               [np.asarray(i, dtype=np.float64).reshape(-1, 2)
                                for i in obs_intervals])
    if electrodes is not None:
        table += ragged_column("electrodes", describe["electrodes"],
                               [np.asarray(e, dtype=np.int64) for e in electrodes],
                               column=lambda **kw: DynamicTableRegion(
                                   table=nwbfile.electrodes, **kw))
    for name, (values, text) in (columns or {}).items():
        table.append(VectorData(name=name, description=text, data=values))
    n_units = len(spike_times)
    nwbfile.units = Units(name="units", description=description, columns=table,
                          id=np.arange(n_units) if ids is None else ids,
                          resolution=float(resolution) if resolution else None)


def add_trials(nwbfile, trials: pd.DataFrame, *, descriptions: Mapping[str, str] | None = None,
               default_description: str = "{name}",
               ids: Sequence[int] | np.ndarray | None = None,
               description: str = "experimental trials", compression: bool = False,
               skip_unstorable: bool = False) -> list[str]:
    """Set ``nwbfile.trials`` from a DataFrame, column by column (fast for thousands of trials).

    Columns whose cells are all arrays (or lists) of numbers with one shape past the first axis
    become ragged columns (VectorData + VectorIndex); numbers and booleans are stored as such,
    anything else as text.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
    trials : DataFrame
        ``start_time``, ``stop_time`` and any other columns, one row per trial.
    descriptions : mapping, optional
        Column name -> description.
    default_description : str
        Description of the other columns, formatted with ``name`` (``start_time`` and
        ``stop_time`` get pynwb's).
    ids : K ints, optional
        Trial ids (default 0..K-1).
    description : str
        Description of the table.
    compression : bool
        Compress the numeric columns (those of at least `MIN_COMPRESSED_SIZE` values).
    skip_unstorable : bool
        Leave out columns that cannot be stored faithfully (ragged columns of text or of
        mixed shapes, cells mixing arrays and scalars, a column named ``id``) instead of
        raising.

    Returns
    -------
    list of str
        The columns left out (only with `skip_unstorable`).

    Raises
    ------
    UserError
        A column cannot be stored faithfully and `skip_unstorable` is False.
    """
    from pynwb.epoch import TimeIntervals

    describe = {**_TRIALS_DESCRIPTIONS, **(descriptions or {})}
    columns, skipped = [], []
    for name in trials.columns:
        text = describe.get(name) or default_description.format(name=name)
        column = _trials_column(str(name), text, trials[name], compression)
        if column is None:
            if not skip_unstorable:
                raise UserError(f"the trials column {name!r} cannot be stored in NWB (its cells "
                                f"mix arrays of different kinds, or it is named 'id'); convert "
                                f"or drop it first")
            skipped.append(str(name))
            continue
        columns.extend(column)
    nwbfile.trials = TimeIntervals(name="trials", description=description, columns=columns,
                                   id=np.arange(len(trials)) if ids is None else ids)
    return skipped


def _trials_column(name: str, description: str, values: pd.Series,
                   compression: bool) -> list | None:
    """The VectorData (and VectorIndex) of one trials column; None if it cannot be stored."""
    from hdmf.common import VectorData

    if name == "id":  # the table's own ids, never a column
        return None
    cells = list(values)
    if cells and all(isinstance(v, np.ndarray | list) for v in cells):
        arrays = [np.asarray(v) for v in cells]
        if not all(a.dtype.kind in "biuf" for a in arrays) or \
                len({a.shape[1:] for a in arrays}) != 1:
            return None  # ragged columns of mixed content cannot be stored faithfully
        return ragged_column(name, description, arrays, compression=compression)
    data = column_data(values)
    if isinstance(data, list):
        if any(isinstance(v, np.ndarray | list | dict) for v in cells):
            return None
        return [VectorData(name=name, description=description, data=data)]
    return [VectorData(name=name, description=description, data=compressed(data, compression))]


def column_data(values: pd.Series) -> np.ndarray | list[str]:
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


def ragged_column(name: str, description: str, arrays: Sequence[np.ndarray], *,
                  compression: bool = False, column=None) -> list:
    """A ragged column as [data column, VectorIndex], built from whole arrays.

    Parameters
    ----------
    name, description : str
    arrays : sequence of arrays
        One per row, concatenated along their first axis.
    compression : bool
        Compress the flat data (see `compressed`).
    column : callable, optional
        Makes the data column from ``name``, ``description`` and ``data`` keywords (default
        `hdmf.common.VectorData`; e.g. a DynamicTableRegion for references to another table).
    """
    from hdmf.common import VectorData, VectorIndex

    flat = np.concatenate(arrays) if len(arrays) else np.zeros(0)
    data = (column or VectorData)(name=name, description=description,
                                  data=compressed(flat, compression))
    ends = np.cumsum([len(a) for a in arrays]).astype(np.int64)
    return [data, VectorIndex(name=f"{name}_index", target=data, data=ends)]


def compressed(data, enabled: bool = True):
    """`data` wrapped for gzip compression (level 4, with shuffle), the package's one setting;
    returned as is when `enabled` is False or it has fewer than `MIN_COMPRESSED_SIZE` values."""
    if not enabled or np.size(data) < MIN_COMPRESSED_SIZE:
        return data
    from hdmf.backends.hdf5 import H5DataIO

    return H5DataIO(data, compression="gzip", compression_opts=4, shuffle=True)


def write_nwb(nwbfile, path: str | os.PathLike) -> None:
    """Write `nwbfile` to `path` as is (not atomic: write to a temporary path, or use
    `save_nwbfile`)."""
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(os.fspath(path), "w") as io:
        io.write(nwbfile)  # cache_spec=True by default: the file carries its extensions' spec


def save_nwbfile(nwbfile, path: str | os.PathLike, *, overwrite: bool = True) -> str:
    """Write `nwbfile` to `path` atomically: to a temporary file next to it, then renamed, so a
    crash never leaves a half-written file under the real name.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
    path : str or path
        The file to write; its directory is created if needed.
    overwrite : bool
        Replace an existing file. With False, a file that appears at `path` meanwhile is never
        replaced (FileExistsError).

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path, overwrite=overwrite) as tmp:
        write_nwb(nwbfile, tmp)
    return path
