"""The audit log, as ``JobManager`` writes it: who, through what, when, and the diff of each
change (on the memory store; every store keeps the log the same way, see
``tests/stores/audit_contract.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from beatx.audit import diff_jobs
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock
from beatx.triggers import IntervalTrigger

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _manager(**kwargs: object) -> JobManager:
    clock = FakeClock(T0)
    return JobManager(MemoryStore(clock=clock), clock=clock, **kwargs)  # type: ignore[arg-type]


def test_every_change_is_recorded_with_who_through_what_when_and_the_diff() -> None:
    manager = _manager()
    manager.add_job("app.tasks:report", IntervalTrigger(minutes=5), id="report", actor="alice")
    manager.clock.advance(60)  # type: ignore[attr-defined]
    manager.modify_job("report", name="Daily report", kwargs={"to": "ops"}, actor="bob")
    manager.pause_job("report", note="holiday", by="carol")
    manager.resume_job("report", actor="dave")
    manager.remove_job("report", actor="erin")

    history = manager.job_history("report")
    assert [(c.action, c.actor, c.source) for c in history] == [
        ("removed", "erin", "api"),
        ("resumed", "dave", "api"),
        ("paused", "carol", "api"),
        ("changed", "bob", "api"),
        ("added", "alice", "api"),
    ]
    removed, resumed, paused, changed, added = history
    assert added.at == T0 and changed.at == removed.at == T0.replace(minute=1)
    assert added.changes["func"] == [None, "app.tasks:report"]
    assert changed.changes == {"kwargs": [{}, {"to": "ops"}], "name": ["report", "Daily report"]}
    assert paused.changes["status"] == ["active", "paused"]
    assert paused.changes["pause_note"] == [None, "holiday"]
    assert resumed.changes["status"] == ["paused", "active"]
    assert removed.changes["status"] == ["active", None]


def test_a_write_that_changes_nothing_is_not_recorded() -> None:
    manager = _manager()
    manager.ensure_job("app.tasks:report", IntervalTrigger(minutes=5), id="report")
    manager.ensure_job("app.tasks:report", IntervalTrigger(minutes=5), id="report")
    assert not manager.resume_job("report")  # not paused: nothing to do
    assert [c.action for c in manager.job_history("report")] == ["added"]


def test_the_source_and_a_default_actor_are_the_manager_s() -> None:
    manager = _manager(source="cli", actor="root")
    manager.add_job("app.tasks:report", IntervalTrigger(minutes=5), id="report")
    with manager.changes_through("yaml"):
        manager.ensure_job("app.tasks:report", IntervalTrigger(minutes=10), id="report")
    manager.pause_job("report", actor="alice")
    assert [(c.action, c.source, c.actor) for c in manager.job_history("report")] == [
        ("paused", "cli", "alice"),
        ("changed", "yaml", "root"),
        ("added", "cli", "root"),
    ]
    trigger_change = manager.job_history("report")[1].changes["trigger"]
    assert trigger_change[0]["seconds"] == 300 and trigger_change[1]["seconds"] == 600


def test_run_state_is_not_a_change() -> None:
    manager = _manager()
    job = manager.add_job("app.tasks:report", IntervalTrigger(minutes=5), id="report")
    later = job.copy()
    later.total_run_count, later.last_run_time, later.next_run_time = 3, T0, T0.replace(hour=13)
    assert diff_jobs(job, later) == {}
