"""Every file the package writes is accepted by DANDI: the real `dandi organize` and `dandi
validate` (the dandi CLI of the test environment, offline: ``DANDI_NO_ET=1`` skips its version
check, and validation uses the schema models installed with dandischema, not the network) on
the outputs of `simulate`, `fit`, `predict` and an append; organized names say what each file
is; a fit whose source has no subject age fails validation on that field alone, as the
warning said."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nwb_jedi.cli import main
from nwb_jedi.io.dandi_metadata import DandiMetadataWarning
from tests.cli.runner import TINY

SIMULATE = ["--units", "24", "--teacher-iters", "30", "--trials-per-condition", "4", "--quiet"]
FIT_SIM = ["--preset", "mc_maze", "--window", "-0.25,0.75", "--quiet", *TINY]
DANDISET_YAML = "identifier: DANDI:000999\nname: nwb_jedi outputs\ndescription: test\n"


def _dandi(*args: str, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dandi")
    command = [str(exe)] if exe.exists() else [shutil.which("dandi") or "dandi"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _run(argv: list[str]) -> None:
    assert main(argv) == 0, argv


@pytest.fixture(scope="module")
def dandi_env(tmp_path_factory) -> dict:
    state = tmp_path_factory.mktemp("dandi_state")
    return {**os.environ, "DANDI_NO_ET": "1", "XDG_STATE_HOME": str(state),
            "XDG_CACHE_HOME": str(state / "cache")}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """One file of every kind the package writes (a module: each is made once)."""
    from nwb_jedi.io.load import load_dataset, load_model
    from nwb_jedi.io.write import write_results

    root = tmp_path_factory.mktemp("outputs")
    files = {name: root / f"{name}.nwb" for name in (
        "simulate", "fit", "fit_labelled", "predict", "append", "embedded_fit", "no_age")}
    _run(["simulate", "--out", str(files["simulate"]), "--cache-dir", str(root / "teachers"),
          "--experimenter", "Doe, Jane", *SIMULATE])
    _run(["fit", str(files["simulate"]), "--out", str(files["fit"]), *FIT_SIM])
    _run(["fit", str(files["simulate"]), "--out", str(files["fit_labelled"]), *FIT_SIM,
          "--seed", "1", "--label", "seed 1"])
    _run(["predict", str(files["fit"]), str(files["simulate"]), "--epochs", "1", "--quiet",
          "--out", str(files["predict"])])
    shutil.copyfile(files["simulate"], files["append"])
    write_results(load_model(files["fit"]), load_dataset(files["fit"]), files["append"],
                  append=True)
    _run(["fit", "--out", str(files["embedded_fit"]), "--subject-age", "P5Y/", "--quiet",
          *TINY])
    with pytest.warns(DandiMetadataWarning, match="--subject-age"):
        _run(["fit", "--out", str(files["no_age"]), "--quiet", *TINY])
    return files


def _organize(files: list[Path], root: Path, env: dict) -> list[str]:
    root.mkdir()
    (root / "dandiset.yaml").write_text(DANDISET_YAML)
    done = _dandi("organize", "-d", str(root), "-f", "copy", "--jobs", "1", *map(str, files),
                  env=env)
    assert done.returncode == 0, done.stderr
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.nwb"))


def _validate(root: Path, env: dict) -> tuple[int, list[dict]]:
    done = _dandi("validate", str(root), "-f", "json_lines", env=env)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, records


def test_dandi_organize_and_validate_accept_every_kind_of_output(outputs, dandi_env,
                                                                  tmp_path, capsys):
    # The appended file is the simulate output with a module more (same NWB object id: it is
    # the same file), so organize takes it in a dandiset of its own (next test), as a user
    # uploads the appended file instead of the original.
    kinds = ["simulate", "fit", "fit_labelled", "predict", "embedded_fit"]
    names = _organize([outputs[k] for k in kinds], tmp_path / "dandiset", dandi_env)
    rc, records = _validate(tmp_path / "dandiset", dandi_env)
    with capsys.disabled():
        print("\norganized:\n  " + "\n  ".join(names))
        print(f"dandi validate: exit {rc}, {len(records)} issue(s): "
              f"{[(r.get('severity'), r.get('id')) for r in records]}")
    assert rc == 0, records
    assert not [r for r in records if r.get("severity") in ("ERROR", "CRITICAL")]
    # Readable names, no `_obj-<crc>` disambiguation: the derived files' session ids say
    # what they are.
    assert len(names) == len(kinds) and not any("_obj-" in n for n in names)
    assert "sub-simulated/sub-simulated_ses-synthetic-ground-truth-jedi-rank6.nwb" in names
    assert "sub-simulated/sub-simulated_ses-synthetic-ground-truth-seed-1.nwb" in names
    assert "sub-simulated/sub-simulated_ses-synthetic-ground-truth-jedi-rank6-predict.nwb" \
        in names
    assert any(n.endswith("_ses-yu2009-pmd-reaching-jedi-rank6.nwb") for n in names)


def test_an_appended_file_passes_and_a_fit_without_subject_age_fails_on_that_alone(
        outputs, dandi_env, tmp_path, capsys):
    names = _organize([outputs["append"], outputs["no_age"]], tmp_path / "dandiset",
                      dandi_env)
    rc, records = _validate(tmp_path / "dandiset", dandi_env)
    with capsys.disabled():
        print(f"\norganized: {names}\ndandi validate (append + no age): exit {rc}: "
              f"{[(r.get('severity'), r.get('id'), r.get('message')) for r in records]}")
    assert len(names) == 2 and not any("_obj-" in n for n in names)
    assert rc == 1
    assert [(r["severity"], r["id"]) for r in records] == [("ERROR", "NWBI.check_subject_age")]
    assert "yu2009-pmd-reaching-jedi-rank6" in records[0]["path"]  # the fit, not the append


def test_simulated_files_say_so(outputs):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(outputs["simulate"], "r") as io:
        nwb = io.read()
        assert nwb.session_description.startswith("Simulated")
        assert "simulated data" in list(nwb.keywords[:])
        assert nwb.subject.species == "http://purl.obolibrary.org/obo/NCBITaxon_32630"
        assert "no animal was recorded" in nwb.subject.description
        assert list(nwb.experimenter) == ["Doe, Jane"]
        assert [list(p) for p in nwb.was_generated_by][0][0] == "nwb_jedi"


def test_simulate_refuses_an_experimenter_that_is_not_a_name(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "s.nwb"), "--experimenter",
                 "nwb_jedi.io.layouts", *SIMULATE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'Last, First'" in err[0]
