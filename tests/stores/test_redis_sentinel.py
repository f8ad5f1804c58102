"""The Redis store behind Sentinel: the ``redis+sentinel://`` URL, the lease written to a
replica before the beat leads on it (``WAIT``), and a beat that follows a failover of the
primary. The servers are a private group started by the tests (tests/stores/sentinel_group.py)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from beatx.beat import Beat
from beatx.errors import ConfigurationError, StoreError
from beatx.manager import JobManager
from beatx.stores import open_store
from beatx.stores.redis import RedisStore
from beatx.stores.redis_sentinel import SentinelURL, parse_sentinel_url
from beatx.testing import RecordingDispatcher
from beatx.triggers import IntervalTrigger
from tests.stores.sentinel_group import SentinelGroup, start_group, wait_until

# -- the URL (no server) ----------------------------------------------------------------------


def test_a_sentinel_url_names_the_sentinels_the_primary_the_database_and_the_options() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://:s3cret@10.0.0.1:26380,sentinel-b,[::1]:26381/my-primary/4"
        "?sentinel_password=pw&wait_replicas=2&wait_timeout=0.25"
    )
    assert parsed == SentinelURL(
        sentinels=(("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381)),
        service_name="my-primary",
        db=4,
        password="s3cret",
        sentinel_password="pw",
        wait_replicas=2,
        wait_timeout=0.25,
    )
    assert "s3cret" not in repr(parsed) and "pw" not in repr(parsed)
    defaults = parse_sentinel_url("redis+sentinel://h:1/p")
    assert (defaults.db, defaults.wait_replicas, defaults.wait_timeout) == (0, 1, 0.5)
    assert defaults.server == "sentinel:p@h:1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h:1", "service_name"),
        ("redis+sentinel:///p", "no sentinel"),
        ("redis+sentinel://h:x/p", "port"),
        ("redis+sentinel://h:1/p/zero", "database must be a number"),
        ("redis+sentinel://h:1/p?wait_replica=1", "unknown option(s) wait_replica"),
        ("redis+sentinel://h:1/p?wait_replicas=-1", "wait_replicas must be >= 0"),
        ("redis+sentinel://:secret@h:1/p?wait_timeout=soon", "wait_timeout"),
    ],
)
def test_a_bad_sentinel_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="Redis Sentinel URL") as caught:
        parse_sentinel_url(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_open_store_takes_a_sentinel_url_without_connecting() -> None:
    store = open_store("redis+sentinel://127.0.0.1:1/nowhere/3", key_prefix="beatx-test:")
    assert isinstance(store, RedisStore)
    assert store._channel == "beatx-test:changes@3"
    assert not store.can_publish("loopback:6379")  # no fixed server: no atomic fire
    store.close()


# -- a real group -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    started = start_group(tmp_path_factory.mktemp("sentinel"))
    try:
        yield started
    finally:
        started.stop_all()


@pytest.mark.slow
def test_a_lease_no_replica_acknowledged_is_not_led_on(group: SentinelGroup) -> None:
    now = datetime.now(UTC)
    store = RedisStore(group.url(wait_timeout="0.2"), key_prefix="beatx-test-wait:")
    unsafe = RedisStore(group.url(wait_replicas="0"), key_prefix="beatx-test-nowait:")
    try:
        assert store.acquire_lease("beat-1", now=now, ttl=10)
        group.pause("replica")
        try:
            started = time.monotonic()
            assert not store.acquire_lease("beat-1", now=now, ttl=10), "a renewal only the primary holds"
            assert time.monotonic() - started < 2.0
            assert store._lease_taken is None  # the claim ahead does not trust it either
            assert unsafe.acquire_lease("beat-1", now=now, ttl=10)  # wait_replicas=0: no wait
        finally:
            group.resume("replica")
        wait_until(lambda: store.acquire_lease("beat-1", now=now, ttl=10), 10, "the replica to acknowledge")
    finally:
        store.close()
        unsafe.close()


@pytest.mark.slow
def test_a_celery_broker_behind_the_same_sentinels_takes_the_pipeline_path(group: SentinelGroup) -> None:
    """kombu's ``sentinel://`` broker: the dispatcher's Redis pipeline path works on the
    primary the sentinels name, and claims no fixed server (no atomic fire)."""
    import redis
    from celery import Celery

    from beatx.dispatch.celery import CeleryDispatcher
    from beatx.jobs import Fire, Job
    from tests.stores.sentinel_group import SERVICE

    app = Celery(
        "sentinel-broker",
        broker=";".join(f"sentinel://127.0.0.1:{port}" for port in group.sentinel_ports),
        set_as_current=False,
    )
    app.conf.broker_transport_options = {"master_name": SERVICE}
    app.conf.task_default_queue = "beatx-test-sentinel-q"
    dispatcher = CeleryDispatcher(app)
    at = datetime.now(UTC)
    jobs = [Job(id=f"s-{i}", func="proj.tasks.ping", trigger=IntervalTrigger(seconds=10)) for i in range(3)]
    try:
        assert dispatcher.dispatch([Fire(job, at) for job in jobs]) == [None] * 3
        assert dispatcher.broker_server() is None
    finally:
        dispatcher.close()
    primary = redis.Redis(port=group.primary_port())
    try:
        assert primary.llen("beatx-test-sentinel-q") == 3
        primary.delete("beatx-test-sentinel-q")
    finally:
        primary.close()


@pytest.mark.slow
def test_a_beat_follows_a_failover_of_the_primary(group: SentinelGroup) -> None:
    """The primary is SIGKILLed: the sentinels promote the replica; the beat stops leading
    while no replica can acknowledge its lease (``wait_replicas=1``: a lease only the new
    primary holds could be lost again), and leads and fires again on the new primary as soon
    as the old one is back as its replica."""
    store = RedisStore(group.url(), key_prefix="beatx-test-failover:", socket_timeout=1.0)
    dispatcher = RecordingDispatcher()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    JobManager(store).add_job(
        "tests.sample_tasks:record", IntervalTrigger(seconds=1, start_date=start), id="tick"
    )
    beat = Beat(store, dispatcher, lease_timeout=3.0)

    def run_once() -> float:
        try:
            return beat.run_once()
        except StoreError:
            return 0.1

    try:
        wait_until(lambda: run_once() is not None and dispatcher.fires, 10, "a first fire")
        old_primary = group.primary_port()
        assert old_primary == group.ports["primary"]
        store._client.wait(1, 1000)  # the job's state is on the replica too
        group.stop("primary", signal.SIGKILL)
        new_primary = wait_until(
            lambda: (port := group.primary_port()) != old_primary and port, 30, "the sentinels to fail over"
        )
        assert new_primary == group.ports["replica"]
        fired_before = len(dispatcher.fires)

        def fired_again() -> bool:
            time.sleep(min(run_once(), 0.2))
            return len(dispatcher.fires) > fired_before

        # The new primary answers, but has no replica to acknowledge the lease: no fire.
        wait_until(lambda: store._client.ping(), 10, "the store to reach the new primary")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert not fired_again(), "the beat led on a lease no replica acknowledged"
        assert not beat.leadership.is_leader
        group.restart_as_replica("primary", new_primary)
        wait_until(fired_again, 15, "the beat to fire on the new primary")
        assert store.get_job("tick") is not None
        lease = store.get_lease()
        assert lease is not None and lease.owner == beat.owner
        assert store._client.connection_pool.get_master_address()[1] == new_primary
    finally:
        beat.close()
        store.close()
