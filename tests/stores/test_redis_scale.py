"""The Redis store's beat path stays flat from 1,000 to 1,000,000 jobs.

Run with ``pytest tests/stores/test_redis_scale.py -s`` to see the figures.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from beatx.jobs import Job
from beatx.stores.redis import RedisStore
from beatx.triggers import IntervalTrigger

pytestmark = [pytest.mark.slow, pytest.mark.redis]

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SMALL, LARGE = 1_000, 1_000_000


def jobs(start: int, stop: int) -> Iterator[Job]:
    """Jobs ``start`` to ``stop``, every one due in the future (one second apart from NOW + 1 h)."""
    first = NOW + timedelta(hours=1)
    trigger = IntervalTrigger(minutes=5, start_date=first)
    for n in range(start, stop):
        yield Job(
            id=f"job-{n:07d}",
            func="tests.sample_tasks:record",
            trigger=trigger,
            kwargs={"n": n},
            next_run_time=first + timedelta(seconds=n),
        )


def median_seconds(call: Callable[[], object], repeat: int = 100) -> float:
    for _ in range(20):  # warm up (script cache, connection)
        call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(store: RedisStore) -> dict[str, float]:
    return {
        "next_run_time()": median_seconds(store.next_run_time),
        "idle acquire_due_jobs(now)": median_seconds(lambda: store.acquire_due_jobs(NOW, limit=100)),
        "due_count(now)": median_seconds(lambda: store.due_count(NOW)),
    }


def measure_side_by_side(small: RedisStore, large: RedisStore, rounds: int = 5) -> list[dict[str, float]]:
    """The best median of each call over ``rounds`` alternating rounds on both stores, so a
    slow spell of the machine or of Redis (rehashing its tables after the load) weighs on
    both sizes alike instead of on one."""
    best: list[dict[str, float]] = [{}, {}]
    for _ in range(rounds):
        for figures, store in zip(best, (small, large), strict=True):
            for name, seconds in measure(store).items():
                figures[name] = min(seconds, figures.get(name, seconds))
    return best


def test_the_beat_path_stays_flat_from_1k_to_1m_jobs(redis_url: str, key_prefix: str) -> None:
    small_store = RedisStore(redis_url, key_prefix=f"{key_prefix}small:")
    store = RedisStore(redis_url, key_prefix=key_prefix)
    try:
        small_store.add_jobs(jobs(0, SMALL))
        assert small_store.count_jobs() == SMALL

        started = time.perf_counter()
        store.add_jobs(jobs(0, LARGE), batch_size=1000)
        load = time.perf_counter() - started
        assert store.count_jobs() == LARGE
        small, large = measure_side_by_side(small_store, store)

        assert store.next_run_time() == NOW + timedelta(hours=1)
        assert store.acquire_due_jobs(NOW, limit=100) == []
        assert store.due_count(NOW) == 0
        assert store.due_count(NOW + timedelta(hours=1, seconds=9)) == 10

        gc.collect()
        before = rss_bytes()
        for _ in range(1000):
            store.acquire_due_jobs(NOW, limit=100)
        gc.collect()
        growth = rss_bytes() - before

        print(f"\nRedisStore scale ({SMALL:,} -> {LARGE:,} jobs, best medians of alternating rounds):")
        print(f"  bulk load of {LARGE:,} jobs with add_jobs: {load:.1f} s ({LARGE / load:,.0f} jobs/s)")
        for name in small:
            ratio = large[name] / small[name]
            print(
                f"  {name:<28} {small[name] * 1e6:8.1f} us at 1k   {large[name] * 1e6:8.1f} us at 1M   ratio {ratio:.2f}"
            )
        print(f"  RSS growth over 1000 idle acquires at 1M jobs: {growth / 1024:.0f} KiB")

        for name in small:
            assert large[name] < 3 * small[name], (
                f"{name} grew from {small[name]:.6f} s to {large[name]:.6f} s"
            )
        assert growth < 5 * 1024 * 1024
        assert load < 90, f"loading {LARGE:,} jobs took {load:.1f} s"
    finally:
        small_store.close()
        store.close()
