"""Chaos scenarios: does every (job, fire time) run exactly once at the worker, none lost?

The setup of every scenario is the documented one with the default job policy: three
``celery -A tests.ha.proj beat -S beatx`` processes on one Redis store (a key prefix of their
own), one worker with ``beatx.celery.setup(app)`` (and ``beatx_dedupe = True``, the documented
duplicate guard; ``BEATX_CHAOS_DEDUPE=0`` runs without it), ``beatx_lease_timeout = 5``, and
50 jobs every second with no coalesce / misfire_grace_time / max_instances of their own. Faults
go on for 60 s; the run goes on 6 s after the last one, then the beats are stopped and the
worker drains the queue.

Measured at the worker (the ``ha.record`` rows, keyed by the ``beatx_job_id`` and
``beatx_scheduled_at`` headers), over the window from the first fire after the faults began to
the stop, one interval in from each end (see :func:`tests.ha.chaos.measure`):

- expected: every job's whole seconds in the window;
- missing: expected and never executed;
- duplicates: (job, fire time) executed more than once.

A fault aimed at the leader is aimed at the lease holder that ``RedisStore.get_lease()`` names
(owner ``host:pid:...`` -> pid), read right before and right after the signal; the number of
strikes that landed on the holder is asserted before anything about fires.

Each test takes about 75 s (setup, 60 s of faults, 6 s of settling, the drain); run them one
after the other, never in parallel on a small machine::

    .venv/bin/pytest tests/ha/test_chaos.py -m slow -s -p no:cacheprovider
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ha.chaos import (
    BEATS,
    FAULT_PERIOD,
    INTERVAL,
    JOBS,
    LEASE_TIMEOUT,
    SETTLE,
    ChaosCluster,
    RedisServer,
    WorkerSupervisor,
    check_harness,
    delivered_twice,
    details,
    finish,
    fmt_us,
    measure,
    mid_batch_phase,
    missing_causes,
    print_report,
    sigkill_leader_every_10s,
    sigstop_leader_past_its_lease,
    sleep_until,
    start_cluster,
    summary,
    to_us,
    window_bounds,
)
from tests.stores.sentinel_group import start_group
from tests.stores.sentinel_group import wait_until as sentinel_wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

#: Setup (worker, 3 beats) + 60 s of faults + settle + drain + teardown, with room to spare.
TIME_LIMIT = 300


class ChaosEnv:
    """The clusters and private Redis servers of one test, all stopped at teardown."""

    def __init__(self, tmp_path: Path, redis_url: str, key_prefix: str) -> None:
        self.tmp_path, self.redis_url, self.key_prefix = tmp_path, redis_url, key_prefix
        self.clusters: list[ChaosCluster] = []
        self.servers: list[RedisServer] = []

    def server(self, name: str, *, appendonly: bool) -> RedisServer:
        server = RedisServer(self.tmp_path / name, name=name, appendonly=appendonly)
        self.servers.append(server)
        return server

    def cluster(self, **urls: Any) -> ChaosCluster:
        options: dict[str, Any] = {
            "broker_url": self.redis_url,
            "store_url": self.redis_url,
            "record_url": self.redis_url,
            "key_prefix": self.key_prefix,
            **urls,
        }
        cluster = ChaosCluster(self.tmp_path, **options)
        self.clusters.append(cluster)
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.stop_all()
        for server in self.servers:
            try:
                server.stop()
            except Exception as exc:
                print(f"could not stop {server.name}: {exc!r}")


@pytest.fixture
def chaos(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[ChaosEnv]:
    env = ChaosEnv(tmp_path, redis_url, key_prefix)
    try:
        yield env
    finally:
        env.close()


@pytest.mark.timeout(TIME_LIMIT, method="signal")
def test_sigkill_leader_every_10s(chaos: ChaosEnv) -> None:
    """SIGKILL the lease holder every 10 s (6 kills, the 1st, 3rd and 5th while the 50 fires of
    a second go out); each killed beat is replaced at once, so three stay up."""
    cluster = chaos.cluster()
    run = sigkill_leader_every_10s(cluster)
    run.report(cluster)
    m = run.m
    assert run.landed == run.planned, run.strikes_message()
    check_harness(cluster, run.drained)
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    assert not m.missing, f"{len(m.missing)} of {m.expected} expected fires never executed\n{details(m)}"


@pytest.mark.timeout(TIME_LIMIT, method="signal")
def test_sigstop_leader_past_its_lease(chaos: ChaosEnv) -> None:
    """SIGSTOP the lease holder for 8 s (the lease is 5 s) three times, each while the 50 fires
    of a second go out, then SIGCONT."""
    cluster = chaos.cluster()
    run = sigstop_leader_past_its_lease(cluster)
    run.report(cluster)
    m = run.m
    assert run.landed == run.planned, run.strikes_message()
    check_harness(cluster, run.drained)
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    assert not m.missing, f"{len(m.missing)} of {m.expected} expected fires never executed\n{details(m)}"


@pytest.mark.timeout(TIME_LIMIT, method="signal")
@pytest.mark.parametrize("fault", ["sigkill", "sigstop"])
def test_the_atomic_fire_needs_no_guard(chaos: ChaosEnv, fault: str) -> None:
    """The kill and freeze scenarios once more, with the duplicate guard OFF: broker and store
    are the same Redis server, so each fire's message is pushed by the script that writes its
    job back (the atomic fire). A leader struck between the two steps cannot exist, so not
    one message reaches the worker twice (counted at the worker, before any guard)."""
    cluster = chaos.cluster(dedupe=False)
    if fault == "sigkill":
        run = sigkill_leader_every_10s(cluster, "sigkill-leader-atomic")
    else:
        run = sigstop_leader_past_its_lease(cluster, "sigstop-leader-atomic")
    run.report(cluster)
    m = run.m
    stats = cluster.beat_log_stats()
    assert run.landed == run.planned, run.strikes_message()
    check_harness(cluster, run.drained)
    assert stats["atomic_fire"] >= 1 and stats["publish_then_write_back"] == 0, stats
    twice = run.figures["delivered_twice"]
    assert twice == 0, f"{twice} message(s) delivered twice without the guard\n{details(m)}"
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    assert not m.missing, f"{len(m.missing)} of {m.expected} expected fires never executed\n{details(m)}"


@pytest.mark.timeout(TIME_LIMIT, method="signal")
@pytest.mark.parametrize(
    "persistence",
    [
        "none",
        # A run that ended while the store was down used to stay "in flight" (its end was
        # dropped) and max_instances skipped its job's fires: the worker now keeps such records
        # and writes them when the store is back (beatx.celery.run_records).
        "aof",
    ],
)
def test_store_restart(chaos: ChaosEnv, persistence: str) -> None:
    """The store's redis-server SIGKILLed while the fires of a second go out, and started again
    at once: empty (no persistence), or from its AOF (``appendfsync always``, same directory).
    The jobs come from ``beat_schedule`` (50 entries, every 1 s, ``relative=True``).

    Empty: the beats must notice the loss, import ``beat_schedule`` again and fire on the same
    grid within one lease: nothing may be missing outside [kill, restart + lease + 1 s].
    AOF: nothing may be missing outside [kill, restart]. Either way no duplicate."""
    aof = persistence == "aof"
    server = chaos.server("store-redis", appendonly=aof)
    server.start()
    cluster = chaos.cluster(store_url=server.url(0), beat_schedule_jobs=JOBS)
    start_cluster(cluster, add_jobs=False)
    rng = random.Random(30)
    chaos_start = time.time()
    sleep_until(chaos_start + 29)
    sleep_until(math.floor(time.time()) + 1 + mid_batch_phase(rng))
    files_before = server.persisted_files()
    killed_at = server.kill()
    restarted_at = server.start()
    loaded = "DB loaded from" in server.log(since_last_start=True)
    reimported_at: float | None = None
    leader_at: float | None = None
    last_error = ""
    while time.time() < chaos_start + FAULT_PERIOD and (reimported_at is None or leader_at is None):
        try:
            if reimported_at is None and sum(cluster.store.count_jobs_by_status().values()) >= JOBS:
                reimported_at = time.time()
            if leader_at is None and cluster.lease_holder() is not None:
                leader_at = time.time()
        except Exception as exc:  # the store may not answer yet
            last_error = repr(exc)
        time.sleep(0.05)
    stop_at = max(chaos_start + FAULT_PERIOD, restarted_at) + SETTLE
    rows, drained, alive = finish(cluster, stop_at)
    start, end = window_bounds(chaos_start, stop_at)
    allowed_until = restarted_at if aof else restarted_at + LEASE_TIMEOUT + 1.0
    m = measure(
        rows, cluster.job_ids, interval=INTERVAL, start=start, end=end, exclude=[(killed_at, allowed_until)]
    )
    after_restart: dict[str, int] = {}
    for row in rows:
        at = to_us(row["scheduled_at"])
        if at > to_us(restarted_at) and (
            row["job_id"] not in after_restart or at < after_restart[row["job_id"]]
        ):
            after_restart[row["job_id"]] = at
    resumed = [after_restart[j] / 1e6 - restarted_at for j in cluster.job_ids if j in after_restart]
    print_report(
        [
            (
                f"store redis-server ({persistence}) killed at {fmt_us(to_us(killed_at))} "
                f"(+{killed_at % 1:.3f}s), answering again after {restarted_at - killed_at:.2f}s; "
                f"files before the restart: {files_before}; data loaded at restart: {loaded}"
            ),
            f"beat logs: {cluster.beat_log_stats()}",
            summary(
                f"store-restart-{persistence}",
                m,
                downtime_s=f"{restarted_at - killed_at:.2f}",
                jobs_back_after_s="never" if reimported_at is None else f"{reimported_at - restarted_at:.2f}",
                lease_held_after_s="never" if leader_at is None else f"{leader_at - restarted_at:.2f}",
                their_causes=missing_causes(
                    dataclasses.replace(m, missing=m.missing_excluded),
                    cluster.dispatches(),
                    cluster.deliveries(),
                ),
                last_poll_error=last_error or "-",
                jobs_resumed=f"{len(resumed)}/{len(cluster.job_ids)}",
                resumed_within_s="-" if not resumed else f"{max(resumed):.2f}",
                beats_alive_at_stop=f"{sum(alive)}/{len(alive)}",
                dedupe=cluster.dedupe,
                delivered_twice=delivered_twice(cluster.deliveries(), start, end),
                missing_causes=missing_causes(m, cluster.dispatches(), cluster.deliveries()),
            ),
        ],
        m,
    )
    # The restart was what the scenario says it is.
    if aof:
        assert files_before and loaded, f"the AOF restart did not load the data:\n{server.log()}"
    else:
        assert not files_before and not loaded, f"the store did not restart empty:\n{server.log()}"
    check_harness(cluster, drained)
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    assert not m.missing, (
        f"{len(m.missing)} of {m.expected} expected fires never executed outside {m.window()}\n{details(m)}"
    )


@pytest.mark.timeout(TIME_LIMIT, method="signal")
@pytest.mark.parametrize(
    "fault",
    [
        # The Celery worker itself may exit when its broker is killed (kombu, not a beat): it
        # runs under a supervisor here, as docs/delivery.md says to run workers.
        "down",
        "frozen",
    ],
)
def test_broker_outage(chaos: ChaosEnv, fault: str) -> None:
    """The broker's redis-server (AOF, so a restart loses no queued message) SIGKILLed and
    started again on the same port 10 s later, or SIGSTOPped for 10 s; the store is the shared
    Redis. Expected: no beat dies, no duplicate, every job fires again within 3 s of the broker
    coming back; fires due during the outage are coalesced (the default policy), reported."""
    outage = 10.0
    broker = chaos.server("broker-redis", appendonly=True)
    broker.start()
    cluster = chaos.cluster(broker_url=broker.url(0))
    start_cluster(cluster, add_jobs=True)
    rng = random.Random(40)
    chaos_start = time.time()
    sleep_until(chaos_start + 19)
    sleep_until(math.floor(time.time()) + 1 + mid_batch_phase(rng))
    with WorkerSupervisor(cluster.processes[0]) as supervisor:
        if fault == "down":
            down_at = broker.kill()
            sleep_until(down_at + outage)
            up_at = broker.start()
        else:
            down_at = broker.freeze()
            sleep_until(down_at + outage)
            up_at = broker.thaw()
        stop_at = max(chaos_start + FAULT_PERIOD, up_at) + SETTLE
        rows, drained, alive = finish(cluster, stop_at)
    start, end = window_bounds(chaos_start, stop_at)
    m = measure(rows, cluster.job_ids, interval=INTERVAL, start=start, end=end)

    # When each job was sent again (the beats' "fire dispatched" lines: scheduled + lateness)
    # and executed again (the worker's rows), after the broker came back.
    sent_again: dict[str, tuple[float, int]] = {}
    for job_id, scheduled, at in cluster.dispatches():
        if at >= up_at:
            first_at, first_scheduled = sent_again.get(job_id, (math.inf, scheduled))
            sent_again[job_id] = (min(first_at, at), min(first_scheduled, scheduled))
    ran_again: dict[str, float] = {}
    for row in rows:
        if row["at"] >= up_at and row["at"] < ran_again.get(row["job_id"], math.inf):
            ran_again[row["job_id"]] = row["at"]
    late = {j: sent_again[j][0] - up_at for j in cluster.job_ids if j in sent_again}
    never = [j for j in cluster.job_ids if j not in sent_again]
    # The default policy's account of the outage: a job's fires from the one being sent when the
    # broker went (its publish failed, so no beat logged it) up to the
    # earliest one it sent after the broker came back are coalesced (not sent).
    coalesced = {
        (job_id, at)
        for job_id, (_, first_sent) in sent_again.items()
        for at in range(math.floor(down_at) * 1_000_000, first_sent, round(INTERVAL * 1_000_000))
    }
    by_policy = sum(1 for key in m.missing if key in coalesced)
    print_report(
        [
            (
                f"broker redis-server {fault} at {fmt_us(to_us(down_at))} (+{down_at % 1:.3f}s) "
                f"for {up_at - down_at:.2f}s"
            ),
            f"beat logs: {cluster.beat_log_stats()}",
            summary(
                f"broker-{fault}",
                m,
                outage_s=f"{up_at - down_at:.2f}",
                worker_restarts=len(supervisor.restarts),
                beats_alive_at_stop=f"{sum(alive)}/{len(alive)}",
                sent_again_within_s="-" if not late else f"{max(late.values()):.2f}",
                jobs_not_sent_again=len(never),
                ran_again_within_s="-" if not ran_again else f"{max(ran_again.values()) - up_at:.2f}",
                coalesced_by_policy=len(coalesced),
                missing_coalesced_by_policy=by_policy,
                missing_beyond_policy=len(m.missing) - by_policy,
                dedupe=cluster.dedupe,
                delivered_twice=delivered_twice(cluster.deliveries(), start, end),
                missing_causes=missing_causes(m, cluster.dispatches(), cluster.deliveries()),
            ),
        ],
        m,
    )
    assert cluster.dispatches(), "no 'fire dispatched' line in the beat logs: cannot tell when jobs fired"
    assert len(alive) == BEATS and all(alive), f"a beat died during the broker outage: alive={alive}"
    check_harness(cluster, drained)
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    # Beyond what the policy coalesced, a fire may be lost only after beatx sent it: between a
    # killed Redis broker and the worker (kombu takes a message off the queue before it
    # records it as unacknowledged), never by a beat.
    sent = {(job_id, at) for job_id, at, _ in cluster.dispatches()}
    lost_by_beatx = [key for key in m.missing if key not in coalesced and key not in sent]
    assert not lost_by_beatx, (
        f"{len(lost_by_beatx)} fire(s) never sent beyond the policy: {lost_by_beatx[:10]}"
    )
    slow = {j: round(s, 2) for j, s in late.items() if s > 3.0}
    assert not never and not slow, (
        f"jobs not sent again within 3 s of the broker's return: never={never[:10]} slow={dict(list(slow.items())[:10])}"
    )


@pytest.mark.timeout(TIME_LIMIT, method="signal")
def test_sentinel_primary_sigkilled(chaos: ChaosEnv) -> None:
    """The store behind Redis Sentinel (a primary, a replica, three sentinels; the URL
    ``redis+sentinel://...``, ``wait_replicas=1``, the default): its primary SIGKILLed while the
    fires of a second go out. The sentinels promote the replica; the old primary comes back as
    the new primary's replica (as Sentinel makes of it), and only then can a lease be
    acknowledged by a replica again. Expected: no duplicate execution anywhere in the window,
    and fires missing only inside the failover window [kill, replica back + lease + 1 s]."""
    (chaos.tmp_path / "sentinel").mkdir()
    group = start_group(chaos.tmp_path / "sentinel")
    try:
        cluster = chaos.cluster(store_url=group.url())
        start_cluster(cluster, add_jobs=True)
        rng = random.Random(50)
        chaos_start = time.time()
        sleep_until(chaos_start + 19)
        sleep_until(math.floor(time.time()) + 1 + mid_batch_phase(rng))
        old_primary = group.primary_port()
        holder = cluster.lease_holder()
        killed_at = time.time()
        group.stop("primary", signal.SIGKILL)
        killed_by = group.processes["primary"].returncode
        new_primary = sentinel_wait_until(
            lambda: (port := group.primary_port()) != old_primary and port, 30, "the sentinels to fail over"
        )
        promoted_at = time.time()
        group.restart_as_replica("primary", new_primary)
        replica_back_at = time.time()
        leader_at: float | None = None
        last_error = ""
        while leader_at is None and time.time() < replica_back_at + 30:
            try:
                if cluster.lease_holder() is not None:
                    leader_at = time.time()
            except Exception as exc:  # the store may not answer yet
                last_error = repr(exc)
            time.sleep(0.05)
        stop_at = max(chaos_start + FAULT_PERIOD, replica_back_at) + SETTLE
        rows, drained, alive = finish(cluster, stop_at)
    finally:
        group.stop_all()
    start, end = window_bounds(chaos_start, stop_at)
    allowed_until = replica_back_at + LEASE_TIMEOUT + 1.0
    m = measure(
        rows, cluster.job_ids, interval=INTERVAL, start=start, end=end, exclude=[(killed_at, allowed_until)]
    )
    print_report(
        [
            (
                f"sentinel primary :{old_primary} SIGKILLed at {fmt_us(to_us(killed_at))} "
                f"(+{killed_at % 1:.3f}s; lease then held by {holder[0] if holder else None}); replica "
                f":{new_primary} promoted after {promoted_at - killed_at:.2f}s; old primary back as its "
                f"replica after {replica_back_at - killed_at:.2f}s; a beat led again after "
                f"{'never' if leader_at is None else f'{leader_at - killed_at:.2f}s'}"
            ),
            f"beat logs: {cluster.beat_log_stats()}",
            summary(
                "sentinel-primary-sigkill",
                m,
                missing_in_failover_window=len(m.missing_excluded),
                their_fire_times="-"
                if not m.missing_excluded
                else ",".join(fmt_us(at) for at in sorted({at for _, at in m.missing_excluded})),
                their_causes=missing_causes(
                    dataclasses.replace(m, missing=m.missing_excluded),
                    cluster.dispatches(),
                    cluster.deliveries(),
                ),
                last_poll_error=last_error or "-",
                beats_alive_at_stop=f"{sum(alive)}/{len(alive)}",
                dedupe=cluster.dedupe,
                delivered_twice=delivered_twice(cluster.deliveries(), start, end),
                missing_causes=missing_causes(m, cluster.dispatches(), cluster.deliveries()),
            ),
        ],
        m,
    )
    # The fault was what the scenario says: the primary died of SIGKILL, the replica took over.
    assert killed_by == -signal.SIGKILL
    assert new_primary == group.ports["replica"] and old_primary == group.ports["primary"]
    assert leader_at is not None, "no beat led again after the failover"
    check_harness(cluster, drained)
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    assert not m.missing, (
        f"{len(m.missing)} of {m.expected} expected fires never executed outside {m.window()}\n{details(m)}"
    )
