from __future__ import annotations

import pytest

from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock
from tests.stores.alert_contract import AlertReadsContract
from tests.stores.contract import StoreContract


class TestMemoryStore(StoreContract, AlertReadsContract):
    @pytest.fixture
    def store(self, clock: FakeClock) -> MemoryStore:
        return MemoryStore(clock=clock)


def test_due_count_matches_a_full_count_for_a_large_random_heap() -> None:
    import random
    from datetime import timedelta

    from beatx.jobs import JobStatus
    from tests.stores.contract import T0, make_job

    rng = random.Random(7)
    store = MemoryStore(clock=FakeClock(T0))
    jobs = [make_job(f"j{i}", at=T0 + timedelta(seconds=rng.randint(-500, 500))) for i in range(2000)]
    for job in jobs:
        store.add_job(job)
    for job in rng.sample(jobs, 300):  # stale heap entries: re-scheduled and paused jobs
        job.next_run_time = T0 + timedelta(seconds=rng.randint(-500, 500))
        job.status = rng.choice([JobStatus.ACTIVE, JobStatus.PAUSED])
        store.update_job(job, reschedule=True)
    for offset in (-600, -100, 0, 250, 600):
        now = T0 + timedelta(seconds=offset)
        expected = sum(
            1 for j in store.get_jobs() if j.status.schedulable and j.next_run_time and j.next_run_time <= now
        )
        assert store.due_count(now) == expected
