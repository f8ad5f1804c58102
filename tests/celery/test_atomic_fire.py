"""The atomic fire: with a Redis broker on the store's Redis server, the store's write-back
script pushes each fire's message, built by ``CeleryDispatcher.render`` exactly as the
dispatcher would publish it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery

from beatx import IntervalTrigger, Job
from beatx.dispatch.base import MessageRenderer
from beatx.dispatch.celery import CeleryDispatcher
from beatx.engine.engine import Engine, atomic_fire_possible
from beatx.errors import PermanentDispatchError
from beatx.jobs import Fire, fire_task_id
from beatx.manager import JobManager
from beatx.stores.base import QueuedMessage
from beatx.stores.memory import MemoryStore
from beatx.stores.redis import RedisStore
from beatx.testing import FakeClock
from tests.celery.conftest import DEFAULT_QUEUE, queued

pytestmark = pytest.mark.redis

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_job(job_id: str, **fields: Any) -> Job:
    return Job(
        id=job_id, func="proj.tasks.work", trigger=IntervalTrigger(seconds=10, start_date=AT), **fields
    )


@pytest.fixture
def app_on(other_redis_url: str) -> Iterator[tuple[Celery, redis.Redis]]:
    """A Celery app whose broker is another database of the store's Redis server."""
    app = Celery("atomic-fire-test", broker=other_redis_url, set_as_current=False)
    app.conf.task_default_queue = DEFAULT_QUEUE
    client = redis.Redis.from_url(other_redis_url)
    try:
        yield app, client
    finally:
        client.close()


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in message["properties"].items() if k not in ("delivery_tag",)}
    return {**message, "properties": properties}


def test_render_builds_the_message_dispatch_would_publish(app_on: tuple[Celery, redis.Redis]) -> None:
    app, client = app_on
    job = make_job("j", args=(1,), kwargs={"k": "v"}, options={"queue": "q2", "priority": 2})
    fires = [Fire(job, AT), Fire(job, AT + timedelta(seconds=10))]
    dispatcher = CeleryDispatcher(app)
    try:
        assert dispatcher.dispatch(fires) == [None, None]
        published = queued(client, "q2")
        rendered = dispatcher.render(fires)
    finally:
        dispatcher.close()
    assert all(isinstance(message, QueuedMessage) for message in rendered)
    db = int(client.connection_pool.connection_kwargs.get("db") or 0)
    assert {(m.db, m.lists) for m in rendered} == {(db, ("q2",))}  # type: ignore[union-attr]
    built = [json.loads(m.payload) for m in rendered]  # type: ignore[union-attr]
    assert [_comparable(m) for m in built] == [_comparable(m) for m in published]
    assert [m["headers"]["id"] for m in built] == [fire.task_id for fire in fires]


def test_render_reports_a_fire_that_can_never_be_sent(app_on: tuple[Celery, redis.Redis]) -> None:
    app, _ = app_on
    dispatcher = CeleryDispatcher(app)
    try:
        bad, good = make_job("bad", kwargs={"x": object()}), make_job("good")
        rendered = dispatcher.render([Fire(bad, AT), Fire(good, AT)])
    finally:
        dispatcher.close()
    assert isinstance(rendered[0], PermanentDispatchError) and "'bad'" in str(rendered[0])
    assert isinstance(rendered[1], QueuedMessage)


def test_the_atomic_fire_is_used_only_when_broker_and_store_share_a_server(
    app_on: tuple[Celery, redis.Redis], redis_url: str, key_prefix: str
) -> None:
    app, _ = app_on
    dispatcher = CeleryDispatcher(app)
    store = RedisStore(redis_url, key_prefix=key_prefix)
    elsewhere = RedisStore("redis://127.0.0.1:6390/0", key_prefix=key_prefix)  # never connected
    try:
        assert isinstance(dispatcher, MessageRenderer)
        assert atomic_fire_possible(store, dispatcher)
        assert not atomic_fire_possible(elsewhere, dispatcher)
        assert not atomic_fire_possible(MemoryStore(), dispatcher)
        assert not atomic_fire_possible(store, CeleryDispatcher(app, pipeline=False))
    finally:
        dispatcher.close()
        store.close()
        elsewhere.close()


def test_an_engine_with_an_outbox_sends_each_fire_in_its_write_back(
    app_on: tuple[Celery, redis.Redis], redis_url: str, key_prefix: str
) -> None:
    """Fires go out through the store's script, and a fire only send_task can send (a
    countdown) takes the dispatcher's own publish."""
    app, client = app_on
    clock = FakeClock(AT)
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock)
    dispatcher = CeleryDispatcher(app)
    manager = JobManager(store, clock=clock)
    try:
        for n in range(5):
            manager.add_job("proj.tasks.work", IntervalTrigger(seconds=10, start_date=AT), id=f"j{n}")
        manager.add_job(
            "proj.tasks.work", IntervalTrigger(seconds=10, start_date=AT), id="eta", options={"countdown": 5}
        )
        assert store.acquire_lease("beat-1", now=AT, ttl=30)
        engine = Engine(store, dispatcher, owner="beat-1", outbox=dispatcher)
        result = engine.tick(AT)
        assert result.fired == 6
        messages = queued(client, DEFAULT_QUEUE)
        assert sorted(m["headers"]["id"] for m in messages) == sorted(
            fire_task_id(job_id, AT) for job_id in [*(f"j{n}" for n in range(5)), "eta"]
        )
        assert dispatcher.sent == 1, "only the countdown job went through the dispatcher's publish"
        for n in range(5):
            job = manager.get_job(f"j{n}")
            assert (
                job is not None
                and job.total_run_count == 1
                and job.next_run_time == AT + timedelta(seconds=10)
            )
    finally:
        dispatcher.close()
        store.close()


def test_a_tick_whose_fires_went_out_in_their_write_back_writes_nothing_more(
    app_on: tuple[Celery, redis.Redis], redis_url: str, key_prefix: str
) -> None:
    """One write-back script per group of fires and nothing after it. An empty write-back
    (the lease check alone) sent after the atomic one queued behind it in Redis, and the next
    claim waited for both: a burst of 10,000 lost a quarter of its rate to it."""
    app, client = app_on
    clock = FakeClock(AT)
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock)
    dispatcher = CeleryDispatcher(app)
    written: list[int] = []
    release_jobs = store.release_jobs

    def counting_release_jobs(releases: Any, *, owner: str | None = None) -> None:
        written.append(len(releases))
        release_jobs(releases, owner=owner)

    store.release_jobs = counting_release_jobs  # type: ignore[method-assign]
    try:
        store.add_jobs(make_job(f"j{n}", next_run_time=AT) for n in range(5))
        assert store.acquire_lease("beat-1", now=AT, ttl=30)
        engine = Engine(store, dispatcher, owner="beat-1", outbox=dispatcher)
        assert engine.tick(AT).fired == 5
        assert len(queued(client, DEFAULT_QUEUE)) == 5
        assert written == [5]
        assert dispatcher.sent == 0
    finally:
        dispatcher.close()
        store.close()
