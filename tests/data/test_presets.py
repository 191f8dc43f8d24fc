"""Mapper presets and the asset a preset picks in multi-file dandisets."""

import pytest

from nwb_jedi.data.presets import PRESETS, preset, preset_asset
from nwb_jedi.errors import UserError


def test_presets_are_complete_mapper_settings():
    for name in PRESETS:
        settings = preset(name)
        assert {"by", "align", "window", "bin_size"} <= set(settings)
        assert settings["window"][1] > settings["window"][0]
    assert preset("MC-Maze") == PRESETS["mc_maze"]
    with pytest.raises(UserError, match="unknown preset 'nope'; choose one of"):
        preset("nope")


@pytest.mark.parametrize("source, expected", [
    ("DANDI:000128/0.220113.0400", "*_desc-train_*.nwb"),
    ("DANDI:000128", "*_desc-train_*.nwb"),
    ("000128", "*_desc-train_*.nwb"),
    ("dandi://dandi/000128@0.220113.0400", "*_desc-train_*.nwb"),
    ("https://dandiarchive.org/dandiset/000128/0.220113.0400", "*_desc-train_*.nwb"),
    ("DANDI:000128/0.220113.0400/sub-Jenkins/sub-Jenkins_ses-full_desc-test_ecephys.nwb", None),
    ("https://dandiarchive.org/dandiset/000128/draft/files?location=sub-Jenkins", None),
    (None, None),
])
def test_preset_asset_only_for_a_bare_dandiset(source, expected):
    assert preset_asset("mc_maze", source) == expected
    assert preset_asset("yu2009", source) is None
    assert preset_asset(None, source) is None


def test_preset_asset_ignores_local_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "000128").write_bytes(b"")
    assert preset_asset("mc_maze", "000128") is None
