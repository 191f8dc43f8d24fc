"""`nwb-jedi fit --decode SERIES` decodes behavior from the fitted rates next to smoothed
spikes; `nwb-jedi fit --nlb FILE` writes a Neural Latents Benchmark submission of an
MC_Maze-layout file and scores it as nlb_tools does; MC_Maze-family files get NLB's PSTH R²."""

from __future__ import annotations

import re
import shutil

import h5py
import numpy as np
import pytest

from tests.cli.runner import TINY, run_cli


def _summary_metrics(path):
    from nwb_jedi.io.load import read_summary

    table = read_summary(path)["metrics"]
    return {(m, s): v for m, s, v in zip(table["metric"], table["split"], table["value"],
                                          strict=True)}


@pytest.fixture(scope="module")
def nlb_fit(mc_maze_nwb, tmp_path_factory):
    """One `fit --nlb --decode hand_vel` of the MC_Maze-layout file (20 ms bins: mc_maze_20)."""
    from nwb_jedi.cli import main

    root = tmp_path_factory.mktemp("nlb")
    out, submission = root / "fit.nwb", root / "submission.h5"
    argv = ["fit", str(mc_maze_nwb), "--preset", "mc_maze", *TINY, "--device", "cpu",
            "--nlb", str(submission), "--nlb-dataset", "mc_maze", "--decode", "hand_vel",
            "--out", str(out), "--quiet"]
    return argv, out, submission, main


def test_nlb_submission_layout_and_local_evaluation(nlb_fit, mc_maze_nwb, mc_maze_sim, capsys):
    from nwb_jedi.data import nlb
    from nwb_jedi.io.nlb import read_submission
    from nwb_jedi.io.read import read_session
    from nwb_jedi.metrics import nlb_evaluate

    argv, out, submission, main = nlb_fit
    assert main(argv) == 0
    printed = capsys.readouterr().out
    groups = read_submission(submission)
    assert list(groups) == ["mc_maze_20"]
    arrays = groups["mc_maze_20"]
    trials = mc_maze_sim.trials
    n_train, n_eval = int((trials["split"] == "train").sum()), int((trials["split"] == "val"
                                                                    ).sum())
    n_out = int(mc_maze_sim.heldout.sum())
    n_in = len(mc_maze_sim.heldout) - n_out
    shapes = {"train_rates_heldin": (n_train, 35, n_in), "train_rates_heldout": (n_train, 35,
                                                                                  n_out),
              "eval_rates_heldin": (n_eval, 35, n_in), "eval_rates_heldout": (n_eval, 35, n_out),
              "eval_rates_heldin_forward": (n_eval, 10, n_in),
              "eval_rates_heldout_forward": (n_eval, 10, n_out)}
    assert {k: v.shape for k, v in arrays.items()} == shapes
    with h5py.File(submission) as h5:
        assert all(h5["mc_maze_20"][k].dtype == np.float32 for k in shapes)
    # The benchmark's evaluation of the file, from targets built independently of the fit.
    session = read_session(mc_maze_nwb, behavior=["hand_vel"])
    spec = nlb.NLB_DATASETS["mc_maze"]
    targets = nlb.nlb_targets(session, spec, nlb.nlb_trials(session, spec, 0.02)).as_dict()
    scores = nlb_evaluate(targets, arrays)
    stored = _summary_metrics(out)
    for nlb_name, name in (("co-bps", "co_bps"), ("vel R2", "vel_r2"),
                           ("psth R2", "psth_r2_nlb"), ("fp-bps", "fp_bps")):
        assert stored[(name, "nlb_eval")] == pytest.approx(scores[nlb_name], abs=1e-6)
        assert f"{nlb_name} {scores[nlb_name]:.3f}" in printed
    assert "NLB's spike smoothing baseline on the same trials: co-bps" in printed
    assert f"wrote NLB submission {submission}" in printed
    # Decoding rows, next to the smoothed-spike reference.
    line = next(s for s in printed.splitlines() if s.startswith("decoding hand_vel"))
    assert "lag 100 ms" in line  # --nlb-dataset mc_maze: NLB's lag for MC_Maze
    assert np.isfinite(stored[("decode_r2_hand_vel", "test")])
    assert np.isfinite(stored[("decode_r2_hand_vel_smoothed_spikes", "test")])
    # The fit used NLB's trials: every 'train' and 'val' trial, held-out neurons included,
    # with NLB's 'val' trials as the test split.
    from nwb_jedi.io.load import load_dataset

    ds = load_dataset(out)
    assert ds.n_units == len(mc_maze_sim.heldout)
    split = dict(zip(trials.index.astype(str), trials["split"], strict=True))
    assert {split[str(t)] for t in ds.trial_id[ds.split == "test"]} == {"val"}
    assert {split[str(t)] for t in ds.trial_id[ds.split != "test"]} == {"train"}


def test_nlb_refuses_what_the_benchmark_cannot_score(mc_maze_nwb, tmp_path, capsys):
    base = ["fit", str(mc_maze_nwb), *TINY, "--device", "cpu", "--out",
            str(tmp_path / "f.nwb")]
    sub = str(tmp_path / "s.h5")
    cases = [
        (["--nlb", sub], "give --preset mc_maze"),
        (["--preset", "mc_maze", "--nlb", sub, "--bin-ms", "10"], "5 ms or 20 ms bins"),
        (["--preset", "mc_maze", "--nlb", sub, "--window", "-0.2,0.4"], "NLB's trials and "
                                                                         "windows"),
        (["--preset", "mc_maze", "--nlb", sub, "--window", "-0.2,0.4", "--align",
          "go_cue_time"], "drop --align and --window"),
        (["--preset", "mc_maze", "--nlb", sub, "--trial-filter", "success == True"],
         "--trial-filter cannot be used"),
        (["--preset", "mc_maze", "--nlb", sub], "give --nlb-dataset"),
        (["--preset", "mc_maze", "--nlb", sub, "--nlb-dataset", "mc_rtt"],
         "unknown NLB dataset"),
        (["--preset", "mc_maze", "--nlb-dataset", "mc_maze"], "--nlb-dataset needs --nlb"),
        (["--preset", "mc_maze", "--decode-lag-ms", "100"], "--decode-lag-ms needs --decode"),
        (["--preset", "mc_maze", "--decode", "joint_angles"], "no behavior series named"),
        # A lag beyond the trial's window reads another trial's behavior, or none: refused
        # before the fit.
        (["--preset", "mc_maze", "--decode", "hand_vel", "--decode-lag-ms", "1e6"],
         "--decode-lag-ms 1e+06 is not shorter than the trials' 700 ms window"),
        (["--preset", "mc_maze", "--decode", "hand_vel", "--decode-lag-ms", "700"],
         "--decode-lag-ms 700 is not shorter than the trials' 700 ms window"),
        (["--preset", "mc_maze", "--decode", "hand_vel", "--decode-lag-ms", "nan"],
         "--decode-lag-ms must be a number of milliseconds, got nan"),
    ]
    for extra, message in cases:
        rc, _, err = run_cli([*base, *extra], capsys)
        assert rc == 2 and message in err, (extra, err)
        assert "Traceback" not in err
    (tmp_path / "s.h5").write_bytes(b"x")
    rc, _, err = run_cli([*base, "--preset", "mc_maze", "--nlb", sub, "--nlb-dataset",
                          "mc_maze"], capsys)
    assert rc == 2 and "already exists" in err
    assert not (tmp_path / "f.nwb").exists()


def test_mc_maze_family_files_get_nlb_psth_r2_and_lag(mc_maze_nwb, tmp_path, capsys):
    # The same layout under MC_Maze's own file name: the package knows which NLB set it is.
    named = tmp_path / "sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"
    shutil.copy(mc_maze_nwb, named)
    out = tmp_path / "fit.nwb"
    rc, printed, err = run_cli(["fit", str(named), "--preset", "mc_maze", *TINY, "--device",
                                "cpu", "--decode", "hand_vel", "--out", str(out), "--quiet"],
                               capsys)
    assert rc == 0, err
    value = float(re.search(r"NLB's PSTH R² \(mc_maze's targets\) (-?\d+\.\d+)",
                            printed).group(1))
    stored = _summary_metrics(out)
    assert stored[("psth_r2_nlb", "test")] == pytest.approx(value, abs=5e-4)
    assert ("psth_r2_nlb", "train") in stored and ("psth_r2_smoothed", "test") in stored
    assert ("psth_r2", "test") not in stored
    assert "decoding hand_vel (lag 100 ms" in printed  # NLB's lag for MC_Maze
    from nwb_jedi.io.load import read_summary

    mapper = read_summary(out)["dataset_metadata"]["mapper"]
    assert mapper["behavior"] == ["hand_vel"]  # only the decoded series was binned
