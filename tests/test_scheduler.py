"""The in-process asyncio scheduler, on the real clock with short intervals."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from beatx import (
    ConfigurationError,
    ConflictingIdError,
    CronTrigger,
    DateTimeTrigger,
    IntervalTrigger,
    InvalidJobError,
    InvalidTriggerError,
    JobStatus,
    Scheduler,
    SchedulerConfig,
)


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), 20))


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_async_and_sync_jobs_run_with_their_arguments() -> None:
    seen: list[tuple[str, Any]] = []
    threads: list[str] = []

    async def coro(x: int) -> None:
        seen.append(("async", x))

    def plain(*, y: str) -> None:
        threads.append(threading.current_thread().name)
        seen.append(("sync", y))

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(coro, "interval", seconds=10, args=[1], id="a")
        scheduler.add_job(plain, IntervalTrigger(seconds=10), kwargs={"y": "z"}, job_id="b")
        async with scheduler:
            await wait_until(lambda: len(seen) == 2)
        assert threading.main_thread().name not in threads

    run(main)
    assert sorted(seen) == [("async", 1), ("sync", "z")]


def test_an_exception_marks_the_job_failed_and_it_keeps_its_schedule() -> None:
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first run fails")

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(flaky, IntervalTrigger(seconds=0.2), id="flaky")
        async with scheduler:
            await wait_until(lambda: calls >= 1)
            await wait_until(lambda: scheduler.get_job("flaky").last_error is not None)  # type: ignore[union-attr]
            job = scheduler.get_job("flaky")
            assert job is not None and job.last_error == "ValueError: first run fails"
            await wait_until(lambda: scheduler.get_job("flaky").status is JobStatus.ACTIVE)  # type: ignore[union-attr]
            assert calls >= 2

    run(main)


def test_a_one_shot_runs_once_and_completes() -> None:
    ran: list[datetime] = []

    async def main() -> None:
        scheduler = Scheduler()
        job = scheduler.add_job(
            lambda: ran.append(datetime.now(UTC)),
            trigger="date",
            run_date=datetime.now(UTC) + timedelta(milliseconds=200),
            job_id="once",
        )
        async with scheduler:
            await wait_until(lambda: scheduler.get_job("once").status is JobStatus.COMPLETED)  # type: ignore[union-attr]
            await asyncio.sleep(0.3)
        assert job.next_run_time is not None and ran[0] >= job.next_run_time

    run(main)
    assert len(ran) == 1


def test_a_job_added_while_running_fires_on_time() -> None:
    fired: list[float] = []

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(lambda: None, IntervalTrigger(hours=1, start_now=False), id="far")
        async with scheduler:
            await asyncio.sleep(0.1)
            due = datetime.now(UTC) + timedelta(milliseconds=200)
            scheduler.add_job(lambda: fired.append(time.time()), DateTimeTrigger(due), id="soon")
            await wait_until(lambda: bool(fired))
            assert fired[0] - due.timestamp() < 0.15

    run(main)


def test_pause_stops_fires_and_resume_restarts_them() -> None:
    count = 0

    def bump() -> None:
        nonlocal count
        count += 1

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(bump, IntervalTrigger(seconds=0.1), id="j")
        async with scheduler:
            await wait_until(lambda: count >= 2)
            assert scheduler.pause_job("j")
            await asyncio.sleep(0.15)
            paused_at = count
            await asyncio.sleep(0.4)
            assert count == paused_at
            assert scheduler.get_jobs(status=JobStatus.PAUSED)[0].id == "j"
            assert scheduler.resume_job("j")
            await wait_until(lambda: count >= paused_at + 2)

    run(main)


def test_removed_jobs_are_cancelled_and_stop() -> None:
    count = 0

    def bump() -> None:
        nonlocal count
        count += 1

    async def main() -> None:
        scheduler = Scheduler()
        job = scheduler.add_job(bump, IntervalTrigger(seconds=0.1), id="j")
        async with scheduler:
            await wait_until(lambda: count >= 1)
            assert scheduler.remove_job("j") is True
            assert scheduler.remove_job("j") is False
            await asyncio.sleep(0.15)
            frozen = count
            await asyncio.sleep(0.3)
            assert count == frozen
        assert job.status is JobStatus.CANCELLED
        assert scheduler.get_job("j") is None

    run(main)


def test_max_instances_skips_overlapping_runs() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.5)

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(slow, IntervalTrigger(seconds=0.1), id="slow", max_instances=1)
        async with scheduler:
            await asyncio.sleep(0.45)
            job = scheduler.get_job("slow")
            assert job is not None
            assert job.total_run_count == 1 and job.skip_count >= 2 and job.running == 1

    run(main)


def test_max_concurrent_jobs_caps_runs_across_jobs() -> None:
    peak = 0
    active = 0

    async def work() -> None:
        nonlocal peak, active
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.3)
        active -= 1

    async def main() -> None:
        scheduler = Scheduler(SchedulerConfig(max_concurrent_jobs=2))
        for i in range(5):
            scheduler.add_job(work, IntervalTrigger(seconds=0.1), id=f"j{i}", max_instances=3)
        async with scheduler:
            await asyncio.sleep(0.8)

    run(main)
    assert peak == 2


def test_graceful_shutdown_lets_running_jobs_finish() -> None:
    finished: list[bool] = []

    async def slow() -> None:
        await asyncio.sleep(0.3)
        finished.append(True)

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(slow, IntervalTrigger(hours=1), id="slow")
        await scheduler.start()
        await asyncio.sleep(0.05)
        await scheduler.shutdown(wait=True)
        assert finished == [True]
        assert not scheduler.running

    run(main)


def test_shutdown_without_wait_cancels_running_jobs() -> None:
    finished: list[bool] = []

    async def slow() -> None:
        await asyncio.sleep(5)
        finished.append(True)

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(slow, IntervalTrigger(hours=1), id="slow")
        await scheduler.start()
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await scheduler.shutdown(wait=False)
        assert time.monotonic() - started < 1
        job = scheduler.get_job("slow")
        assert job is not None and job.last_error is not None and "cancelled" in job.last_error

    run(main)
    assert finished == []


def test_decorators_register_jobs_with_stable_ids() -> None:
    scheduler = Scheduler()

    @scheduler.interval(minutes=5)
    async def check_updates() -> None: ...

    @scheduler.cron("0 3 * * *", timezone="Europe/Paris")
    async def nightly_cleanup() -> None: ...

    ids = {job["id"]: job for job in scheduler.jobs()}
    assert len(ids) == 2
    cron_job = next(j for j in ids.values() if j["func"].endswith("nightly_cleanup"))
    assert cron_job["trigger"].startswith("At 03:00")
    assert all(j["next_run_time"] is not None for j in ids.values())


def test_decorated_module_functions_keep_their_id_across_restarts() -> None:
    from beatx.stores.memory import MemoryStore
    from tests import sample_tasks

    store = MemoryStore()
    first = Scheduler(store=store)
    first.interval(seconds=30)(sample_tasks.record)
    second = Scheduler(store=store)
    second.interval(seconds=30)(sample_tasks.record)
    assert [j.id for j in store.get_jobs()] == ["tests.sample_tasks:record"]


def test_a_duplicate_id_conflicts_unless_replacing() -> None:
    scheduler = Scheduler()
    scheduler.add_job(print, "interval", seconds=5, id="x")
    with pytest.raises(ConflictingIdError, match="'x' already exists"):
        scheduler.add_job(print, "interval", seconds=5, id="x")
    replaced = scheduler.add_job(print, "interval", seconds=7, id="x", replace_existing=True)
    assert replaced.trigger.describe() == "every 7 seconds"


def test_jobs_lists_every_job_with_policy_and_state() -> None:
    scheduler = Scheduler(SchedulerConfig(job_defaults={"misfire_grace_time": 30, "max_instances": 3}))
    scheduler.add_job(print, CronTrigger("*/15 * * * *"), id="c", name="quarterly")
    (listed,) = scheduler.jobs()
    assert listed["id"] == "c" and listed["name"] == "quarterly"
    assert listed["status"] == "active"
    assert (listed["misfire_grace_time"], listed["max_instances"], listed["coalesce"]) == (30, 3, True)
    assert listed["total_run_count"] == 0 and listed["next_run_time"].tzinfo is not None


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.add_job(print, "cron", expression="61 * * * *"), InvalidTriggerError),
        (lambda s: s.add_job(print, "interval", seconds=0), InvalidTriggerError),
        (lambda s: s.add_job(print, "hourly"), InvalidTriggerError),
        (lambda s: s.add_job(print), InvalidJobError),
        (lambda s: s.add_job("nowhere.module:func", "interval", seconds=1), ConfigurationError),
        (lambda s: s.add_job("tests.sample_tasks:missing", "interval", seconds=1), ConfigurationError),
        (lambda s: s.add_job("not a reference", "interval", seconds=1), ConfigurationError),
        (lambda s: s.add_job(print, "interval", seconds=1, max_instances=0), InvalidJobError),
        (lambda s: s.add_job(print, "interval", seconds=1, misfire_grace_time=-1), InvalidJobError),
        (
            lambda s: s.add_job(print, "cron", expression="0 0 * * *", timezone="Nowhere/City"),
            InvalidTriggerError,
        ),
    ],
    ids=[
        "bad-cron",
        "zero-interval",
        "unknown-trigger",
        "no-trigger",
        "unimportable-module",
        "missing-attribute",
        "bad-reference",
        "zero-instances",
        "negative-grace",
        "unknown-timezone",
    ],
)
def test_bad_jobs_are_refused_with_a_clear_error(call: Callable[[Scheduler], object], error: type) -> None:
    with pytest.raises(error):
        call(Scheduler())


def test_a_reference_string_runs_the_imported_function() -> None:
    from tests import sample_tasks

    sample_tasks.calls.clear()

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job("tests.sample_tasks:record_async", "interval", hours=1, args=[5], id="ref")
        async with scheduler:
            await wait_until(lambda: bool(sample_tasks.calls))

    run(main)
    assert sample_tasks.calls == [((5,), {})]


def test_a_disabled_scheduler_does_not_start() -> None:
    async def main() -> None:
        scheduler = Scheduler(SchedulerConfig(enabled=False))
        await scheduler.start()
        assert not scheduler.running

    run(main)
