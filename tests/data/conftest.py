"""Fixtures of the data tests: the hand-built session of `tests.data.sessions`."""

import pytest

from tests.data.sessions import make_session


@pytest.fixture
def hand_session():
    """`make_session()`: 12 trials, 3 units, spikes at known times (a fresh copy per test)."""
    return make_session()
