"""Issue 11, model files are untrusted input: parameters stored in other files are refused
(item 2), tiny files cannot make the loader allocate gigabytes (6), and damaged configs, links
and JSON are one clear ModelFileError, never a traceback (14). Every hostile file is built here
with h5py from a real file that write_results wrote."""

from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi.errors import ModelFileError
from nwb_jedi.io.load import load_dataset, load_model, read_summary

MODEL = "processing/jedi/model"
GAIN = "readout.gain"  # a (5,) float32 tensor of the minimal file


def _copy(written, tmp_path: Path, name: str = "hostile.nwb") -> Path:
    path = tmp_path / name
    shutil.copyfile(written["minimal"], path)
    return path


def _tensor_name(h5: h5py.File, tensor: str) -> str:
    for name, obj in h5[MODEL].items():
        if obj.attrs.get("tensor_name") == tensor:
            return name
    raise AssertionError(f"no tensor {tensor}")


def _replace(path: Path, tensor: str, make) -> None:
    """Replace a stored tensor by what `make(group, name)` creates, keeping its attributes."""
    with h5py.File(path, "a") as h5:
        group, name = h5[MODEL], _tensor_name(h5, tensor)
        attrs = dict(group[name].attrs)
        del group[name]
        new = make(group, name)
        if new is not None:
            for key, value in attrs.items():
                new.attrs[key] = value


def _edit_config(path: Path, **changes) -> None:
    """Change the stored config (an attribute) or fit state (a dataset), wherever each key is."""
    with h5py.File(path, "a") as h5:
        group = h5[MODEL]
        config = json.loads(group.attrs["config"])
        state = json.loads(group["fit_state"].asstr()[()])
        for key, value in changes.items():
            if key in ("rank", "hidden", "embed_dim"):
                config["params"][key] = value
            elif key in state:
                state[key] = value
            else:
                config[key] = value
        group.attrs["config"] = json.dumps(config)
        del group["fit_state"]
        group["fit_state"] = json.dumps(state)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ 2. bytes from other files
def test_parameters_stored_in_another_file_are_refused(written, tmp_path):
    secret = tmp_path / "secret.bin"  # stands for /etc/passwd: bytes the user never shared
    secret.write_bytes(np.arange(1, 6, dtype=np.float32).tobytes())
    path = _copy(written, tmp_path)
    _replace(path, GAIN, lambda g, n: g.create_dataset(
        n, shape=(5,), dtype=np.float32, external=[(str(secret), 0, 20)]))
    for read in (load_model, read_summary):
        with pytest.raises(ModelFileError, match=r"tensor 'readout.gain' .* keeps its bytes in "
                                                 r"another file .*secret.bin.*refusing"):
            read(path)


def test_a_virtual_dataset_is_refused(written, tmp_path):
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as h5:
        h5["gain"] = np.ones(5, dtype=np.float32)
    path = _copy(written, tmp_path)

    def virtual(group, name):
        layout = h5py.VirtualLayout(shape=(5,), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(source), "gain", shape=(5,))
        return group.create_virtual_dataset(name, layout)

    _replace(path, GAIN, virtual)
    with pytest.raises(ModelFileError, match="is a virtual dataset whose bytes come from other"):
        load_model(path)


@pytest.mark.parametrize("kind", ["external", "soft", "dangling"])
def test_links_inside_the_model_are_refused(written, tmp_path, kind):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["gain"] = np.full(5, 7.0, dtype=np.float32)
        h5["gain"].attrs.update(neurodata_type="JEDIParameter", tensor_name=GAIN)
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        name = _tensor_name(h5, GAIN)
        if kind == "soft":  # the bytes stay in the file, but elsewhere than the model
            h5.move(f"{MODEL}/{name}", "/acquisition_gain")
            h5[MODEL][name] = h5py.SoftLink("/acquisition_gain")
        else:
            del h5[MODEL][name]
            target = str(other) if kind == "external" else str(tmp_path / "missing.h5")
            h5[MODEL][name] = h5py.ExternalLink(target, "/gain")
    for read in (load_model, read_summary, load_dataset):
        with pytest.raises(ModelFileError, match=f"{'a soft' if kind == 'soft' else 'an external'}"
                                                 f" link to .*refusing to load this file"):
            read(path)


def test_a_module_that_is_a_link_is_not_followed(written, tmp_path):
    other = _copy(written, tmp_path, "other.nwb")
    path = tmp_path / "linking.nwb"
    with h5py.File(path, "w") as h5:
        h5.create_group("processing")
        h5["processing/jedi"] = h5py.ExternalLink(str(other), "/processing/jedi")
    with pytest.raises(ModelFileError, match="holds no JEDI model"):
        load_model(path)


# ------------------------------------------------------------------ 6. memory from tiny files
@pytest.mark.parametrize("how, message", [
    ("fill_chunked", r"stores only 0 of its 15259 chunks \(the rest would be fill values\)"),
    ("fill_contiguous", r"declares 3.73 GB but stores 0 B"),
    ("dev_zero", r"keeps its bytes in another file \('/dev/zero'\)"),
    ("compressed_zeros", r"tensors of /processing/jedi/model declare 381 MB but store \d+ KB"),
    ("beyond_limit", r"declares 3.73 GB .* more than the 1 GB allowed"),
])
def test_a_huge_declared_tensor_is_refused_before_reading(written, tmp_path, monkeypatch, how,
                                                          message):
    n = 10**9
    makers = {
        "fill_chunked": lambda g, name: g.create_dataset(name, shape=(n,), dtype=np.float32,
                                                         chunks=(65536,)),
        "fill_contiguous": lambda g, name: g.create_dataset(name, shape=(n,), dtype=np.float32),
        "dev_zero": lambda g, name: g.create_dataset(
            name, shape=(n,), dtype=np.float32, external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)]),
        "compressed_zeros": lambda g, name: g.create_dataset(
            name, data=np.zeros(10**8, dtype=np.float32), chunks=(2**20,), compression="gzip",
            compression_opts=9),
        "beyond_limit": lambda g, name: g.create_dataset(name, shape=(n,), dtype=np.float32,
                                                         chunks=(65536,)),
    }
    path = _copy(written, tmp_path)
    _replace(path, GAIN, makers[how])
    assert path.stat().st_size < 3_000_000  # a tiny file
    if how == "beyond_limit":
        monkeypatch.setenv("NWB_JEDI_MAX_ARRAY_GB", "1")
    before = _peak_rss_mb()
    for read in (load_model, read_summary):
        with pytest.raises(ModelFileError, match=message):
            read(path)
    assert _peak_rss_mb() - before < 300  # nothing of the declared size was allocated


def test_a_huge_stored_string_is_refused(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        module = h5["processing/jedi"]
        # ndx-jedi 0.2 describes the modelled data in its own group; 0.1 in binned_counts.
        group = module["modelled_data" if "modelled_data" in module else "binned_counts"]
        del group["dataset_metadata"]
        group.create_dataset("dataset_metadata", shape=(), dtype="S1000000000")
    before = _peak_rss_mb()
    for read in (load_dataset, read_summary):
        with pytest.raises(ModelFileError, match=r"dataset_metadata .* declares 954 MB but "
                                                 r"stores 0 B"):
            read(path)
    assert _peak_rss_mb() - before < 300


@pytest.mark.parametrize("changes, message", [
    (dict(rank=131072), r"rank 131072; a model of 5 units has a rank from 1 to 5"),
    (dict(hidden=10**6), r"hidden = 1000000, not an integer from 1 to 65,536"),
    (dict(hidden=60000), r"\(rank=2, hidden=60000, embed_dim=3, 5 units, 4 conditions\) "
                         r"implies at least 1,800,012 parameters, but the file stores "
                         r"[\d,]+ values"),
    (dict(n_units=10**9), r"n_units = 1000000000, not an integer from 1 to 100,000"),
    (dict(n_units=5000, unit_id=list(range(5000))), r"implies at least .* parameters"),
    (dict(embed_dim=2**20), r"embed_dim = 1048576"),
    (dict(trial_offset_ids=list(range(10**6))), r"implies at least 3,000,\d+ parameters"),
    (dict(n_bins=-3), r"n_bins = -3"),
])
def test_config_sizes_are_checked_before_building_anything(written, tmp_path, changes, message):
    path = _copy(written, tmp_path)
    _edit_config(path, **changes)
    before = _peak_rss_mb()
    with pytest.raises(ModelFileError, match=message):
        load_model(path)
    assert _peak_rss_mb() - before < 300


# ------------------------------------------------------------------ 14. damaged configs and JSON
@pytest.mark.parametrize("changes, message", [
    (dict(history={"epoch": 5}), "training history that is not a mapping of names to lists"),
    (dict(history=[1, 2]), "training history that is not a mapping"),
    (dict(history={"loss": ["x"]}), "history 'loss' that is not a list of numbers"),
    (dict(params=[1, 2]), "params that are not a mapping"),
    (dict(params={"rank": {"a": 1}}), "params that are not a mapping of names to plain values"),
    (dict(conditions={"columns": ["label"], "rows": [["a"], ["a"]]}), "two conditions with the "
                                                                      "same label"),
    (dict(conditions=[1]), "no conditions table"),
    (dict(unit_id="abc"), "does not list the ids of its 5 units"),
    (dict(bin_size="fast"), "bin_size 'fast'"),
    (dict(versions=[1]), "versions that are not a mapping"),
])
def test_malformed_configs_are_one_clear_error(written, tmp_path, changes, message):
    path = _copy(written, tmp_path)
    _edit_config(path, **changes)
    for read in (load_model, read_summary):
        with pytest.raises(ModelFileError, match=message):
            read(path)


def test_deeply_nested_json_is_refused_before_parsing(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        h5[MODEL].attrs["config"] = "[" * 100_000 + "]" * 100_000
    for read in (load_model, read_summary):
        with pytest.raises(ModelFileError, match="nested 100000 levels deep"):
            read(path)
