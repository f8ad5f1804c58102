"""Chaos tests of high availability: several ``celery beat -S beatx`` processes on one Redis
store, one real worker, and the leader killed (SIGKILL) or frozen (SIGSTOP) while 1-second
interval jobs fire.

What is proven, counting executions at the worker per (job id, scheduled time):

- no fire runs twice (``beatx_dedupe = True`` drops the second delivery of a fire that a
  dying leader published before writing its jobs back);
- no fire is lost: with ``coalesce=False`` and ``misfire_grace_time=None`` every second of
  every job's grid between its first and last run is executed;
- a killed leader is replaced within the lease timeout (+0.3 s slack), also when it is killed
  while publishing (its claims expire after the lease timeout; the next leader re-sends them);
- a frozen leader that wakes up sends nothing while the new leader leads, except at most the
  one message it was writing when it froze (no lease check can be atomic with a publish);
- beats started at the same moment all come up (``import_beat_schedule`` is race-free).

The chaos tests start their beats one after the other; the race of a simultaneous start has
its own deterministic test.
"""

from __future__ import annotations

import functools
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from beatx import IntervalTrigger
from beatx.celery import get_scheduler, import_beat_schedule
from beatx.manager import JobManager
from beatx.stores.redis import RedisStore
from tests.e2e.conftest import parse_time
from tests.ha.conftest import HACluster, HAProcess, origin_pid

pytestmark = [pytest.mark.slow, pytest.mark.redis]

LEASE_TIMEOUT = 3.0
SLACK = 0.3  # process start-up and scheduling noise on a loaded 2-core machine
TASK = "ha.record"


def _add_jobs(cluster: HACluster, count: int, *, lead: float = 3.0) -> tuple[Any, list[str], datetime]:
    """``count`` 1-second interval jobs on one grid starting at a whole second ``lead`` s ahead."""
    manager = get_scheduler(cluster.app())
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
    ids = [f"ha-{n:03d}" for n in range(count)]
    for job_id in ids:
        manager.add_job(
            TASK,
            IntervalTrigger(seconds=1, start_date=start),
            id=job_id,
            coalesce=False,
            max_instances=100,
            misfire_grace_time=None,
        )
    return manager, ids, start


def _stop_fires(cluster: HACluster, manager: Any, ids: list[str]) -> None:
    for job_id in ids:
        assert manager.pause_job(job_id)
    cluster.drain(timeout=20.0)


def _check_fires(rows: list[dict[str, Any]], ids: list[str], start: datetime) -> dict[str, Any]:
    """Zero duplicates, zero gaps on the 1-second grid, nothing lost at the start."""
    counts = Counter((row["job_id"], parse_time(row["scheduled_at"])) for row in rows)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    per_job: dict[str, list[datetime]] = defaultdict(list)
    for job_id, at in counts:
        per_job[job_id].append(at)
    missing: dict[str, list[str]] = {}
    off_grid: list[tuple[str, datetime]] = []
    for job_id in ids:
        times = sorted(per_job.get(job_id, []))
        assert times, f"job {job_id} never ran"
        assert times[0] == start, f"job {job_id}: first fire {times[0]} is not the grid start {start}"
        grid = {
            times[0] + timedelta(seconds=k) for k in range(int((times[-1] - times[0]).total_seconds()) + 1)
        }
        off_grid += [(job_id, at) for at in times if at not in grid]
        lost = sorted(grid - set(times))
        if lost:
            missing[job_id] = [at.isoformat() for at in lost]
    assert not duplicates, f"{len(duplicates)} fire(s) ran more than once: {sorted(duplicates.items())[:20]}"
    assert not off_grid, f"fires off the 1 s grid: {off_grid[:20]}"
    assert not missing, f"fires never ran: {dict(list(missing.items())[:10])}"
    spans = [len(per_job[j]) for j in ids]
    return {"fires": sum(counts.values()), "per_job_min": min(spans), "per_job_max": max(spans)}


def _first_fire_by(cluster: HACluster, pid: int, after: float) -> float | None:
    times = [
        row["at"] for row in cluster.records() if origin_pid(row.get("origin")) == pid and row["at"] > after
    ]
    return min(times) if times else None


def _wait_new_leader(cluster: HACluster, old_pid: int, timeout: float) -> tuple[int, float]:
    """Poll the lease until a live process other than ``old_pid`` holds it."""

    def changed() -> tuple[int, float] | None:
        pid = cluster.leader_pid()
        if pid is not None and pid != old_pid:
            return pid, time.time()
        return None

    result: tuple[int, float] = cluster.wait_for(changed, timeout, f"a new leader after {old_pid}", step=0.02)
    return result


def _wait_leader(cluster: HACluster, timeout: float = 15.0) -> HAProcess:
    def leader() -> HAProcess | None:
        process = cluster.by_pid(cluster.leader_pid())
        return process if process is not None and process.alive() else None

    result: HAProcess = cluster.wait_for(leader, timeout, "a leader among the started beats")
    return result


def _delivered_twice(cluster: HACluster) -> int:
    """Fires whose message reached the worker more than once (the guard dropped the copies)."""
    counts = Counter(d["task_id"] for d in cluster.deliveries())
    return sum(n - 1 for n in counts.values() if n > 1)


def _worker_dropped(worker: HAProcess) -> int:
    return worker.output().count("dropping a second delivery")


def _bounded(deadline: float, what: str) -> Callable[[], None]:
    def check() -> None:
        assert time.monotonic() < deadline, f"test ran past its time budget during {what}"

    return check


class _SlowLookupStore:
    """A RedisStore whose ``get_job`` answers late: the time a busy host takes between a
    beat's lookup and its insert, widened so the race of two starting beats is certain."""

    def __init__(self, store: RedisStore, delay: float) -> None:
        self._store, self._delay = store, delay

    def get_job(self, job_id: str) -> Any:
        job = self._store.get_job(job_id)
        time.sleep(self._delay)
        return job

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_beats_starting_together_import_beat_schedule(redis_url: str, key_prefix: str) -> None:
    """Several beats starting at once on a fresh store (a deployment rolling out its replicas)
    each import ``beat_schedule`` (here celery's own ``celery.backend_cleanup`` entry): all of
    them must come up. Observed with three real beats started together: one died with
    ``ConflictingIdError: A job with the id 'celery.backend_cleanup' already exists``."""
    from celery.schedules import crontab

    entries = {
        "celery.backend_cleanup": {"task": "celery.backend_cleanup", "schedule": crontab("0", "4", "*")}
    }
    stores = [RedisStore(redis_url, key_prefix=key_prefix) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def start_beat(store: RedisStore) -> None:
        manager = JobManager(_SlowLookupStore(store, 0.2))
        barrier.wait(5)
        try:
            import_beat_schedule(manager, entries)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_beat, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for store in stores:
        store.close()
    assert not errors, f"{len(errors)} of {len(stores)} beats starting together failed: {errors!r}"


def test_sigkill_leader_every_10s(ha_cluster_factory: Callable[..., HACluster]) -> None:
    """Three beats; every ~10 s the leader is SIGKILLed and a replacement started."""
    test_started = time.monotonic()
    budget = _bounded(test_started + 150, "the SIGKILL chaos run")
    cluster = ha_cluster_factory(BEATX_TEST_LEASE_TIMEOUT=str(LEASE_TIMEOUT), BEATX_TEST_DEDUPE="1")
    worker = cluster.worker(concurrency=16)
    cluster.beats(3)
    manager, ids, start = _add_jobs(cluster, 50)
    _wait_leader(cluster)

    rng = random.Random(20261122)
    run_for, kill_every = 62.0, 10.0
    chaos_started = time.monotonic()
    kills: list[dict[str, Any]] = []
    while len(kills) < 6 and time.monotonic() - chaos_started < run_for - kill_every + 5:
        budget()
        time.sleep(max(0.0, chaos_started + (len(kills) + 1) * kill_every - time.monotonic()))
        leader = _wait_leader(cluster)
        # Every other kill lands a few ms after a whole second, while the leader publishes
        # the second's 50 fires (the window between publishing and writing the jobs back);
        # the others at a random phase of the fire cycle.
        now = time.time()
        phase = rng.uniform(0.002, 0.015) if len(kills) % 2 == 0 else rng.random()
        time.sleep(max(0.0, int(now) + 1 + phase - now))
        lease = cluster.store.get_lease()
        assert lease is not None
        killed_at = time.time()
        leader.kill()
        replacement = cluster.spawn_beat()
        new_pid, lease_at = _wait_new_leader(cluster, leader.pid, LEASE_TIMEOUT + 5)
        new_leader = cluster.by_pid(new_pid)
        assert new_leader is not None, f"the lease went to pid {new_pid}, not one of the started beats"
        first_fire = cluster.wait_for(
            functools.partial(_first_fire_by, cluster, new_pid, killed_at),
            LEASE_TIMEOUT + 5,
            f"the first fire of the new leader {new_pid}",
        )
        kills.append(
            {
                "killed": leader.name,
                "phase": killed_at % 1,
                "new_leader": new_leader.name,
                "lease_s": lease_at - killed_at,
                "first_fire_s": first_fire - killed_at,
                "since_renewal_s": killed_at - (lease.expires_at.timestamp() - (LEASE_TIMEOUT - 0.3)),
            }
        )
        replacement.wait_for_log("beatx scheduler ready", 30)
    while time.monotonic() - chaos_started < run_for:
        time.sleep(0.2)
    budget()
    _stop_fires(cluster, manager, ids)
    rows = cluster.records()
    dropped = _worker_dropped(worker)

    print(f"\n=== SIGKILL chaos: {len(kills)} kills, lease_timeout={LEASE_TIMEOUT}s, 50 jobs x 1 s ===")
    print(
        f"{'#':>2} {'killed':>8} {'at +s':>6} {'new leader':>10} {'lease moved':>11} {'first fire':>10}"
        f" {'renewed ago':>11}"
    )
    for n, kill in enumerate(kills, 1):
        print(
            f"{n:>2} {kill['killed']:>8} {kill['phase']:>6.3f} {kill['new_leader']:>10}"
            f" {kill['lease_s']:>10.2f}s"
            f" {kill['first_fire_s']:>9.2f}s {kill['since_renewal_s']:>10.2f}s"
        )
    lateness = [row["at"] - parse_time(row["scheduled_at"]).timestamp() for row in rows]
    summary = _check_fires(rows, ids, start)
    print(
        f"fires executed={summary['fires']} (per job {summary['per_job_min']}-{summary['per_job_max']}), "
        f"duplicates=0, missing=0, duplicate deliveries dropped by the worker guard={dropped}, "
        f"second deliveries={_delivered_twice(cluster)}, max lateness={max(lateness):.2f}s, test time={time.monotonic() - test_started:.1f}s"
    )
    assert len(kills) >= 5
    slow = [k for k in kills if k["first_fire_s"] > LEASE_TIMEOUT + SLACK]
    assert not slow, f"failovers slower than lease_timeout + {SLACK}s: {slow}"


def test_sigstop_leader_then_sigcont(ha_cluster_factory: Callable[..., HACluster]) -> None:
    """Freeze the leader past its lease: a standby takes over; the woken one sends nothing."""
    test_started = time.monotonic()
    cluster = ha_cluster_factory(BEATX_TEST_LEASE_TIMEOUT=str(LEASE_TIMEOUT), BEATX_TEST_DEDUPE="1")
    worker = cluster.worker(concurrency=16)
    cluster.beats(3)
    manager, ids, start = _add_jobs(cluster, 30)
    _wait_leader(cluster)
    cluster.wait_for(lambda: cluster.record_count() >= 3 * len(ids), 15, "three rounds of fires")

    rounds: list[dict[str, Any]] = []
    rng = random.Random(7)
    for n in range(3):
        time.sleep(1.0)
        stale = _wait_leader(cluster)
        # Rounds 1 and 3 freeze the leader a few ms after a whole second, while it publishes
        # that second's fires (after its lease check); round 2 at a random phase.
        now = time.time()
        phase = rng.uniform(0.004, 0.02) if n % 2 == 0 else rng.random()
        time.sleep(max(0.0, int(now) + 1 + phase - now))
        stopped_at = time.time()
        stale.signal(signal.SIGSTOP)
        new_pid, lease_at = _wait_new_leader(cluster, stale.pid, LEASE_TIMEOUT + 5)
        new_leader = cluster.by_pid(new_pid)
        assert new_leader is not None and new_leader is not stale
        first_fire = cluster.wait_for(
            functools.partial(_first_fire_by, cluster, new_pid, stopped_at),
            LEASE_TIMEOUT + 5,
            f"the first fire of the new leader {new_pid}",
        )
        time.sleep(max(0.0, stopped_at + LEASE_TIMEOUT + 3 - time.time()))
        offset = stale.log_size()  # the frozen process writes nothing
        dropped_before = _worker_dropped(worker)
        resumed_at = time.time()
        stale.signal(signal.SIGCONT)
        time.sleep(4.0)
        after = stale.output_since(offset)
        rows = cluster.records()
        rounds.append(
            {
                "stopped": stale.name,
                "phase": stopped_at % 1,
                "resumed_at": resumed_at,
                "new_leader": new_leader.name,
                "lease_s": lease_at - stopped_at,
                "first_fire_s": first_fire - stopped_at,
                "lost_logged": "leader lease lost" in after,
                "stale_lines": after.count("\n"),
                # What the woken beat did: fires it logged as dispatched, fires of it that ran
                # (a re-sent fire the new leader had sent already is dropped by the guard).
                "stale_dispatched": [line for line in after.splitlines() if "fire dispatched" in line],
                "stale_ran": [
                    r for r in rows if origin_pid(r.get("origin")) == stale.pid and r["at"] > resumed_at
                ],
                "delivered_after": [
                    d
                    for d in cluster.deliveries()
                    if origin_pid(d.get("origin")) == stale.pid and d["at"] > resumed_at
                ],
                "dropped_after": _worker_dropped(worker) - dropped_before,
                "new_fires_after": sum(
                    1 for r in rows if origin_pid(r.get("origin")) == new_pid and r["at"] > resumed_at
                ),
                "leader_after": cluster.leader_pid() == new_pid,
                "log_after": after[-3000:],
            }
        )
    _stop_fires(cluster, manager, ids)
    rows = cluster.records()
    dropped = _worker_dropped(worker)

    print(
        f"\n=== SIGSTOP chaos: {len(rounds)} rounds, frozen {LEASE_TIMEOUT + 3:.0f}s each, 30 jobs x 1 s ==="
    )
    for n, r in enumerate(rounds, 1):
        print(
            f"{n}: froze {r['stopped']} at +{r['phase']:.3f}s; {r['new_leader']} leads after {r['lease_s']:.2f}s,"
            f" first fire after {r['first_fire_s']:.2f}s. After SIGCONT the woken beat logged"
            f" {r['stale_lines']} line(s) ('leader lease lost': {r['lost_logged']}),"
            f" {len(r['stale_dispatched'])} 'fire dispatched'; {len(r['delivered_after'])} message(s) it"
            f" published reached the worker after SIGCONT ({len(r['stale_ran'])} ran,"
            f" {r['dropped_after']} duplicate(s) dropped); the new leader ran {r['new_fires_after']} fires in 4 s"
        )
        for d in r["delivered_after"][:3]:
            print(
                f"   e.g. job={d['job_id']} scheduled_at={d['scheduled_at']} arrived {d['at'] - r['resumed_at']:.3f}s"
                " after SIGCONT"
            )
    summary = _check_fires(rows, ids, start)
    print(
        f"fires executed={summary['fires']}, duplicates=0, missing=0, duplicate deliveries dropped={dropped} "
        f"(second deliveries={_delivered_twice(cluster)}), "
        f"test time={time.monotonic() - test_started:.1f}s"
    )
    for n, r in enumerate(rounds, 1):
        assert r["leader_after"], f"round {n}: the woken beat took the lease back"
        # A lease check cannot be atomic with a publish to the broker: a process frozen
        # between its last check and the socket write sends that one message when it wakes
        # (the duplicate guard drops it). Anything more is a batch sent without a check.
        assert len(r["delivered_after"]) <= 1 and not r["stale_ran"], (
            f"round {n}: {r['stopped']} (frozen at +{r['phase']:.3f}s) sent {len(r['delivered_after'])} fires after "
            f"SIGCONT, {len(r['stale_ran'])} of them ran, while "
            f"{r['new_leader']} led:\n{r['log_after']}"
        )
        assert r["new_fires_after"] >= 3 * len(ids), f"round {n}: the new leader stopped firing"
    slow = [r for r in rounds if r["first_fire_s"] > LEASE_TIMEOUT + SLACK]
    assert not slow, f"takeovers slower than lease_timeout + {SLACK}s: {slow}"
