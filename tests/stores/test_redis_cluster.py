"""The Redis Cluster store (:mod:`beatx.stores.redis_cluster`) on a private 3-master cluster:
the store contract over 4 shards, the URL, the layout, and what each shard's keys look like."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from beatx.errors import ConfigurationError
from beatx.stores import open_store
from beatx.stores.redis_cluster import (
    ClusterStore,
    fair_share,
    parse_cluster_url,
    shard_of,
    shard_prefix,
)
from beatx.testing import FakeClock
from tests.stores.cluster_group import ClusterGroup, start_cluster
from tests.stores.contract import T0, StoreContract, make_job

pytestmark = pytest.mark.redis


def test_a_cluster_url_names_the_nodes_and_the_shards() -> None:
    parsed = parse_cluster_url("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2/?shards=8")
    assert parsed.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379))
    assert (parsed.shards, parsed.username, parsed.password) == (8, "u", "p@ss")
    assert parse_cluster_url("redis+cluster://h:1").shards == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:1/?shards=2", r"expected redis\+cluster://"),
        ("redis+cluster:///?shards=2", "no node"),
        ("redis+cluster://h:1/3", "database 0 only"),
        ("redis+cluster://h:1/?shards=0", "shards must be"),
        ("redis+cluster://h:1/?shards=x", "shards must be"),
        ("redis+cluster://h:x/", "must be a number"),
        ("redis+cluster://h:1/?replicas=2", "unknown option"),
    ],
)
def test_a_bad_cluster_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_cluster_url(url)


def test_jobs_hash_to_shards_stably_and_evenly() -> None:
    counts = [0] * 8
    for n in range(8000):
        counts[shard_of(f"job-{n}", 8)] += 1
    assert min(counts) > 800 and max(counts) < 1200
    assert shard_of("job-1", 8) == shard_of("job-1", 8) and shard_of("anything", 1) == 0
    assert shard_prefix("beatx:", 3) == "beatx:{s3}:" and shard_prefix("beatx:", 3, 2) == "beatx:{g2s3}:"
    assert [fair_share(8, n) for n in (0, 1, 2, 3, 8, 9)] == [8, 8, 4, 3, 1, 1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.stop_all()


def keys_of(cluster: ClusterGroup, prefix: str) -> list[str]:
    found: list[str] = []
    for port in cluster.ports:
        client = redis.Redis(port=port, decode_responses=True)
        found += client.keys(prefix.replace("{", "\\{").replace("}", "\\}") + "*")
        client.close()
    return found


class TestClusterStoreContract(StoreContract):
    @pytest.fixture
    def store(self, cluster: ClusterGroup, clock: FakeClock) -> Iterator[ClusterStore]:
        store = ClusterStore(cluster.url(shards=4), key_prefix=f"t{uuid.uuid4().hex[:8]}:", clock=clock)
        yield store
        store.close()


def test_each_shard_keeps_its_keys_in_one_slot(cluster: ClusterGroup, clock: FakeClock) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = open_store(cluster.url(shards=4), key_prefix=prefix, clock=clock)
    assert isinstance(store, ClusterStore)
    try:
        for n in range(40):
            store.add_job(make_job(f"job-{n}", at=T0))
        assert store.count_jobs() == 40 and len(store.get_jobs()) == 40
        claimed = store.acquire_due_jobs(T0, limit=100)
        assert sorted(j.id for j in claimed) == sorted(f"job-{n}" for n in range(40))
        keys = keys_of(cluster, prefix)
        slots: dict[str, set[int]] = {}
        probe = redis.Redis(port=cluster.ports[0], decode_responses=True)
        for key in keys:
            tag = key[len(prefix) :].partition("}")[0]
            slots.setdefault(tag, set()).add(int(probe.cluster("keyslot", key)))
        probe.close()
        assert set(slots) == {"{s0", "{s1", "{s2", "{s3", "{cluster"}
        assert all(len(s) == 1 for s in slots.values())
        # Every shard got jobs, and each job is in its own shard's index.
        for shard in range(4):
            ids = {j.id for j in store.views[shard].get_jobs()}
            assert ids and all(shard_of(i, 4) == shard for i in ids)
    finally:
        store.close()


def test_the_stored_layout_wins_over_the_url(cluster: ClusterGroup, clock: FakeClock) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    first = ClusterStore(cluster.url(shards=3), key_prefix=prefix, clock=clock)
    second = ClusterStore(cluster.url(shards=5), key_prefix=prefix, clock=clock)
    try:
        assert first.shards == 3 and second.shards == 3
        first.add_job(make_job("a"))
        assert second.get_job("a") is not None
    finally:
        first.close()
        second.close()


def test_a_change_in_any_shard_wakes_a_waiting_beat(cluster: ClusterGroup, clock: FakeClock) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    waiting = ClusterStore(cluster.url(shards=4), key_prefix=prefix, clock=clock)
    writer = ClusterStore(cluster.url(shards=4), key_prefix=prefix, clock=clock)
    other = ClusterStore(cluster.url(shards=4), key_prefix=f"t{uuid.uuid4().hex[:8]}:", clock=clock)
    try:
        assert waiting.wait_for_change(0.05) is False
        other.add_job(make_job("elsewhere"))
        assert waiting.wait_for_change(0.3) is False  # another deployment's change
        for n in range(8):
            writer.add_job(make_job(f"job-{n}"))
            assert waiting.wait_for_change(2.0) is True
    finally:
        waiting.close()
        writer.close()
        other.close()
