"""`nwb-jedi show` and `nwb-jedi predict`: real files in, readable output / derived file out,
exit 2 with one line for every documented user error."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.cli import main
from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.io.load import load_dataset, load_model
from nwb_jedi.io.read import read_session
from nwb_jedi.io.write import write_results
from nwb_jedi.model.jedi import JEDI

MAPPER = dict(by="trial_type", align="move_onset_time", window=(-0.1, 0.2), bin_size=0.02,
              behavior=False, verbose=False)


def _tiny() -> JEDI:
    return JEDI(hidden=16, embed_dim=3, rank=2, max_epochs=4, patience=2, device="cpu")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, mc_maze_nwb):
    session = read_session(mc_maze_nwb, behavior=False)
    ds = ConditionMapper(**MAPPER).build(session)
    model = _tiny().fit(ds.train, ds.val)
    path = tmp_path_factory.mktemp("show") / "fit.nwb"
    write_results(model, ds, path, source=session)
    return path


def _session_file(tmp_path_factory, n_units: int, seed: int):
    from nwb_jedi.io.layouts import simulate_reaching, write_mc_maze_layout

    sim = simulate_reaching(n_units=n_units, n_trials=48, n_conditions=6, seed=seed)
    path = tmp_path_factory.mktemp("other") / f"other-{n_units}.nwb"
    write_mc_maze_layout(path, sim.spike_times, sim.trials, heldout=sim.heldout,
                         session_id=f"other-{seed}")
    return path


@pytest.fixture(scope="module")
def same_units_file(tmp_path_factory):
    return _session_file(tmp_path_factory, 24, seed=7)


@pytest.fixture(scope="module")
def other_units_file(tmp_path_factory):
    return _session_file(tmp_path_factory, 10, seed=8)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nwb-jedi: error: "), err
    return err[0]


def test_show_prints_a_readable_summary(model_file, capsys):
    assert main(["show", str(model_file)]) == 0
    out = capsys.readouterr().out
    for text in ("Source of the modelled data", "kind                 local", "sha256",
                 "Conditions (", "trial_type", "Metrics", "bits_per_spike", "test",
                 "hyperparameters", "rank=2", "versions", "torch", "nwb_jedi",
                 "session_id           synthetic-mc-maze", '"align": "move_onset_time"'):
        assert text in out, text


def test_show_errors_are_one_line(model_file, mc_maze_nwb, tmp_path, capsys):
    assert main(["show", str(tmp_path / "missing.nwb")]) == 2
    assert "no such file" in _error_line(capsys)
    assert main(["show", str(mc_maze_nwb)]) == 2
    line = _error_line(capsys)
    assert "holds no JEDI model" in line and f"fit one with `nwb-jedi fit {mc_maze_nwb}`" in line
    assert main(["show", str(model_file), "--module-name", "other"]) == 2
    assert "no JEDI model in a processing module named 'other'" in _error_line(capsys)
    assert main(["show", str(model_file), "--max-rows", "0"]) == 2
    assert "--max-rows must be a positive integer, got 0" in _error_line(capsys)


def test_predict_applies_the_frozen_network_to_another_session(model_file, same_units_file,
                                                                tmp_path, capsys):
    out = tmp_path / "predicted.nwb"
    assert main(["predict", str(model_file), str(same_units_file), "--out", str(out),
                 "--quiet", "--epochs", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    original, applied = load_model(model_file), load_model(out)
    _, a = original.get_state()
    _, b = applied.get_state()
    for name in a:
        if name.startswith(("hypernet.", "readout.")):
            assert np.array_equal(a[name], b[name]), name  # network frozen
    expected = ConditionMapper(**MAPPER).build(read_session(same_units_file, behavior=False))
    loaded = load_dataset(out)
    np.testing.assert_array_equal(loaded.counts, expected.counts)
    np.testing.assert_array_equal(loaded.trial_id, expected.trial_id)
    rates = applied.predict_rates(expected.test)
    assert rates.shape == expected.test.counts.shape and np.all(np.isfinite(rates))


def test_predict_with_other_units_says_so(model_file, other_units_file, tmp_path, capsys):
    assert main(["predict", str(model_file), str(other_units_file), "--out",
                 str(tmp_path / "x.nwb"), "--quiet"]) == 2
    line = _error_line(capsys)
    assert "do not match the model's" in line and "24 units" in line and "10" in line
    assert not (tmp_path / "x.nwb").exists()


def test_predict_user_errors(model_file, same_units_file, tmp_path, capsys):
    existing = tmp_path / "exists.nwb"
    existing.write_bytes(b"keep")
    assert main(["predict", str(model_file), str(same_units_file), "--out", str(existing),
                 "--quiet"]) == 2
    assert "already exists" in _error_line(capsys)
    assert existing.read_bytes() == b"keep"
    assert main(["predict", str(tmp_path / "none.nwb"), str(same_units_file), "--out",
                 str(tmp_path / "o.nwb"), "--quiet"]) == 2
    assert "no such file" in _error_line(capsys)
    assert main(["predict", str(model_file), str(same_units_file), "--out",
                 str(tmp_path / "o.nwb"), "--quiet", "--bin-ms", "10"]) == 2
    assert "binned at 10 ms" in _error_line(capsys)
    assert main(["predict", str(model_file), str(same_units_file), "--out",
                 str(tmp_path / "o.nwb"), "--quiet", "--condition-by", "nope"]) == 2
    assert "'nope'" in _error_line(capsys)


def test_predict_needs_mapper_settings_when_the_file_has_none(tmp_path, same_units_file,
                                                              capsys):
    rng = np.random.default_rng(0)
    ds = TrialDataset.from_arrays(rng.poisson(1, (24, 5, 24)), [i % 3 for i in range(24)],
                                  0.02)
    path = write_results(_tiny().fit(ds.train, ds.val), ds, tmp_path / "arrays.nwb")
    assert main(["predict", path, str(same_units_file), "--out", str(tmp_path / "o.nwb"),
                 "--quiet"]) == 2
    assert "--condition-by" in _error_line(capsys)


def test_predict_on_the_fitted_session_never_scores_trials_the_network_saw(
        model_file, mc_maze_nwb, tmp_path, capsys):
    from nwb_jedi.commands.predict import _trials_the_network_saw
    from nwb_jedi.io.load import read_summary

    session = read_session(mc_maze_nwb, behavior=False)
    # Another split seed over the same trials: some of its test trials trained the network.
    ds = ConditionMapper(**MAPPER, seed=3).build(session)
    seen = _trials_the_network_saw(model_file, None, read_summary(model_file), session, ds)
    fitted = load_dataset(model_file)
    used = set(fitted.trial_id[fitted.split != "test"].tolist())
    assert seen.tolist() == [t in used for t in ds.trial_id.tolist()]
    assert np.any(seen & (ds.split == "test"))
    other = read_session(mc_maze_nwb.parent / mc_maze_nwb.name, behavior=False)
    other.metadata["session_id"] = "another-session"
    assert not _trials_the_network_saw(model_file, None, read_summary(model_file), other,
                                       ds).any()
