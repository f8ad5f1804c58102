"""Where a burst tick spends its time: ``python -m benchmarks.profile_burst [N]``.

Stores N jobs (default 20,000) due in the same second in a Redis store, runs ``Engine.tick``
with the real ``CeleryDispatcher`` to a Redis broker until every fire is published, and prints
the fires/s without the profiler, then the cProfile top entries of a second, profiled run.
Uses the benchmark databases (``BenchDatabases``), flushed before and after.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime, timedelta

from benchmarks.common import TASK, BenchDatabases, flush, store_db, store_url
from benchmarks.tasks import declare_queue, make_app


def burst(n: int, profiler: cProfile.Profile | None = None) -> float:
    """Publish ``n`` fires due at once; returns the seconds it took."""
    from beatx.dispatch.celery import CeleryDispatcher
    from beatx.engine.engine import Engine
    from beatx.jobs import Job
    from beatx.stores.redis import RedisStore
    from beatx.triggers import IntervalTrigger

    flush(store_db())
    store = RedisStore(store_url(), key_prefix="profile:")
    due = datetime.now(UTC).replace(microsecond=0)
    trigger = IntervalTrigger(seconds=60, start_date=due)
    # Each job with its own arguments, as in the suite's burst (benchmarks.beatx_side).
    store.add_jobs(
        Job(id=f"j{i}", func=TASK, trigger=trigger, kwargs={"n": i}, next_run_time=due) for i in range(n)
    )
    app = make_app("bench-profile")
    declare_queue(app)
    dispatcher = CeleryDispatcher(app)
    engine = Engine(store, dispatcher, batch_size=1000)
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    fired = 0
    while fired < n:
        fired += engine.tick(due + timedelta(seconds=0.5)).fired
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    dispatcher.close()
    store.close()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with BenchDatabases():
        elapsed = burst(n)
        print(f"{n:,} fires in {elapsed:.2f} s: {n / elapsed:,.0f} fires/s (no profiler)")
        profiler = cProfile.Profile()
        burst(n, profiler)
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
