"""One consistent CLI (issue 14): results worse than a trivial baseline are said, help shows
every default and the trade-offs, --threads, --append, --intervals, `nwb-jedi datasets`,
simulate's one-line progress, and `dir(nwb_jedi)`."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from tests.cli.runner import TINY, run_cli
from tests.io.recordings import write_recording

ALM = ["--condition-by", "type", "--align", "cue_start_time", "--align-reference", "start_time",
       "--window=-0.5,1", "--trial-filter", "response == 'correct'", "--rank", "1"]


def test_a_flat_fit_of_real_data_is_said_in_the_summary_show_and_python(dandi_000006,
                                                                         tmp_path, capsys):
    """The real DANDI:000006 ALM unit, correct trials: with `--patience 20` (the package
    defaults otherwise), one of seeds 0-5 (seed 5) still ends with a model worse than the
    null (a one-neuron RNN relaxes monotonically and cannot make the unit's transient), and
    every place says so."""
    from nwb_jedi.errors import FitQualityWarning
    from nwb_jedi.io.load import load_dataset, load_model
    from nwb_jedi.model.results import compute_results

    out = tmp_path / "alm.nwb"
    rc, stdout, err = run_cli(["fit", str(dandi_000006), *ALM, "--seed", "5", "--patience",
                               "20", "--out", str(out), "--quiet"], capsys)
    assert rc == 0, err
    assert re.search(r"held-out trials: bits/spike -?\d\.\d{3} \(smoothed PSTH of the "
                     r"training trials: \d\.\d{3}\)", stdout)
    warned = [line.removeprefix("nwb-jedi: warning: ") for line in err.splitlines()]
    assert warned[0].startswith("a population model of 1 neuron (fewer than 10)")
    assert warned[1].startswith("held-out (test) bits/spike ")
    assert "is no better than each neuron's mean rate (<= 0)" in warned[1]
    assert "below the smoothed PSTH of the training trials" in warned[1]
    assert "likely cause: the fit stopped learning at epoch" in warned[1]
    assert "try a smaller --lr" in warned[1]
    rc, shown, _ = run_cli(["show", str(out)], capsys)
    assert rc == 0
    assert shown.splitlines()[-2:] == [f"warning: {line}" for line in warned]
    with pytest.warns(FitQualityWarning) as caught:
        compute_results(load_model(out), load_dataset(out))
    assert [str(w.message) for w in caught] == warned
    # A sound fit of the same data says nothing more than the population warning.
    rc, _, err = run_cli(["fit", str(dandi_000006), *ALM, "--patience", "20", "--out",
                          str(tmp_path / "fine.nwb"), "--quiet"], capsys)
    assert rc == 0 and len(err.strip().splitlines()) == 1 and "population model" in err


def test_fit_help_shows_every_default_and_the_trade_offs(capsys):
    from nwb_jedi.cli import build_parser

    parser = build_parser("fit")
    fit = parser._subparsers._group_actions[0].choices["fit"]
    undocumented = [action.option_strings[0] for action in fit._actions
                    if action.option_strings and action.help != "==SUPPRESS=="
                    and action.option_strings[0] != "-h"
                    and "default" not in (action.help or "")]
    assert undocumented == []
    text = fit.format_help()
    text = " ".join(text.split())
    for words in ("higher lets each condition's dynamics be richer but needs more data",
                  "room to tell conditions apart", "how nonlinear the map from embedding",
                  "narrower bins resolve faster dynamics but hold fewer spikes each",
                  "a budget; the fit stops earlier when the validation loss stops improving",
                  "run on one thread on purpose"):
        assert words in text, words


def test_threads_are_set_and_kept_for_small_steps():
    import torch

    from nwb_jedi._runtime import set_threads, threads_for_step_size

    before = torch.get_num_threads()
    try:
        set_threads(None)
        torch.set_num_threads(2)
        with threads_for_step_size(10):
            assert torch.get_num_threads() == 1  # small steps: one thread, on purpose
        set_threads(2)
        with threads_for_step_size(10):
            assert torch.get_num_threads() == 2  # the user's choice wins
        with pytest.raises(ValueError):
            set_threads(0)
    finally:
        set_threads(None)
        torch.set_num_threads(before)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writing_over_the_source_names_append(mc_maze_nwb, tmp_path, capsys):
    import shutil

    from nwb_jedi.io.load import load_model
    from nwb_jedi.io.read import read_session

    source = tmp_path / "session.nwb"
    shutil.copyfile(mc_maze_nwb, source)
    before = _sha(source)
    base = ["fit", str(source), "--preset", "mc_maze", *TINY, "--quiet"]
    rc, _, err = run_cli([*base, "--out", str(source), "--overwrite"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "is the SOURCE file, which is never overwritten" in err and "--append" in err
    assert "append=True" not in err and _sha(source) == before
    # --append writes the source's content plus the model into a copy at --out.
    copy = tmp_path / "session_with_jedi.nwb"
    rc, _, err = run_cli([*base, "--append", "--out", str(copy)], capsys)
    assert rc == 0, err
    assert _sha(source) == before
    assert load_model(copy).unit_id_.size == 18
    original, appended = read_session(source), read_session(copy)
    assert appended.n_units == original.n_units == 24  # the whole source, not only the model's
    np.testing.assert_array_equal(appended.spike_times[3], original.spike_times[3])
    rc, _, err = run_cli(["fit", "DANDI:000128/0.220113.0400", "--append", "--preset",
                          "mc_maze", "--quiet"], capsys)
    assert rc == 2 and "--append adds the results to a local NWB file" in err


def test_datasets_prints_the_embedded_datas_path(capsys):
    from nwb_jedi import datasets

    rc, out, _ = run_cli(["datasets"], capsys)
    assert rc == 0
    assert out.startswith(f"yu2009: {datasets.reaching_path()}\n")
    assert "--preset yu2009" in out and "GPL-3.0" in out
    rc, out, _ = run_cli(["datasets", "--path"], capsys)
    assert rc == 0 and out == datasets.reaching_path() + "\n"


@pytest.fixture(scope="module")
def epochs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("epochs") / "blocks.nwb"
    return write_recording(path, session_id="e1", subject_id="m", unit_ids=range(12),
                           locations=["CA1"] * 12, trials_table="epochs")


def test_info_lists_other_interval_tables_and_fit_uses_one(epochs_file, tmp_path, capsys):
    from nwb_jedi.errors import SourceError
    from nwb_jedi.io.load import load_dataset, read_summary
    from nwb_jedi.io.read import read_session

    rc, out, err = run_cli(["info", str(epochs_file)], capsys)
    assert rc == 0, err  # no longer a dead end
    assert "trials:       none (no intervals/trials table)" in out
    assert "intervals:    1 other table(s); use one as the trials with --intervals NAME" in out
    assert re.search(r"\n  epochs +36 rows  start_time, stop_time, stim, cue_time, block", out)
    assert "--intervals epochs --condition-by COLS" in out
    out_file = tmp_path / "fit.nwb"
    rc, _, err = run_cli(["fit", str(epochs_file), "--intervals", "epochs", "--condition-by",
                          "stim", "--align", "cue_time", "--window", "-0.2,0.6", *TINY,
                          "--out", str(out_file)], capsys)
    assert rc == 0, err
    assert "trials: the interval table 'epochs' (--intervals)" in err
    ds = load_dataset(out_file)
    assert ds.n_trials == 36 and ds.n_conditions == 3
    assert read_summary(out_file)["dataset_metadata"]["source"]["trials_table"] == "epochs"
    with pytest.raises(SourceError, match="no interval table 'blocks' under /intervals "
                                          r"\(it has: epochs\)"):
        read_session(epochs_file, intervals="blocks")


def test_simulate_shows_one_progress_line_and_says_why_mc_maze_fits(tmp_path, capsys):
    from nwb_jedi.cli import build_parser

    rc, out, err = run_cli(["simulate", "--tasks", "sine", "--units", "8",
                            "--trials-per-condition", "2", "--teacher-iters", "120",
                            "--cache-dir", str(tmp_path / "cache"), "--out",
                            str(tmp_path / "sim.nwb")], capsys)
    assert rc == 0, err
    assert "teacher iter" not in err  # the 37 lines of losses are gone
    # One terminal line, redrawn in place (carriage returns, no newlines), ending on the loss.
    bars = [line for line in err.split("\n") if "teacher RNN (stops at loss <" in line]
    assert len(bars) == 1
    assert re.search(r"\d+/120 .*loss \d\.\d{4}\]$", bars[0].rstrip()), bars
    simulate = build_parser("simulate")._subparsers._group_actions[0].choices["simulate"]
    text = " ".join(simulate.format_help().split())
    assert "Why `nwb-jedi fit FILE --preset mc_maze` fits the file like a recording" in text
    assert "move_onset_time, sits 0.25 s after each trial's start" in text


def test_dir_lists_the_public_names():
    import nwb_jedi

    names = dir(nwb_jedi)
    for name in ("JEDI", "ConditionMapper", "read_session", "write_results", "load_model",
                 "load_dataset", "TrialDataset", "analysis", "datasets", "__version__"):
        assert name in names, name


def test_the_packages_warnings_print_as_one_line_from_the_real_cli(tmp_path):
    """A DandiMetadataWarning (no subject age in the embedded data) reaches a user of the real
    entry point as the CLI's one warning line, without Python's file:line and source line."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "nwb_jedi", "fit", "--out",
                           str(tmp_path / "fit.nwb"), "--quiet", *TINY],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert any(line.startswith("nwb-jedi: warning: the source session's subject has no age")
               for line in lines), lines
    assert not any("DandiMetadataWarning:" in line or line.lstrip().startswith("write_results(")
                   for line in lines), lines


def test_other_libraries_warnings_keep_pythons_form():
    from nwb_jedi.cli import _one_line_warning
    from nwb_jedi.io.dandi_metadata import DandiMetadataWarning

    ours = _one_line_warning(DandiMetadataWarning("no age\x1b[2J"), DandiMetadataWarning,
                             "x.py", 3)
    assert ours == "nwb-jedi: warning: no age\\x1b[2J\n"
    theirs = _one_line_warning(UserWarning("careful"), UserWarning, "lib.py", 7, "")
    assert theirs.startswith("lib.py:7: UserWarning: careful")
