"""A hand-built `Session` whose binned counts are known exactly (shared by the data tests)."""

import numpy as np
import pandas as pd

from nwb_jedi.data.session import BehaviorSeries, Session


def make_session(n_trials=12, obs=True):
    """Trials every 2 s, event at start + 1 s; unit 0 fires exactly at event + 0, +10, +20 ms."""
    start = np.arange(n_trials) * 2.0 + 1.0
    event = start + 1.0
    spikes0 = np.sort(np.concatenate([event, event + 0.010, event + 0.020]))
    spikes1 = np.sort(np.concatenate([event - 0.050] * 2))  # two spikes at the same time
    spikes2 = np.array([0.5, 30.0])  # a very low-rate unit
    trials = pd.DataFrame({
        "start_time": start, "stop_time": start + 1.8, "go_time": event,
        "target": ["a", "b", "c"] * (n_trials // 3),
        "angle": np.linspace(0, 350, n_trials),
        "success": [True] * (n_trials - 2) + [False, False],
        "split": ["train", "val", "test", "none"] * (n_trials // 4),
    }, index=pd.Index(np.arange(100, 100 + n_trials), name="id"))
    units = pd.DataFrame({"id": [7, 8, 9], "heldout": [False, True, False],
                          "location": ["M1", "PMd", "M1"]})
    ts = np.arange(0, start[-1] + 3, 0.001)
    beh = {"hand_pos": BehaviorSeries("hand_pos", np.c_[ts, -ts], ts, "meters",
                                      "/processing/behavior/hand_pos")}
    obs_intervals = [np.array([[0.0, 100.0]])] * 3 if obs else None
    return Session(unit_ids=np.array([7, 8, 9]), spike_times=[spikes0, spikes1, spikes2],
                   units=units, obs_intervals=obs_intervals, trials=trials, behavior=beh,
                   metadata={"session_id": "s1"})
