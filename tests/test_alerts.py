"""The alert rules (:mod:`beatx.alerts`, pure: times are arguments) and their delivery
(:mod:`beatx.alert_delivery`: a real local HTTP server as the webhook)."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beatx import JobManager
from beatx.alert_delivery import AlertDelivery, sentry_checkin
from beatx.alert_watch import AlertWatch
from beatx.alerts import Alert, AlertBook, AlertKind, AlertState, conditions
from beatx.beat import Beat
from beatx.errors import InvalidJobError, MissingExtraError
from beatx.jobs import Job, JobStatus
from beatx.ledger import RunOutcome, RunRecord
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def job(**fields: Any) -> Job:
    return Job(id="j", func="tests.sample_tasks:record", trigger=IntervalTrigger(seconds=60), **fields)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sent(task: str, nominal: float, when: float) -> RunRecord:
    return RunRecord(
        job_id="j", task_id=task, outcome=RunOutcome.SENT, scheduled_at=at(nominal), sent_at=at(when)
    )


def ended(task: str, outcome: RunOutcome, when: float, error: str | None = None) -> RunRecord:
    return RunRecord(
        job_id="j", task_id=task, outcome=outcome, scheduled_at=at(when), finished_at=at(when), error=error
    )


# -- the rules ----------------------------------------------------------------------------------


def test_each_rule_is_checked_only_when_set_and_validated() -> None:
    assert conditions(job(), [sent("a", 0, 0)], at(10**6)) == {}
    for name in ("expect_every", "max_lateness", "max_runtime"):
        with pytest.raises(InvalidJobError, match=name):
            job(**{name: 0})
    with pytest.raises(InvalidJobError, match="alert_after_failures"):
        job(alert_after_failures=0)


def test_missed_heartbeat_counts_from_the_last_fire_or_the_watch() -> None:
    rule = job(expect_every=60.0)
    assert conditions(rule, [sent("a", 0, 1)], at(61)) == {}
    found = conditions(rule, [sent("a", 0, 1)], at(62))
    assert found[AlertKind.MISSED_HEARTBEAT]["silent_for"] == 61.0
    # The last run's nominal time counts too (a ledger without the record, run_history=0).
    assert conditions(job(expect_every=60.0, last_run_time=at(50)), [], at(100)) == {}
    # Never fired: only from when the watch first saw it; with no start, never.
    assert conditions(rule, [], at(1000)) == {}
    assert AlertKind.MISSED_HEARTBEAT in conditions(rule, [], at(1000), watched_since=at(900))
    # Edited (resumed) after the last fire: from the edit.
    assert conditions(rule, [sent("a", 0, 0)], at(1000), watched_since=at(990)) == {}
    # Paused: no heartbeat is expected.
    assert conditions(job(expect_every=60.0, status=JobStatus.PAUSED), [sent("a", 0, 0)], at(1000)) == {}
    # Summaries (missed, skipped) are not fires.
    skipped = RunRecord(job_id="j", task_id="s", outcome=RunOutcome.SKIPPED, sent_at=at(990))
    assert AlertKind.MISSED_HEARTBEAT in conditions(rule, [skipped, sent("a", 0, 0)], at(1000))


def test_late_is_the_newest_fire_or_an_unsent_due_one() -> None:
    rule = job(max_lateness=5.0, next_run_time=at(120))
    assert conditions(rule, [sent("b", 60, 64), sent("a", 0, 30)], at(100)) == {}
    found = conditions(rule, [sent("b", 60, 66), sent("a", 0, 0)], at(100))[AlertKind.LATE]
    assert (found["task_id"], found["lateness"]) == ("b", 6.0)
    overdue = conditions(rule, [sent("b", 60, 60)], at(126))[AlertKind.LATE]
    assert overdue["unsent_for"] == 6.0
    # A jittered job is not late by its jitter.
    assert conditions(job(max_lateness=5.0, jitter=10.0), [sent("b", 60, 74)], at(100)) == {}


def test_max_runtime_names_the_runs_past_it() -> None:
    rule = job(max_runtime=30.0)
    running = RunRecord(job_id="j", task_id="r", outcome=RunOutcome.RUNNING, started_at=at(0))
    retried = RunRecord(job_id="j", task_id="q", outcome=RunOutcome.RETRIED, started_at=at(10))
    done = RunRecord(
        job_id="j", task_id="d", outcome=RunOutcome.SUCCEEDED, started_at=at(0), finished_at=at(99)
    )
    assert conditions(rule, [running, retried, done], at(30)) == {}
    found = conditions(rule, [running, retried, done], at(41))[AlertKind.MAX_RUNTIME]
    assert (found["task_ids"], found["running_for"]) == (["q", "r"], 41.0)


outcomes = st.sampled_from(
    [
        RunOutcome.SUCCEEDED,
        RunOutcome.FAILED,
        RunOutcome.REJECTED,
        RunOutcome.UNKNOWN_TASK,
        RunOutcome.REVOKED,
        RunOutcome.RUNNING,
        RunOutcome.SKIPPED,
        RunOutcome.MISSED,
    ]
)


@given(history=st.lists(outcomes, max_size=30), threshold=st.integers(1, 6))
def test_failures_are_the_failed_ends_since_the_last_success(
    history: list[RunOutcome], threshold: int
) -> None:
    """Against a direct reading: walk the ends newest first, skip what is no run's end
    (in flight, revoked, a summary), count errors until a success."""
    runs = [ended(f"t{i}", outcome, 1000 - i, error=f"E{i}") for i, outcome in enumerate(history)]
    streak = 0
    for outcome in history:
        if outcome in (RunOutcome.RUNNING, RunOutcome.REVOKED, RunOutcome.SKIPPED, RunOutcome.MISSED):
            continue
        if outcome is RunOutcome.SUCCEEDED:
            break
        streak += 1
    found = conditions(job(alert_after_failures=threshold), runs, at(2000))
    assert (AlertKind.FAILURES in found) == (streak >= threshold)
    if streak >= threshold:
        assert found[AlertKind.FAILURES]["failures"] == streak


@settings(max_examples=200)
@given(steps=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_the_book_raises_once_per_episode_and_resolves_once(steps: list[tuple[bool, bool]]) -> None:
    """For any sequence of conditions, on a fake clock: each kind alternates raised/resolved,
    starting with raised, a raise exactly where its condition starts, and the book survives a
    round trip through JSON (a new leader) at every step."""
    book = AlertBook()
    log: dict[AlertKind, list[tuple[AlertState, int]]] = {AlertKind.LATE: [], AlertKind.FAILURES: []}
    before = (False, False)
    for i, (late, failing) in enumerate(steps):
        found = {k: {"step": i} for k, on in ((AlertKind.LATE, late), (AlertKind.FAILURES, failing)) if on}
        book = AlertBook.from_json(book.to_json())
        for alert in book.update("j", found, at(i)):
            log[alert.kind].append((alert.state, i))
        for kind, was, now in ((AlertKind.LATE, before[0], late), (AlertKind.FAILURES, before[1], failing)):
            if now and not was:
                assert log[kind][-1] == (AlertState.RAISED, i)
            elif was and not now:
                assert log[kind][-1] == (AlertState.RESOLVED, i)
        before = (late, failing)
    for entries in log.values():
        assert [state for state, _ in entries] == [
            AlertState.RAISED if n % 2 == 0 else AlertState.RESOLVED for n in range(len(entries))
        ]
    resolved = book.forget_except([], at(len(steps)))
    assert {a.kind for a in resolved} == {
        k for k, on in zip((AlertKind.LATE, AlertKind.FAILURES), before, strict=True) if on
    }
    assert book.open_alerts() == {}


def test_an_unreadable_book_starts_empty() -> None:
    assert AlertBook.from_json("{not json").open_alerts() == {}
    assert AlertBook.from_json(None).open_alerts() == {}


# -- delivery -----------------------------------------------------------------------------------


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(status: int = 200) -> tuple[ThreadingHTTPServer, type[_Webhook]]:
    handler = type("Hook", (_Webhook,), {"received": [], "status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def _alert(state: AlertState = AlertState.RAISED) -> Alert:
    return Alert(
        job_id="nightly",
        kind=AlertKind.MISSED_HEARTBEAT,
        state=state,
        at=at(5),
        since=at(0),
        details={"silent_for": 612.5},
    )


def test_the_webhook_receives_each_alert_as_json() -> None:
    server, hook = _serve()
    try:
        delivery = AlertDelivery(webhook_url=f"http://127.0.0.1:{server.server_port}/hook", timeout=2.0)
        delivery.deliver(_alert())
        delivery.deliver(_alert(AlertState.RESOLVED))
        delivery.close(timeout=5.0)
    finally:
        server.shutdown()
    assert [r["body"]["state"] for r in hook.received] == ["raised", "resolved"]
    assert hook.received[0] == {
        "type": "application/json",
        "body": {
            "job_id": "nightly",
            "kind": "missed_heartbeat",
            "state": "raised",
            "at": at(5).isoformat(),
            "since": at(0).isoformat(),
            "details": {"silent_for": 612.5},
        },
    }
    assert (delivery.delivered, delivery.failed) == (2, 0)


def test_a_failing_webhook_is_logged_and_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    server, _ = _serve(status=500)
    port = server.server_port
    try:
        delivery = AlertDelivery(webhook_url=f"http://127.0.0.1:{port}/hook", timeout=2.0)
        delivery.deliver(_alert())
        delivery.close(timeout=5.0)
    finally:
        server.shutdown()
        server.server_close()
    dead = AlertDelivery(webhook_url=f"http://127.0.0.1:{port}/gone", timeout=1.0)
    dead.deliver(_alert())
    dead.close(timeout=5.0)
    assert (delivery.failed, dead.failed) == (1, 1)
    assert "alert webhook failed" in caplog.text


def test_sentry_check_ins_need_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    monkeypatch.setitem(sys.modules, "sentry_sdk.crons", None)
    with pytest.raises(MissingExtraError, match=r"beatx\[sentry\]"):
        AlertDelivery(sentry=True)


def test_sentry_check_ins_report_error_then_ok() -> None:
    pytest.importorskip("sentry_sdk")
    import sentry_sdk

    envelopes: list[Any] = []

    class Transport(sentry_sdk.transport.Transport):
        def capture_envelope(self, envelope: Any) -> None:
            envelopes.append(envelope)

    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=Transport())
    try:
        assert sentry_checkin() is sentry_sdk.crons.capture_checkin
        delivery = AlertDelivery(sentry=True)
        delivery.deliver(_alert())
        delivery.deliver(_alert(AlertState.RESOLVED))
        delivery.close(timeout=5.0)
        sentry_sdk.flush(timeout=5.0)
    finally:
        sentry_sdk.init(dsn=None)
    check_ins = [item.payload.json for env in envelopes for item in env.items if item.type == "check_in"]
    assert [(c["monitor_slug"], c["status"]) for c in check_ins] == [("nightly", "error"), ("nightly", "ok")]


# -- the leader's watch in the beat ---------------------------------------------------------------


class _CountingStore(MemoryStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.checks = 0

    def alerting_jobs(self) -> list[Job]:
        self.checks += 1
        return super().alerting_jobs()


def test_a_new_leader_sees_the_heartbeat_missed_while_no_beat_ran_before_its_catch_up() -> None:
    clock = FakeClock(T0)
    store = _CountingStore(clock)
    manager = JobManager(store, clock=clock)
    manager.add_job("proj.tasks.ping", IntervalTrigger(seconds=10, start_date=T0), id="hb", expect_every=30.0)
    alerts: list[Alert] = []
    first = Beat(
        store,
        RecordingDispatcher(),
        clock=clock,
        lease_timeout=60,
        alert_interval=5,
        alert_deliver=alerts.append,
    )
    for _ in range(4):
        first.run_once()
        clock.advance(10)
    assert alerts == [] and store.checks >= 2
    # Every beat gone for 70 s (past the dead leader's lease): nobody checks, nothing fires.
    clock.advance(70)
    dispatcher = RecordingDispatcher()
    second = Beat(
        store, dispatcher, clock=clock, lease_timeout=60, alert_interval=5, alert_deliver=alerts.append
    )
    second.run_once()
    (raised,) = alerts
    assert (raised.kind, raised.state, raised.at) == (
        AlertKind.MISSED_HEARTBEAT,
        AlertState.RAISED,
        clock.now(),
    )
    assert raised.details["silent_for"] > 70
    assert dispatcher.fires  # the outage's fires (a failover's: each sent) went out after the check
    clock.advance(5)
    second.run_once()
    assert [(a.kind, a.state) for a in alerts] == [
        (AlertKind.MISSED_HEARTBEAT, AlertState.RAISED),
        (AlertKind.MISSED_HEARTBEAT, AlertState.RESOLVED),
    ]


def test_a_check_waits_for_a_quiet_moment_but_not_forever() -> None:
    clock = FakeClock(T0)
    store = _CountingStore(clock)
    watch = AlertWatch(store, interval=5.0, clock=clock)
    watch.maybe_check(1, quiet=False)
    assert store.checks == 1  # a new term checks at once
    clock.advance(6)
    watch.maybe_check(1, quiet=False)
    assert store.checks == 1  # fires are due: later
    watch.maybe_check(1, quiet=True)
    assert store.checks == 2
    clock.advance(14)
    watch.maybe_check(1, quiet=False)
    assert store.checks == 2
    clock.advance(1)
    watch.maybe_check(1, quiet=False)
    assert store.checks == 3  # three intervals without a quiet moment: at once


def test_alerts_are_counted_in_the_metrics() -> None:
    from prometheus_client import CollectorRegistry

    from beatx.events import Event, EventBus, EventKind
    from beatx.metrics import BeatxMetrics

    registry = CollectorRegistry()
    events = EventBus()
    metrics = BeatxMetrics(events, registry=registry)
    try:
        events.emit(Event(EventKind.ALERT_RAISED, T0, "j", data={"kind": "max_runtime", "details": {}}))
        labels = {"job": "j", "kind": "max_runtime"}
        assert registry.get_sample_value("beatx_alerts_raised_total", labels) == 1
        assert registry.get_sample_value("beatx_alerts_open", labels) == 1
        events.emit(Event(EventKind.ALERT_RESOLVED, T0, "j", data={"kind": "max_runtime", "details": {}}))
        assert registry.get_sample_value("beatx_alerts_open", labels) == 0
        assert registry.get_sample_value("beatx_alerts_raised_total", labels) == 1
    finally:
        metrics.close()
