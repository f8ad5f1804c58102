"""The fire path as a state machine: two beats on one store, management writes racing them,
and faults at awkward moments (a beat killed or frozen mid-batch, the broker refusing, the
store failing before or after a write-back, clock skew), checked after every step.

Invariants:

- no (job, fire time) is sent twice, unless the earlier copy was *in doubt*: sent by a beat
  that then died, froze past its lease or never managed its write-back (the documented
  at-least-once window, closed at the worker by the task-id guard);
- a write-back never makes counters go back;
- every job is in exactly one place: the schedule, a claim, or neither when it cannot fire;
- nothing is sent for a paused job;
- at the end, once the faults stop: every fire time of every active job was sent, and each
  job's run count equals the distinct fire times sent for it.

Runs on the memory store and on Redis (the Django store has its own module in tests/django).
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from beatx.beat import Beat
from beatx.dispatch.base import lease_lost
from beatx.errors import StoreError, TransientDispatchError
from beatx.jobs import Fire, JobStatus
from beatx.manager import JobManager
from beatx.stores.base import JobRelease, JobStore, QueuedMessage
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock
from beatx.triggers import IntervalTrigger

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEASE = 10.0
#: Beat "b" runs this far ahead of "a": below a lease poll interval (1 s), the documented bound.
SKEW = 0.4
JOBS = ("j0", "j1", "j2", "j3")
PERIODS = (1, 2, 3, 5)


#: Faults that landed, per machine class, over every example of a run.
TOTALS: dict[str, Counter[str]] = defaultdict(Counter)


class Crash(BaseException):
    """The beat process dies here (SIGKILL): nothing after this line of it runs."""


class SkewedClock:
    def __init__(self, base: FakeClock, offset: float) -> None:
        self.base, self.offset = base, timedelta(seconds=offset)

    def now(self) -> datetime:
        return self.base.now() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()


class FlakyStore:
    """The store as one beat sees it: its next write-back can fail before or after it lands.
    Notes the claim token of every write-back that landed."""

    def __init__(self, store: JobStore, released: set[str]) -> None:
        self._store = store
        self.released = released
        self.fail_next_release: str | None = None
        #: Called after a write-back landed (the model collects the messages it pushed).
        self.after_release: Callable[[], None] = lambda: None
        #: Whether a kill may land now (faults are one at a time: a "crash" armed earlier
        #: turns into an error after the write-back when another fault is still recent);
        #: called with True when it lands.
        self.may_crash: Callable[[bool], bool] = lambda landing: True

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        mode, self.fail_next_release = self.fail_next_release, None
        if mode == "before":
            raise StoreError("injected: connection lost before the write-back")
        self._store.release_jobs(releases, owner=owner)
        self.released.update(r.claim for r in releases if r.claim is not None)
        self.after_release()
        if mode == "after":
            raise StoreError("injected: connection lost after the write-back landed")
        if mode == "crash" and any(r.messages for r in releases):
            if self.may_crash(True):
                raise Crash  # killed right after the script that sent the fires and wrote them back
            raise StoreError("injected: connection lost after the write-back landed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class Sent:
    job_id: str
    at: datetime
    beat: str
    #: The token of the claim it was planned under: written back when in ``released``.
    claim: str
    sent_at: datetime


class ModelDispatcher:
    """Records what one beat sends; can crash, freeze, refuse or run an edit mid-batch."""

    def __init__(self, machine: FirePathMachine, name: str) -> None:
        self.machine, self.name = machine, name
        self.refuse_next = False
        #: Fires this beat still sends before it dies (None: it does not).
        self.crash_after: int | None = None
        #: Fires this beat still sends before it freezes past its lease mid-batch.
        self.freeze_after: int | None = None
        self.during: Callable[[], None] | None = None

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        if self.during is not None:
            action, self.during = self.during, None
            action()
        if self.refuse_next:
            self.refuse_next = False
            return [TransientDispatchError("injected: broker refused")] * len(fires)
        results: list[BaseException | None] = []
        for index, fire in enumerate(fires):
            if guard is not None and not guard():
                results.extend(lease_lost(len(fires) - index))
                break
            self.machine.record(self.name, fire)
            results.append(None)
            if self.crash_after is not None:
                self.crash_after -= 1
                if self.crash_after <= 0:  # dies right after this publish, before its write-back
                    self.crash_after = None
                    self.machine.last_fault_at = self.machine.clock.now()
                    raise Crash
            if self.freeze_after is not None:
                self.freeze_after -= 1
                if self.freeze_after <= 0:  # freezes right after this publish, past its lease
                    self.freeze_after = None
                    self.machine.freezes += 1
                    self.machine.clock.advance(LEASE - 0.5)
                    self.machine.last_fault_at = self.machine.clock.now()
        return results


class AtomicModelDispatcher(ModelDispatcher):
    """A dispatcher whose messages the store pushes in its write-back (the atomic fire): it
    only builds them. Killed or frozen while building a batch, it has sent nothing; the
    machine reads what was sent from the broker's list."""

    def __init__(self, machine: FirePathMachine, name: str) -> None:
        super().__init__(machine, name)
        self.server: str = machine.store._shared.server  # type: ignore[attr-defined]

    def broker_server(self) -> str | None:
        return self.server

    def render(self, fires: Sequence[Fire]) -> list[QueuedMessage | BaseException | None]:
        if self.during is not None:
            action, self.during = self.during, None
            action()
        if self.refuse_next:
            self.refuse_next = False
            return [TransientDispatchError("injected: broker refused")] * len(fires)
        if self.crash_after is not None and self.crash_after <= len(fires):
            self.crash_after = None  # dies while building the batch: nothing went out
            self.machine.last_fault_at = self.machine.clock.now()
            raise Crash
        if self.freeze_after is not None and self.freeze_after <= len(fires):
            self.freeze_after = None  # freezes past its lease before its write-back
            self.machine.freezes += 1
            self.machine.clock.advance(LEASE - 0.5)
            self.machine.last_fault_at = self.machine.clock.now()
        return [
            QueuedMessage(
                self.machine.broker_db,
                (self.machine.queue,),
                json.dumps([fire.job_id, fire.scheduled_at.isoformat(), self.name, fire.job.claim]),
            )
            for fire in fires
        ]


@dataclass
class BeatSlot:
    name: str
    beat: Beat
    dispatcher: ModelDispatcher
    flaky: FlakyStore
    frozen: bool = False


@dataclass
class Segment:
    """A stretch of a job's life on one grid: from ``start`` (added, resumed, re-triggered)
    to ``end`` (paused, re-triggered; None: still on)."""

    anchor: datetime
    period: float
    start: datetime
    end: datetime | None = None


class FirePathMachine(RuleBasedStateMachine):
    make_store: Callable[[FakeClock], JobStore] = staticmethod(lambda clock: MemoryStore(clock=clock))
    close_store: Callable[[JobStore], None] = staticmethod(lambda store: None)
    #: The atomic fire (Redis only): the store's write-back pushes the messages.
    atomic = False
    broker_db = 0

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.store = self.make_store(self.clock)
        self.queue = f"beatx-model-queue-{uuid.uuid4().hex[:8]}"
        self.manager = JobManager(self.store, clock=self.clock)
        self.sent: list[Sent] = []
        self.released: set[str] = set()
        self.segments: dict[str, list[Segment]] = {}
        self.paused: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        self.run_counts: dict[str, int] = dict.fromkeys(JOBS, 0)
        self.kills = self.freezes = self.edits_in_flight = self.kills_armed = 0
        self.last_fault_at = T0 - timedelta(days=1)
        for index, job_id in enumerate(JOBS):
            period = PERIODS[index]
            anchor = T0
            self.manager.add_job("t.job", IntervalTrigger(seconds=period, start_date=anchor), id=job_id)
            self.segments[job_id] = [Segment(anchor, period, T0)]
        self.slots = {name: self._new_slot(name) for name in ("a", "b")}

    def _new_slot(self, name: str) -> BeatSlot:
        dispatcher = AtomicModelDispatcher(self, name) if self.atomic else ModelDispatcher(self, name)
        flaky = FlakyStore(self.store, self.released)
        if self.atomic:
            flaky.after_release = lambda: self.collect_pushed(name)
        flaky.may_crash = self._crash_lands
        clock = self.clock if name == "a" else SkewedClock(self.clock, SKEW)
        beat = Beat(flaky, dispatcher, clock=clock, lease_timeout=LEASE, status_interval=3600)  # type: ignore[arg-type]
        return BeatSlot(name, beat, dispatcher, flaky)

    def record(self, beat: str, fire: Fire) -> None:
        assert fire.job.claim is not None
        self.sent.append(Sent(fire.job_id, fire.scheduled_at, beat, fire.job.claim, self.clock.now()))

    def collect_pushed(self, beat: str) -> None:
        """The atomic fire: what the store's write-backs pushed onto the broker's list."""
        client = self.store._client  # type: ignore[attr-defined]
        while (raw := client.rpop(self.queue)) is not None:
            job_id, at, sender, claim = json.loads(raw)
            assert sender == beat, (sender, beat)
            self.sent.append(Sent(job_id, datetime.fromisoformat(at), sender, claim, self.clock.now()))

    # -- driving the beats -------------------------------------------------------------------

    def _tick(self, slot: BeatSlot) -> None:
        try:
            slot.beat.run_once()
        except Crash:
            self.kills += 1
            self.slots[slot.name] = self._new_slot(slot.name)

    def _tick_all(self) -> None:
        for slot in list(self.slots.values()):
            if not slot.frozen:
                self._tick(slot)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._tick_all()

    def calm(self) -> bool:
        """Faults are one at a time, each shorter than the catch-up window (a lease and a
        claim's lifetime): the model checks that such faults lose nothing. Longer outages
        coalesce by the policy, which the rules' own tests cover."""
        return self.clock.now() - self.last_fault_at >= timedelta(seconds=2.5 * LEASE)

    def _crash_lands(self, landing: bool) -> bool:
        """A kill armed by ``store_fails_a_write_back`` lands only when no other fault is
        recent (two leaders dying within the catch-up window is an outage, which the policy
        coalesces); when it lands, it is the newest fault."""
        if not self.calm():
            return False
        if landing:
            self.last_fault_at = self.clock.now()
        return True

    def _fault(self) -> None:
        """A new fault: any fault armed earlier and not landed is disarmed (one at a time)."""
        self.last_fault_at = self.clock.now()
        for slot in self.slots.values():
            slot.dispatcher.crash_after = slot.dispatcher.freeze_after = None
            slot.dispatcher.refuse_next = False

    def has_leader(self) -> bool:
        return self.calm() and self.store.get_lease() is not None

    def leader(self) -> BeatSlot:
        """The beat holding the lease, found from the store (the standby when none does)."""
        lease = self.store.get_lease()
        for slot in self.slots.values():
            if lease is not None and lease.owner == slot.beat.owner:
                return slot
        return self.slots["b"]

    @precondition(has_leader)
    @rule()
    def freeze_the_leader(self) -> None:
        """SIGSTOP between ticks: the clock goes on, the leader does nothing until thawed."""
        self._fault()
        slot = self.leader()
        slot.frozen = True
        self.freezes += 1

    @rule()
    def thaw(self) -> None:
        for slot in self.slots.values():
            slot.frozen = False

    @precondition(has_leader)
    @rule(after=st.integers(1, 4))
    def kill_the_leader_mid_batch(self, after: int) -> None:
        """SIGKILL of the leader right after it sent ``after`` more fires."""
        self._fault()
        self.kills_armed += 1
        self.leader().dispatcher.crash_after = after

    @precondition(has_leader)
    @rule(after=st.integers(1, 4))
    def freeze_the_leader_mid_batch(self, after: int) -> None:
        """SIGSTOP of the leader past its lease right after it sent ``after`` more fires."""
        self._fault()
        self.leader().dispatcher.freeze_after = after

    @precondition(has_leader)
    @rule()
    def broker_refuses(self) -> None:
        self._fault()
        self.leader().dispatcher.refuse_next = True

    @rule(name=st.sampled_from(["a", "b"]), mode=st.sampled_from(["before", "after", "crash"]))
    def store_fails_a_write_back(self, name: str, mode: str) -> None:
        """The next write-back fails before it lands, after it landed (the beat sees an
        error), or the beat is killed right after a write-back that sent fires landed."""
        if mode == "crash":
            self.kills_armed += 1
        self.slots[name].flaky.fail_next_release = mode

    # -- management writes -------------------------------------------------------------------

    def _edit(self, job_id: str, kind: str, period: int) -> None:
        now = self.clock.now()
        if kind == "definition":
            self.manager.modify_job(job_id, kwargs={"edit": uuid.uuid4().hex})
        elif kind == "pause":
            if self.manager.pause_job(job_id) and self.segments[job_id][-1].end is None:
                self.segments[job_id][-1].end = now
                self.paused[job_id].append((now, None))
        elif kind == "resume":
            if self.manager.resume_job(job_id):
                job = self.manager.get_job(job_id)
                assert job is not None and job.next_run_time is not None
                last = self.segments[job_id][-1]
                self.segments[job_id].append(Segment(last.anchor, last.period, now))
                start, _ = self.paused[job_id][-1]
                self.paused[job_id][-1] = (start, now)
        else:
            job = self.manager.get_job(job_id)
            assert job is not None
            if job.status is JobStatus.PAUSED:
                return
            self.manager.modify_job(job_id, trigger=IntervalTrigger(seconds=period, start_date=now))
            changed = self.manager.get_job(job_id)
            assert changed is not None and changed.next_run_time is not None
            self.segments[job_id][-1].end = now
            first = changed.next_run_time
            # A job never fires at or before its last run, even on a new grid; and a beat
            # that planned the old grid before the edit (its clock up to SKEW ahead) may
            # still send it: the new grid is due after both.
            after = max([s.at for s in self.sent if s.job_id == job_id], default=first)
            start = max(first, after, now + timedelta(seconds=SKEW)) + timedelta(microseconds=1)
            self.segments[job_id].append(Segment(first, period, start))

    @rule(
        job_id=st.sampled_from(JOBS),
        kind=st.sampled_from(["definition", "pause", "resume", "trigger"]),
        period=st.sampled_from(PERIODS),
    )
    def edit(self, job_id: str, kind: str, period: int) -> None:
        self._edit(job_id, kind, period)

    @rule(
        name=st.sampled_from(["a", "b"]),
        job_id=st.sampled_from(JOBS),
        kind=st.sampled_from(["definition", "pause", "resume", "trigger"]),
        period=st.sampled_from(PERIODS),
    )
    def edit_while_the_beat_sends(self, name: str, job_id: str, kind: str, period: int) -> None:
        """The edit lands between this beat's claim and its write-back."""
        self.edits_in_flight += 1
        self.slots[name].dispatcher.during = lambda: self._edit(job_id, kind, period)

    # -- invariants --------------------------------------------------------------------------

    def _duplicates(self) -> list[tuple[str, datetime]]:
        """Fires sent again after a copy of them had been written back."""
        copies: dict[tuple[str, datetime], list[Sent]] = defaultdict(list)
        for sent in self.sent:
            copies[(sent.job_id, sent.at)].append(sent)
        return [key for key, group in copies.items() if any(c.claim in self.released for c in group[:-1])]

    @invariant()
    def no_fire_is_sent_twice_by_live_beats(self) -> None:
        assert self._duplicates() == []

    @invariant()
    def with_the_atomic_fire_no_fire_is_sent_twice_at_all(self) -> None:
        if self.atomic:
            copies = Counter((sent.job_id, sent.at) for sent in self.sent)
            assert [key for key, n in copies.items() if n > 1] == []
            assert all(sent.claim in self.released for sent in self.sent)

    @invariant()
    def counters_never_go_back(self) -> None:
        for job in self.store.get_jobs():
            assert job.total_run_count >= self.run_counts[job.id], job.id
            self.run_counts[job.id] = job.total_run_count

    @invariant()
    def every_job_is_in_exactly_one_place(self) -> None:
        for job in self.store.get_jobs():
            places = locate(self.store, job.id)
            if job.status.schedulable and job.next_run_time is not None:
                assert len(places) == 1, (job.id, places)
            else:
                assert places <= {"claims"}, (job.id, job.status, places)

    @invariant()
    def nothing_is_sent_while_paused(self) -> None:
        for sent in self.sent:
            for start, end in self.paused[sent.job_id]:
                stop = end or datetime.max.replace(tzinfo=UTC)
                assert not (start + timedelta(seconds=SKEW) < sent.at < stop), (sent, start, end)

    def teardown(self) -> None:
        try:
            self._settle_and_check()
        finally:
            type(self).close_store(self.store)
        faults = TOTALS[type(self).__name__]
        faults["examples"] += 1
        faults["kills"] += self.kills
        faults["kills armed"] += self.kills_armed
        faults["freezes"] += self.freezes
        faults["edits in flight"] += self.edits_in_flight
        faults["fires sent"] += len(self.sent)
        faults["fires in doubt"] += sum(1 for sent in self.sent if sent.claim not in self.released)

    def _settle_and_check(self) -> None:
        # Faults still armed land during the settling, which outlasts their recovery.
        for slot in self.slots.values():
            slot.frozen = False
        for _ in range(int(4 * LEASE / 0.5)):
            self.clock.advance(0.5)
            self._tick_all()
        assert self._duplicates() == []
        end = self.clock.now() - timedelta(seconds=2 * LEASE)
        sent_times: dict[str, set[datetime]] = defaultdict(set)
        for sent in self.sent:
            sent_times[sent.job_id].add(sent.at)
        settled: dict[str, set[datetime]] = defaultdict(set)
        for sent in self.sent:
            if sent.claim in self.released:
                settled[sent.job_id].add(sent.at)
        for job_id, segments in self.segments.items():
            missing = [t for t in required_times(segments, end) if t not in sent_times[job_id]]
            assert missing == [], (job_id, missing[:5], len(missing))
            job = self.store.get_job(job_id)
            assert job is not None
            # Each fire counts once when a beat wrote it back; one sent only by a beat that
            # died before its write-back (and never re-sent) is not counted.
            assert job.total_run_count == len(settled[job_id]), job_id


#: A fire this close before an edit that ended its segment may have been dropped by it (the
#: beat had not sent it yet: leadership was moving, the broker refused). That is the edit's
#: meaning, not a loss.
EDIT_SLACK = timedelta(seconds=2 * LEASE)


def required_times(segments: list[Segment], end: datetime) -> Iterator[datetime]:
    for segment in segments:
        stop = end if segment.end is None else min(end, segment.end - EDIT_SLACK)
        step = timedelta(seconds=segment.period)
        t = segment.anchor
        while t < segment.start:
            t += step
        while t <= stop:
            yield t
            t += step


def locate(store: JobStore, job_id: str) -> set[str]:
    """Where a job is indexed: ``schedule`` (due when its time comes) and/or ``claims``."""
    inner = getattr(store, "_store", store)
    if isinstance(inner, MemoryStore):
        places = set()
        if job_id in inner._entry:
            places.add("schedule")
        if job_id in inner._claims:
            places.add("claims")
        return places
    if not hasattr(inner, "_client"):  # the Django store: the index is the row's own columns
        from django_beatx.models import Job as JobRow

        row = JobRow.objects.using(inner.using).get(id=job_id)
        if row.claimed_until is not None or row.claim_token:
            return {"claims"} | ({"schedule"} if row.claimed_until is None or not row.claim_token else set())
        schedulable = JobStatus(row.status).schedulable and row.next_run_time is not None
        return {"schedule"} if schedulable else set()
    client = inner._client
    places = set()
    if client.zscore(inner._schedule_key, job_id) is not None:
        places.add("schedule")
    if client.zscore(inner._claims_key, job_id) is not None:
        places.add("claims")
    return places


MODEL_SETTINGS = settings(
    max_examples=int(os.environ.get("BEATX_MODEL_EXAMPLES", "100")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # CI runs one fixed set of examples (no flaky red builds); locally each run draws anew.
    derandomize=os.environ.get("CI", "").lower() == "true",
)


def assert_faults_landed(name: str, *, atomic: bool = False) -> None:
    """The run proves something only if its faults happened. With the atomic fire, no fire
    may be in doubt: each one sent was written back in the same step."""
    faults = TOTALS.pop(name)
    print(f"{name}: {dict(faults)}")
    assert faults["kills"] > 0 and faults["freezes"] > 0 and faults["edits in flight"] > 0, faults
    if atomic:
        assert faults["fires in doubt"] == 0 and faults["fires sent"] > 0, faults
    else:
        assert faults["fires in doubt"] > 0, faults


def run_every_fault_once(machine_class: type[FirePathMachine]) -> None:
    """One scripted run that lands each fault on the leader, so every run of the suite has
    them whatever the random examples drew."""
    machine = machine_class()
    steps: list[Callable[[], None]] = [
        lambda: machine.advance(1.0),
        lambda: machine.kill_the_leader_mid_batch(after=2),
        *[lambda: machine.advance(1.0)] * 30,
        lambda: machine.freeze_the_leader_mid_batch(after=1),
        *[lambda: machine.advance(1.0)] * 30,
        lambda: machine.edit_while_the_beat_sends(name="a", job_id="j1", kind="pause", period=1),
        lambda: machine.edit_while_the_beat_sends(name="b", job_id="j1", kind="pause", period=1),
        *[lambda: machine.advance(0.5)] * 4,
        lambda: machine.edit(job_id="j1", kind="resume", period=1),
        lambda: machine.freeze_the_leader(),
        *[lambda: machine.advance(1.0)] * 15,
        lambda: machine.thaw(),
        *[lambda: machine.advance(1.0)] * 25,
        lambda: machine.store_fails_a_write_back(name=machine.leader().name, mode="after"),
        *[lambda: machine.advance(1.0)] * 5,
        lambda: machine.store_fails_a_write_back(name=machine.leader().name, mode="crash"),
        *[lambda: machine.advance(1.0)] * 30,
    ]
    for step in steps:
        step()
        machine.with_the_atomic_fire_no_fire_is_sent_twice_at_all()
        machine.no_fire_is_sent_twice_by_live_beats()
        machine.counters_never_go_back()
        machine.every_job_is_in_exactly_one_place()
        machine.nothing_is_sent_while_paused()
    machine.teardown()


def test_the_fire_path_on_the_memory_store() -> None:
    run_every_fault_once(FirePathMachine)
    run_state_machine_as_test(FirePathMachine, settings=MODEL_SETTINGS)
    assert_faults_landed("FirePathMachine")


@pytest.mark.redis
def test_the_fire_path_on_redis(redis_url: str) -> None:
    from beatx.stores.redis import RedisStore

    def make(clock: FakeClock) -> JobStore:
        return RedisStore(redis_url, key_prefix=f"beatx-model-{uuid.uuid4().hex[:8]}:", clock=clock)

    def close(store: JobStore) -> None:
        assert isinstance(store, RedisStore)
        client = store._client
        keys = list(client.scan_iter(match=f"{store._prefix}*"))
        if keys:
            client.delete(*keys)
        store.close()

    machine = type("RedisFirePathMachine", (FirePathMachine,), {})
    machine.make_store = staticmethod(make)  # type: ignore[assignment]
    machine.close_store = staticmethod(close)  # type: ignore[assignment]
    run_every_fault_once(machine)
    run_state_machine_as_test(
        machine, settings=settings(MODEL_SETTINGS, max_examples=max(MODEL_SETTINGS.max_examples // 2, 10))
    )
    assert_faults_landed("RedisFirePathMachine")


@pytest.mark.redis
def test_the_atomic_fire_on_redis(redis_url: str) -> None:
    """The same machine with the atomic fire: each message is pushed by the store's write-back
    script (a list in the store's own database stands for the broker's queue). Stronger
    invariant: no fire is ever sent twice, and none is ever in doubt."""
    from beatx.stores.redis import RedisStore

    def make(clock: FakeClock) -> JobStore:
        return RedisStore(redis_url, key_prefix=f"beatx-model-{uuid.uuid4().hex[:8]}:", clock=clock)

    def close(store: JobStore) -> None:
        assert isinstance(store, RedisStore)
        client = store._client
        keys = [*client.scan_iter(match=f"{store._prefix}*"), *client.scan_iter(match="beatx-model-queue-*")]
        if keys:
            client.delete(*keys)
        store.close()

    broker_db = int(redis_url.rsplit("/", 1)[1])
    machine = type("AtomicRedisFirePathMachine", (FirePathMachine,), {"atomic": True, "broker_db": broker_db})
    machine.make_store = staticmethod(make)  # type: ignore[assignment]
    machine.close_store = staticmethod(close)  # type: ignore[assignment]
    run_every_fault_once(machine)
    run_state_machine_as_test(
        machine, settings=settings(MODEL_SETTINGS, max_examples=max(MODEL_SETTINGS.max_examples // 2, 10))
    )
    assert_faults_landed("AtomicRedisFirePathMachine", atomic=True)
