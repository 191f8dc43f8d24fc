"""What the test DANDI server of `tests/io/conftest.py` serves, for the tests that ask it."""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
REAL_000006 = DATA / "sub-anm369963_ses-20170228.nwb"
REAL_000006_SHARED = Path("/work/shared/data/nwb_fixtures/sub-anm369963_ses-20170228.nwb")

PINNED = "0.220113.0400"
REAL_PATH = "sub-anm369963/sub-anm369963_ses-20170228.nwb"
BIG_PATH = "sub-big/sub-big_ses-1_ecephys.nwb"


def real_000006() -> Path:
    """The real DANDI:000006 file shipped in tests/data (copied from the shared fixtures)."""
    if not REAL_000006.exists() and REAL_000006_SHARED.exists():
        DATA.mkdir(exist_ok=True)
        shutil.copyfile(REAL_000006_SHARED, REAL_000006)
    return REAL_000006
