"""Start-up of ``celery beat -S beatx`` as a user meets it: a bad ``beat_schedule`` entry is one
log line and exit status 1 (not a thousand fragments of a traceback), an unreachable store is
retried until it answers (never fatal, never blamed on a job), ``setup(app)`` says when it keeps
another scheduler, and a standby beat says it is standing by."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from beatx import StoreError
from beatx.beat import Beat
from beatx.celery import BeatxScheduler
from beatx.stores.memory import MemoryStore
from beatx.testing import RecordingDispatcher

ROOT = Path(__file__).resolve().parents[2]

APP = """\
from celery import Celery

import beatx.celery

app = Celery("start_up_app", broker="memory://")
app.conf.result_backend = "cache+memory://"
app.conf.beatx_store = {store!r}
app.conf.beat_schedule = {{
    "fine": {{"task": "start_up_app.ping", "schedule": 60}},
    {extra}
}}
beatx.celery.setup(app)
"""


def _start_beat(tmp_path: Path, *, store: str, extra: str = "") -> subprocess.Popen[str]:
    (tmp_path / "start_up_app.py").write_text(APP.format(store=store, extra=extra))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "start_up_app", "beat", "-S", "beatx", "-l", "info"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _log_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[")]


def test_a_bad_beat_schedule_entry_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    beat = _start_beat(tmp_path, store="memory://", extra='"bad": {"task": "t.bad", "schedule": "hourly"},')
    try:
        output, _ = beat.communicate(timeout=60)
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.communicate()
    assert beat.returncode == 1, output
    assert "Traceback" not in output
    errors = [
        line for line in _log_lines(output) if "ERROR" in line or "CRITICAL" in line or "WARNING" in line
    ]
    assert len(errors) == 1, output
    assert "beatx cannot start: beat_schedule entry 'bad': cannot convert schedule 'hourly'" in errors[0]
    assert len(_log_lines(output)) <= 3, output


def test_an_unreachable_store_at_start_up_is_retried_not_fatal(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    beat = _start_beat(tmp_path, store="redis://127.0.0.1:1/0")
    try:
        time.sleep(4.0)
        assert beat.poll() is None, "beat exited when the store was unreachable"
        beat.send_signal(signal.SIGTERM)
        output, _ = beat.communicate(timeout=30)
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.communicate()
    assert "Traceback" not in output
    retries = [line for line in _log_lines(output) if "store unreachable at start-up" in line]
    assert len(retries) >= 2, output  # 1 s, then 2 s apart
    assert "Connection refused" in retries[0]
    assert "'fine'" not in output and "backend_cleanup" not in output  # no job is blamed
    assert len(_log_lines(output)) <= 12, output


def test_the_beat_imports_its_schedule_once_the_store_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    refusals = [1]
    real = MemoryStore.next_run_time

    def next_run_time(self: MemoryStore) -> Any:
        if refusals[0] > 0:
            refusals[0] -= 1
            raise StoreError("store down for the test")
        return real(self)

    monkeypatch.setattr(MemoryStore, "next_run_time", next_run_time)
    app = Celery("start-up-retry", broker="memory://", set_as_current=False)
    app.conf.result_expires = None
    app.conf.beat_schedule = {"ping": {"task": "proj.tasks.ping", "schedule": 3600}}
    scheduler = BeatxScheduler(app=app, schedule_filename="celerybeat-schedule", max_interval=1)
    try:
        assert scheduler.manager is not None
        assert scheduler.manager.get_jobs() == []  # the store did not answer yet
        deadline = time.monotonic() + 10
        while not scheduler.manager.get_jobs() and time.monotonic() < deadline:
            assert scheduler.tick() == 0
        assert [job.id for job in scheduler.manager.get_jobs()] == ["ping"]
        assert refusals == [0]
    finally:
        scheduler.close()


def test_bad_settings_in_code_still_raise() -> None:
    """Only celery beat's service turns a start-up error into exit status 1."""
    from beatx import ConfigurationError

    app = Celery("start-up-raise", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"bad": {"task": "t.bad", "schedule": "hourly"}}
    with pytest.raises(ConfigurationError, match="'bad'"):
        BeatxScheduler(app=app)


def test_a_standby_beat_says_it_is_standing_by_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    leader = Beat(store, RecordingDispatcher(), lease_timeout=30, owner="leader-host:1:aa")
    standby = Beat(store, RecordingDispatcher(), lease_timeout=30, owner="standby-host:2:bb")
    caplog.set_level(logging.INFO, logger="beatx")
    leader.run_once()
    for _ in range(3):
        standby.run_once()
    said = [r.getMessage() for r in caplog.records if "standing by" in r.getMessage()]
    expected = (
        "standing by: beat leader-host:1:aa:1 holds the leader lease; this beat (standby-host:2:bb) "
        "takes over within 30s if it stops renewing"
    )
    assert said == [expected]
    assert not leader.leadership.standing_by and standby.leadership.standing_by
    leader.close()
    standby.run_once()  # takes over: no longer standing by
    assert standby.leadership.is_leader and not standby.leadership.standing_by


def test_the_banner_says_how_beatx_uses_max_interval() -> None:
    app = Celery("start-up-banner", broker="memory://", set_as_current=False)
    scheduler = BeatxScheduler(app=app, lazy=True, max_interval=300)
    assert "one wait lasts 60s at most" in scheduler.info
    scheduler.close()


def test_setup_keeps_another_scheduler_with_a_warning() -> None:
    from beatx.celery import setup

    app = Celery("start-up-other", broker="memory://", set_as_current=False)
    app.conf.beat_scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    setup(app)
    # The app is configured lazily (as a Django project's is): setup()'s check runs then.
    with pytest.warns(UserWarning, match="DatabaseScheduler'.*`celery beat` runs that scheduler, not beatx"):
        kept = app.conf.beat_scheduler
    assert kept == "django_celery_beat.schedulers:DatabaseScheduler"
