from __future__ import annotations

import pytest

from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock
from tests.stores.contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self, clock: FakeClock) -> MemoryStore:
        return MemoryStore(clock=clock)
