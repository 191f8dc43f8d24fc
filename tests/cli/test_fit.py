"""`nwb-jedi fit`: real fits on tiny settings, and one line + exit 2 for every documented error."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from nwb_jedi.cli import COMMANDS
from tests.cli.runner import TINY, run_cli


def test_fit_without_source_writes_the_nwb_file(tmp_path, capsys):
    from nwb_jedi.io.load import load_dataset, load_model

    out = tmp_path / "jedi_fit.nwb"
    rc, stdout, _ = run_cli(["fit", *TINY, "--out", str(out), "--quiet"], capsys)
    assert rc == 0
    assert "7 conditions, 61 neurons in 3 epochs" in stdout
    assert "conditions: reach1, reach2" in stdout
    assert "held-out trials: bits/spike" in stdout and f"wrote {out}" in stdout
    model = load_model(out)
    assert model.n_epochs_ == 3 and len(model.conditions_) == 7
    assert load_dataset(out).n_units == 61


def test_the_same_command_gives_the_same_model(tmp_path, capsys):
    from nwb_jedi.io.load import load_model

    states = []
    for name in ("a.nwb", "b.nwb"):
        rc, _, _ = run_cli(["fit", *TINY, "--out", str(tmp_path / name), "--quiet"], capsys)
        assert rc == 0
        states.append(load_model(tmp_path / name).get_state()[1])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert np.array_equal(states[0][key], states[1][key]), key
    rc, _, _ = run_cli(["fit", *TINY, "--seed", "1", "--out", str(tmp_path / "c.nwb"),
                        "--quiet"], capsys)
    other = load_model(tmp_path / "c.nwb").get_state()[1]
    assert not np.array_equal(other["embeddings"], states[0]["embeddings"])


def test_fit_real_dandi_000006_with_event_times_relative_to_trial_start(tmp_path, capsys):
    """The real DANDI:000006 file stores cue times relative to each trial's start: the error
    says which flag fixes it, and with that flag the fit works."""
    from pathlib import Path

    real = Path(__file__).resolve().parents[1] / "data" / "sub-anm369963_ses-20170228.nwb"
    base = ["fit", str(real), "--condition-by", "type", "--align", "cue_start_time",
            "--window=-0.5,1", "--rank", "1", *TINY, "--quiet"]
    rc, _, err = run_cli([*base, "--out", str(tmp_path / "a.nwb")], capsys)
    assert rc == 2 and "--align-reference start_time" in err
    rc, stdout, err = run_cli([*base, "--align-reference", "start_time", "--out",
                               str(tmp_path / "b.nwb")], capsys)
    assert rc == 0, err
    assert "2 conditions, 1 neuron in" in stdout and "lick left, lick right" in stdout


def test_fit_mc_maze_layout_with_preset_and_override(mc_maze_nwb, tmp_path, capsys):
    from nwb_jedi.io.load import load_dataset

    out = tmp_path / "maze.nwb"
    # The preset fills condition columns, alignment and filters; the explicit (negative,
    # space-separated) window overrides the preset's.
    rc, stdout, err = run_cli(["fit", str(mc_maze_nwb), "--preset", "mc_maze", "--window",
                               "-0.2,0.4", *TINY, "--out", str(out), "--quiet",
                               "--plots", str(tmp_path / "figures")], capsys)
    assert rc == 0, err
    # --quiet: no progress, no mapper report; only warnings about the result (a 3-epoch fit)
    assert all(line.startswith("nwb-jedi: warning: ") for line in err.splitlines()), err
    ds = load_dataset(out)
    assert ds.n_bins == 30 and ds.n_conditions == 6
    assert ds.n_units == 18  # 24 units, 6 heldout dropped by the preset
    assert "6 conditions, 18 neurons" in stdout
    for name in ("embeddings", "eigenvalues", "training", "psth"):
        png = (tmp_path / "figures" / f"{name}.png").read_bytes()
        assert png[:4] == b"\x89PNG" and len(png) > 10_000


@pytest.mark.parametrize("args,message", [
    (["{maze}"], "say how trials map to conditions: give --condition-by, --align, --window"),
    (["--window", "abc"], "--window must be START,STOP"),
    (["--window", "0.1,0.55"], "not a whole number of 20 ms bins"),
    (["--window", "0.5,0.1"], "--window stop must be after start"),
    (["--window", "nan,1"], "--window must be two finite numbers of seconds"),
    (["--bin-ms", "0"], "--bin-ms must be positive"),
    (["--out", "{existing}"], "already exists; pass --overwrite"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--condition-by", "nope"], "condition column(s) ['nope'] not in the trials table"),
    (["--align", "nope"], "alignment column 'nope' is not in the trials table"),
    (["--trial-filter", "success =="], "could not be evaluated"),
    (["--resume"], "--resume needs --checkpoint DIR"),
    (["/no/such/session.nwb", "--preset", "mc_maze"], "no such file: /no/such/session.nwb"),
    (["--rank", "500"], "rank 500 exceeds the number of neurons (61)"),
    (["--device", "tpu"], "device must be 'auto', 'cpu' or 'cuda'"),
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
    (["--plots", "{existing}"], "is a file; give a directory"),
    (["--min-rate", "-3"], "--min-rate must be >= 0 Hz"),
    (["--patience", "0"], "--patience must be a positive integer"),
    (["--out", "{tmp}"], "is a directory; give a file name"),
    (["--out", "/no/such/dir/fit.nwb"], "the directory of --out (/no/such/dir) does not exist"),
    (["--out", "{existing}/fit.nwb"], "existing.nwb) is a file, not a directory; choose "
                                      "another --out"),
    (["--out", ""], "--out is empty; give a file name"),
    (["--tau-ms", "5"], "tau (5 ms) must be at least the bin width (20 ms)"),
    (["--hidden", "100000000"], "lower --hidden (now 100000000), --rank or --embed-dim"),
    (["--trial-filter", "start_time < 4"], "2 trials are too few to fit and score a model "
                                           "(train 1, validation 1, test 0); keep more trials"),
    (["--condition-by", "source_trial_index", "--trial-filter", "source_trial_index < 10"],
     "no condition has the 3 trials it needs to hold one out for testing"),
])
def test_user_errors_print_one_line_and_exit_2(args, message, mc_maze_nwb, tmp_path, capsys):
    existing = tmp_path / "existing.nwb"
    existing.write_bytes(b"keep me")
    args = [a.format(maze=mc_maze_nwb, existing=existing, tmp=tmp_path) for a in args]
    out_args = [] if "--out" in args else ["--out", str(tmp_path / "new.nwb")]
    rc, _, err = run_cli(["fit", *args, *out_args, "--quiet", "--epochs", "1"], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nwb-jedi") and message in lines[0]
    assert "Traceback" not in err
    assert existing.read_bytes() == b"keep me"  # nothing lost
    assert not (tmp_path / "new.nwb").exists()


def test_real_process_fit_progress_is_not_flooding_a_log(tmp_path):
    """A real `python -m nwb_jedi fit`: stderr is a pipe (like a log file), so the progress bar
    redraws rarely instead of every epoch; the output file is written."""
    out = tmp_path / "fit.nwb"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TQDM_MININTERVAL", None)
    proc = subprocess.run([sys.executable, "-m", "nwb_jedi", "fit", "--epochs", "25",
                           "--patience", "100", "--hidden", "16", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "25 epochs" in proc.stdout
    assert "JEDI fit" in proc.stderr  # progress is shown...
    assert proc.stderr.count("JEDI fit") <= 4  # ...but not once per epoch


def test_real_process_user_error_has_no_traceback(tmp_path):
    # In a directory of its own: a jedi_fit.nwb in the caller's directory must not matter.
    proc = subprocess.run([sys.executable, "-m", "nwb_jedi", "fit", str(tmp_path / "x.nwb"),
                           "--preset", "mc_maze"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"nwb-jedi: error: no such file: {tmp_path / 'x.nwb'}; give a local .nwb path, a DANDI "
        f"id such as DANDI:000128/0.220113.0400, or a dandiarchive.org URL"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_subcommand_shows_an_example(command, capsys):
    rc, stdout, _ = run_cli([command, "--help"], capsys)
    assert rc == 0
    assert "examples:" in stdout
    example = stdout.split("examples:")[1]
    assert f"nwb-jedi {command}" in example


def test_help_shows_the_estimators_own_defaults(capsys):
    import re

    from nwb_jedi.commands._options import MODEL_OPTIONS
    from nwb_jedi.model.jedi import JEDI

    rc, stdout, _ = run_cli(["fit", "--help"], capsys)
    assert rc == 0
    text = " ".join(stdout.split())
    defaults = JEDI.default_params()
    for flag, (name, _kind, factor, metavar, _help) in MODEL_OPTIONS.items():
        shown = re.search(rf"{flag} {metavar} .*?\(default ([^)]+)\)", text)
        assert shown, flag
        assert float(shown.group(1)) == pytest.approx(defaults[name] / factor), flag


def test_every_hyperparameter_flag_reaches_the_estimator(tmp_path, capsys):
    from nwb_jedi.io.load import load_model

    out = tmp_path / "fit.nwb"
    rc, _, err = run_cli(["fit", "--epochs", "1", "--hidden", "16", "--embed-dim", "4",
                          "--rank", "3", "--tau-ms", "80", "--lr", "0.005", "--embed-lr", "0.02",
                          "--noise", "0", "--batch-size", "32", "--weight-decay", "1e-4",
                          "--trial-embeddings", "--trial-penalty", "0.1", "--patience", "7",
                          "--seed", "3", "--observation", "poisson", "--device", "cpu",
                          "--out", str(out), "--quiet"], capsys)
    assert rc == 0, err
    params = load_model(out).get_params()
    expected = dict(max_epochs=1, hidden=16, embed_dim=4, rank=3, tau=0.08, lr=0.005,
                    embed_lr=0.02, noise_std=0.0, batch_size=32, weight_decay=1e-4,
                    trial_embeddings=True, trial_penalty=0.1, patience=7, seed=3)
    for name, value in expected.items():
        assert params[name] == pytest.approx(value), name
