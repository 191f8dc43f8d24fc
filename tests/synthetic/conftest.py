"""Small teachers shared by the synthetic tests: trained once, then loaded from the disk cache
(``$NWB_JEDI_CACHE`` or the platform cache dir), so later runs never retrain."""

from __future__ import annotations

import pytest

#: A tiny multitask teacher: good enough to have task-dependent dynamics, fast to train.
SMALL = {"n_units": 40, "max_iters": 60}
TASKS3 = ("sine", "memorypro", "dm")


@pytest.fixture(scope="session")
def small_teacher():
    from nwb_jedi.synthetic import get_teacher

    return get_teacher(TASKS3, seed=0, **SMALL)


@pytest.fixture(scope="session")
def small_dataset(small_teacher):
    from nwb_jedi.synthetic import make_dataset

    return make_dataset(TASKS3, trials_per_condition=4, seed=0, teacher=small_teacher)
