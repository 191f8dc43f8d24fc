"""load_model / load_dataset: round trips of what write_results wrote, and refusal of unsafe
or damaged model files (nothing unpickled, nothing executed)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi.errors import ModelFileError
from nwb_jedi.io.load import load_dataset, load_model
from tests.io.fits import assert_same_dataset


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


# ---------------------------------------------------------------------------------- estimators
class _OtherEstimator:
    """Stands for an estimator other than JEDI that the lead registers in model.FORMATS."""

    @classmethod
    def from_state(cls, config, tensors):
        new = cls()
        new.config, new.tensors = config, tensors
        return new


def _with_format(written, tmp_path, name: str) -> Path:
    path = tmp_path / "format.nwb"
    shutil.copyfile(written["minimal"], path)
    with h5py.File(path, "a") as h5:
        group = h5["processing/jedi/model"]
        config = json.loads(group.attrs["config"])
        config["format"] = name
        group.attrs["config"] = json.dumps(config)
    return path


def test_load_model_chooses_the_estimator_by_the_stored_format(written, tmp_path, monkeypatch):
    from nwb_jedi import model as model_pkg

    path = _with_format(written, tmp_path, "tests.Other")
    monkeypatch.setitem(model_pkg.FORMATS, "tests.Other", (__name__, "_OtherEstimator"))
    loaded = load_model(path)
    assert type(loaded).__name__ == "_OtherEstimator"
    assert loaded.config["format"] == "tests.Other"
    assert "unit_id" in loaded.config and "history" in loaded.config  # the fit state too
    assert "readout.gain" in loaded.tensors
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match="not a model nwb_jedi can load.*'tests.Other'"):
        load_model(path)


# ---------------------------------------------------------------------------------- old location
@pytest.mark.parametrize("name", ["load_model", "load_dataset", "read_summary", "find_modules"])
def test_readers_are_still_importable_from_io_write_for_one_release(name):
    from nwb_jedi.io import load, write

    with pytest.warns(DeprecationWarning, match=f"io.write.{name} moved to nwb_jedi.io.load"):
        moved = getattr(write, name)
    assert moved is getattr(load, name)


def test_io_write_has_no_other_lazy_names():
    from nwb_jedi.io import write

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        write.nothing_here  # noqa: B018


def test_facade_loads_through_io_load():
    import nwb_jedi
    from nwb_jedi.io import load

    assert nwb_jedi.load_model is load.load_model
    assert nwb_jedi.load_dataset is load.load_dataset
