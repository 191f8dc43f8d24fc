"""Small real datasets shipped inside the package.

``yu2009_pmd_reaching.nwb``: 61 PMd units of a rhesus macaque during delayed center-out
reaching (Yu et al. 2009, as distributed with DataHigh; GPL-3.0 repository content, see
``nwb_jedi/datasets/data/SOURCE.txt``). It is an ordinary NWB file: ``read_session`` reads it
like any other.

Examples
--------
>>> from nwb_jedi import datasets
>>> ds = datasets.load_reaching()            # 7 reach targets x 30 trials, 20 ms bins
>>> session = nwb_jedi.read_session(datasets.reaching_path())
"""

from __future__ import annotations

from pathlib import Path

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.data.presets import preset

DATA_DIR = Path(__file__).parent / "data"
REACHING_FILE = "yu2009_pmd_reaching.nwb"


def reaching_path() -> str:
    """Path of the embedded PMd reaching NWB file (Yu et al. 2009 / DataHigh)."""
    path = DATA_DIR / REACHING_FILE
    if not path.exists():  # pragma: no cover - a broken install
        raise FileNotFoundError(path)
    return str(path)


def embedded() -> list[dict[str, str]]:
    """The datasets shipped inside the package: ``name``, ``path``, ``description``,
    ``preset`` (the mapper preset that fits them) and ``licence``."""
    return [{"name": "yu2009", "path": reaching_path(),
             "description": "monkey dorsal premotor cortex (PMd), 61 units, delayed "
                            "center-out reaching to 7 targets (Yu et al. 2009, as distributed "
                            "with DataHigh, Cowley et al. 2013)",
             "preset": "yu2009",
             "licence": f"GPL-3.0 repository content; see {DATA_DIR / 'SOURCE.txt'}"}]


def reaching_source() -> str:
    """The source and licence text of the embedded reaching data."""
    return (DATA_DIR / "SOURCE.txt").read_text()


def reaching_mapper(bin_size: float = 0.02, **kwargs) -> ConditionMapper:
    """The default ConditionMapper for the embedded data.

    The 'ex1_delay' trials (7 reach targets x 30), conditions = ``reach_target``, aligned on
    ``target_on_time`` with the window 100..500 ms after target onset (the 400 ms the source
    recorded), 20 ms bins: the ``yu2009`` preset. Keyword arguments override any setting.
    """
    settings = {**preset("yu2009"), "bin_size": bin_size, "verbose": False, **kwargs}
    return ConditionMapper(**settings)


def load_reaching(bin_size: float = 0.02, **kwargs) -> TrialDataset:
    """The embedded reaching data as a TrialDataset (see `reaching_mapper`)."""
    from nwb_jedi.io.read import read_session

    return reaching_mapper(bin_size=bin_size, **kwargs).build(read_session(reaching_path()))


__all__ = ["embedded", "reaching_path", "reaching_source", "reaching_mapper", "load_reaching"]
