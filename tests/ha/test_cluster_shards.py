"""Sharded leadership on a private 3-master Redis Cluster (:mod:`beatx.sharded_beat`): one beat
leads every shard, two beats split them, a dead beat's shards move to the others within the
lease; the rules that decide it, as a table.

The beats run in this process with a recording dispatcher, driven in turns; a beat "dies" when
it is no longer driven (its leases and heartbeat then run out, as a SIGKILLed process's do).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from beatx.jobs import Job
from beatx.sharded_beat import ShardedBeat, shards_to_give, shards_to_take
from beatx.stores.base import LeaseInfo
from beatx.stores.redis_cluster import ClusterStore
from beatx.testing import RecordingDispatcher
from beatx.triggers import IntervalTrigger
from tests.stores.cluster_group import ClusterGroup, start_cluster

pytestmark = pytest.mark.redis

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEASE = 3.0


def held(owner: str) -> LeaseInfo:
    return LeaseInfo(owner=f"{owner}/g1s0:1", acquired_at=NOW, expires_at=NOW + timedelta(seconds=5))


def test_a_lone_beat_takes_every_free_shard() -> None:
    take = shards_to_take(
        me="a", leases=[None] * 8, now=NOW, live=["a"], led=set(), free_since={}, monotonic=0.0, grace=2.0
    )
    assert take == list(range(8))


def test_a_beat_takes_free_shards_up_to_its_share_then_only_those_left_unled() -> None:
    leases = [held("b"), held("b"), held("b"), None, None, None, None, None]
    take = shards_to_take(
        me="a", leases=leases, now=NOW, live=["a", "b"], led=set(), free_since={}, monotonic=10.0, grace=2.0
    )
    assert take == [3, 4, 5, 6]
    # At its share, it takes a shard only once it has been free longer than the grace.
    take = shards_to_take(
        me="a",
        leases=leases,
        now=NOW,
        live=["a", "b"],
        led={3, 4, 5, 6},
        free_since={7: 9.0},
        monotonic=10.0,
        grace=2.0,
    )
    assert take == []
    take = shards_to_take(
        me="a",
        leases=leases,
        now=NOW,
        live=["a", "b"],
        led={3, 4, 5, 6},
        free_since={7: 7.5},
        monotonic=10.0,
        grace=2.0,
    )
    assert take == [7]
    expired = LeaseInfo(owner="b/g1s0:1", acquired_at=NOW, expires_at=NOW)
    take = shards_to_take(
        me="a", leases=[expired], now=NOW, live=["a", "b"], led=set(), free_since={}, monotonic=0.0, grace=2.0
    )
    assert take == [0]


def test_a_beat_gives_up_what_is_above_its_share_only_to_a_beat_that_wants_it() -> None:
    mine = [held("a")] * 8
    assert shards_to_give(me="a", leases=mine, now=NOW, live=["a"], led=set(range(8))) == []
    assert shards_to_give(me="a", leases=mine, now=NOW, live=["a", "b"], led=set(range(8))) == [7, 6, 5, 4]
    # Above its share, a gives up only what the others lack: b lacks 1 (share 4).
    leases = [held("a")] * 5 + [held("b")] * 3
    assert shards_to_give(me="a", leases=leases, now=NOW, live=["a", "b"], led=set(range(5))) == [4]
    # A beat that is not alive (no heartbeat) wants nothing: b is gone, a keeps its 5.
    assert shards_to_give(me="a", leases=leases, now=NOW, live=["a"], led=set(range(5))) == []
    # Three beats: share 3; b lacks none, c lacks 3: a gives its 2 above share.
    assert shards_to_give(me="a", leases=leases, now=NOW, live=["a", "b", "c"], led=set(range(5))) == [4, 3]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.stop_all()


class Beats:
    """Sharded beats on one deployment (a key prefix), each with its own store and dispatcher."""

    def __init__(self, cluster: ClusterGroup, shards: int) -> None:
        self.url = cluster.url(shards=shards)
        self.prefix = f"t{uuid.uuid4().hex[:8]}:"
        self.admin = ClusterStore(self.url, key_prefix=self.prefix)
        self.beats: dict[str, ShardedBeat] = {}
        self.dispatchers: dict[str, RecordingDispatcher] = {}
        self.stores: list[ClusterStore] = [self.admin]

    def add(self, name: str) -> ShardedBeat:
        store = ClusterStore(self.url, key_prefix=self.prefix)
        self.stores.append(store)
        self.dispatchers[name] = RecordingDispatcher()
        beat = ShardedBeat(store, self.dispatchers[name], lease_timeout=LEASE, owner=name)
        self.beats[name] = beat
        return beat

    def drive(self, seconds: float, names: list[str] | None = None) -> None:
        """Run the named beats (all by default) in turns for ``seconds``, checking at every
        step that no shard is led by two beats."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.step(names)
            time.sleep(0.02)

    def step(self, names: list[str] | None = None) -> None:
        for name in names or list(self.beats):
            self.beats[name].run_once()
        self.check_disjoint()

    def check_disjoint(self) -> None:
        seen: dict[int, str] = {}
        for name, beat in self.beats.items():
            for shard in beat.led:
                assert shard not in seen, f"shard {shard} led by {seen[shard]} and {name}"
                seen[shard] = name

    def until(self, condition: object, timeout: float, names: list[str] | None = None) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.step(names)
            if callable(condition) and condition():
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"not reached within {timeout}s: {self.describe()}")

    def describe(self) -> str:
        return "; ".join(f"{name} leads {sorted(b.led)}" for name, b in self.beats.items())

    def close(self) -> None:
        for beat in self.beats.values():
            beat.close()
        for store in self.stores:
            store.close()


@pytest.fixture
def beats(cluster: ClusterGroup) -> Iterator[Beats]:
    made = Beats(cluster, shards=8)
    yield made
    made.close()


def test_one_beat_leads_every_shard_and_fires_every_job(beats: Beats) -> None:
    a = beats.add("a")
    beats.until(lambda: a.led == set(range(8)), 5)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    for n in range(24):
        job = Job(
            id=f"job-{n}",
            func="tests.sample_tasks:record",
            trigger=IntervalTrigger(seconds=1, start_date=start),
            next_run_time=start,
        )
        beats.admin.add_job(job)
    beats.drive(3.5)
    fires = beats.dispatchers["a"].fires
    assert len({(f.job_id, f.scheduled_at) for f in fires}) == len(fires)
    for n in range(24):
        assert start + timedelta(seconds=2) in beats.dispatchers["a"].times(f"job-{n}")
    assert beats.admin.read_layout().shards == 8


def test_two_beats_split_the_shards(beats: Beats) -> None:
    a = beats.add("a")
    beats.until(lambda: len(a.led) == 8, 5)
    b = beats.add("b")
    took = beats.until(lambda: len(a.led) == 4 and len(b.led) == 4, 4 * LEASE)
    assert took < 2 * LEASE
    beats.drive(2 * LEASE)  # and it stays split
    assert len(a.led) == 4 and len(b.led) == 4
    owners = {lease.owner.partition("/")[0] for lease in beats.admin.shard_leases() if lease is not None}
    assert owners == {"a", "b"}


def test_a_dead_beats_shards_move_to_the_others_within_the_lease(beats: Beats) -> None:
    beats.add("a")
    beats.add("b")
    beats.add("c")
    beats.until(lambda: sorted(len(b.led) for b in beats.beats.values()) == [2, 3, 3], 6 * LEASE)
    dead = max(beats.beats, key=lambda name: len(beats.beats[name].led))
    orphans = set(beats.beats[dead].led)
    alive = [name for name in beats.beats if name != dead]
    died = time.monotonic()
    # The dead beat is no longer driven: its leases and heartbeat run out.
    beats.until(lambda: set().union(*(beats.beats[n].led for n in alive)) == set(range(8)), 3 * LEASE, alive)
    moved_after = time.monotonic() - died
    assert moved_after <= LEASE + 1.0, f"the shards {sorted(orphans)} moved after {moved_after:.2f}s"
    beats.until(lambda: sorted(len(beats.beats[n].led) for n in alive) == [4, 4], 3 * LEASE, alive)
    beats.beats.pop(dead).close()


def test_a_reshard_moves_every_job_with_its_state_and_no_fire_is_lost_or_doubled(
    beats: Beats, cluster: ClusterGroup
) -> None:
    import threading

    from beatx.audit import JobChange
    from beatx.stores.redis_cluster import shard_of
    from beatx.stores.redis_reshard import ReshardReport, reshard

    admin = beats.admin
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    ids = [f"job-{n}" for n in range(30)]
    for job_id in ids:
        admin.add_job(
            Job(
                id=job_id,
                func="tests.sample_tasks:record",
                trigger=IntervalTrigger(seconds=1, start_date=start),
                next_run_time=start,
            )
        )
    # A paused job with history, a run in flight and a claim held by a beat that died.
    parked = Job(
        id="parked",
        func="tests.sample_tasks:record",
        trigger=IntervalTrigger(seconds=60, start_date=start),
        next_run_time=start + timedelta(hours=1),
    )
    admin.add_job(parked)
    admin.record_change(JobChange(job_id="parked", at=start, action="added", source="api", actor="me"))
    admin.run_started("parked", "task-1", started_at=datetime.now(UTC), timeout=3600)
    beats.add("a")
    beats.add("b")
    beats.until(lambda: sum(len(b.led) for b in beats.beats.values()) == 8, 4 * LEASE)
    beats.drive(2.0)
    done: list[ReshardReport | BaseException] = []

    def run() -> None:
        try:
            done.append(
                reshard(
                    ClusterStore(beats.url, key_prefix=beats.prefix), 16, lease_wait=3 * LEASE, settle=0.2
                )
            )
        except BaseException as exc:
            done.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        beats.step()
        time.sleep(0.02)
    thread.join(1)
    (report,) = done
    assert isinstance(report, ReshardReport), report
    assert (report.from_shards, report.to_shards, report.generation, report.moved) == (8, 16, 2, 31)
    beats.until(lambda: sum(len(b.led) for b in beats.beats.values()) == 16, 4 * LEASE)
    stop = datetime.now(UTC)
    beats.drive(2.5)
    # Every job in its new shard, with its state; nothing left under the old prefixes.
    assert admin.refresh().shards == 16
    for job_id in [*ids, "parked"]:
        assert admin.views[shard_of(job_id, 16)].get_job(job_id) is not None
    moved = admin.get_job("parked")
    assert moved is not None and moved.running == 1
    assert [c.actor for c in admin.job_changes("parked")] == ["me"]
    old = [key for key in keys_of(cluster, beats.prefix) if "{s" in key]
    assert old == []
    # Every second of every job fired once, across both beats, before and after the reshard.
    fires = [f for d in beats.dispatchers.values() for f in d.fires]
    pairs = [(f.job_id, f.scheduled_at) for f in fires]
    assert len(pairs) == len(set(pairs)), "a fire was sent twice"
    seconds = int((stop - start).total_seconds())
    for job_id in ids:
        times = {at for j, at in pairs if j == job_id}
        wanted = {start + timedelta(seconds=s) for s in range(seconds)}
        assert wanted <= times, f"{job_id} missed {sorted(wanted - times)}"


def keys_of(cluster: ClusterGroup, prefix: str) -> list[str]:
    import redis

    found: list[str] = []
    for port in cluster.ports:
        client = redis.Redis(port=port, decode_responses=True)
        found += client.keys(prefix + "*")
        client.close()
    return found


def test_the_shards_commands_show_and_change_the_layout(cluster: ClusterGroup) -> None:
    from tests.cli.test_cli import run_beatx

    url, prefix = cluster.url(shards=4), f"t{uuid.uuid4().hex[:8]}:"
    store = ClusterStore(url, key_prefix=prefix)
    try:
        for n in range(12):
            store.add_job(
                Job(id=f"job-{n}", func="tests.sample_tasks:record", trigger=IntervalTrigger(seconds=60))
            )
        status = run_beatx("--store", url, "--key-prefix", prefix, "shards", "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("4 shard(s), generation 1\n")
        assert sum(int(line.split(": ")[1].split()[0]) for line in status.stdout.splitlines()[1:]) == 12
        moved = run_beatx("--store", url, "--key-prefix", prefix, "shards", "reshard", "--to", "6")
        assert moved.returncode == 0, moved.stderr
        assert "resharded 12 job(s): 4 -> 6 shard(s), generation 2" in moved.stdout
        assert store.refresh().shards == 6 and store.count_jobs() == 12
        plain = run_beatx("--store", "memory://", "shards", "status")
        assert plain.returncode == 2 and "not a Redis Cluster store" in plain.stderr
    finally:
        store.close()
