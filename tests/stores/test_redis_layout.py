"""The Redis store's key layout: the definition in a string of its own (compact JSON), the
state in a small hash that stays a listpack, a store written by an older beatx (the
definition in the hash's ``def`` field) read and moved on its next write, and the "added"
audit entry kept in the job's hash until the job changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from beatx.audit import JobChange, diff_jobs
from beatx.jobs import Job, JobStatus, Overlap, job_to_dict
from beatx.manager import JobManager
from beatx.stores.redis import DEFINITION_KEYS, RedisStore, decode_definition, encode_definition
from beatx.stores.redis_cluster import ClusterStore, shard_of
from beatx.stores.redis_reshard import reshard
from beatx.testing import FakeClock
from beatx.triggers import CronTrigger, IntervalTrigger
from tests.stores.cluster_group import ClusterGroup, start_cluster
from tests.stores.contract import T0, make_job, release_of
from tests.stores.test_redis6 import redis6  # noqa: F401  (the Redis 6 server fixture)

pytestmark = pytest.mark.redis


@pytest.fixture(params=["redis", "redis6"])
def url(request: pytest.FixtureRequest) -> str:
    """The test's Redis: the machine's (7), and Redis 6.2 (``hash-max-ziplist-value``)."""
    if request.param == "redis6":
        return str(request.getfixturevalue("redis6").url(0))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def store(url: str, key_prefix: str, clock: FakeClock) -> Iterator[RedisStore]:
    store = RedisStore(url, key_prefix=key_prefix, clock=clock)
    yield store
    store.close()


@pytest.fixture
def raw(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


def stored(job: Job) -> dict[str, Any]:
    """What a store must give back of a job (everything but ``running``)."""
    return job_to_dict(job)


def varied_jobs() -> list[Job]:
    """Jobs at their defaults and with every definition field set (types that compare equal
    but differ in JSON, such as ``True`` and ``1``, included)."""
    return [
        make_job("plain"),
        make_job("named", name="Nightly report", args=(1, 2.5, True, None, "é"), kwargs={"to": ["x"]}),
        make_job(
            "full",
            name="full",
            options={"queue": "slow", "priority": 3},
            max_instances=3,
            misfire_grace_time=30,
            coalesce=False,
            catchup="all",
            catchup_window=600,
            catchup_limit=5,
            jitter=2.5,
            max_runs=10,
            overlap=Overlap.BUFFER_ONE,
            pause_after_failures=4,
            exclude=("holidays",),
            on_excluded="next_business_day",
            expect_every=120,
            max_lateness=5,
            max_runtime=60,
            alert_after_failures=2,
            status=JobStatus.PAUSED,
            pause_note="maintenance",
            paused_by="alice",
            paused_at=T0 - timedelta(minutes=3),
            total_run_count=7,
            misfire_count=2,
            skip_count=1,
            last_run_time=T0 - timedelta(seconds=10),
            last_error="boom",
            last_finished_at=T0 - timedelta(seconds=9),
            last_duration=0.25,
        ),
        make_job("cron", trigger=CronTrigger("*/5 * * * *"), kwargs={"n": 1}, args=(1,)),
        make_job("one", kwargs={"flag": 1}, max_instances=2, misfire_grace_time=1.0, jitter=0),
        make_job("next-none", next_run_time=None, status=JobStatus.COMPLETED),
    ]


def test_the_compact_definition_decodes_to_exactly_the_definition() -> None:
    for job in varied_jobs():
        data = job_to_dict(job)
        compact = json.loads(encode_definition(data))
        assert "id" not in compact
        assert encode_definition(data) == json.dumps(compact, separators=(",", ":"), ensure_ascii=False)
        assert decode_definition(job.id, compact) == {key: data[key] for key in DEFINITION_KEYS}
    # A value equal to the default but of another JSON type is written, not left out.
    data = job_to_dict(make_job("x"))
    data["max_instances"], data["coalesce"], data["misfire_grace_time"] = True, 1, 0
    back = decode_definition("x", json.loads(encode_definition(data)))
    assert (back["max_instances"], back["coalesce"], back["misfire_grace_time"]) == (True, 1, 0)
    assert type(back["max_instances"]) is bool and type(back["coalesce"]) is int


def test_every_key_of_a_job_is_in_its_definition_or_its_hash() -> None:
    state = {"status", "next_run_time", "last_run_time", "last_error", "last_finished_at", "last_duration"}
    counters = {"total_run_count", "misfire_count", "skip_count", "revision"}
    assert set(job_to_dict(make_job())) == set(DEFINITION_KEYS) | state | counters


def test_every_job_comes_back_the_same_through_every_read(store: RedisStore) -> None:
    jobs = varied_jobs()
    for job in jobs:
        store.add_job(job)
    for job in jobs:
        got = store.get_job(job.id)
        assert got is not None and stored(got) == stored(job)
    assert {j.id: stored(j) for j in store.get_jobs()} == {j.id: stored(j) for j in jobs}
    claimed = store.acquire_due_jobs(T0 + timedelta(days=1), limit=100)
    expected = {j.id: stored(j) for j in jobs if j.status.value in ("active", "failed") and j.next_run_time}
    assert {j.id: stored(j) for j in claimed} == expected


def test_a_job_is_a_small_listpack_hash_and_a_definition_string(
    store: RedisStore, raw: redis.Redis, key_prefix: str
) -> None:
    job = Job(id="job-0000001", func="tasks.add", trigger=IntervalTrigger(seconds=60), args=(1, 2))
    job.next_run_time = T0
    store.add_job(job)
    key = f"{key_prefix}job:{job.id}"
    assert raw.object("encoding", key) in ("listpack", "ziplist")
    assert set(raw.hkeys(key)) == {"status", "next_run_time", "next_run_ts", "revision"}
    definition = raw.get(f"{key_prefix}def:{job.id}")
    assert definition is not None and json.loads(definition) == {
        "version": 2,
        "func": "tasks.add",
        "trigger": job.trigger.to_dict(),
        "args": [1, 2],
    }
    # Claimed and written back after a run, it stays one.
    (claimed,) = store.acquire_due_jobs(T0, limit=1)
    store.release_jobs([release_of(claimed, next_run_time=T0 + timedelta(minutes=1), fired=(T0,))])
    assert raw.object("encoding", key) in ("listpack", "ziplist")
    got = store.get_job(job.id)
    assert got is not None and got.total_run_count == 1 and got.misfire_count == 0


def test_remove_deletes_the_definition_and_replace_rewrites_it(
    store: RedisStore, raw: redis.Redis, key_prefix: str
) -> None:
    store.add_job(make_job("a", args=(1,)))
    store.add_job(make_job("a", args=(2,)), replace_existing=True)
    got = store.get_job("a")
    assert got is not None and got.args == (2,) and got.revision == 2
    assert store.remove_job("a")
    assert raw.exists(f"{key_prefix}def:a", f"{key_prefix}job:a") == 0
    assert store.get_job("a") is None and store.get_jobs() == []


def write_old_record(raw: redis.Redis, prefix: str, job: Job) -> None:
    """The record an older beatx wrote for ``job``: the whole of job_to_dict's definition keys
    in the hash's ``def`` field, every counter written, the indexes."""
    data = job_to_dict(job)
    fields: dict[Any, Any] = {
        "def": json.dumps({key: data[key] for key in DEFINITION_KEYS}),
        "status": data["status"],
        "revision": "3",
        "total_run_count": str(job.total_run_count),
        "misfire_count": "0",
        "skip_count": "0",
    }
    if job.next_run_time is not None:
        fields["next_run_time"] = data["next_run_time"]
        fields["next_run_ts"] = f"{job.next_run_time.timestamp():.6f}"
        raw.zadd(f"{prefix}schedule", {job.id: job.next_run_time.timestamp()})
    raw.hset(f"{prefix}job:{job.id}", mapping=fields)
    raw.sadd(f"{prefix}jobs", job.id)


def test_a_record_of_the_previous_layout_fires_updates_and_removes(
    store: RedisStore, raw: redis.Redis, key_prefix: str
) -> None:
    old = make_job("old", name="Old one", args=(1, 2), kwargs={"k": "v"}, max_instances=2, total_run_count=4)
    write_old_record(raw, key_prefix, old)
    expected = stored(old) | {"revision": 3}
    got = store.get_job("old")
    assert got is not None and stored(got) == expected
    assert [stored(j) for j in store.get_jobs()] == [expected]
    # It fires: claimed with its definition, written back.
    (claimed,) = store.acquire_due_jobs(T0, limit=10)
    assert stored(claimed) == expected
    store.release_jobs([release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,))])
    after_run = store.get_job("old")
    assert after_run is not None and after_run.total_run_count == 5
    assert raw.hexists(f"{key_prefix}job:old", "def") and not raw.exists(f"{key_prefix}def:old")
    # An update moves the definition to its own key.
    after_run.args = (3,)
    store.update_job(after_run, expected_revision=3)
    assert not raw.hexists(f"{key_prefix}job:old", "def")
    assert json.loads(raw.get(f"{key_prefix}def:old") or "")["args"] == [3]
    updated = store.get_job("old")
    assert updated is not None and updated.args == (3,) and updated.name == "Old one"
    assert updated.kwargs == {"k": "v"} and updated.max_instances == 2 and updated.total_run_count == 5
    assert raw.object("encoding", f"{key_prefix}job:old") in ("listpack", "ziplist")
    assert store.next_run_time() == T0 + timedelta(seconds=10)
    assert store.remove_job("old")
    assert raw.exists(f"{key_prefix}job:old", f"{key_prefix}def:old") == 0
    assert store.get_job("old") is None


def test_a_replace_of_a_previous_layout_record_moves_it_and_removal_works_unchanged(
    store: RedisStore, raw: redis.Redis, key_prefix: str
) -> None:
    write_old_record(raw, key_prefix, make_job("a"))
    write_old_record(raw, key_prefix, make_job("b", at=T0 + timedelta(seconds=1)))
    store.add_job(make_job("a", args=(9,)), replace_existing=True)
    assert not raw.hexists(f"{key_prefix}job:a", "def") and raw.exists(f"{key_prefix}def:a")
    got = store.get_job("a")
    assert got is not None and got.args == (9,) and got.revision == 4
    assert store.remove_job("b") and store.get_job("b") is None
    assert [j.id for j in store.get_jobs()] == ["a"]


def test_a_def_field_written_by_an_older_beatx_after_the_move_wins(
    store: RedisStore, raw: redis.Redis, key_prefix: str
) -> None:
    """During a rolling upgrade an older beatx may still update a job: its ``def`` field is
    the newer definition."""
    store.add_job(make_job("a", args=(1,)))
    data = job_to_dict(make_job("a", args=(2,)))
    raw.hset(f"{key_prefix}job:a", "def", json.dumps({key: data[key] for key in DEFINITION_KEYS}))
    got = store.get_job("a")
    assert got is not None and got.args == (2,)


def test_the_added_entry_stays_in_the_hash_until_the_job_changes_and_outlives_it(
    store: RedisStore, raw: redis.Redis, key_prefix: str, clock: FakeClock
) -> None:
    manager = JobManager(store, clock=clock)
    job = manager.add_job("tasks.add", IntervalTrigger(seconds=60), id="j", args=(1, 2), actor="alice")
    key, history = f"{key_prefix}job:j", f"{key_prefix}history:j"
    assert raw.hexists(key, "added") and not raw.exists(history)
    assert raw.object("encoding", key) in ("listpack", "ziplist")
    added = JobChange(
        job_id="j", at=clock.now(), action="added", source="api", actor="alice", changes=diff_jobs(None, job)
    )
    assert manager.job_history("j") == [added]
    clock.advance(5)
    manager.modify_job("j", kwargs={"x": 1})
    assert not raw.hexists(key, "added") and raw.llen(history) == 2
    changed = manager.job_history("j")
    assert len(changed) == 2 and changed[1] == added and changed[0].action == "changed"
    assert manager.job_history("j", limit=1) == changed[:1]
    clock.advance(5)
    manager.remove_job("j")
    assert [c.action for c in manager.job_history("j")] == ["removed", "changed", "added"]
    assert manager.job_history("j")[2] == added


def test_an_added_entry_kept_in_the_hash_moves_to_the_log_on_removal(
    store: RedisStore, raw: redis.Redis, key_prefix: str, clock: FakeClock
) -> None:
    manager = JobManager(store, clock=clock)
    job = manager.add_job("tasks.add", IntervalTrigger(seconds=60), id="j")
    assert raw.hexists(f"{key_prefix}job:j", "added")
    (added,) = manager.job_history("j")
    assert added.changes == diff_jobs(None, job)
    # Removed straight from the store (no "removed" entry): the added one is kept all the same.
    assert store.remove_job("j")
    assert store.job_changes("j") == [added]
    # Added again: its log exists, so the new "added" entry goes there, in order.
    clock.advance(1)
    manager.add_job("tasks.add", IntervalTrigger(seconds=30), id="j")
    assert not raw.hexists(f"{key_prefix}job:j", "added")
    newest, oldest = store.job_changes("j")
    assert oldest == added and newest.action == "added" and newest.at == clock.now()


def test_an_added_entry_that_does_not_fit_or_does_not_match_goes_to_the_log(
    store: RedisStore, raw: redis.Redis, key_prefix: str, clock: FakeClock
) -> None:
    manager = JobManager(store, clock=clock)
    manager.add_job("tasks.add", IntervalTrigger(seconds=60), id="long", actor="a" * 80)
    assert not raw.hexists(f"{key_prefix}job:long", "added")
    assert raw.llen(f"{key_prefix}history:long") == 1
    assert manager.job_history("long")[0].actor == "a" * 80
    store.add_job(make_job("other"))
    odd = JobChange(
        job_id="other", at=clock.now(), action="added", source="api", changes={"name": [None, "x"]}
    )
    store.record_change(odd)
    assert not raw.hexists(f"{key_prefix}job:other", "added")
    assert store.job_changes("other") == [odd]
    # Not in UTC: kept as it was written, in the log.
    paris = datetime(2026, 3, 2, 13, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    store.add_job(make_job("tz"))
    tz_change = JobChange(
        job_id="tz", at=paris, action="added", source="api", changes=diff_jobs(None, store.get_job("tz"))
    )
    store.record_change(tz_change)
    assert store.job_changes("tz")[0].to_json() == tz_change.to_json()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.stop_all()


def test_a_reshard_moves_each_jobs_definition_and_kept_added_entry(cluster: ClusterGroup) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = ClusterStore(cluster.url(shards=2), key_prefix=prefix)
    try:
        manager = JobManager(store)
        for n in range(6):
            manager.add_job("tasks.add", IntervalTrigger(seconds=60), id=f"job-{n}", args=(n,))
        manager.modify_job("job-0", kwargs={"x": 1})  # its entry moved to its log
        before = {
            f"job-{n}": (stored_job(store, f"job-{n}"), store.job_changes(f"job-{n}")) for n in range(6)
        }
        assert [len(changes) for _, changes in before.values()] == [2, 1, 1, 1, 1, 1]
        report = reshard(store, 3, lease_wait=5, settle=0.1)
        assert report.moved == 6 and store.shards == 3
        after = {f"job-{n}": (stored_job(store, f"job-{n}"), store.job_changes(f"job-{n}")) for n in range(6)}
        assert after == before
        # Still a hash with its kept "added" entry, beside its definition, in its new shard.
        view = store.views[shard_of("job-1", 3)]
        key = f"{view._prefix}job:job-1"
        node = store.cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
        on_node = redis.Redis(host=node.host, port=node.port, decode_responses=True)
        try:
            assert on_node.hexists(key, "added") and on_node.exists(f"{view._prefix}def:job-1")
        finally:
            on_node.close()
    finally:
        store.close()


def stored_job(store: ClusterStore, job_id: str) -> dict[str, Any]:
    job = store.get_job(job_id)
    assert job is not None
    return stored(job)
