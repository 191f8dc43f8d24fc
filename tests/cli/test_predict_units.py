"""`nwb-jedi predict` applies a model only to its own neurons: units are matched by id, subject,
session and recording site before anything slow, and the mapper settings say where they came
from (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli.runner import TINY, run_cli
from tests.io.recordings import write_recording

IDS = list(range(1001, 1013))
SITES = ["ALM"] * 6 + ["M1"] * 6
MAPPER = ["--condition-by", "stim", "--align", "cue_time", "--window", "-0.2,0.6"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("recordings")
    files = {
        "model_session": write_recording(root / "a1.nwb", session_id="a-day1",
                                         subject_id="mouse-a", unit_ids=IDS, locations=SITES),
        "same_mouse": write_recording(root / "a2.nwb", session_id="a-day2",
                                      subject_id="mouse-a", unit_ids=IDS, locations=SITES,
                                      seed=1),
        "other_mouse": write_recording(root / "b1.nwb", session_id="b-day1",
                                       subject_id="mouse-b", unit_ids=IDS, locations=SITES,
                                       seed=2),
        "moved_probe": write_recording(root / "a3.nwb", session_id="a-day3",
                                       subject_id="mouse-a", unit_ids=IDS,
                                       locations=SITES[:6] + ["V1"] * 6, seed=3),
        "other_sites": write_recording(root / "a4.nwb", session_id="a-day4",
                                       subject_id="mouse-a", unit_ids=IDS,
                                       locations=["V1"] * 12, seed=4),
        "no_block": write_recording(root / "a5.nwb", session_id="a-day5",
                                    subject_id="mouse-a", unit_ids=IDS, locations=SITES,
                                    seed=5, drop_columns=("block",)),
    }
    return files


@pytest.fixture(scope="module")
def model_file(recordings, tmp_path_factory):
    from nwb_jedi.cli import main

    path = tmp_path_factory.mktemp("model") / "fit.nwb"
    assert main(["fit", str(recordings["model_session"]), *MAPPER, "--trial-filter",
                 "block == 1", *TINY, "--rank", "2", "--out", str(path), "--quiet"]) == 0
    return path


def _predict(model_file, source, tmp_path, capsys, *extra):
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.nwb"  # a new name every call
    rc, stdout, err = run_cli(["predict", str(model_file), str(source), "--out", str(out),
                               "--epochs", "2", *extra], capsys)
    return rc, stdout, err, out


def _without_progress(err: str) -> list[str]:
    return [line for line in err.replace("\r", "\n").splitlines()
            if line.strip() and "JEDI embeddings" not in line]


def test_another_mouse_is_refused_before_anything_slow(model_file, recordings, tmp_path, capsys,
                                                       monkeypatch):
    import nwb_jedi.io.load as load

    def never(*args, **kwargs):  # the model (torch) is loaded only after the units check
        raise AssertionError("loaded the model before checking the units")

    monkeypatch.setattr(load, "load_model", never)
    rc, _, err, out = _predict(model_file, recordings["other_mouse"], tmp_path, capsys,
                               "--quiet")
    assert rc == 2 and not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nwb-jedi: error: ")
    assert "of another subject (mouse-b, the model's mouse-a)" in lines[0]
    assert lines[0].endswith("; pass --force to apply the model anyway")


def test_force_applies_it_with_a_warning(model_file, recordings, tmp_path, capsys):
    rc, _, err, out = _predict(model_file, recordings["other_mouse"], tmp_path, capsys,
                               "--quiet", "--force")
    assert rc == 0 and out.exists()
    assert any(line.startswith("nwb-jedi: warning: ") and "another subject" in line
               and line.endswith("(applied anyway: --force)") for line in err.splitlines())


def test_the_same_mouse_and_sites_on_another_day_is_confirmed(model_file, recordings, tmp_path,
                                                              capsys):
    rc, stdout, err, _ = _predict(model_file, recordings["same_mouse"], tmp_path, capsys)
    assert rc == 0, err
    assert "its 12 units match the model's by id and location/electrode_group" in err
    assert "warning: " not in err.split("mapper settings")[0]


def test_sites_that_differ_warn_or_refuse(model_file, recordings, tmp_path, capsys):
    rc, _, err, _ = _predict(model_file, recordings["moved_probe"], tmp_path, capsys, "--quiet")
    assert rc == 0, err
    assert "nwb-jedi: warning: " in err
    assert "the location/electrode_group differs for 6 of 12 units" in err
    rc, _, err, _ = _predict(model_file, recordings["other_sites"], tmp_path, capsys, "--quiet")
    assert rc == 2 and "the location/electrode_group of every unit differs" in err


def test_each_setting_says_where_it_came_from(model_file, recordings, tmp_path, capsys):
    rc, _, err, _ = _predict(model_file, recordings["same_mouse"], tmp_path, capsys,
                             "--window", "-0.1,0.5")
    assert rc == 0, err
    line = next(line for line in _without_progress(err) if line.startswith("mapper settings"))
    assert 'by="stim" (the model)' in line and 'align="cue_time" (the model)' in line
    assert "window=[-0.1, 0.5] (--window)" in line
    assert 'trial_filter="block == 1" (the model)' in line


def test_a_stored_setting_that_fails_names_its_origin_and_an_empty_flag_clears_it(
        model_file, recordings, tmp_path, capsys):
    rc, _, err, _ = _predict(model_file, recordings["no_block"], tmp_path, capsys, "--quiet")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "block" in lines[0]
    assert ("(trial_filter came from the model's stored settings; override it with "
            "--trial-filter VALUE or clear it with --trial-filter '')") in lines[0]
    rc, _, err, out = _predict(model_file, recordings["no_block"], tmp_path, capsys,
                               "--trial-filter", "")
    assert rc == 0, err
    assert "trial_filter cleared by --trial-filter ''" in err
    from nwb_jedi.io.load import load_dataset

    assert load_dataset(out).provenance.mapper["trial_filter"] is None


@pytest.fixture
def threads_restored():
    """--threads changes the process's torch threads: put them back afterwards."""
    import torch

    from nwb_jedi._runtime import set_threads

    before = torch.get_num_threads()
    yield
    set_threads(None)
    torch.set_num_threads(before)


def test_predict_takes_the_shared_options_as_fit_does(model_file, recordings, tmp_path, capsys,
                                                      threads_restored):
    import torch

    from nwb_jedi import _runtime

    # A negative window in the space-separated form, as fit takes it (was an argparse dump).
    rc, _, err, _ = _predict(model_file, recordings["same_mouse"], tmp_path, capsys,
                             "--window", "-1,1", "--threads", "1")
    assert rc == 0, err
    assert "window=[-1.0, 1.0] (--window)" in err
    assert torch.get_num_threads() == 1 and _runtime._CHOSEN["threads"] == 1
    rc, _, err, _ = _predict(model_file, recordings["same_mouse"], tmp_path, capsys,
                             "--no-such-option")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1
    assert lines[0] == ("nwb-jedi: error: unrecognized arguments: --no-such-option; see "
                        "`nwb-jedi predict --help`")
    rc, _, err, _ = _predict(model_file, recordings["same_mouse"], tmp_path, capsys,
                             "--bin-ms", "x")
    assert rc == 2 and err.strip() == ("nwb-jedi predict: error: argument --bin-ms: invalid "
                                       "float value: 'x'; see `nwb-jedi predict --help`")
    rc, _, err, _ = _predict(model_file, recordings["same_mouse"], tmp_path, capsys,
                             "--threads", "0")
    assert rc == 2 and err.strip() == ("nwb-jedi: error: --threads must be a positive "
                                       "integer, got 0")


def test_a_transfer_is_judged_as_one(model_file, recordings, tmp_path, capsys):
    """The file predict writes records which model was applied, and show judges it so."""
    from nwb_jedi.commands.show import stored_warnings
    from nwb_jedi.io.load import read_summary

    rc, _, err, out = _predict(model_file, recordings["same_mouse"], tmp_path, capsys,
                               "--quiet")
    assert rc == 0, err
    info = read_summary(out)
    applied = info["dataset_metadata"]["applied_model"]
    assert applied["file"] == str(model_file) and applied["session_id"] == "a-day1"
    printed = [line.removeprefix("nwb-jedi: warning: ") for line in err.splitlines()
               if line.startswith("nwb-jedi: warning: ")]
    assert stored_warnings(info) == printed  # show says what predict said
    for line in printed:
        assert "the shared network" in line or "the frozen network" in line
    test = info["metrics"].query("split == 'test'").set_index("metric")["value"]
    assert np.isfinite(test["psth_baseline_bits_per_spike"])
