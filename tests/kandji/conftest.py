"""Fixtures of the Kandji client's tests."""

import pytest
from kandji_fakes import InstantTime, VirtualTime


@pytest.fixture
def virtual_time() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def clock() -> InstantTime:
    return InstantTime()
