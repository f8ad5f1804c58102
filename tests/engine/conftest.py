"""Fixtures of the engine tests: a fake clock and a memory store on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def manager(store: MemoryStore, clock: FakeClock) -> JobManager:
    return JobManager(store, clock=clock)
