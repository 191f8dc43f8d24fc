"""Which asset a preset picks in a multi-file dandiset: only for a SOURCE that names none."""

import pytest

from nwb_jedi.commands._options import preset_asset


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
    assert preset_asset("MC-Maze", source) == expected
    assert preset_asset("yu2009", source) is None
    assert preset_asset(None, source) is None


def test_preset_asset_ignores_local_files(tmp_path):
    (tmp_path / "000128").write_bytes(b"")
    assert preset_asset("mc_maze", str(tmp_path / "000128")) is None
    assert preset_asset("mc_maze", "000128") is None  # a file here, not a dandiset ID
