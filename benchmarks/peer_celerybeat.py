"""celery beat's default scheduler (``celery.beat.PersistentScheduler``), driven in-process.

The jobs are ``app.conf.beat_schedule`` entries (the only way to give it jobs); the shelve
file lives in the run's temporary directory. Publishing goes to the real Redis broker.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from benchmarks.common import TASK, hwm_mb, median_time, rss_mb, tmp_dir
from benchmarks.peers import drive_burst, lateness_summary, record_publishes, run_loop


def _app(n: int, every: float) -> Any:
    from celery.schedules import schedule

    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-celerybeat")
    run_every = schedule(timedelta(seconds=every), app=app)
    app.conf.beat_schedule = {
        f"job-{i:07d}": {"task": TASK, "schedule": run_every, "kwargs": {"n": i}} for i in range(n)
    }
    declare_queue(app)
    return app


def _scheduler(app: Any) -> Any:
    from celery.beat import PersistentScheduler

    return PersistentScheduler(app=app, schedule_filename=str(tmp_dir() / f"celerybeat-{uuid.uuid4().hex}"))


def scale(n: int, repeat: int = 50) -> dict[str, Any]:
    import celery.beat  # noqa: F401

    rss_base = rss_mb()
    app = _app(n, 3600)
    started = time.perf_counter()
    scheduler = _scheduler(app)
    constructed = time.perf_counter() - started
    scheduler.tick()  # first tick: builds the heap
    startup = time.perf_counter() - started
    idle = median_time(scheduler.tick, repeat=repeat, warmup=2, budget=8)
    result = {
        "n": n,
        "startup_s": startup,
        "construct_s": constructed,
        "first_tick_s": startup - constructed,
        "idle_tick_s": idle,
        "rss_mb": rss_mb(),
        "rss_base_mb": rss_base,
        "hwm_mb": hwm_mb(),
    }
    scheduler.close()
    return result


def _make_due(scheduler: Any, names: list[str], due_at: float, every: float) -> None:
    from datetime import UTC, datetime

    last = datetime.fromtimestamp(due_at - every, UTC)
    for name in names:
        scheduler.schedule[name].last_run_at = last


def burst(n_due: int, n_total: int, time_cap: float = 60.0) -> dict[str, Any]:
    every = 3600.0
    app = _app(n_total, every)
    scheduler = _scheduler(app)
    due_at = time.time() + 1.0 + n_total * 60e-6
    _make_due(scheduler, [f"job-{i:07d}" for i in range(n_due)], due_at, every)
    fires = record_publishes(scheduler)
    scheduler.tick()  # builds the heap before the burst second
    result = drive_burst(scheduler, fires, n_due, due_at, time_cap)
    scheduler.close()
    return {**result, "n_total": n_total}


def lateness(n: int, every: float, duration: float, same_phase: bool, seed: int = 7) -> dict[str, Any]:
    import random

    rng = random.Random(seed)
    app = _app(n, every)
    scheduler = _scheduler(app)
    start = float(int(time.time()) + 3)
    from datetime import UTC, datetime

    for i in range(n):
        phase = 0.0 if same_phase else rng.uniform(0, every)
        scheduler.schedule[f"job-{i:07d}"].last_run_at = datetime.fromtimestamp(start + phase - every, UTC)
    fires = record_publishes(scheduler)
    margin = start - time.time()
    run_loop(scheduler, start + duration + 0.5)
    scheduler.close()
    return {**lateness_summary(fires, n, every, start, duration), "setup_margin_s": margin}
