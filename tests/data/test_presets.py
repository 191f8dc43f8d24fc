"""Mapper presets and the asset a preset picks in multi-file dandisets."""

import pytest

from nwb_jedi.data.presets import PRESET_ASSETS, PRESETS, preset
from nwb_jedi.errors import UserError


def test_presets_are_complete_mapper_settings():
    for name in PRESETS:
        settings = preset(name)
        assert {"by", "align", "window", "bin_size"} <= set(settings)
        assert settings["window"][1] > settings["window"][0]
    assert preset("MC-Maze") == PRESETS["mc_maze"]
    with pytest.raises(UserError, match="unknown preset 'nope'; choose one of"):
        preset("nope")


def test_asset_patterns_belong_to_known_presets():
    assert set(PRESET_ASSETS) <= set(PRESETS)
