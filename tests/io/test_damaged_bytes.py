"""Model files with flipped bytes: whatever h5py raises on damaged bytes (OSError, RuntimeError,
KeyError, UnicodeDecodeError, a SystemError around one of them) is one "... is damaged"
ModelFileError (CLI: one line, exit 2), and a flipped bit inside a parameter tensor fails the
tensor's Fletcher-32 checksum instead of loading other weights. Every damaged file here is a
real file written by write_results with bytes XORed with 0xFF at a located offset."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_jedi.cli import main
from nwb_jedi.errors import ModelFileError, UserError
from nwb_jedi.io.load import load_dataset, load_model, read_summary
from nwb_jedi.io.untrusted import check_dataset, check_links, h5py_failures

MODULE = "processing/jedi"
MODEL = f"{MODULE}/model"
GAIN = "readout.gain"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, arrays_fit) -> Path:
    """A small model written by write_results (one fit shared with the other io tests)."""
    from nwb_jedi.io.write import write_results

    model, ds = arrays_fit
    return write_results(model, ds, tmp_path_factory.mktemp("damaged") / "model.nwb")


def _flip(path: Path, offsets) -> None:
    """XOR the bytes at `offsets` with 0xFF, in place."""
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _tensor(h5: h5py.File, tensor: str) -> h5py.Dataset:
    for obj in h5[MODEL].values():
        if obj.attrs.get("tensor_name") == tensor:
            return obj
    raise AssertionError(f"no tensor {tensor}")


def _data_offset(ds: h5py.Dataset) -> int:
    """File offset of a dataset's first stored byte (first chunk, or contiguous data)."""
    return ds.id.get_chunk_info(0).byte_offset if ds.chunks else ds.id.get_offset()


def _text_start(path: Path, dataset: str) -> list[int]:
    """Offset of the first byte of a stored JSON text (in the global heap; found once)."""
    with h5py.File(path, "r") as h5:
        text = h5[dataset].asstr()[()].encode()
    data = path.read_bytes()
    assert data.count(text) == 1
    return [data.find(text)]


def _fit_state_text(path: Path) -> list[int]:
    return _text_start(path, f"{MODEL}/fit_state")


def _heap_free_list(path: Path, group: str = f"{MODULE}/eigenvalues") -> list[int]:
    """The 8 bytes of the free-list offset of `group`'s local heap (its link names)."""
    with h5py.File(path, "r") as h5:
        names = set(h5[group])
    data = path.read_bytes()
    pos = data.find(b"HEAP")
    while pos >= 0:
        size, _, addr = struct.unpack_from("<QQQ", data, pos + 8)
        stored = {n.decode("latin-1") for n in data[addr:addr + size].split(b"\0") if n}
        if addr + size <= len(data) and names <= stored:
            return list(range(pos + 16, pos + 24))
        pos = data.find(b"HEAP", pos + 4)
    raise AssertionError(f"no local heap holds the links of {group}")


def _tensor_header(path: Path) -> list[int]:
    """The version byte of a parameter tensor's object header."""
    with h5py.File(path, "r") as h5:
        return [h5py.h5o.get_info(_tensor(h5, GAIN).id).addr]


def _tensor_data(path: Path) -> list[int]:
    """One byte in the middle of a parameter tensor's stored values."""
    with h5py.File(path, "r") as h5:
        ds = _tensor(h5, GAIN)
        return [_data_offset(ds) + ds.dtype.itemsize * (ds.size // 2)]


DAMAGE = {"fit_state_text": _fit_state_text, "link_heap": _heap_free_list,
          "tensor_header": _tensor_header, "tensor_data": _tensor_data}


def _damaged(model_file: Path, tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.nwb"
    shutil.copyfile(model_file, path)
    _flip(path, DAMAGE[kind](path))
    return path


@pytest.mark.parametrize("kind, where", [
    ("fit_state_text", r"fit_state \(/processing/jedi/model/fit_state\)"),
    ("link_heap", "the list of links under /processing/jedi"),
    # HDF5 opens each member's header to walk the links: found there, before any read.
    ("tensor_header", "the list of links under /processing/jedi"),
    ("tensor_data", r"tensor 'readout.gain' \(/processing/jedi/model/readout__gain\)"),
])
def test_flipped_bytes_are_a_damaged_file(model_file, tmp_path, kind, where):
    path = _damaged(model_file, tmp_path, kind)
    for read in (load_model, read_summary):
        with pytest.raises(ModelFileError, match=f"(?s){where}.* is damaged: HDF5 could not "
                                                 f"read it .*get an undamaged copy"):
            read(path)


def test_a_flipped_tensor_byte_fails_its_checksum(model_file, tmp_path):
    with h5py.File(model_file, "r") as h5:
        parameters = [obj for obj in h5[MODEL].values()
                      if obj.attrs.get("neurodata_type") == "JEDIParameter" and obj.size]
        assert parameters and all(ds.fletcher32 for ds in parameters)
    load_model(model_file)  # the checksums pass on intact bytes
    path = _damaged(model_file, tmp_path, "tensor_data")
    with pytest.raises(ModelFileError, match="tensor 'readout.gain'.* is damaged"):
        load_model(path)


def test_undecodable_text_of_the_modelled_data_is_a_damaged_file(model_file, tmp_path):
    path = tmp_path / "metadata.nwb"
    shutil.copyfile(model_file, path)
    _flip(path, _text_start(path, f"{MODULE}/modelled_data/dataset_metadata"))
    with pytest.raises(ModelFileError, match=r"dataset_metadata \(/processing/jedi/modelled_data/"
                                             r"dataset_metadata\) is damaged"):
        load_dataset(path)
    with pytest.raises(ModelFileError, match="dataset_metadata.* is damaged"):
        read_summary(path)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["show", "analyze", "predict"])
def test_cli_damaged_file_is_one_line_and_exit_2(model_file, tmp_path, monkeypatch, capsys,
                                                 kind, command):
    monkeypatch.chdir(tmp_path)
    path = _damaged(model_file, tmp_path, kind)
    argv = {"show": ["show", str(path)],
            "analyze": ["analyze", str(path), "--out", str(tmp_path / "d"), "--quiet"],
            "predict": ["predict", str(path), str(model_file), "--out",
                        str(tmp_path / "p.nwb"), "--quiet"]}[command]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nwb-jedi: error: "), lines
    assert "damaged" in lines[0] and "Traceback" not in lines[0]


# ------------------------------------------------------------------ what is not turned
def test_errors_of_our_own_code_are_never_called_damage(model_file):
    with h5py.File(model_file, "r") as h5:
        def buggy(name, link):
            raise NameError("a bug in a visit callback")

        # h5py reports a failing callback as a SystemError around it: still a bug, not damage.
        with pytest.raises((SystemError, NameError)), h5py_failures("x", ModelFileError):
            h5[MODULE].visititems_links(buggy)
        with pytest.raises(KeyError, match="ours"), h5py_failures("x", ModelFileError):
            {}["ours"]  # noqa: B018 - raised by this package's code, not by h5py
        with pytest.raises(UserError, match="kept as is"), h5py_failures("x", ModelFileError):
            raise UserError("kept as is")
        with pytest.raises(ModelFileError, match="x is damaged"), \
                h5py_failures("x", ModelFileError):
            h5[MODULE]["no such member"]  # noqa: B018 - h5py fails on the file
        check_links(h5[MODULE], ModelFileError)  # an intact file passes


def test_fletcher32_is_accepted_and_plugin_filters_still_refused(tmp_path):
    with h5py.File(tmp_path / "filters.h5", "w") as h5:
        good = h5.create_dataset("good", data=np.arange(10, dtype=np.float32), fletcher32=True)
        check_dataset(good, "tensor 'good'", ModelFileError)
        plugin = h5.create_dataset("plugin", shape=(10,), dtype=np.float32, fletcher32=True,
                                   compression=32001, allow_unknown_filter=True)
        with pytest.raises(ModelFileError, match="HDF5 filter 32001, .* load a plugin"):
            check_dataset(plugin, "tensor 'plugin'", ModelFileError)


def test_a_user_error_raised_during_a_link_visit_is_itself(tmp_path):
    """h5py wraps what a visit callback raises in a SystemError; a UserError of ours comes
    out as itself, not as a traceback and not as damage."""
    path = tmp_path / "visit.h5"
    with h5py.File(path, "w") as h5:
        h5["group/data"] = np.arange(3)
    with h5py.File(path, "r") as h5:
        def visit(name, link):
            raise UserError(f"refused {name}")

        with pytest.raises(UserError, match="^refused group$"), h5py_failures("the file"):
            h5.visititems_links(visit)
