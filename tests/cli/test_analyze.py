"""`nwb-jedi analyze` runs each analysis once: the fixed points it summarizes are the ones it
draws, searched once per condition."""

from __future__ import annotations

import pytest

from tests.cli.runner import TINY, run_cli


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from nwb_jedi.cli import main

    path = tmp_path_factory.mktemp("analyze") / "fit.nwb"
    assert main(["fit", *TINY, "--out", str(path), "--quiet"]) == 0
    return path


@pytest.fixture
def searches(monkeypatch):
    from nwb_jedi.analysis import fixedpoints

    starts: list[int] = []
    search = fixedpoints._search

    def counting(step, init, *args, **kwargs):
        starts.append(len(init))
        # These tests ask which conditions are searched and what is said, not where the
        # search converges: a short search keeps them quick.
        kwargs["max_iters"] = min(kwargs["max_iters"], 200)
        return search(step, init, *args, **kwargs)

    monkeypatch.setattr(fixedpoints, "_search", counting)
    return starts


def test_analyze_searches_each_conditions_fixed_points_once(fitted, searches, tmp_path, capsys):
    out = tmp_path / "figures"
    rc, stdout, err = run_cli(["analyze", str(fitted), "--out", str(out),
                               "--fixed-point-conditions", "2", "--quiet"], capsys)
    assert rc == 0, err
    assert searches == [128, 128]  # 2 conditions, 128 starts each, and nothing more
    assert "fixed points of 2 of 7 conditions, the first 2 " in stdout
    assert "; reach1: " in stdout and "; reach2: " in stdout
    assert (out / "fixed_points.png").stat().st_size > 10_000


def test_analyze_without_fixed_points_searches_none(fitted, searches, tmp_path, capsys):
    out = tmp_path / "figures"
    rc, stdout, err = run_cli(["analyze", str(fitted), "--out", str(out),
                               "--fixed-point-conditions", "0", "--quiet"], capsys)
    assert rc == 0, err
    assert searches == []
    assert "fixed points" not in stdout and not (out / "fixed_points.png").exists()
    assert "embeddings.png, eigenvalues.png, jacobian_spectra.png, psth.png, training.png" \
        in stdout


def test_fixed_points_of_every_condition_by_default_or_the_ones_named(fitted, searches,
                                                                      tmp_path, capsys):
    rc, stdout, err = run_cli(["analyze", str(fitted), "--out", str(tmp_path / "a"),
                               "--quiet"], capsys)
    assert rc == 0, err
    assert searches == [128] * 7  # every condition (was the first 4)
    assert "fixed points of 7 of 7 conditions, every condition (stable: DF's eigenvalues " \
           "all inside |λ| = 1): " in stdout
    assert "J (connectivity) eigenvalues: largest Re λ " in stdout
    assert "step Jacobian DF along trajectories: spectral radius " in stdout
    searches.clear()
    rc, stdout, err = run_cli(["analyze", str(fitted), "--out", str(tmp_path / "b"),
                               "--fixed-point-conditions", "reach5,reach1", "--quiet"], capsys)
    assert rc == 0, err
    assert searches == [128, 128]
    assert "fixed points of 2 of 7 conditions, chosen by name " in stdout
    rc, _, err = run_cli(["analyze", str(fitted), "--fixed-point-conditions", "reach9",
                          "--quiet"], capsys)
    assert rc == 2 and "unknown condition 'reach9'" in err
