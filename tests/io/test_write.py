"""write_results / load_model / load_dataset: round trips, derived and appended files,
nwbinspector, plain-pynwb readability, refusal of unsafe model files, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import ModelFileError, UserError
from nwb_jedi.io import write as write_mod
from nwb_jedi.io.read import read_session
from nwb_jedi.io.write import load_dataset, load_model, write_results
from nwb_jedi.model.jedi import JEDI
from tests.io.assets import real_000006

SESSION_META = {"session_start_time": "2021-03-04T10:00:00+00:00", "session_id": "arrays-1",
                "session_description": "synthetic counts",
                "subject": {"subject_id": "m1", "species": "Mus musculus", "sex": "F",
                            "age": "P90D"}}


def tiny(**kw) -> JEDI:
    params = dict(hidden=16, embed_dim=3, rank=2, max_epochs=4, patience=2, device="cpu",
                  seed=0)
    params.update(kw)
    return JEDI(**params)


def assert_same_dataset(a: TrialDataset, b: TrialDataset) -> None:
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.condition, b.condition)
    pd.testing.assert_frame_equal(a.conditions.reset_index(drop=True),
                                  b.conditions.reset_index(drop=True))
    np.testing.assert_array_equal(a.trial_id, b.trial_id)
    assert a.trial_id.dtype.kind == b.trial_id.dtype.kind
    np.testing.assert_array_equal(a.unit_id, b.unit_id)
    assert a.unit_id.dtype.kind == b.unit_id.dtype.kind
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.align_time, b.align_time)
    assert a.bin_size == b.bin_size
    np.testing.assert_array_equal(a.split, b.split)


@pytest.fixture(scope="module")
def arrays_fit():
    rng = np.random.default_rng(3)
    counts = rng.poisson(1.5, size=(36, 8, 5))
    labels = [("maze", i % 4) for i in range(36)]
    ds = TrialDataset.from_arrays(counts, labels, 0.02, condition_names=["task", "target"],
                                  trial_ids=[f"t{i:03d}" for i in range(36)],
                                  align_time=10.0 + np.arange(36) * 1.0,
                                  metadata={"session": SESSION_META})
    return tiny().fit(ds.train, ds.val), ds


@pytest.fixture(scope="module")
def maze_fit(mc_maze_nwb):
    session = read_session(mc_maze_nwb, behavior=False)
    mapper = ConditionMapper(by="trial_type", align="move_onset_time", window=(-0.1, 0.2),
                             bin_size=0.02, behavior=False, verbose=False)
    ds = mapper.build(session)
    return tiny(trial_embeddings=True).fit(ds.train, ds.val), ds, session


@pytest.fixture(scope="module")
def written(tmp_path_factory, arrays_fit, maze_fit, mc_maze_nwb):
    """Every kind of file write_results makes, written once for the module."""
    root = tmp_path_factory.mktemp("written")
    model, ds = arrays_fit
    maze_model, maze_ds, _ = maze_fit
    before = hashlib.sha256(Path(mc_maze_nwb).read_bytes()).hexdigest()
    files = {
        "minimal": write_results(model, ds, root / "minimal.nwb"),
        "derived": write_results(maze_model, maze_ds, root / "derived.nwb",
                                 source=mc_maze_nwb),
    }
    assert hashlib.sha256(Path(mc_maze_nwb).read_bytes()).hexdigest() == before
    return files


# ---------------------------------------------------------------------------------- round trip
def test_round_trip_predictions_bit_identical(arrays_fit, written):
    model, ds = arrays_fit
    loaded = load_model(written["minimal"])
    assert np.array_equal(loaded.predict_rates(ds), model.predict_rates(ds))
    assert np.array_equal(loaded.embeddings_, model.embeddings_)
    assert loaded.get_params() == {**model.get_params(), "device": "cpu"}
    assert loaded.history_ == model.history_


def test_round_trip_per_trial_embeddings_and_session_units(maze_fit, written):
    model, ds, _ = maze_fit
    loaded = load_model(written["derived"])
    assert np.array_equal(loaded.predict_rates(ds), model.predict_rates(ds))
    np.testing.assert_array_equal(loaded.trial_offset_ids_, model.trial_offset_ids_)


def test_load_dataset_equals_fitted_dataset(arrays_fit, maze_fit, written):
    assert_same_dataset(load_dataset(written["minimal"]), arrays_fit[1])
    loaded = load_dataset(written["derived"])
    assert_same_dataset(loaded, maze_fit[1])
    assert loaded.metadata["mapper"]["align"] == "move_onset_time"


def test_derived_file_copies_session_units_and_trials(maze_fit, written, mc_maze_nwb):
    from pynwb import NWBHDF5IO

    _, ds, session = maze_fit
    with NWBHDF5IO(written["derived"], "r") as io:
        out = io.read()
        assert out.session_id == session.metadata["session_id"]
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
        n_rows = ds.n_trials * ds.n_bins
        assert module["rates"].data.shape == (n_rows, ds.n_units)
        np.testing.assert_allclose(module["rates"].timestamps[:ds.n_bins],
                                   ds.align_time[0] + ds.time)
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


# ---------------------------------------------------------------------------------- unsafe files
class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _replace_tensor(path: Path, tensor: str, make) -> None:
    with h5py.File(path, "a") as h5:
        group = h5["processing/jedi/model"]
        for name, obj in list(group.items()):
            if obj.attrs.get("tensor_name") == tensor:
                attrs = dict(obj.attrs)
                del group[name]
                new = make(group, name)
                for key, value in attrs.items():
                    new.attrs[key] = value
                return
    raise AssertionError(f"no tensor {tensor}")


def _tampered(written, tmp_path, make, tensor="readout.gain") -> Path:
    path = tmp_path / "tampered.nwb"
    shutil.copyfile(written["minimal"], path)
    _replace_tensor(path, tensor, make)
    return path


@pytest.mark.parametrize("how", ["opaque", "vlen_bytes", "uint8", "object_strings"])
def test_pickled_or_object_parameters_are_refused_and_never_run(written, tmp_path, how):
    marker = tmp_path / "PWNED"
    blob = pickle.dumps(_Payload(str(marker)))

    def make(group, name):
        if how == "opaque":
            return group.create_dataset(name, data=np.void(blob))
        if how == "vlen_bytes":
            new = group.create_dataset(name, shape=(5,), dtype=h5py.vlen_dtype(np.uint8))
            for i in range(5):
                new[i] = np.frombuffer(blob, dtype=np.uint8)
            return new
        if how == "uint8":
            return group.create_dataset(name, data=np.frombuffer(blob, dtype=np.uint8))
        return group.create_dataset(name, data=["a", "b", "c", "d", "e"],
                                    dtype=h5py.string_dtype())

    path = _tampered(written, tmp_path, make)
    with pytest.raises(ModelFileError, match="readout.gain.*refusing"):
        load_model(path)
    assert not marker.exists()


def test_wrong_shape_is_refused(written, tmp_path):
    path = _tampered(written, tmp_path, lambda g, n: g.create_dataset(
        n, data=np.ones((7,), dtype=np.float32)))
    with pytest.raises(ModelFileError, match=r"readout.gain.*shape \(7,\)"):
        load_model(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_refused(written, tmp_path, bad):
    values = np.ones(5, dtype=np.float32)
    values[2] = bad
    path = _tampered(written, tmp_path, lambda g, n: g.create_dataset(n, data=values))
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        load_model(path)


def test_missing_tensor_and_unknown_version_are_refused(written, tmp_path):
    path = tmp_path / "missing.nwb"
    shutil.copyfile(written["minimal"], path)
    with h5py.File(path, "a") as h5:
        del h5["processing/jedi/model/readout__gain"]
    with pytest.raises(ModelFileError, match="missing.*readout.gain"):
        load_model(path)
    path = tmp_path / "version.nwb"
    shutil.copyfile(written["minimal"], path)
    with h5py.File(path, "a") as h5:
        group = h5["processing/jedi/model"]
        config = json.loads(group.attrs["config"])
        config["format_version"] = 99
        group.attrs["config"] = json.dumps(config)
    with pytest.raises(ModelFileError, match="version 99 is not supported"):
        load_model(path)


def test_files_without_a_model_are_refused(tmp_path, mc_maze_nwb):
    with pytest.raises(ModelFileError, match="holds no JEDI model"):
        load_model(mc_maze_nwb)
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nope.nwb")
    text = tmp_path / "text.nwb"
    text.write_text("not hdf5")
    with pytest.raises(ModelFileError, match="not a readable HDF5"):
        load_dataset(text)


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
