"""`nwb-jedi simulate` writes ground truth as MC_Maze-layout NWB that `fit` reads back exactly;
`nwb-jedi analyze` turns a fitted file into a summary and figures."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli.runner import TINY, run_cli

SIM = ["--tasks", "sine,memorypro", "--units", "24", "--trials-per-condition", "4",
       "--teacher-iters", "40", "--seed", "3"]


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("teachers")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, teacher_cache):
    from nwb_jedi.cli import main

    path = tmp_path_factory.mktemp("sim") / "synthetic.nwb"
    assert main(["simulate", *SIM, "--cache-dir", str(teacher_cache), "--out", str(path),
                 "--quiet"]) == 0
    return path


def test_simulate_round_trips_the_exact_counts(simulated, teacher_cache, capsys):
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.data.presets import preset
    from nwb_jedi.io.read import read_session
    from nwb_jedi.synthetic import make_dataset

    truth = make_dataset(("sine", "memorypro"), n_units=24, trials_per_condition=4, seed=3,
                         cache_dir=teacher_cache, max_iters=40)
    session = read_session(simulated)
    trials = session.trials
    assert set(trials["trial_type"]) == {"sine", "memorypro"}
    assert sorted(set(trials["trial_version"])) == list(range(8))
    np.testing.assert_allclose(trials["move_onset_time"] - trials["start_time"], 0.25)
    # The mc_maze preset with the window widened to the whole 1 s trial bins it exactly.
    kwargs = {**preset("mc_maze"), "window": (-0.25, 0.75)}
    got = ConditionMapper(**kwargs, verbose=False).build(session)
    assert got.n_trials == truth.n_trials and got.n_conditions == 16
    order = np.asarray(got.trial_id).astype(int)
    np.testing.assert_array_equal(got.counts, truth.counts[order])
    # Conditions map one to one: every (trial_type, trial_version) is one (task, value).
    pairs = set(zip(truth.conditions["task"].to_numpy()[truth.condition[order]],
                    got.conditions["trial_type"].to_numpy()[got.condition], strict=True))
    assert pairs == {("sine", "sine"), ("memorypro", "memorypro")}


def test_simulate_summary_and_fit_then_analyze(simulated, teacher_cache, tmp_path, capsys):
    rc, out, _ = run_cli(["simulate", *SIM, "--cache-dir", str(teacher_cache), "--out",
                          str(tmp_path / "again.nwb"), "--quiet"], capsys)
    assert rc == 0
    assert "simulated 64 trials of 1 s, 16 conditions (sine, memorypro), 24 neurons" in out
    assert f"fit it with: nwb-jedi fit {tmp_path / 'again.nwb'} --preset mc_maze " \
           f"--window -0.25,0.75" in out

    fitted = tmp_path / "fit.nwb"
    rc, out, err = run_cli(["fit", str(simulated), "--preset", "mc_maze", "--window",
                            "-0.25,0.75", *TINY, "--out", str(fitted), "--quiet"], capsys)
    assert rc == 0, err
    assert "16 conditions, 24 neurons" in out

    figures = tmp_path / "figures"
    rc, out, err = run_cli(["analyze", str(fitted), "--out", str(figures),
                            "--fixed-point-conditions", "1", "--quiet"], capsys)
    assert rc == 0, err
    assert "JEDI with 16 conditions, 24 neurons" in out
    assert "J (connectivity) eigenvalues: largest Re λ" in out
    assert "fixed points of 1 of 16 conditions, the first one " in out and "; memorypro/0:" in out
    assert "held-out trials" in out and "embedding distances" in out
    for name in ("embeddings", "eigenvalues", "jacobian_spectra", "fixed_points", "psth",
                 "training"):
        png = figures / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (figures / "summary.txt").read_text().strip() == out.strip()
    # The embedding figure names each condition by its value (e.g. the sine frequency), which
    # the file's trials table holds, not by its index within the task.
    from nwb_jedi.analysis.embedding import embedding_labels
    from nwb_jedi.analysis.report import analysis_report
    from nwb_jedi.commands.analyze import _described_conditions
    from nwb_jedi.io.load import load_dataset, load_model

    model, ds = load_model(fitted), load_dataset(fitted)
    report = analysis_report(model, ds, fixed_point_conditions=0)
    table = _described_conditions(str(fitted), report, ds)
    assert embedding_labels(table) == ("trial_type", "condition_value")
    sine = table[table["trial_type"] == "sine"]
    assert len(set(sine["condition_value"])) == len(sine) == 8


@pytest.mark.parametrize("args,message", [
    (["simulate", "--tasks", "sine,juggle", "--out", "{new}"], "unknown task(s) juggle"),
    (["simulate", "--out", "{existing}"], "already exists; pass --overwrite"),
    (["simulate", "--units", "1", "--out", "{new}"], "--units must be at least 2"),
    (["simulate", "--units", "3", "--out", "{new}"], "needs at least 5 units, got 3; simulate "
                                                      "more units (--units)"),
    (["simulate", "--units", "1000000", "--out", "{new}"], "simulate fewer units (--units)"),
    (["simulate", "--bin-ms", "15", "--out", "{new}"],
     "--bin-ms must be a whole multiple of the teacher's 10 ms step (e.g. 10, 20 or 50), got 15"),
    (["simulate", "--trials-per-condition", "0", "--out", "{new}"],
     "--trials-per-condition must be at least 2, got 0"),
    (["simulate", "--tasks", "sine"], "the following arguments are required: --out"),
    (["analyze", "{new}"], "no such file"),
    (["analyze", "{existing}"], "not a readable HDF5/NWB file"),
    (["analyze", "{maze}"], "no JEDI model"),
    (["analyze", "{maze}", "--fixed-point-conditions", "-1"], "must be 0 or more"),
])
def test_user_errors_one_line_exit_2(args, message, tmp_path, mc_maze_nwb, capsys):
    existing = tmp_path / "existing.nwb"
    existing.write_bytes(b"not nwb")
    args = [a.format(new=tmp_path / "new.nwb", existing=existing, maze=mc_maze_nwb)
            for a in args]
    rc, _, err = run_cli([*args, "--quiet"], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert existing.read_bytes() == b"not nwb"


def test_simulate_files_carry_the_teachers_output_for_decoding(simulated, teacher_cache,
                                                               tmp_path, capsys):
    from nwb_jedi.analysis.evaluation import decoding, smoothed_spike_rates
    from nwb_jedi.data.conditions import ConditionMapper
    from nwb_jedi.data.presets import preset
    from nwb_jedi.io.load import read_summary
    from nwb_jedi.io.read import read_session
    from nwb_jedi.synthetic import make_dataset

    truth = make_dataset(("sine", "memorypro"), n_units=24, trials_per_condition=4, seed=3,
                         cache_dir=teacher_cache, max_iters=40)
    session = read_session(simulated, behavior=["teacher_output"])
    assert list(session.behavior) == ["teacher_output"]
    assert session.behavior["teacher_output"].unit == "a.u."
    kwargs = {**preset("mc_maze"), "window": (-0.25, 0.75), "behavior": ["teacher_output"]}
    ds = ConditionMapper(**kwargs, verbose=False).build(session)
    order = np.asarray(ds.trial_id).astype(int)
    outputs = truth.ground_truth["trial_outputs"][order]
    np.testing.assert_allclose(ds.behavior["teacher_output"], outputs, rtol=1e-6, atol=1e-6)
    # Ground truth for decoding: the teacher's rates decode its output almost perfectly,
    # smoothed spikes less well.
    train, test = ds.split == "train", ds.split == "test"
    scores = decoding({"truth": truth.ground_truth["trial_rates"][order],
                       "smoothed": smoothed_spike_rates(ds.counts, ds.bin_size)},
                      ds.behavior["teacher_output"], ds.bin_size, train, test)
    assert scores["truth"] > 0.9
    assert scores["smoothed"] < scores["truth"]

    fitted = tmp_path / "fit.nwb"
    rc, out, err = run_cli(["fit", str(simulated), "--preset", "mc_maze", "--window",
                            "-0.25,0.75", *TINY, "--decode", "teacher_output", "--out",
                            str(fitted), "--quiet"], capsys)
    assert rc == 0, err
    line = next(s for s in out.splitlines() if s.startswith("decoding teacher_output"))
    assert "lag 0 ms" in line and "from JEDI's rates" in line
    table = read_summary(fitted)["metrics"]
    rows = table[table["metric"].str.startswith("decode_r2_teacher_output")]
    assert set(rows["metric"]) == {"decode_r2_teacher_output",
                                   "decode_r2_teacher_output_smoothed_spikes"}
    assert set(rows["split"]) == {"test"} and np.isfinite(rows["value"]).all()
