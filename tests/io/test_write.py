"""write_results: derived and appended files, nwbinspector, plain-pynwb readability, atomic
writes. Reading the files back (round trips, refusal of unsafe model files) is test_load.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.errors import ModelFileError, UserError
from nwb_jedi.io import write as write_mod
from nwb_jedi.io.load import load_dataset, load_model
from nwb_jedi.io.read import read_session
from nwb_jedi.io.write import write_results
from tests.io.assets import real_000006
from tests.io.fits import assert_same_dataset, stored_rates, tiny


# ---------------------------------------------------------------------------------- contents
def test_derived_file_copies_session_units_and_trials(maze_fit, written, mc_maze_nwb):
    from pynwb import NWBHDF5IO

    _, ds, session = maze_fit
    with NWBHDF5IO(written["derived"], "r") as io:
        out = io.read()
        # Issue 13: the derived file's session_id names it (dandi organize's file name); the
        # source's is kept in the modelled data's provenance.
        assert out.session_id == f"{session.metadata['session_id']}-jedi-rank2"
        assert ds.provenance.session["session_id"] == session.metadata["session_id"]
        assert out.identifier != session.metadata["identifier"]
        assert out.subject.subject_id == session.metadata["subject"]["subject_id"]
        assert out.units.resolution == session.time_resolution
        np.testing.assert_array_equal(out.units.id[:], ds.unit_id)
        for k, unit in enumerate(ds.unit_id):
            row = list(session.unit_ids).index(unit)
            np.testing.assert_array_equal(out.units["spike_times"][k], session.spike_times[row])
        assert sorted(out.trials.id[:]) == sorted(ds.trial_id.tolist())
        trials = out.trials.to_dataframe()
        src = session.trials.loc[trials.index]
        np.testing.assert_array_equal(trials["move_onset_time"], src["move_onset_time"])
        np.testing.assert_array_equal(trials["target_pos"].iloc[0], src["target_pos"].iloc[0])
        module = out.processing["jedi"]
        assert module["rates"].unit == "Hz"
        # Issue 13: the rates are on one regular grid (NaN between windows), and each trial's
        # samples are referenced from the trials table, instead of trials back to back.
        assert module["rates"].data.shape[1] == ds.n_units and module["rates"].rate == 50.0
        first = module["trials"]["rates"][0]
        assert first.count == ds.n_bins
        np.testing.assert_allclose(first.timestamps, ds.align_time[0] + ds.time, atol=0.0101)
        cond = module["conditions"].to_dataframe()
        assert list(cond["n_trials"]) == ds.trials_per_condition().tolist()
        assert module["trials"]["embedding"].data.shape == (ds.n_trials, 3)
        model_group = module["model"]
        assert model_group.source_kind == "local"
        assert model_group.source_sha256 == hashlib.sha256(
            Path(mc_maze_nwb).read_bytes()).hexdigest()
        assert set(module["metrics"].to_dataframe()["split"]) == {"train", "val", "test"}
        assert len(module["eigenvalues"]) == ds.n_conditions * 2  # rank 2


def test_tensor_names_are_stored_exactly(written, arrays_fit):
    model, _ = arrays_fit
    _, tensors = model.get_state()
    with h5py.File(written["minimal"], "r") as h5:
        group = h5["processing/jedi/model"]
        names = {obj.attrs["tensor_name"] for obj in group.values()
                 if obj.attrs.get("neurodata_type") == "JEDIParameter"}
        assert len(json.dumps(dict(group.attrs["config"] and {"c": group.attrs["config"]}))) \
            < 64 * 1024
    assert names == set(tensors)
    assert "hypernet__layers__0__weight" in h5py.File(written["minimal"], "r")[
        "processing/jedi/model"]


# ---------------------------------------------------------------------------------- standards
def _inspect(path) -> list[str]:
    """nwbinspector's CRITICAL and BEST_PRACTICE_VIOLATION messages for a file."""
    from nwbinspector import Importance, inspect_nwbfile

    return sorted(f"{msg.importance.name} {msg.check_function_name} {msg.object_name} "
                  f"{msg.location}: {msg.message}"
                  for msg in inspect_nwbfile(nwbfile_path=str(path))
                  if msg.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION))


@pytest.mark.parametrize("kind", ["minimal", "derived"])
def test_nwbinspector_no_critical_or_violation(written, kind):
    assert _inspect(written[kind]) == []


def test_opens_in_plain_pynwb_without_nwb_jedi(written, tmp_path):
    code = textwrap.dedent(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "nwb_jedi":
                    raise ImportError("nwb_jedi is not installed here")

        sys.meta_path.insert(0, Block())
        try:
            import nwb_jedi  # noqa
            print("NWB_JEDI_IMPORTED")
        except ImportError:
            pass
        from pynwb import NWBHDF5IO
        with NWBHDF5IO({str(written["derived"])!r}, "r") as io:
            nwb = io.read()
            module = nwb.processing["jedi"]
            print(type(module["model"]).__name__, type(module["conditions"]).__name__,
                  len(module["model"].jedi_parameters), module["rates"].data.shape[1])
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "NWB_JEDI_IMPORTED" not in result.stdout
    assert result.stdout.split()[:2] == ["JEDIModel", "JEDIConditionTable"]


# ---------------------------------------------------------------------------------- atomicity
def _boom(*args, **kwargs):
    path = args[1] if len(args) > 1 else kwargs.get("path")
    Path(path).write_bytes(b"half a file")  # a partial temp file exists when the crash hits
    raise RuntimeError("disk on fire")


def test_crash_mid_write_leaves_no_partial_output(arrays_fit, tmp_path, monkeypatch):
    model, ds = arrays_fit
    monkeypatch.setattr(write_mod, "_write_nwb", _boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_results(model, ds, tmp_path / "out.nwb")
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_write_leaves_existing_output_untouched(arrays_fit, written, tmp_path,
                                                          monkeypatch):
    model, ds = arrays_fit
    out = tmp_path / "out.nwb"
    shutil.copyfile(written["minimal"], out)
    before = out.read_bytes()
    monkeypatch.setattr(write_mod, "_write_nwb", _boom)
    with pytest.raises(RuntimeError):
        write_results(model, ds, out, overwrite=True)
    assert out.read_bytes() == before
    assert list(tmp_path.iterdir()) == [out]


def test_crash_mid_append_leaves_file_untouched(arrays_fit, written, tmp_path, monkeypatch):
    model, ds = arrays_fit
    target = tmp_path / "target.nwb"
    shutil.copyfile(written["minimal"], target)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("killed while appending")

    monkeypatch.setattr(write_mod, "_add_module", fail)
    with pytest.raises(RuntimeError, match="killed"):
        write_results(model, ds, target, append=True, module_name="jedi_two")
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_existing_output_needs_overwrite(arrays_fit, written, tmp_path):
    model, ds = arrays_fit
    out = tmp_path / "out.nwb"
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists; pass overwrite=True"):
        write_results(model, ds, out)
    assert out.read_bytes() == b"keep me"
    write_results(model, ds, out, overwrite=True)
    assert load_model(out).n_units_ == model.n_units_


@pytest.mark.parametrize("kwargs, match", [
    ({"module_name": "JEDI results"}, "snake_case"),
    ({"append": True, "source": "DANDI:000006/0.220126.1852"}, "needs a local NWB file"),
    ({"append": True}, "no such file"),
])
def test_bad_arguments_are_user_errors(arrays_fit, tmp_path, kwargs, match):
    model, ds = arrays_fit
    with pytest.raises(UserError, match=match):
        write_results(model, ds, tmp_path / "out.nwb", **kwargs)


def test_unfitted_model_or_other_units_are_user_errors(arrays_fit, tmp_path):
    model, ds = arrays_fit
    with pytest.raises(UserError, match="not fitted"):
        write_results(tiny(), ds, tmp_path / "a.nwb")
    with pytest.raises(UserError, match="neurons"):
        write_results(model, ds.select_units([0, 1]), tmp_path / "a.nwb")


# ---------------------------------------------------------------------------------- append mode
def _snapshot(path: Path) -> dict:
    items = {}

    def visit(name, obj):
        attrs = {k: _digest(v) for k, v in obj.attrs.items()}
        data = _digest(obj[()]) if isinstance(obj, h5py.Dataset) else None
        items[name] = (type(obj).__name__, data, attrs)

    with h5py.File(path, "r") as h5:
        items["/"] = ("Group", None, {k: _digest(v) for k, v in h5.attrs.items()})
        h5.visititems(visit)
    return items


def _digest(value) -> str:
    if isinstance(value, h5py.Reference | h5py.RegionReference):
        return f"ref:{bool(value)}"
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        return repr([_digest(v) for v in arr.ravel()]) + repr(arr.shape)
    return hashlib.sha256(arr.tobytes()).hexdigest() + str(arr.dtype) + repr(arr.shape)


def test_append_to_dandi_000006_keeps_everything(tmp_path):
    original = real_000006()
    target = tmp_path / "sub-anm369963_ses-20170228.nwb"
    shutil.copyfile(original, target)
    before = _snapshot(target)
    issues_before = _inspect(target)
    session = read_session(target, behavior=False)
    ds = ConditionMapper(by="type", align="cue_start_time", align_reference="start_time",
                         window=(-0.5, 0.5), bin_size=0.05, behavior=False,
                         verbose=False).build(session)
    model = tiny(rank=1).fit(ds.train, ds.val)
    write_results(model, ds, target, append=True)
    after = _snapshot(target)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert changed == []
    new = set(after) - set(before)
    assert any(k.startswith("processing/jedi/") for k in new)
    assert all(k.startswith(("processing/jedi", "specifications/", "processing"))
               for k in new), sorted(new)
    assert np.array_equal(load_model(target).predict_rates(ds), model.predict_rates(ds))
    assert_same_dataset(load_dataset(target), ds)
    # Appending adds no inspector issue (the 2017 original has its own, left as they were).
    assert _inspect(target) == issues_before
    with pytest.raises(UserError, match="already has a processing module named 'jedi'"):
        write_results(model, ds, target, append=True)


def test_append_into_a_copy_leaves_the_source_alone(arrays_fit, written, tmp_path):
    model, ds = arrays_fit
    source = tmp_path / "source.nwb"
    shutil.copyfile(written["minimal"], source)
    before = source.read_bytes()
    out = write_results(model, ds, tmp_path / "copy.nwb", source=source, append=True,
                        module_name="jedi_again")
    assert source.read_bytes() == before
    with h5py.File(out, "r") as h5:
        assert {"jedi", "jedi_again"} <= set(h5["processing"])
    with pytest.raises(ModelFileError, match="several JEDI models"):
        load_model(out)
    assert np.array_equal(load_model(out, "jedi_again").predict_rates(ds),
                          model.predict_rates(ds))


# ---------------------------------------------------------------------------------- given results
def test_given_results_are_only_serialized(arrays_fit, tmp_path, monkeypatch):
    from nwb_jedi.io.load import read_summary
    from nwb_jedi.model.results import compute_results

    model, ds = arrays_fit
    results = compute_results(model, ds)

    def no_prediction(*args, **kwargs):
        raise AssertionError("write_results predicted again")

    monkeypatch.setattr(model, "predict_rates", no_prediction)
    out = write_results(model, ds, tmp_path / "given.nwb", results=results)
    # Issue 13: rates on a regular grid; each trial's samples through the trials table.
    np.testing.assert_array_equal(stored_rates(out), results.rates)
    stored = read_summary(out)["metrics"]
    assert list(stored["split"].unique()) == list(results.metrics)
    for row in stored.itertuples():
        assert row.value == results.metrics[row.split][row.metric]
    # metrics= replaces the results' metrics
    out = write_results(model, ds, tmp_path / "metrics.nwb", results=results,
                        metrics={"test": {"bits_per_spike": 0.25}})
    assert read_summary(out)["metrics"].to_dict("list") == {
        "metric": ["bits_per_spike"], "value": [0.25], "split": ["test"]}


def test_results_of_other_data_are_refused(arrays_fit, tmp_path):
    from nwb_jedi.model.results import compute_results

    model, ds = arrays_fit
    results = compute_results(model, ds.subset(ds.split == "train"))
    with pytest.raises(UserError, match="compute the results on this dataset"):
        write_results(model, ds, tmp_path / "x.nwb", results=results)
    assert not (tmp_path / "x.nwb").exists()
