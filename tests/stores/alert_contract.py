"""What the alert watch reads from a store (:mod:`beatx.alert_watch`), and the ledger records
beside the beat's (``run_job_now``'s ``sent``, the catch-up's ``caught_up``): mixed into the
contract tests of the memory, Redis and Django (SQLite, PostgreSQL) stores."""

from __future__ import annotations

from datetime import timedelta

from beatx.alert_watch import ALERTS_META_KEY, AlertWatch, alerting_jobs
from beatx.alerts import AlertKind, AlertState
from beatx.events import EventBus, EventKind
from beatx.ledger import RunOutcome
from beatx.stores.base import JobStore
from beatx.testing import FakeClock
from tests.stores.ledger_contract import T0, make_job, release_of


class AlertReadsContract:
    def test_alerting_jobs_lists_the_jobs_with_rules_and_only_them(self, store: JobStore) -> None:
        store.add_job(make_job("plain"))
        store.add_job(make_job("heartbeat", expect_every=60.0))
        store.add_job(make_job("failures", alert_after_failures=3))
        assert [j.id for j in alerting_jobs(store)] == ["failures", "heartbeat"]
        (listed,) = [j for j in alerting_jobs(store) if j.id == "heartbeat"]
        assert listed.expect_every == 60.0 and listed.max_runtime is None
        # An edit adds a rule to one job and takes the rule of another away.
        plain = store.get_job("plain")
        assert plain is not None
        plain.max_runtime = 30.0
        store.update_job(plain)
        failures = store.get_job("failures")
        assert failures is not None
        failures.alert_after_failures = None
        store.update_job(failures)
        assert [(j.id, j.max_runtime) for j in alerting_jobs(store)] == [("heartbeat", None), ("plain", 30.0)]
        assert store.remove_job("heartbeat")
        assert [j.id for j in alerting_jobs(store)] == ["plain"]
        # Replaced whole, without rules.
        store.add_job(make_job("plain"), replace_existing=True)
        assert alerting_jobs(store) == []

    def test_a_fire_sent_outside_the_beat_is_in_the_ledger(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a"))
        record = getattr(store, "record_dispatch")  # noqa: B009  (not part of the protocol)
        # The worker's start may come first: the records merge by task id.
        store.run_started("a", "now-1", started_at=clock.now(), timeout=60, worker="celery@w")
        sent_at = clock.advance(0.5)
        record("a", "now-1", scheduled_at=T0)
        record("missing", "now-2", scheduled_at=T0)  # no such job: nothing, no error
        (run,) = store.job_runs("a")
        assert (run.task_id, run.outcome, run.scheduled_at, run.sent_at, run.worker) == (
            "now-1",
            RunOutcome.RUNNING,
            T0,
            sent_at,
            "celery@w",
        )
        assert store.job_runs("missing") == []

    def test_a_catch_up_is_recorded_once_per_write_back(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        (job,) = store.acquire_due_jobs(T0 + timedelta(seconds=100), limit=1)
        clock.set(T0 + timedelta(seconds=100))
        release = release_of(
            job,
            fired=(T0 + timedelta(seconds=90),),
            task_ids=("a-90",),
            next_run_time=T0 + timedelta(seconds=110),
            caught_up=1,
            coalesced=9,
        )
        store.release_jobs([release])
        store.release_jobs([release])  # a retried write-back: applied once
        runs = store.job_runs("a")
        assert sorted(r.outcome.value for r in runs) == ["caught_up", "sent"]
        (note,) = [r for r in runs if r.outcome is RunOutcome.CAUGHT_UP]
        assert note.reason is not None and "1 late fire(s) sent, 9 coalesced" in note.reason
        assert note.sent_at == T0 + timedelta(seconds=100)

    def test_many_ledgers_read_at_once_are_the_ledgers_read_one_by_one(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        from beatx.alert_watch import _ledgers

        for job_id in ("a", "b", "c"):
            store.add_job(make_job(job_id, at=T0, max_runtime=10.0))
        claimed = {job.id: job for job in store.acquire_due_jobs(T0, limit=3)}
        for job_id, n in (("a", 2), ("b", 1)):
            fired = tuple(T0 + timedelta(seconds=i) for i in range(n))
            task_ids = tuple(f"{job_id}-{i}" for i in range(n))
            later = T0 + timedelta(hours=1)
            store.release_jobs(
                [release_of(claimed[job_id], fired=fired, task_ids=task_ids, next_run_time=later)]
            )
            store.run_started(job_id, f"{job_id}-0", started_at=clock.now(), timeout=60)
        jobs = alerting_jobs(store)
        ledgers = _ledgers(store, jobs)
        assert ledgers == {job.id: store.job_runs(job.id, limit=20) for job in jobs}
        assert [len(ledgers[j]) for j in ("a", "b", "c")] == [2, 1, 0]

    def test_the_watch_raises_and_resolves_once_across_leaders(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("hb", at=T0, expect_every=30.0, max_runtime=20.0))
        seen: list[tuple[str, str]] = []
        events = EventBus()
        events.subscribe(
            lambda e: seen.append((e.kind.value, e.data["kind"])),
            kinds=[EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED],
        )
        delivered = []
        watch = AlertWatch(store, events=events, deliver=delivered.append, interval=5.0, clock=clock)
        assert watch.maybe_check(term=1) == []  # never fired: the heartbeat counts from now
        (job,) = store.acquire_due_jobs(T0, limit=1)
        store.release_jobs(
            [release_of(job, fired=(T0,), task_ids=("hb-0",), next_run_time=T0 + timedelta(hours=1))]
        )
        store.run_started("hb", "hb-0", started_at=T0, timeout=3600)
        clock.advance(25)
        (long_run,) = watch.maybe_check(term=1)
        assert (long_run.kind, long_run.state, long_run.details["task_ids"]) == (
            AlertKind.MAX_RUNTIME,
            AlertState.RAISED,
            ["hb-0"],
        )
        clock.advance(2)
        assert watch.maybe_check(term=1) == []  # within the interval: no check
        clock.advance(8)
        (heartbeat,) = watch.maybe_check(term=1)  # 35 s since the fire
        assert (heartbeat.kind, heartbeat.state) == (AlertKind.MISSED_HEARTBEAT, AlertState.RAISED)
        assert store.read_meta(ALERTS_META_KEY) is not None
        # A new leader (another watch) reads the open alerts: nothing is raised again.
        successor = AlertWatch(store, events=events, deliver=delivered.append, interval=5.0, clock=clock)
        assert successor.maybe_check(term=7) == []
        store.run_finished("hb", "hb-0", finished_at=clock.now(), duration=35.0, error=None)
        (ended,) = successor.maybe_check(term=8)
        assert (ended.kind, ended.state, ended.since) == (
            AlertKind.MAX_RUNTIME,
            AlertState.RESOLVED,
            long_run.at,
        )
        assert store.remove_job("hb")
        (gone,) = successor.maybe_check(term=9)
        assert (gone.kind, gone.state) == (AlertKind.MISSED_HEARTBEAT, AlertState.RESOLVED)
        assert seen == [
            ("alert_raised", "max_runtime"),
            ("alert_raised", "missed_heartbeat"),
            ("alert_resolved", "max_runtime"),
            ("alert_resolved", "missed_heartbeat"),
        ]
        assert [(a.kind.value, a.state.value) for a in delivered] == [
            (k[1], k[0].removeprefix("alert_")) for k in seen
        ]
