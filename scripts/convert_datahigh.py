"""Convert the DataHigh / Yu et al. (2009) PMd reaching data into the NWB file nwb_jedi ships.

Usage::

    python scripts/convert_datahigh.py [SOURCE_DIR] [OUTPUT.nwb]

SOURCE_DIR (default /work/shared/data/datahigh_yu2009) holds ex1_spikecounts.mat and
ex2_rawspiketrains.mat from github.com/BenjoCowley/DataHigh (data/). The output (default
nwb_jedi/datasets/data/yu2009_pmd_reaching.nwb) holds:

- units: 61 PMd units. A spike in 1 ms bin i of a trial becomes the time
  ``trial start + (i + 0.5) ms``, so 1 ms bins aligned on the trial start give back the source
  arrays exactly; obs_intervals = the recorded trial windows (nothing between them was recorded).
- trials: ex1 (7 targets x 30 trials, 400 ms of the delay period starting 100 ms after target
  onset) then ex2 (2 targets x 56 whole trials, variable length), laid out one after another on
  one synthetic timeline with gaps. The true absolute times are not in the source.

The .mat files are read with ``scipy.io.loadmat(squeeze_me=True, struct_as_record=False)``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/data/datahigh_yu2009")
DEFAULT_OUTPUT = REPO / "nwb_jedi" / "datasets" / "data" / "yu2009_pmd_reaching.nwb"

EX1_SPACING = 2.0  # s between ex1 trial starts on the synthetic timeline
EX2_SPACING = 3.0  # s between ex2 trial starts (ex2 trials last up to ~1.6 s)
FIRST_START = 1.0
EX1_TARGET_LEAD = 0.1  # ex1 windows start 100 ms after target onset (DataHigh ex1_dimreduce.m)

CITATION = (
    "Yu BM, Cunningham JP, Santhanam G, Ryu SI, Shenoy KV, Sahani M (2009) Gaussian-process "
    "factor analysis for low-dimensional single-trial analysis of neural population activity. "
    "J Neurophysiol 102:614-635. Cowley BR, Kaufman MT, Butler ZS, Churchland MM, Ryu SI, "
    "Shenoy KV, Yu BM (2013) DataHigh: graphical user interface for visualizing and interacting "
    "with high-dimensional neural activity. J Neural Eng 10:066012."
)
LICENCE = (
    "The data files come from the DataHigh code pack (github.com/BenjoCowley/DataHigh, data/, "
    "commit 2b25dbc5ee844395eb4eaff72adef710e3473f7f), a repository licensed GNU GPL v3; no "
    "separate data licence is stated, so this file is GPL-3.0 repository content: keep the "
    "attribution and do not relabel it under another licence."
)
DESCRIPTION = (
    "Real spiking data from dorsal premotor cortex (PMd) of a rhesus macaque (Utah array, 61 "
    "sorted/multi units; Shenoy lab, Stanford) during delayed center-out reaching, as "
    "distributed with DataHigh (Cowley et al. 2013; recordings of Yu et al. 2009). Converted "
    "by nwb_jedi scripts/convert_datahigh.py from ex1_spikecounts.mat (7 reach targets x 30 "
    "trials, 400 ms of the delay period starting 100 ms after target onset; subset "
    "'ex1_delay') and ex2_rawspiketrains.mat (2 reach targets x 56 whole trials of 1018-1526 "
    "ms, from target onset through the movement per the published description; subset "
    "'ex2_whole'). The source holds 1 ms spike-count arrays per trial with no absolute times: "
    "trials are laid out one after another on a synthetic timeline with gaps, a spike in 1 ms "
    "bin i is placed at trial start + (i + 0.5) ms, and obs_intervals cover only the recorded "
    "trial windows. Whether ex2's reach1/reach2 are the same targets as any of ex1's "
    "reach1..reach7 is not known. No behavior (hand kinematics) is included in the source. "
    f"Licence: {LICENCE} Cite: {CITATION}"
)


def load_source(source_dir: Path):
    """The ex1 and ex2 trial structs as lists of (condition, uint8 array units x ms)."""
    out = {}
    for key, name in (("ex1", "ex1_spikecounts.mat"), ("ex2", "ex2_rawspiketrains.mat")):
        mat = scipy.io.loadmat(source_dir / name, squeeze_me=True, struct_as_record=False)
        out[key] = [(str(d.condition), np.asarray(d.data)) for d in np.atleast_1d(mat["D"])]
    return out


def build_tables(source):
    """Trials DataFrame, per-unit spike times and the recorded windows."""
    rows = []
    spikes_per_unit = None
    t = FIRST_START
    for subset, spacing, key in (("ex1_delay", EX1_SPACING, "ex1"),
                                 ("ex2_whole", EX2_SPACING, "ex2")):
        for index, (condition, counts) in enumerate(source[key]):
            n_units, n_ms = counts.shape
            if spikes_per_unit is None:
                spikes_per_unit = [[] for _ in range(n_units)]
            start = round(t, 3)
            for u in range(n_units):
                bins = np.flatnonzero(counts[u])
                times = start + (np.repeat(bins, counts[u, bins].astype(np.int64)) + 0.5) * 1e-3
                spikes_per_unit[u].append(times)
            target_on = start - EX1_TARGET_LEAD if subset == "ex1_delay" else start
            rows.append({"start_time": start, "stop_time": round(start + n_ms * 1e-3, 3),
                         "reach_target": condition, "subset": subset,
                         "target_on_time": round(target_on, 3),
                         "source_trial_index": index, "n_ms": n_ms})
            t += spacing
        t += spacing  # a longer gap between the two subsets
    trials = pd.DataFrame(rows)
    spike_times = [np.sort(np.concatenate(parts)) for parts in spikes_per_unit]
    windows = trials[["start_time", "stop_time"]].to_numpy()
    return trials, spike_times, windows


TRIAL_DESCRIPTIONS = {
    "start_time": "start of the recorded window (s) on a synthetic timeline: the source stores "
                  "no absolute times, so trials are placed one after another with gaps",
    "stop_time": "end of the recorded window (s); start_time + the window length in the source",
    "reach_target": "reach target label from the source (reach1..reach7 in ex1_delay, "
                    "reach1..reach2 in ex2_whole); whether the two subsets' labels name the "
                    "same targets is not known",
    "subset": "ex1_delay: 400 ms of the delay period starting 100 ms after target onset "
              "(ex1_spikecounts.mat); ex2_whole: whole trials from target onset through the "
              "movement (ex2_rawspiketrains.mat; alignment as published, not stored in the "
              "file)",
    "target_on_time": "target onset (s): start_time - 0.1 s for ex1_delay (the window starts "
                      "100 ms after target onset, per DataHigh's ex1_dimreduce.m); start_time "
                      "for ex2_whole (trials start at target onset per Yu et al. 2009 / "
                      "DataHigh; not stored in the source file itself)",
    "source_trial_index": "0-based index of the trial in the source .mat struct array D",
    "n_ms": "number of 1 ms bins of the trial in the source",
}


def write_nwb(trials, spike_times, windows, output: Path, source_dir: Path) -> Path:
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.misc import Units

    from nwb_jedi.io.layouts import add_trials_table

    digests = {name: hashlib.sha256((source_dir / name).read_bytes()).hexdigest()
               for name in ("ex1_spikecounts.mat", "ex2_rawspiketrains.mat")}
    nwb = NWBFile(
        session_description=DESCRIPTION,
        identifier="datahigh-yu2009-pmd-reaching",
        session_start_time=datetime(2009, 1, 1, tzinfo=timezone.utc),
        session_id="yu2009_pmd_reaching",
        experiment_description="Delayed center-out reaching; PMd Utah array recordings used "
                               "in Yu et al. (2009) and distributed with DataHigh.",
        lab="Shenoy lab", institution="Stanford University",
        related_publications=["doi:10.1152/jn.90941.2008", "doi:10.1088/1741-2560/10/6/066012"],
        keywords=["PMd", "reaching", "Utah array", "macaque", "GPFA", "DataHigh"],
        notes=f"Converted from DataHigh data/ files (sha256 {digests}). The session start time "
              f"is a placeholder: the recording date is not in the source. {LICENCE}",
    )
    nwb.subject = Subject(subject_id="unknown (Yu et al. 2009 monkey)",
                          species="Macaca mulatta", description="rhesus macaque; which of the "
                          "paper's monkeys is not stated in the DataHigh files")
    device = nwb.create_device(name="Utah array", description="96-electrode Utah array",
                               manufacturer="Blackrock Microsystems")
    nwb.create_electrode_group(name="PMd array", description="Utah array in PMd",
                               location="PMd", device=device)
    units = Units(name="units", resolution=0.001,
                  description="61 PMd units (sorted single and multi units) as in the DataHigh "
                              "files; spike times are the centers of 1 ms bins (see the file "
                              "description)")
    nwb.units = units
    units.add_column("location", "brain area (PMd); the electrode of each unit is not given "
                                 "in the source")
    for u, times in enumerate(spike_times):
        units.add_unit(spike_times=times, obs_intervals=windows, location="PMd", id=u)
    units["spike_times"].target.set_data_io(H5DataIO, {"compression": "gzip",
                                                       "compression_opts": 9, "shuffle": True})
    units["obs_intervals"].target.set_data_io(H5DataIO, {"compression": "gzip",
                                                         "compression_opts": 9,
                                                         "shuffle": True})
    add_trials_table(nwb, trials, TRIAL_DESCRIPTIONS, compression=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".tmp-{uuid.uuid4().hex}-{output.name}")
    try:
        with NWBHDF5IO(os.fspath(tmp), "w") as io:
            io.write(nwb)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return output


def main(argv: list[str]) -> int:
    source_dir = Path(argv[0]) if argv else DEFAULT_SOURCE
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    source = load_source(source_dir)
    trials, spike_times, windows = build_tables(source)
    write_nwb(trials, spike_times, windows, output, source_dir)
    n_spikes = sum(len(s) for s in spike_times)
    print(f"wrote {output} ({output.stat().st_size / 1e3:.0f} kB): {len(spike_times)} units, "
          f"{n_spikes} spikes, {len(trials)} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
