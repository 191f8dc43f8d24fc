"""Small teachers shared by the synthetic tests: trained once, then loaded from the disk cache
(``$NWB_JEDI_CACHE`` or the platform cache dir), so later runs never retrain."""

from __future__ import annotations

import pytest

from tests.synthetic.teachers import SMALL, TASKS3


@pytest.fixture(scope="session")
def small_teacher():
    from nwb_jedi.synthetic import get_teacher

    return get_teacher(TASKS3, seed=0, **SMALL)


@pytest.fixture(scope="session")
def small_dataset(small_teacher):
    from nwb_jedi.synthetic import make_dataset

    return make_dataset(TASKS3, trials_per_condition=4, seed=0, teacher=small_teacher)
