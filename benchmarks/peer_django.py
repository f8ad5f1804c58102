"""django-celery-beat (``DatabaseScheduler``) on SQLite, and beatx's Django store next to it.

``migrate`` runs once per run into a temporary SQLite file (:mod:`benchmarks.django_settings`);
each scenario empties the tables it uses and fills them with ``bulk_create``.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import TASK, hwm_mb, median_time, rss_mb
from benchmarks.peers import (
    drive_burst,
    edit_harness,
    edit_signal,
    lateness_summary,
    record_publishes,
    run_loop,
)


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.django_settings")
    import django

    django.setup()


def migrate() -> dict[str, Any]:
    setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return {"migrate_s": time.perf_counter() - started}


def _app() -> Any:
    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-django")
    declare_queue(app)
    return app


def load(n: int, every: float = 3600.0, last_run_ats: list[datetime] | None = None) -> dict[str, Any]:
    """Replace every PeriodicTask with ``n`` interval tasks (``bulk_create``, 1,000 a batch),
    last run now (or at ``last_run_ats[i]``)."""
    setup()
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    PeriodicTask.objects.all().delete()
    interval, _ = IntervalSchedule.objects.get_or_create(every=int(every), period=IntervalSchedule.SECONDS)
    now = datetime.now(UTC)
    started = time.perf_counter()
    rows = (
        PeriodicTask(
            name=f"job-{i:07d}",
            task=TASK,
            interval=interval,
            kwargs=f'{{"n": {i}}}',
            last_run_at=last_run_ats[i] if last_run_ats else now,
        )
        for i in range(n)
    )
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 1000:
            PeriodicTask.objects.bulk_create(batch)
            batch = []
    if batch:
        PeriodicTask.objects.bulk_create(batch)
    PeriodicTasks.update_changed()
    elapsed = time.perf_counter() - started
    return {"loaded": n, "load_s": elapsed, "load_rate": n / elapsed if elapsed else 0.0}


def _scheduler(app: Any) -> Any:
    from django_celery_beat.schedulers import DatabaseScheduler

    return DatabaseScheduler(app=app)


def scale(n: int, repeat: int = 50) -> dict[str, Any]:
    setup()
    import django_celery_beat.schedulers  # noqa: F401

    app = _app()
    rss_base = rss_mb()
    started = time.perf_counter()
    scheduler = _scheduler(app)
    scheduler.tick()
    startup = time.perf_counter() - started
    idle = median_time(scheduler.tick, repeat=repeat, warmup=2, budget=8)
    loaded = len(scheduler.schedule)
    result = {
        "n": n,
        "entries": loaded,
        "startup_s": startup,
        "idle_tick_s": idle,
        "rss_mb": rss_mb(),
        "rss_base_mb": rss_base,
        "hwm_mb": hwm_mb(),
    }
    # One edit: the next tick notices it and reloads every row.
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="job-0000000")
    time.sleep(0.01)  # last_update has a timestamp resolution
    task.kwargs = '{"n": -1}'
    task.save()
    started = time.perf_counter()
    scheduler.tick()
    result["edit_reload_tick_s"] = time.perf_counter() - started
    return result


def burst(n_due: int, n_total: int, time_cap: float = 60.0) -> dict[str, Any]:
    setup()
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    every = 3600.0
    load(n_total, every)
    app = _app()
    due_at = time.time() + 2.0 + n_total * 200e-6
    last = datetime.fromtimestamp(due_at - every, UTC)
    PeriodicTask.objects.filter(name__in=[f"job-{i:07d}" for i in range(n_due)]).update(last_run_at=last)
    PeriodicTasks.update_changed()
    scheduler = _scheduler(app)
    fires = record_publishes(scheduler)
    scheduler.tick()
    result = drive_burst(scheduler, fires, n_due, due_at, time_cap)
    return {**result, "n_total": n_total}


def lateness(n: int, every: float, duration: float, same_phase: bool, seed: int = 7) -> dict[str, Any]:
    setup()
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.all().delete()  # an earlier scenario's rows (slow for 100k: not timed)
    rng = random.Random(seed)
    start = float(int(time.time()) + 3 + int(n / 2000))
    phases = [0.0 if same_phase else rng.uniform(0, every) for _ in range(n)]
    load(n, every, [datetime.fromtimestamp(start + p - every, UTC) for p in phases])
    app = _app()
    scheduler = _scheduler(app)
    fires = record_publishes(scheduler)
    margin = start - time.time()
    run_loop(scheduler, start + duration + 0.5)
    return {**lateness_summary(fires, n, every, start, duration), "setup_margin_s": margin}


def edit(n: int, lead: float = 0.2, timeout: float = 10.0) -> dict[str, Any]:
    """A running DatabaseScheduler idles on ``n`` rows; another process edits one row to be due
    ``lead`` seconds later: when is it published?"""
    setup()
    load(n)
    app = _app()
    scheduler = _scheduler(app)
    fires = record_publishes(scheduler)
    scheduler.tick()
    result = edit_harness(
        lambda: run_loop(scheduler, float("inf")),
        "benchmarks.peer_django:edit_once",
        lambda: next((f[2] for f in fires if f[0] == "job-0000000"), None),
        lead=lead,
        timeout=timeout,
    )
    return {"n": n, **result, "max_interval_s": scheduler.max_interval}


def edit_once(lead: float) -> dict[str, Any]:
    setup()
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="job-0000000")
    every = task.interval.every

    def apply(due: float) -> None:
        task.last_run_at = datetime.fromtimestamp(due - every, UTC)
        task.save()

    return edit_signal(lead, apply)


# -- beatx on the Django store -------------------------------------------------------------------


def beatx_load(n: int) -> dict[str, Any]:
    """Store ``n`` beatx jobs in the Django store's table (``bulk_create`` of filled rows)."""
    setup()
    from beatx.jobs import Job
    from beatx.triggers import IntervalTrigger
    from django_beatx import models as m
    from django_beatx.store import fill_row

    m.Job.objects.all().delete()
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    trigger = IntervalTrigger(hours=1, start_date=first)
    started = time.perf_counter()
    batch: list[Any] = []
    for i in range(n):
        row = m.Job(id=f"job-{i:07d}")
        fill_row(row, Job(id=row.id, func=TASK, trigger=trigger, next_run_time=first + timedelta(seconds=i)))
        row.revision = 1
        batch.append(row)
        if len(batch) >= 1000:
            m.Job.objects.bulk_create(batch)
            batch = []
    if batch:
        m.Job.objects.bulk_create(batch)
    elapsed = time.perf_counter() - started
    return {"loaded": n, "load_s": elapsed}


def beatx_edit(n: int, lead: float = 0.2, timeout: float = 10.0) -> dict[str, Any]:
    """beatx's Beat on the Django store: the same edit as :func:`edit`."""
    setup()
    from beatx.dispatch.celery import CeleryDispatcher
    from benchmarks.beatx_side import Recorder, bench_beat, warm_up
    from django_beatx.store import DjangoStore

    beatx_load(n)
    store = DjangoStore()
    recorder = Recorder(CeleryDispatcher(_app()))
    warm_up(recorder.inner)
    beat = bench_beat(store, recorder)

    def run_forever() -> None:
        while True:
            beat.wait(beat.run_once())

    result = edit_harness(
        run_forever,
        "benchmarks.peer_django:beatx_edit_once",
        lambda: next((f[2] for f in recorder.fires if f[0] == "job-0000000"), None),
        lead=lead,
        timeout=timeout,
    )
    return {"n": n, **result, "poll_interval_s": store.poll_interval}


def beatx_edit_once(lead: float) -> dict[str, Any]:
    setup()
    from django_beatx.store import DjangoStore

    store = DjangoStore()
    job = store.get_job("job-0000000")

    def apply(due: float) -> None:
        job.next_run_time = datetime.fromtimestamp(due, UTC)
        store.update_job(job, reschedule=True)  # a new next run: a schedule write

    return edit_signal(lead, apply)
