"""Write NWB files in the layouts of the public monkey reaching sets (DESIGN appendix A).

- `write_mc_maze_layout`: the NLB MC_Maze layout (DANDI 000128 family): units with 1 ms
  ``spike_times``, ``obs_intervals``, ``heldout`` and electrodes on two Utah arrays (PMd, M1);
  the NLB trials table; bare ``hand_pos``/``cursor_pos``/``eye_pos`` SpatialSeries and a
  ``hand_vel`` TimeSeries at 1 kHz with timestamps under ``processing/behavior``, stored in mm
  with conversion 1e-3.
- `write_perich_layout`: the Perich/Miller center-out layout (DANDI 000688):
  ``processing/behavior/Position/cursor_pos``, ``Velocity/cursor_vel``,
  ``Acceleration/cursor_acc``; trials with ``target_on_time``, ``go_cue_time``, ``target_id``,
  ``result``.
- `simulate_reaching`: plausible synthetic spikes (condition-dependent, cosine-tuned rates on a
  1 ms grid), a trials table and hand kinematics, for tests, benchmarks and ``nwb-jedi simulate``.

Files are written to a temporary name and renamed, so a crash never leaves a half file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from nwb_jedi.errors import UserError
from nwb_jedi.io.nwbfile import (
    add_trials,
    add_units,
    compressed,
    generated_by,
    new_nwbfile,
    save_nwbfile,
)

MC_MAZE_TRIAL_COLUMNS = {
    "move_onset_time": "time of movement onset (s)",
    "go_cue_time": "time of the go cue (s)",
    "target_on_time": "time the targets appeared (s)",
    "rt": "reaction time (ms)",
    "delay": "delay period duration (ms)",
    "trial_type": "maze identity (condition)",
    "trial_version": "0: one target no barrier, 1: one target with barriers, 2: three targets "
                     "with barriers",
    "maze_id": "maze id",
    "num_targets": "number of targets",
    "active_target": "index of the reached target",
    "target_pos": "x, y of each target (mm, int16)",
    "num_barriers": "number of barriers",
    "barrier_pos": "x, y, half-width, half-height of each barrier",
    "success": "whether the trial was rewarded",
    "split": "NLB data split: train/val/test/none",
}


@dataclass
class SyntheticReaching:
    """Output of `simulate_reaching`: everything a layout writer needs."""

    spike_times: list[np.ndarray]
    trials: pd.DataFrame
    behavior: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (timestamps, data in mm)
    heldout: np.ndarray
    locations: list[str]
    duration: float


def simulate_reaching(n_units: int = 40, n_trials: int = 60, n_conditions: int = 6,
                      mean_rate_hz: float = 8.0, trial_duration: tuple[float, float] = (1.4, 1.8),
                      gap: float = 0.2, behavior_rate: float = 1000.0, heldout_fraction=0.25,
                      seed: int = 0) -> SyntheticReaching:
    """Plausible synthetic reaching data with condition-dependent rates.

    Condition c is a reach direction ``2*pi*c/n_conditions``; conditions are spread over
    ``trial_type`` (maze) and ``trial_version`` (0..2) in the MC_Maze trials table. Each unit
    has a log-normal baseline rate and a cosine tuning to the reach direction that peaks ~100 ms
    after movement onset. Spikes are drawn by thinning a homogeneous Poisson process and put on
    a 1 ms grid (one spike per unit and ms), as in the NLB files.

    Returns
    -------
    SyntheticReaching
    """
    rng = np.random.default_rng(seed)
    durations = rng.uniform(*trial_duration, size=n_trials)
    starts = np.round(0.5 + np.r_[0, np.cumsum(durations + gap)[:-1]], 3)
    stops = np.round(starts + durations, 3)
    total = float(stops[-1] + 0.5)
    condition = rng.permutation(np.arange(n_trials) % n_conditions)
    target_on = np.round(starts + 0.2, 3)
    delay = np.round(rng.uniform(0.3, 0.6, size=n_trials), 3)
    go_cue = np.round(target_on + delay, 3)
    rt = np.round(rng.uniform(0.25, 0.4, size=n_trials), 3)
    move = np.round(go_cue + rt, 3)
    move = np.minimum(move, stops - 0.5)
    angle = 2 * np.pi * condition / n_conditions

    base = rng.lognormal(np.log(mean_rate_hz) - 0.5, 0.8, size=n_units)
    depth = rng.uniform(0.3, 0.9, size=n_units)
    pref = rng.uniform(0, 2 * np.pi, size=n_units)
    spike_times = []
    for u in range(n_units):
        peak = base[u] * (1 + depth[u])
        n_cand = rng.poisson(peak * total)
        t = np.sort(rng.uniform(0, total, size=n_cand))
        k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, n_trials - 1)
        rel = t - move[k]
        bump = np.exp(-0.5 * ((rel - 0.1) / 0.15) ** 2)
        rate = base[u] * (1 + depth[u] * bump * np.cos(angle[k] - pref[u]))
        keep = rng.uniform(0, peak, size=n_cand) < rate
        spike_times.append(np.unique(np.round(t[keep], 3)))

    trial_type = condition // 3 + 1 if n_conditions > 3 else np.ones(n_trials, dtype=int)
    trial_version = condition % 3 if n_conditions > 3 else condition % n_conditions
    num_targets = np.where(trial_version == 2, 3, 1)
    target_pos = [np.round(np.c_[np.cos(a + np.arange(n) * 2.0), np.sin(a + np.arange(n) * 2.0)]
                           * 100).astype(np.int16) for a, n in zip(angle, num_targets,
                                                                     strict=True)]
    trials = pd.DataFrame({
        "start_time": starts, "stop_time": stops, "move_onset_time": move,
        "go_cue_time": go_cue, "target_on_time": target_on,
        "rt": np.round(rt * 1000), "delay": np.round(delay * 1000),
        "trial_type": trial_type.astype(np.int64), "trial_version": trial_version.astype(np.int64),
        "maze_id": (trial_type * 10 + trial_version).astype(np.int64),
        "num_targets": num_targets.astype(np.int64), "active_target": np.zeros(n_trials, np.int64),
        "target_pos": target_pos,
        "num_barriers": np.where(trial_version > 0, 2, 0).astype(np.int64),
        "barrier_pos": [np.zeros((2 if v > 0 else 0, 4), dtype=np.int16) for v in trial_version],
        "success": rng.uniform(size=n_trials) > 0.05,
        "split": rng.choice(["train", "train", "train", "val", "test"], size=n_trials),
    })

    # Hand: at rest at the center, then a minimum-jerk-like reach of 80 mm toward the target.
    ts = np.round(np.arange(0, total, 1.0 / behavior_rate), 6)
    k = np.clip(np.searchsorted(starts, ts, side="right") - 1, 0, n_trials - 1)
    phase = np.clip((ts - move[k]) / 0.35, 0, 1)
    s = 10 * phase**3 - 15 * phase**4 + 6 * phase**5
    ds = (30 * phase**2 - 60 * phase**3 + 30 * phase**4) / 0.35
    direction = np.c_[np.cos(angle[k]), np.sin(angle[k])]
    hand_pos = 80 * s[:, None] * direction
    hand_vel = 80 * ds[:, None] * direction
    eye_pos = hand_pos * 0.8 + rng.normal(0, 1, size=hand_pos.shape)
    behavior = {"hand_pos": (ts, hand_pos), "hand_vel": (ts, hand_vel),
                "cursor_pos": (ts, hand_pos.copy()), "eye_pos": (ts, eye_pos)}
    heldout = np.zeros(n_units, dtype=bool)
    heldout[rng.permutation(n_units)[: int(round(heldout_fraction * n_units))]] = True
    locations = ["PMd" if u < n_units // 2 else "M1" for u in range(n_units)]
    return SyntheticReaching(spike_times, trials, behavior, heldout, locations, total)


# ---------------------------------------------------------------------------------- writers
def write_mc_maze_layout(path: str | os.PathLike, spike_times: list[np.ndarray],
                         trials: pd.DataFrame,
                         behavior: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                         heldout: np.ndarray | None = None, locations: list[str] | None = None,
                         obs_intervals: list[np.ndarray] | None = None,
                         session_id: str = "synthetic-mc-maze",
                         description: str = "Simulated data in the NLB MC_Maze layout "
                                            "(nwb_jedi.io.layouts).",
                         compression: bool = True,
                         timeseries: dict[str, tuple] | None = None,
                         experimenter: list[str] | str | None = None,
                         overwrite: bool = True) -> str:
    """Write spikes, trials and behavior as an NWB file in the NLB MC_Maze layout.

    Parameters
    ----------
    path : str or path
        Output file; written to a temporary name first, then renamed.
    spike_times : list of N arrays
        Spike times (s); stored at 1 ms resolution.
    trials : DataFrame
        ``start_time``, ``stop_time`` and any other columns (the MC_Maze ones get their NLB
        descriptions); columns holding arrays per row become ragged columns.
    behavior : dict name -> (timestamps (T,), data (T, D) in mm or mm/s), optional
        Written as bare series under ``processing/behavior`` with conversion 1e-3:
        ``hand_vel`` as a TimeSeries, the others as SpatialSeries. All series sharing the
        first series' timestamps link to them, as in the NLB files.
    heldout : bool array (N,), optional
    locations : list of N str, optional
        Brain area of each unit's electrode (default: first half PMd, second half M1).
    obs_intervals : list of N (n, 2) arrays, optional
        Default: one interval from 0 to the end of the last trial, for every unit.
    timeseries : dict name -> (timestamps (T,), data (T, D), unit, description), optional
        More series for ``processing/behavior``, written as plain TimeSeries in their own
        unit (conversion 1), e.g. a simulated teacher's task output.
    experimenter : list of str, optional
        Who simulated the data, as "Last, First" (default: none; never a program's name).

    The file says plainly that it is simulated: the session description starts with
    "Simulated data", the subject is `SIMULATED_SUBJECT` (no species claimed as recorded),
    ``keywords`` holds "simulated data" and ``data_collection`` `SIMULATED_NOTE`. It passes
    ``dandi validate``.
    overwrite : bool
        Replace an existing file; with False a file at `path` is never replaced, even one
        that appeared while this one was being built (FileExistsError).

    Returns
    -------
    str
        The path written.
    """
    from pynwb.base import TimeSeries
    from pynwb.behavior import SpatialSeries

    n_units = len(spike_times)
    locations = locations or ["PMd" if u < n_units // 2 else "M1" for u in range(n_units)]
    nwb = _new_file(session_id, description, experimenter)
    _add_arrays_and_units(nwb, spike_times, trials, heldout, locations, obs_intervals)
    add_trials_table(nwb, trials, MC_MAZE_TRIAL_COLUMNS)
    if behavior:
        module = nwb.create_processing_module("behavior", "Behavioral data, 1 kHz")
        shared, shared_ts = None, None
        for name, (ts, data) in behavior.items():
            data = compressed(np.asarray(data, dtype=np.float64), compression)
            kw = dict(name=name, data=data, conversion=1e-3,
                      description=f"{name} (stored in mm, conversion 1e-3 to meters)")
            ts = np.asarray(ts, dtype=np.float64)
            if shared is not None and np.array_equal(ts, shared_ts):
                kw["timestamps"] = shared
            else:
                kw["timestamps"] = compressed(ts, compression)
            if name.endswith("_vel"):
                series = TimeSeries(unit="m/s", **kw)
            else:
                series = SpatialSeries(reference_frame="screen center", unit="meters", **kw)
            if shared is None:
                shared, shared_ts = series, ts
            module.add(series)
    if timeseries:
        module = nwb.processing.get("behavior") or nwb.create_processing_module(
            "behavior", "Behavioral data")
        for name, (ts, data, unit, text) in timeseries.items():
            module.add(TimeSeries(name=name, data=compressed(np.asarray(data, np.float64),
                                                             compression),
                                  timestamps=compressed(np.asarray(ts, np.float64),
                                                        compression),
                                  unit=unit, description=text))
    return save_nwbfile(nwb, path, overwrite=overwrite)


def write_perich_layout(path: str | os.PathLike, spike_times: list[np.ndarray],
                        trials: pd.DataFrame,
                        cursor: tuple[float, np.ndarray] | None = None,
                        rate: float = 100.0, locations: list[str] | None = None,
                        session_id: str = "synthetic-perich-center-out",
                        description: str = "Simulated data in the Perich/Miller center-out "
                                           "layout (nwb_jedi.io.layouts).",
                        experimenter: list[str] | str | None = None) -> str:
    """Write spikes, trials and cursor kinematics in the Perich center-out layout (DANDI 000688).

    Parameters
    ----------
    trials : DataFrame
        ``start_time``, ``stop_time``, ``target_on_time``, ``go_cue_time``, ``target_id``,
        ``result`` ('R' rewarded, 'A' aborted, 'F' failed, 'I' incomplete) and any others.
    cursor : (starting_time, positions (T, 2) in cm), optional
        Cursor position sampled at `rate` Hz; velocity and acceleration are its derivatives.
        Written as ``Position/cursor_pos``, ``Velocity/cursor_vel`` and
        ``Acceleration/cursor_acc`` with ``starting_time`` + ``rate`` (no timestamps) and
        conversion 0.01 (cm -> m).
    """
    from pynwb.base import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position, SpatialSeries

    n_units = len(spike_times)
    locations = locations or ["M1"] * n_units
    nwb = _new_file(session_id, description, experimenter)
    _add_arrays_and_units(nwb, spike_times, trials, None, locations, None)
    add_trials_table(nwb, trials, {
        "target_on_time": "time the target appeared (s)", "go_cue_time": "go cue time (s)",
        "target_id": "index of the outer target (condition)",
        "result": "R rewarded, A aborted, F failed, I incomplete"})
    if cursor is not None:
        start, pos = cursor
        pos = np.asarray(pos, dtype=np.float64)
        vel = np.gradient(pos, 1.0 / rate, axis=0)
        acc = np.gradient(vel, 1.0 / rate, axis=0)
        module = nwb.create_processing_module("behavior", "cursor kinematics")
        module.add(Position(spatial_series=SpatialSeries(
            name="cursor_pos", data=pos, starting_time=float(start), rate=rate,
            conversion=0.01, reference_frame="center target", unit="meters",
            description="cursor position (cm, conversion 0.01)")))
        velocity = BehavioralTimeSeries(name="Velocity")
        velocity.add_timeseries(TimeSeries(name="cursor_vel", data=vel, starting_time=float(start),
                                           rate=rate, conversion=0.01, unit="m/s",
                                           description="cursor velocity (cm/s)"))
        module.add(velocity)
        acceleration = BehavioralTimeSeries(name="Acceleration")
        acceleration.add_timeseries(TimeSeries(name="cursor_acc", data=acc,
                                               starting_time=float(start), rate=rate,
                                               conversion=0.01, unit="m/s^2",
                                               description="cursor acceleration (cm/s^2)"))
        module.add(acceleration)
    return save_nwbfile(nwb, path)


# ---------------------------------------------------------------------------------- pieces
def _new_file(session_id: str, description: str, experimenter: list[str] | None = None):
    return new_nwbfile(session_description=_say_simulated(description),
                       session_start_time=datetime.now(timezone.utc).replace(microsecond=0),
                       session_id=session_id, experimenter=check_experimenter(experimenter),
                       keywords=["simulated data"], data_collection=SIMULATED_NOTE,
                       subject=dict(SIMULATED_SUBJECT), **generated_by())


#: The subject of every simulated file: no animal is claimed. The species is NCBI Taxonomy's
#: "synthetic construct" (taxon 32630, for things made, not sampled from an organism), which
#: DANDI accepts as a taxon IRI; the age is P0D by convention (a simulated network has none;
#: the description says so) because DANDI requires an age or a date of birth.
SIMULATED_SUBJECT = {
    "subject_id": "simulated",
    "species": "http://purl.obolibrary.org/obo/NCBITaxon_32630",
    "sex": "U",
    "age": "P0D",
    "description": "Simulated data: no animal was recorded. The subject is the model that "
                   "generated the spikes; its species is NCBI Taxonomy's 'synthetic construct' "
                   "and its age P0D only because DANDI requires one.",
}
SIMULATED_NOTE = ("Simulated with nwb_jedi: no animal was recorded, no experiment was done. The "
                  "session start time is when the file was written.")
#: DANDI's form of a person's name ("Last, First"; nwbinspector's check_experimenter_form).
EXPERIMENTER_FORM = re.compile(r"[\w\s\-\.']+,\s+[\w\s\-\.']+")


def _say_simulated(description: str) -> str:
    return description if description.lower().startswith("simulated") else \
        f"Simulated data (no animal was recorded). {description}"


def check_experimenter(names: list[str] | str | None) -> list[str] | None:
    """`names` as a list of "Last, First" names (None when empty); UserError otherwise."""
    if not names:
        return None
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if not EXPERIMENTER_FORM.fullmatch(str(n).strip())]
    if bad:
        raise UserError(f"experimenter {bad[0]!r} is not a person's name in DANDI's form; "
                        f"write 'Last, First' (e.g. 'Doe, Jane')")
    return [str(n).strip() for n in names]


def _add_arrays_and_units(nwb, spike_times, trials, heldout, locations, obs_intervals):
    areas = list(dict.fromkeys(locations))
    groups = {}
    for area in areas:
        # Named as in the layout copied; described as what they are (nothing was recorded).
        device = nwb.create_device(name=f"Utah array {area}",
                                   description="simulated: the 96-channel Utah array of the "
                                               "copied layout; no device recorded these data")
        groups[area] = nwb.create_electrode_group(name=f"{area} array",
                                                  description="simulated electrodes",
                                                  location=area, device=device)
    for area in locations:
        nwb.add_electrode(group=groups[area], location=area)
    if obs_intervals is None and len(trials):
        end = float(np.nanmax(trials["stop_time"].to_numpy(dtype=float))) + 0.5
        obs_intervals = [np.array([[0.0, end]])] * len(spike_times)
    # Unit u was recorded on electrode u; spike times on the files' 1 ms grid.
    add_units(nwb, [np.round(np.asarray(s, dtype=np.float64), 3) for s in spike_times],
              obs_intervals=obs_intervals, electrodes=[[u] for u in range(len(spike_times))],
              resolution=0.001,
              columns=None if heldout is None else {
                  "heldout": (np.asarray(heldout, dtype=bool), "held-out neuron (NLB)")})


def add_trials_table(nwb, trials: pd.DataFrame, descriptions: dict[str, str],
                     compression: bool = False) -> None:
    """Set ``nwb.trials`` from a DataFrame, column by column (fast for thousands of trials).

    Columns whose cells are arrays become ragged (VectorData + VectorIndex); `descriptions`
    maps column names to their descriptions (default: the name). See
    `nwb_jedi.io.nwbfile.add_trials`, which this calls.
    """
    add_trials(nwb, trials, descriptions=descriptions, compression=compression)
