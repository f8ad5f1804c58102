"""beatx's Django store and django-celery-beat's ``DatabaseScheduler`` on the same PostgreSQL.

The run creates a database of its own (``beatx_bench_<random>``, :class:`BenchPostgres`),
migrates both apps into it once, and drops it at the end; no other database is touched. Every
function below except :class:`BenchPostgres` runs inside a measurement child and takes the
database name (``db``). Rows are loaded with ``COPY`` (:func:`copy_rows`): a million jobs in
well under a minute.

Per size, one child loads the rows, a fresh one measures start-up, idle tick, the tick after
one edit and VmRSS, and a third makes ``n_due`` of the stored jobs due at once and times the
burst until the last message is in the Redis broker.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from benchmarks.common import TASK, broker_db, hwm_mb, median_time, queue_length, redis_client, rss_mb

ENV_PG_DB = "BEATX_BENCH_PG_DB"
PG_HOST = os.environ.get("BEATX_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BEATX_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BEATX_BENCH_PG_USER", "postgres")
#: Every database this module creates (and the only ones it drops) starts with this.
DB_PREFIX = "beatx_bench_"
SETTINGS = "benchmarks.django_settings_pg"
#: The interval of every stored job (nothing is due during the scale measurement).
EVERY = 3600.0


# -- the database (parent side) -------------------------------------------------------------------


def _admin() -> Any:
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)


def create_database() -> str:
    """Create an empty database named ``beatx_bench_<random>``; return its name."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    """Drop a database this module created (its connections are ended first)."""
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"not a benchmark database: {name!r}")
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BenchPostgres:
    """A benchmark database for the length of a ``with`` block (created, then dropped)."""

    def __init__(self) -> None:
        self.name = ""

    def __enter__(self) -> Self:
        self.name = create_database()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name:
            drop_database(self.name)


def server_version() -> str:
    with _admin() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# -- inside a child ---------------------------------------------------------------------------------


def setup(db: str) -> None:
    """Point Django at the benchmark database (before anything imports a model)."""
    if not db.startswith(DB_PREFIX):
        raise ValueError(f"not a benchmark database: {db!r}")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ[ENV_PG_DB] = db
    import django

    django.setup()


def migrate(db: str) -> dict[str, Any]:
    setup(db)
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return {"migrate_s": time.perf_counter() - started}


def copy_rows(
    model: Any, template: Any, n: int, varying: Sequence[str], vary: Callable[[int], Sequence[Any]]
) -> None:
    """``COPY`` ``n`` rows of ``model`` into its table: every column as in ``template``
    (prepared for the database once), except the fields named in ``varying``, whose values
    for row ``i`` are ``vary(i)`` (database-ready values). Auto-increment keys are left to the
    database."""
    from django.db import connection, models

    auto = (models.AutoField, models.BigAutoField, models.SmallAutoField)
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, auto)]
    base = [f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in fields]
    slot = {f.attname: i for i, f in enumerate(fields)}
    slots = [slot[name] for name in varying]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        row = list(base)
        for i in range(n):
            for index, value in zip(slots, vary(i), strict=True):
                row[index] = value
            copy.write_row(row)


def _truncate(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


def _analyze(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")


def beatx_rows(n: int, *, first: datetime | None = None, spread: float = 0.001) -> dict[str, Any]:
    """Replace the Django store's jobs with ``n`` hourly interval jobs ``job-0000000`` ...,
    the first due an hour from now, one every ``spread`` seconds after it (already set up:
    Django is configured)."""
    from psycopg.types.json import Jsonb

    from beatx.jobs import Job
    from beatx.triggers import IntervalTrigger
    from django_beatx import models as m
    from django_beatx.store import fill_row

    _truncate(m.Job._meta.db_table, m.JobRun._meta.db_table)
    first = first or datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    trigger = IntervalTrigger(seconds=EVERY, start_date=first)
    template = m.Job(id="job-0000000")
    fill_row(template, Job(id=template.id, func=TASK, trigger=trigger, next_run_time=first))
    template.revision = 1
    started = time.perf_counter()
    copy_rows(
        m.Job,
        template,
        n,
        ("id", "kwargs", "next_run_time"),
        lambda i: (f"job-{i:07d}", Jsonb({"n": i}), first + timedelta(seconds=spread * i)),
    )
    elapsed = time.perf_counter() - started
    _analyze(m.Job._meta.db_table)
    return {"loaded": n, "load_s": elapsed, "analyzed_s": time.perf_counter() - started - elapsed}


def load_beatx(db: str, n: int) -> dict[str, Any]:
    setup(db)
    return beatx_rows(n)


def load_django(db: str, n: int) -> dict[str, Any]:
    """Replace django-celery-beat's tasks with ``n`` hourly interval tasks, last run now."""
    setup(db)
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    _truncate(PeriodicTask._meta.db_table)
    interval, _ = IntervalSchedule.objects.get_or_create(every=int(EVERY), period=IntervalSchedule.SECONDS)
    template = PeriodicTask(name="job-0000000", task=TASK, interval=interval, last_run_at=datetime.now(UTC))
    started = time.perf_counter()
    copy_rows(PeriodicTask, template, n, ("name", "kwargs"), lambda i: (f"job-{i:07d}", f'{{"n": {i}}}'))
    elapsed = time.perf_counter() - started
    PeriodicTasks.update_changed()
    _analyze(PeriodicTask._meta.db_table)
    return {"loaded": n, "load_s": elapsed, "analyzed_s": time.perf_counter() - started - elapsed}


def _app() -> Any:
    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-pg")
    declare_queue(app)
    return app


def scale_beatx(db: str, n: int, repeat: int = 300) -> dict[str, Any]:
    """``beatx.beat.Beat`` on the Django store over ``n`` stored jobs: start-up (store, beat,
    first tick), idle tick, the tick after one job was edited, VmRSS."""
    setup(db)
    import beatx.beat  # noqa: F401
    import django_beatx.store
    from beatx.dispatch.celery import CeleryDispatcher
    from benchmarks.beatx_side import bench_beat

    rss_base = rss_mb()
    dispatcher = CeleryDispatcher(_app())  # built before the clock starts (as for the peer)
    started = time.perf_counter()
    store = django_beatx.store.DjangoStore()
    beat = bench_beat(store, dispatcher)
    beat.run_once()
    startup = time.perf_counter() - started
    idle = median_time(beat.run_once, repeat=repeat, budget=10)
    result: dict[str, Any] = {
        "n": n,
        "startup_s": startup,
        "idle_tick_s": idle,
        "rss_mb": rss_mb(),
        "rss_base_mb": rss_base,
        "hwm_mb": hwm_mb(),
    }
    # One edit (a definition change, as in the admin): the next tick is an ordinary tick.
    job = store.get_job("job-0000000")
    assert job is not None
    job.kwargs = {"n": -1}
    store.update_job(job)
    started = time.perf_counter()
    beat.run_once()
    result["edit_tick_s"] = time.perf_counter() - started
    beat.close()
    store.close()
    return result


def scale_django(db: str, n: int, repeat: int = 50) -> dict[str, Any]:
    """django-celery-beat's ``DatabaseScheduler`` over ``n`` stored tasks: the same figures as
    :func:`benchmarks.peer_django.scale` (whose code runs here, on this database)."""
    setup(db)
    from benchmarks import peer_django

    result = peer_django.scale(n, repeat=repeat)
    result["edit_tick_s"] = result.pop("edit_reload_tick_s", None)
    return result


def _due_at(startup_margin: float) -> float:
    return time.time() + 2.0 + startup_margin


def burst_beatx(db: str, n_due: int, n_total: int, time_cap: float = 60.0) -> dict[str, Any]:
    """The first ``n_due`` of the ``n_total`` stored jobs made due in the same instant: a beat
    (``Beat`` + ``DjangoStore`` + ``CeleryDispatcher``, the real clock) started before it;
    time from that instant until the last message is in the broker (its publish returned)."""
    setup(db)
    from beatx.dispatch.celery import CeleryDispatcher
    from benchmarks.beatx_side import Recorder, bench_beat, warm_up
    from django_beatx import models as m
    from django_beatx.store import DjangoStore

    broker = redis_client(broker_db())
    recorder = Recorder(CeleryDispatcher(_app()))
    warm_up(recorder.inner)
    broker.delete("celery")
    due_at = _due_at(n_total * 2e-6)
    when = datetime.fromtimestamp(due_at, UTC)
    made_due = m.Job.objects.filter(id__startswith="job-", id__lt=f"job-{n_due:07d}").update(
        next_run_time=when
    )
    store = DjangoStore()
    beat = bench_beat(store, recorder)
    beat.run_once()  # lease taken, nothing due yet
    ready = time.time()
    while time.time() < due_at:
        time.sleep(0.0005)
    deadline = time.time() + time_cap
    ticks = 0
    while time.time() < deadline and len(recorder.fires) < n_due:
        beat.run_once()
        ticks += 1
    queued = queue_length(broker)
    sent = len(recorder.fires)
    last = max((f[2] for f in recorder.fires), default=time.time())
    elapsed = (last if sent >= n_due else time.time()) - due_at
    broker.close()
    beat.close()
    store.close()
    return {
        "n_due": n_due,
        "n_total": n_total,
        "made_due": made_due,
        "fired": sent,
        "queued": queued,
        "seconds": elapsed,
        "fires_per_s": sent / elapsed if elapsed > 0 else 0.0,
        "ticks": ticks,
        "complete": queued >= n_due,
        "late_start_s": max(0.0, ready - due_at),
    }


def burst_django(db: str, n_due: int, n_total: int, time_cap: float = 60.0) -> dict[str, Any]:
    """The same burst for django-celery-beat: its scheduler (started before the instant, all
    ``n_total`` rows read) driven by ``celery.beat.Service``'s tick loop."""
    setup(db)
    from django_celery_beat.models import PeriodicTask, PeriodicTasks
    from django_celery_beat.schedulers import DatabaseScheduler

    from benchmarks.peers import drive_burst, record_publishes

    broker = redis_client(broker_db())
    broker.delete("celery")
    app = _app()
    due_at = _due_at(n_total * 200e-6)
    last = datetime.fromtimestamp(due_at - EVERY, UTC)
    made_due = PeriodicTask.objects.filter(name__startswith="job-", name__lt=f"job-{n_due:07d}").update(
        last_run_at=last
    )
    PeriodicTasks.update_changed()
    scheduler = DatabaseScheduler(app=app)
    fires = record_publishes(scheduler)
    scheduler.tick()
    ready = time.time()
    result = drive_burst(scheduler, fires, n_due, due_at, time_cap)
    broker.close()
    return {**result, "n_total": n_total, "made_due": made_due, "late_start_s": max(0.0, ready - due_at)}
