"""What the engine logs about the fires it sent: at INFO one line per group sent together, each
fire at DEBUG, or each fire at INFO with ``log_each_fire`` (``beatx_log_each_fire``)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from beatx.engine.engine import Engine
from beatx.engine.fire_log import SUMMARY_JOB_IDS, SentSummary
from beatx.jobs import Fire, Job
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger
from tests.engine.conftest import T0

SUMMARY = re.compile(
    r"fires dispatched count=(\d+) jobs=(\d+) ids=(\S+) lateness=(-?[0-9.]+)s\.\.(-?[0-9.]+)s$"
)
PER_FIRE = re.compile(r"fire dispatched job=(\S+) scheduled_at=(\S+) lateness=(-?[0-9.]+)s$")


def _job(job_id: str) -> Job:
    return Job(id=job_id, func="m:f", trigger=IntervalTrigger(seconds=10, start_date=T0))


def _lines(caplog: pytest.LogCaptureFixture, pattern: re.Pattern[str], level: int) -> list[re.Match[str]]:
    found = [
        pattern.match(r.getMessage())
        for r in caplog.records
        if r.name == "beatx.engine" and r.levelno == level
    ]
    return [m for m in found if m is not None]


# -- the summary, pure --------------------------------------------------------------------------


def test_a_summary_counts_fires_and_jobs_and_names_the_first_jobs() -> None:
    summary = SentSummary()
    summary.add("empty", [])
    for n in range(SUMMARY_JOB_IDS + 2):
        summary.add(f"j{n}", [Fire(_job(f"j{n}"), T0 + timedelta(seconds=n))])
    summary.add(
        "two", [Fire(_job("two"), T0 + timedelta(seconds=9)), Fire(_job("two"), T0 - timedelta(seconds=3))]
    )
    line = summary.line(T0 + timedelta(seconds=10))
    assert line is not None
    match = SUMMARY.match(line[0] % line[1])
    assert match is not None
    count, jobs, ids, least, most = match.groups()
    assert (int(count), int(jobs)) == (SUMMARY_JOB_IDS + 4, SUMMARY_JOB_IDS + 3)
    assert ids == ",".join(f"j{n}" for n in range(SUMMARY_JOB_IDS)) + ",..."
    # Lateness from the latest due (T0+9) to the earliest (T0-3), sent at T0+10.
    assert (float(least), float(most)) == (1.0, 13.0)


def test_a_summary_of_nothing_sent_has_no_line_and_few_jobs_have_no_ellipsis() -> None:
    assert SentSummary().line(T0) is None
    summary = SentSummary()
    summary.add("only", [Fire(_job("only"), T0)])
    line = summary.line(T0 + timedelta(milliseconds=12))
    assert line is not None
    assert line[0] % line[1] == "fires dispatched count=1 jobs=1 ids=only lateness=0.012s..0.012s"


# -- the engine ---------------------------------------------------------------------------------


def _seven_due(manager: JobManager, clock: FakeClock) -> None:
    """Seven jobs whose first fires fall at T0 (four) and T0+1 s (three); the tick is at T0+1.5 s."""
    for n in range(7):
        start = T0 + timedelta(seconds=1 if n >= 4 else 0)
        manager.add_job("m:f", IntervalTrigger(seconds=60, start_date=start), id=f"job-{n}")
    clock.set(T0 + timedelta(seconds=1.5))


def test_at_info_one_line_per_group_and_each_fire_at_debug(
    store: MemoryStore, manager: JobManager, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _seven_due(manager, clock)
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, clock=clock)
    with caplog.at_level(logging.INFO, logger="beatx.engine"):
        assert engine.tick(clock.now()).fired == 7
    assert len(dispatcher.fires) == 7
    assert _lines(caplog, PER_FIRE, logging.INFO) == []
    assert _lines(caplog, PER_FIRE, logging.DEBUG) == []  # DEBUG is off: not even formatted
    (summary,) = _lines(caplog, SUMMARY, logging.INFO)
    count, jobs, ids, least, most = summary.groups()
    assert (count, jobs, ids) == ("7", "7", "job-0,job-1,job-2,job-3,job-4,...")
    assert (float(least), float(most)) == (0.5, 1.5)

    caplog.clear()
    clock.set(T0 + timedelta(seconds=60))
    with caplog.at_level(logging.DEBUG, logger="beatx.engine"):
        assert engine.tick(clock.now()).fired == 4  # the four jobs of T0, a minute later
    per_fire = _lines(caplog, PER_FIRE, logging.DEBUG)
    assert sorted(m.group(1) for m in per_fire) == ["job-0", "job-1", "job-2", "job-3"]
    assert [m.groups()[:3] for m in _lines(caplog, SUMMARY, logging.INFO)] == [
        ("4", "4", "job-0,job-1,job-2,job-3")
    ]


def test_log_each_fire_logs_every_fire_at_info(
    store: MemoryStore, manager: JobManager, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _seven_due(manager, clock)
    engine = Engine(store, RecordingDispatcher(), clock=clock, log_each_fire=True)
    with caplog.at_level(logging.INFO, logger="beatx.engine"):
        assert engine.tick(clock.now()).fired == 7
    per_fire = _lines(caplog, PER_FIRE, logging.INFO)
    assert sorted(m.group(1) for m in per_fire) == [f"job-{n}" for n in range(7)]
    assert {m.group(1): float(m.group(3)) for m in per_fire}["job-6"] == 0.5
    assert len(_lines(caplog, SUMMARY, logging.INFO)) == 1


def test_fires_the_broker_refused_are_not_counted_as_dispatched(
    store: MemoryStore, manager: JobManager, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _seven_due(manager, clock)
    engine = Engine(store, RecordingDispatcher(fail_jobs=["job-0", "job-5"]), clock=clock)
    with caplog.at_level(logging.INFO, logger="beatx.engine"):
        engine.tick(clock.now())
    (summary,) = _lines(caplog, SUMMARY, logging.INFO)
    assert summary.groups()[:3] == ("5", "5", "job-1,job-2,job-3,job-4,job-6")


def test_nothing_is_logged_per_fire_or_per_group_below_info(
    store: MemoryStore, manager: JobManager, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _seven_due(manager, clock)
    engine = Engine(store, RecordingDispatcher(), clock=clock)
    with caplog.at_level(logging.WARNING, logger="beatx.engine"):
        assert engine.tick(clock.now()).fired == 7
    assert not [r for r in caplog.records if "dispatched" in r.getMessage()]


def test_the_setting_is_checked_and_reaches_the_engine(store: MemoryStore) -> None:
    from celery import Celery

    from beatx.beat import Beat
    from beatx.celery.settings import BeatxSettings
    from beatx.config import SchedulerConfig
    from beatx.errors import ConfigurationError

    app = Celery("fire-log-test", set_as_current=False)
    assert BeatxSettings.from_app(app).log_each_fire is False
    app.conf.beatx_log_each_fire = True
    assert BeatxSettings.from_app(app).log_each_fire is True
    app.conf.beatx_log_each_fire = 1
    with pytest.raises(ConfigurationError, match="beatx_log_each_fire: expected True or False"):
        BeatxSettings.from_app(app)
    assert SchedulerConfig.from_mapping({"scheduler": {"log_each_fire": True}}).log_each_fire is True
    with pytest.raises(ConfigurationError, match="log_each_fire: expected True or False"):
        SchedulerConfig.from_mapping({"scheduler": {"log_each_fire": "yes"}})
    assert Beat(store, RecordingDispatcher()).engine.fire_log_level == logging.DEBUG
    assert Beat(store, RecordingDispatcher(), log_each_fire=True).engine.fire_log_level == logging.INFO
