"""Converting and importing app.conf.beat_schedule; the scheduler class without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar

from beatx import ConfigurationError, CronTrigger, IntervalTrigger, JobStatus
from beatx.celery import BeatxScheduler, convert_schedule, get_scheduler, import_beat_schedule
from beatx.manager import JobManager
from beatx.stores import MemoryStore
from tests.stores.contract import record_runs


def _solar() -> solar:
    """A solar schedule without the optional ``ephem`` package (only its type matters here)."""
    return solar.__new__(solar)


def test_numbers_timedelta_and_schedule_become_intervals() -> None:
    for value in (30, 30.0, timedelta(seconds=30), schedule(timedelta(seconds=30))):
        trigger = convert_schedule("e", value)
        assert isinstance(trigger, IntervalTrigger)
        assert trigger.interval == timedelta(seconds=30)
        assert trigger.start_date is None  # anchored when first imported


def test_relative_schedule_is_anchored_on_the_epoch_grid() -> None:
    trigger = convert_schedule("e", schedule(timedelta(minutes=5), relative=True))
    assert isinstance(trigger, IntervalTrigger) and trigger.start_date is not None
    assert trigger.start_date.timestamp() % 300 == 0


@pytest.mark.parametrize(
    ("entry", "expression"),
    [
        (crontab(), "* * * * *"),
        (crontab(minute="*/15"), "*/15 * * * *"),
        (crontab(minute=0, hour=[1, 13]), "0 1,13 * * *"),
        (crontab(minute=30, hour=7, day_of_week="mon-fri"), "30 7 * * mon-fri"),
        (crontab(minute=0, hour=0, day_of_month="1", month_of_year="*/3"), "0 0 1 */3 *"),
    ],
)
def test_crontab_becomes_cron(entry: crontab, expression: str) -> None:
    trigger = convert_schedule("e", entry, timezone="Europe/Paris")
    assert isinstance(trigger, CronTrigger)
    assert trigger.expression == expression
    assert trigger == CronTrigger(expression, timezone="Europe/Paris")


def test_crontab_fires_in_the_app_timezone() -> None:
    trigger = convert_schedule("e", crontab(minute=0, hour=9), timezone="Europe/Paris")
    after = datetime(2026, 7, 1, tzinfo=UTC)
    assert trigger.next_fire_time(after) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_solar(), "solar"),
        (crontab(minute=0, hour=0, day_of_month=1, day_of_week="mon"), "both day_of_month"),
        ("every minute", "cannot convert"),
        (0, "must be > 0"),
        (timedelta(0), "must be > 0"),
        (True, "cannot convert"),
    ],
)
def test_unconvertible_schedules_name_the_entry(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"'my-entry'.*{message}"):
        convert_schedule("my-entry", value)


def test_import_upserts_by_entry_name_and_keeps_run_state() -> None:
    store = MemoryStore()
    manager = JobManager(store)
    entries = {
        "every-10s": {"task": "proj.tasks.ping", "schedule": 10.0, "args": (1,), "options": {"queue": "q"}},
        "nightly": {"task": "proj.tasks.report", "schedule": crontab(minute=0, hour=3), "kwargs": {"x": 1}},
    }
    assert import_beat_schedule(manager, entries) == ["every-10s", "nightly"]
    job = manager.get_job("every-10s")
    assert job is not None and job.func_ref == "proj.tasks.ping" and job.args == (1,)
    assert job.options == {"queue": "q", "beatx_source": "beat_schedule"}
    nightly = manager.get_job("nightly")
    assert nightly is not None and nightly.kwargs == {"x": 1}

    # Run state and a pause survive a re-import (a restart); a runtime job is left alone.
    record_runs(store, job, 7)
    manager.pause_job("nightly")
    manager.add_job("proj.tasks.other", IntervalTrigger(seconds=5), id="runtime")
    next_run = job.next_run_time
    import_beat_schedule(manager, entries)
    again = manager.get_job("every-10s")
    assert again is not None and again.total_run_count == 7 and again.next_run_time == next_run
    nightly = manager.get_job("nightly")
    assert nightly is not None and nightly.status is JobStatus.PAUSED

    # An entry removed from beat_schedule removes its job; other jobs stay.
    import_beat_schedule(manager, {"nightly": entries["nightly"]})
    assert sorted(j.id for j in manager.get_jobs()) == ["nightly", "runtime"]


def test_a_bad_entry_changes_nothing() -> None:
    manager = JobManager(MemoryStore())
    entries = {
        "good": {"task": "proj.tasks.ping", "schedule": 10},
        "sun": {"task": "proj.tasks.ping", "schedule": _solar()},
    }
    with pytest.raises(ConfigurationError, match="'sun'"):
        import_beat_schedule(manager, entries)
    assert manager.get_jobs() == []
    with pytest.raises(ConfigurationError, match="'typo'.*schedul"):
        import_beat_schedule(manager, {"typo": {"task": "a.b", "schedul": 10}})
    with pytest.raises(ConfigurationError, match="'notask'.*task"):
        import_beat_schedule(manager, {"notask": {"schedule": 10}})


def test_scheduler_imports_and_ticks_without_shelve_files(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    app = Celery("sched-test", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"ping": {"task": "proj.tasks.ping", "schedule": 3600}}
    app.conf.result_expires = None  # else celery.backend_cleanup is added, as celery beat does
    scheduler = BeatxScheduler(app=app, schedule_filename="celerybeat-schedule", max_interval=1)
    try:
        assert scheduler.manager is not None
        assert [j.id for j in scheduler.manager.get_jobs()] == ["ping"]
        assert scheduler.schedule == {}
        assert "memory://" in scheduler.info
        started = datetime.now(UTC)
        assert scheduler.tick() == 0  # sends the first fire, then waits (<= 1 s) for the next change
        assert datetime.now(UTC) - started < timedelta(seconds=3)
        job = scheduler.manager.get_job("ping")
        assert job is not None and job.total_run_count == 1
    finally:
        scheduler.close()
    assert list(tmp_path.iterdir()) == []
    assert scheduler.beat is not None and not scheduler.beat.leadership.is_leader


def test_lazy_scheduler_opens_nothing() -> None:
    app = Celery("lazy-test", broker="memory://", set_as_current=False)
    app.conf.beatx_store = "redis://127.0.0.1:1/0"
    scheduler = BeatxScheduler(app=app, lazy=True)
    assert scheduler.store is None
    assert "127.0.0.1:1" in scheduler.info
    scheduler.close()


def test_scheduler_refuses_bad_settings_at_start() -> None:
    app = Celery("bad-test", broker="memory://", set_as_current=False)
    app.conf.beatx_lease_timeout = 0
    with pytest.raises(ConfigurationError, match="beatx_lease_timeout"):
        BeatxScheduler(app=app, lazy=True)


def test_get_scheduler_validates_funcs_and_is_cached() -> None:
    app = Celery("mgr-test", broker="memory://", set_as_current=False)

    @app.task(name="proj.tasks.known")
    def known() -> None: ...

    manager = get_scheduler(app)
    assert get_scheduler(app) is manager
    manager.add_job(known, IntervalTrigger(seconds=5), id="obj")
    manager.add_job("proj.tasks.known", IntervalTrigger(seconds=5), id="name")
    manager.add_job("other.tasks.unregistered", IntervalTrigger(seconds=5), id="dotted")
    assert manager.get_job("obj").func_ref == "proj.tasks.known"  # type: ignore[union-attr]
    for bad in ("notdotted", "pkg.mod:func", print):
        with pytest.raises(ValueError, match="task"):
            manager.add_job(bad, IntervalTrigger(seconds=5))
    assert get_scheduler(app, key_prefix="other:") is not manager


def test_a_beat_that_loses_the_race_to_add_a_job_leaves_it_as_the_winner_wrote_it() -> None:
    """Three beats start together: the ones whose add_job finds the id taken must not
    re-anchor the job (a new revision, a new next run) with their own start time."""
    store = MemoryStore()
    winner = JobManager(store)
    entries = {"every-10s": {"task": "proj.tasks.ping", "schedule": 10.0, "relative": False}}
    import_beat_schedule(winner, entries)
    stored = store.get_job("every-10s")
    assert stored is not None and stored.revision == 1

    class LateReader(MemoryStore):
        """Reads the job as absent once: the winner added it right after this read."""

        def __init__(self, inner: MemoryStore) -> None:
            self.inner, self.lied = inner, False

        def get_job(self, job_id: str) -> Any:
            if not self.lied:
                self.lied = True
                return None
            return self.inner.get_job(job_id)

        def __getattribute__(self, name: str) -> Any:
            if name in {"get_job", "inner", "lied"}:
                return object.__getattribute__(self, name)
            return getattr(object.__getattribute__(self, "inner"), name)

    import time

    time.sleep(0.01)  # a later start time: re-anchoring would show
    loser = JobManager(LateReader(store))  # type: ignore[arg-type]
    import_beat_schedule(loser, entries)
    again = store.get_job("every-10s")
    assert again is not None and again.revision == 1 and again.next_run_time == stored.next_run_time
