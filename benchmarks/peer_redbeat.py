"""RedBeat (``redbeat.RedBeatScheduler``): entries in Redis, saved with ``RedBeatSchedulerEntry.save()``.

The entries live on the benchmark store database under their own key prefix; the beat's
distributed lock is taken as ``celery beat`` would take it (the ``beat_init`` handler).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from benchmarks.common import TASK, hwm_mb, median_time, rss_mb, store_url
from benchmarks.peers import (
    drive_burst,
    edit_harness,
    edit_signal,
    lateness_summary,
    record_publishes,
    run_loop,
)

PREFIX = "redbeat-bench:"


def _app() -> Any:
    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-redbeat", redbeat_redis_url=store_url(), redbeat_key_prefix=PREFIX)
    declare_queue(app)
    return app


def _entry(app: Any, i: int, every: float, last_run_at: datetime | None = None) -> Any:
    from celery.schedules import schedule
    from redbeat import RedBeatSchedulerEntry

    entry = RedBeatSchedulerEntry(
        f"job-{i:07d}", TASK, schedule(timedelta(seconds=every), app=app), kwargs={"n": i}, app=app
    )
    if last_run_at is not None:
        entry.last_run_at = last_run_at
    return entry


def load(n: int, every: float = 3600.0) -> dict[str, Any]:
    """Save ``n`` entries, none due for ``every`` seconds."""
    app = _app()
    started = time.perf_counter()
    now = datetime.now(UTC)
    for i in range(n):
        _entry(app, i, every, now).save()
    elapsed = time.perf_counter() - started
    return {"loaded": n, "load_s": elapsed, "load_rate": n / elapsed if elapsed else 0.0}


def _scheduler(app: Any) -> Any:
    from redbeat import RedBeatScheduler
    from redbeat.schedulers import acquire_distributed_beat_lock

    scheduler = RedBeatScheduler(app=app)
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))
    return scheduler


def scale(n: int, repeat: int = 300) -> dict[str, Any]:
    import redbeat  # noqa: F401

    rss_base = rss_mb()
    app = _app()  # built before the clock starts, as for beatx and the other peers
    started = time.perf_counter()
    scheduler = _scheduler(app)
    scheduler.tick()
    startup = time.perf_counter() - started
    idle = median_time(scheduler.tick, repeat=repeat)
    result = {
        "n": n,
        "startup_s": startup,
        "idle_tick_s": idle,
        "rss_mb": rss_mb(),
        "rss_base_mb": rss_base,
        "hwm_mb": hwm_mb(),
    }
    scheduler.close()
    return result


def startup_from_beat_schedule(n: int) -> dict[str, Any]:
    """Start-up when the jobs come from ``app.conf.beat_schedule`` (RedBeat saves each one)."""
    from celery.schedules import schedule

    app = _app()
    every = schedule(timedelta(hours=1), app=app)
    app.conf.beat_schedule = {f"static-{i:07d}": {"task": TASK, "schedule": every} for i in range(n)}
    started = time.perf_counter()
    scheduler = _scheduler(app)
    scheduler.tick()
    elapsed = time.perf_counter() - started
    scheduler.close()
    return {"n": n, "startup_s": elapsed}


def burst(n_due: int, n_total: int, time_cap: float = 60.0) -> dict[str, Any]:
    every = 3600.0
    app = _app()
    loaded = load(n_total, every)
    # Rescheduling is one round trip per entry, like saving: leave it that time and half again.
    due_at = time.time() + 1.5 + 1.5 * n_due / max(loaded["load_rate"], 1.0)
    last = datetime.fromtimestamp(due_at - every, UTC)
    for i in range(n_due):
        _entry(app, i, every).reschedule(last)
    scheduler = _scheduler(app)
    fires = record_publishes(scheduler)
    scheduler.tick()
    result = drive_burst(scheduler, fires, n_due, due_at, time_cap)
    scheduler.close()
    return {**result, "n_total": n_total}


def lateness(n: int, every: float, duration: float, same_phase: bool, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    app = _app()
    # Saving is one round trip per entry: leave it time to finish before the first fire.
    start = float(int(time.time()) + 3 + int(n * 0.0015))
    for i in range(n):
        phase = 0.0 if same_phase else rng.uniform(0, every)
        _entry(app, i, every, datetime.fromtimestamp(start + phase - every, UTC)).save()
    scheduler = _scheduler(app)
    fires = record_publishes(scheduler)
    margin = start - time.time()
    run_loop(scheduler, start + duration + 0.5)
    scheduler.close()
    return {**lateness_summary(fires, n, every, start, duration), "setup_margin_s": margin}


def edit(n: int, lead: float = 0.2, timeout: float = 10.0) -> dict[str, Any]:
    """A running RedBeat idles on ``n`` far entries; another process reschedules one to be due
    ``lead`` seconds later (``entry.reschedule``): when is it published?"""
    app = _app()
    load(n)
    scheduler = _scheduler(app)
    fires = record_publishes(scheduler)
    result = edit_harness(
        lambda: run_loop(scheduler, float("inf")),
        "benchmarks.peer_redbeat:edit_once",
        lambda: fires[0][2] if fires else None,
        lead=lead,
        timeout=timeout,
    )
    return {"n": n, **result, "max_interval_s": scheduler.max_interval}


def edit_once(lead: float) -> dict[str, Any]:
    app = _app()
    every = 3600.0
    entry = _entry(app, 0, every)
    return edit_signal(lead, lambda due: entry.reschedule(datetime.fromtimestamp(due - every, UTC)))
