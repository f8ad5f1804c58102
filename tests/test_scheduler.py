"""The in-process asyncio scheduler, on the real clock with short intervals."""

from __future__ import annotations

import asyncio
import logging
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
    JobClaimedError,
    JobStatus,
    Scheduler,
    SchedulerConfig,
)
from beatx.stores.base import JobRelease
from beatx.stores.memory import MemoryStore


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
            await asyncio.sleep(0.75)
            job = scheduler.get_job("slow")
            assert job is not None
            # The fire due while the first run went on waited for it and ran when it ended;
            # the fires that came due meanwhile were skipped.
            assert job.total_run_count == 2 and job.skip_count >= 2 and job.running == 1

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


# -- shutdown ----------------------------------------------------------------------------------


async def _shutdown_within(scheduler: Scheduler, limit: float, **options: Any) -> float:
    """Shut the scheduler down and return how long it took; fail past ``limit`` seconds.

    The time is measured as well as bounded: a shutdown that ignores its own cancellation
    would otherwise seem to return when ``wait_for`` gives up on it."""
    started = time.monotonic()
    await asyncio.wait_for(scheduler.shutdown(**options), limit)
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"shutdown took {elapsed:.2f}s"
    return elapsed


@pytest.mark.parametrize("wait", [True, False], ids=["wait", "no-wait"])
def test_shutdown_returns_at_once_after_the_last_job_is_removed(wait: bool) -> None:
    """A change (here: removing the last job) wakes the loop just before shutdown stops it.
    The wake must not swallow the stop: shutdown used to hang (Python 3.11's wait_for
    returned the wake instead of raising the cancellation, and the loop went on forever)."""
    runs = 0

    async def tick() -> None:
        nonlocal runs
        runs += 1

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(tick, IntervalTrigger(seconds=1), id="j")
        await scheduler.start()
        await asyncio.sleep(1.5)
        assert scheduler.remove_job("j")
        assert await _shutdown_within(scheduler, 5, wait=wait) < 1
        assert not scheduler.running
        frozen = runs
        await asyncio.sleep(1.1)
        assert runs == frozen == 2

    run(main)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.pause_job("j"),
        lambda s: s.add_job(print, IntervalTrigger(hours=1), id="other"),
        lambda s: s.modify_job("j", name="renamed"),
    ],
    ids=["pause", "add", "modify"],
)
def test_shutdown_right_after_any_change_returns_at_once(change: Callable[[Scheduler], object]) -> None:
    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(print, IntervalTrigger(hours=1, start_now=False), id="j")
        await scheduler.start()
        await asyncio.sleep(0.2)
        change(scheduler)
        assert await _shutdown_within(scheduler, 5) < 1

    run(main)


def test_shutdown_with_no_job_ever_added() -> None:
    async def main() -> None:
        scheduler = Scheduler()
        await scheduler.start()
        assert scheduler.running
        await asyncio.sleep(0.1)
        assert await _shutdown_within(scheduler, 5) < 1
        assert not scheduler.running

    run(main)


def test_shutdown_of_a_scheduler_never_started_does_nothing() -> None:
    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(print, IntervalTrigger(hours=1), id="j")
        assert await _shutdown_within(scheduler, 5) < 1
        await scheduler.shutdown()

    run(main)


def test_shutdown_waits_for_a_run_in_flight_after_its_job_was_removed() -> None:
    finished: list[bool] = []

    async def slow() -> None:
        await asyncio.sleep(0.5)
        finished.append(True)

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(slow, IntervalTrigger(hours=1), id="slow")
        await scheduler.start()
        await wait_until(lambda: scheduler.beat is not None and scheduler.beat.totals["fired"] == 1)
        assert scheduler.remove_job("slow")
        elapsed = await _shutdown_within(scheduler, 5)
        assert finished == [True]
        assert 0.2 < elapsed < 1.5

    run(main)


def test_a_cancelled_shutdown_raises_the_cancellation() -> None:
    """Cancelling the caller of shutdown (a timeout around it) must cancel it: the stop and
    the runs are abandoned, not waited for in silence."""

    async def stuck() -> None:
        await asyncio.sleep(30)

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(stuck, IntervalTrigger(hours=1), id="stuck")
        await scheduler.start()
        await wait_until(lambda: scheduler.beat is not None and scheduler.beat.totals["fired"] == 1)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(scheduler.shutdown(wait=True), 0.3)
        assert time.monotonic() - started < 2
        assert not scheduler.running
        await _shutdown_within(scheduler, 5, wait=False)

    run(main)


def test_the_loop_ends_when_the_event_loop_is_torn_down_without_shutdown() -> None:
    """asyncio.run cancels the tasks left when its coroutine returns: the scheduler's loop
    must end on that cancellation even right after a change woke it."""
    result: list[Scheduler] = []

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(print, IntervalTrigger(hours=1, start_now=False), id="j")
        await scheduler.start()
        await asyncio.sleep(0.1)
        scheduler.pause_job("j")
        result.append(scheduler)

    started = time.monotonic()
    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "asyncio.run hung on the scheduler's loop"
    assert time.monotonic() - started < 2
    assert not result[0].running


# -- the store, off the loop ---------------------------------------------------------------------


class ThreadRecordingStore(MemoryStore):
    """A memory store that notes which thread makes each call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or name == "calls" or not callable(attr):
            return attr
        calls = super().__getattribute__("calls")

        def recorded(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.current_thread().name))
            return attr(*args, **kwargs)

        return recorded


def test_the_scheduler_never_calls_the_store_on_the_loop() -> None:
    """Ticks, the count at start, the start and end of runs (async, plain, failing ones),
    and the give-back at shutdown all run on the scheduler's store thread, so a store that
    blocks (the Django ORM, Redis) never holds the loop up."""
    store = ThreadRecordingStore()
    scheduler = Scheduler(store=store)
    done: list[str] = []

    async def coro() -> None:
        done.append("async")

    def plain() -> None:
        done.append("plain")

    def failing() -> None:
        raise RuntimeError("boom")

    scheduler.add_job(coro, IntervalTrigger(seconds=0.2), id="async")
    scheduler.add_job(plain, IntervalTrigger(seconds=0.2), id="plain")
    scheduler.add_job(failing, IntervalTrigger(seconds=0.2), id="failing")
    store.calls.clear()
    loop_thread = threading.current_thread().name

    async def main() -> None:
        await scheduler.start()
        await wait_until(lambda: done.count("async") >= 3 and done.count("plain") >= 3)
        await scheduler.shutdown()

    run(main)
    called = {name for name, _ in store.calls}
    assert {
        "count_jobs_by_status",
        "acquire_due_jobs",
        "release_jobs",
        "run_started",
        "run_finished",
    } <= called
    assert {"acquire_lease", "release_lease"} <= called
    on_loop = [name for name, thread in store.calls if thread == loop_thread]
    assert on_loop == []
    assert {thread for _, thread in store.calls} == {
        thread for _, thread in store.calls if thread.startswith("beatx-store")
    }
    failed = store.get_job("failing")
    assert failed is not None and failed.last_error == "RuntimeError: boom" and failed.running == 0
    assert all(job.running == 0 for job in store.get_jobs())


def test_run_job_now_from_a_coroutine_records_the_run_off_the_loop() -> None:
    store = ThreadRecordingStore()
    scheduler = Scheduler(store=store)
    ran: list[str] = []

    async def once() -> None:
        ran.append(threading.current_thread().name)

    scheduler.add_job(once, IntervalTrigger(hours=1, start_now=False), id="hourly")
    loop_thread = threading.current_thread().name

    async def main() -> None:
        await scheduler.start()
        store.calls.clear()
        scheduler.run_job_now("hourly")
        await wait_until(lambda: bool(ran))
        await wait_until(lambda: any(name == "run_finished" for name, _ in store.calls))
        from_thread = await asyncio.to_thread(scheduler.run_job_now, "hourly")
        await wait_until(lambda: len(ran) == 2)
        await scheduler.shutdown()
        assert from_thread

    run(main)
    assert ran == [loop_thread, loop_thread]
    run_state = [(name, thread) for name, thread in store.calls if name.startswith("run_")]
    assert len(run_state) == 4
    # The first run_started was made from the loop's thread: it went to the store thread.
    assert run_state[0][0] == "run_started" and run_state[0][1].startswith("beatx-store")
    assert all(thread != loop_thread for _, thread in run_state)
    job = scheduler.get_job("hourly")
    assert job is not None and job.running == 0 and job.last_finished_at is not None
    assert job.total_run_count == 0  # fires sent outside the schedule do not advance it


def test_run_job_now_on_the_loop_does_not_wait_for_a_claim_only_the_loop_can_end() -> None:
    store = MemoryStore()
    scheduler = Scheduler(store=store)

    async def once() -> None:
        pass

    scheduler.add_job(once, IntervalTrigger(hours=1, start_now=False), id="hourly")
    outcome: dict[str, object] = {}

    async def main() -> None:
        await scheduler.start()
        held = store.claim_job("hourly")  # as the scheduler holds a fire back for a run
        assert held is not None
        started = time.monotonic()
        with pytest.raises(JobClaimedError, match="hourly"):
            scheduler.run_job_now("hourly")
        outcome["on_loop"] = time.monotonic() - started
        # From a thread it waits for the claim to end, then sends.
        waiting = asyncio.ensure_future(asyncio.to_thread(scheduler.run_job_now, "hourly"))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        store.release_jobs([JobRelease.unchanged(held)])
        outcome["from_thread"] = await waiting
        await scheduler.shutdown()

    run(main)
    assert float(outcome["on_loop"]) < 1.0  # type: ignore[arg-type]
    assert outcome["from_thread"]


def test_run_job_now_needs_a_running_scheduler() -> None:
    scheduler = Scheduler()
    scheduler.add_job(print, IntervalTrigger(hours=1), id="j")
    with pytest.raises(ConfigurationError, match="dispatcher"):
        scheduler.run_job_now("j")

    async def main() -> None:
        await scheduler.start()
        await scheduler.shutdown()

    run(main)
    with pytest.raises(ConfigurationError, match="dispatcher"):
        scheduler.run_job_now("j")


def test_a_scheduler_starts_again_after_shutdown() -> None:
    count = 0

    def bump() -> None:
        nonlocal count
        count += 1

    scheduler = Scheduler()
    scheduler.add_job(bump, IntervalTrigger(seconds=0.1), id="j")

    async def main() -> None:
        for round_ in (1, 2):
            await scheduler.start()
            await wait_until(lambda: count >= 2 * round_)  # noqa: B023 (awaited in the iteration)
            await _shutdown_within(scheduler, 5)
            assert not scheduler.running

    run(main)


def test_the_store_thread_ends_at_shutdown() -> None:
    # Only this scheduler's thread: another test's may still be retiring in the same process.
    before = {t for t in threading.enumerate() if t.name.startswith("beatx-store")}
    ours: list[threading.Thread] = []

    async def main() -> None:
        scheduler = Scheduler()
        scheduler.add_job(print, IntervalTrigger(hours=1, start_now=False), id="j")
        await scheduler.start()
        await asyncio.sleep(0.1)
        ours.extend(t for t in threading.enumerate() if t.name.startswith("beatx-store") and t not in before)
        assert ours, "no store thread was started"
        await scheduler.shutdown()

    run(main)
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in ours):
        assert time.monotonic() < deadline, "the store thread is still alive"
        time.sleep(0.01)


@pytest.mark.redis
def test_a_job_every_second_on_the_redis_store_runs_and_finishes_each_run(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    from beatx.stores.redis import RedisStore
    from tests import sample_tasks

    caplog.set_level(logging.WARNING)
    sample_tasks.calls.clear()
    store = RedisStore(redis_url, key_prefix=key_prefix)
    scheduler = Scheduler(store=store)
    scheduler.add_job("tests.sample_tasks:record_async", IntervalTrigger(seconds=1), id="every-second")

    async def main() -> None:
        await scheduler.start()
        await asyncio.sleep(3)
        await asyncio.wait_for(scheduler.shutdown(), 10)

    try:
        run(main)
        job = scheduler.get_job("every-second")
        assert job is not None
        assert 3 <= len(sample_tasks.calls) <= 4
        assert job.total_run_count == len(sample_tasks.calls)
        assert (job.skip_count, job.misfire_count, job.running) == (0, 0, 0)
        assert job.last_finished_at is not None and job.last_error is None
    finally:
        store.close()
    assert [record.getMessage() for record in caplog.records] == []
