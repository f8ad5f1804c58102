"""Celery's publish signals sent from the fast paths: a ``before_task_publish`` receiver (a
tracing integration) no longer sends beatx to the ``send_task`` path; it gets each fire, may
add headers that end up in the message, and ``after_task_publish`` follows once the broker
took the fire. On a real Redis and a real RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from celery import Celery, signals

from beatx import IntervalTrigger, Job
from beatx.dispatch.celery import CeleryDispatcher
from beatx.jobs import Fire
from tests.celery.conftest import DEFAULT_QUEUE, queued
from tests.conftest import delete_amqp_queue

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def fires_of(n: int) -> list[Fire]:
    return [
        Fire(Job(id=f"job-{i}", func="proj.tasks.ping", trigger=IntervalTrigger(seconds=10), args=(i,)), AT)
        for i in range(n)
    ]


class Receivers:
    """A tracing-like pair of receivers: ``before`` stamps a header, ``after`` notes the id."""

    def __init__(self) -> None:
        self.before: list[dict[str, Any]] = []
        self.after: list[dict[str, Any]] = []

    def on_before(self, sender: str | None = None, **kwargs: Any) -> None:
        headers = kwargs["headers"]
        headers["x-trace"] = f"trace-{headers['id']}"
        self.before.append({"sender": sender, **kwargs, "headers": dict(headers)})

    def on_after(self, sender: str | None = None, **kwargs: Any) -> None:
        self.after.append({"sender": sender, **kwargs})


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    connected = Receivers()
    signals.before_task_publish.connect(connected.on_before, weak=False)
    signals.after_task_publish.connect(connected.on_after, weak=False)
    try:
        yield connected
    finally:
        signals.before_task_publish.disconnect(connected.on_before)
        signals.after_task_publish.disconnect(connected.on_after)


def no_send_task(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the send_task path was taken")

    monkeypatch.setattr(app, "send_task", refuse)


@pytest.mark.redis
def test_receivers_keep_the_redis_pipeline_and_their_headers_reach_the_message(
    broker: tuple[Celery, redis.Redis], receivers: Receivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = broker
    fires = fires_of(3)
    # What send_task gives the receivers, for the same fire.
    assert CeleryDispatcher(app, pipeline=False).dispatch(fires[:1]) == [None]
    by_send_task = receivers.before.pop(), receivers.after.pop()
    client.delete(DEFAULT_QUEUE)

    no_send_task(app, monkeypatch)
    dispatcher = CeleryDispatcher(app)
    assert dispatcher.dispatch(fires) == [None] * 3
    assert [call["headers"]["id"] for call in receivers.before] == [f.task_id for f in fires]
    assert [call["headers"]["id"] for call in receivers.after] == [f.task_id for f in fires]
    messages = queued(client, DEFAULT_QUEUE)
    assert [m["headers"]["x-trace"] for m in messages] == [f"trace-{f.task_id}" for f in fires]
    first_before, first_after = receivers.before[0], receivers.after[0]
    before, after = by_send_task
    assert set(first_before) == set(before) and set(first_after) == set(after)
    assert first_before["sender"] == before["sender"] == "proj.tasks.ping"
    assert first_before["body"] == before["body"] and first_after["body"] == after["body"]
    assert (first_before["exchange"], first_before["routing_key"]) == (
        before["exchange"],
        before["routing_key"],
    )
    for key in ("expires", "origin"):
        before["headers"].pop(key), first_before["headers"].pop(key)
    assert first_before["headers"] == before["headers"]
    assert first_before["properties"]["correlation_id"] == fires[0].task_id
    dispatcher.close()


@pytest.mark.redis
def test_receivers_turn_the_atomic_fire_into_publish_then_write_back(
    broker: tuple[Celery, redis.Redis], receivers: Receivers
) -> None:
    """``after_task_publish`` cannot be sent from the store's write-back script: with
    receivers, the dispatcher builds no message for the store to push."""
    app, _client = broker
    dispatcher = CeleryDispatcher(app)
    assert dispatcher.broker_server() is None
    assert dispatcher.render(fires_of(2)) == [None, None]
    assert receivers.before == []  # render announced nothing: dispatch() will
    dispatcher.close()


@pytest.mark.rabbitmq
def test_receivers_keep_the_amqp_path_and_after_follows_the_confirm(
    rabbitmq_url: str, receivers: Receivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu import Connection

    queue = f"beatx-test-signals-{uuid.uuid4().hex[:8]}"
    app = Celery("signals-amqp", broker=rabbitmq_url, set_as_current=False)
    app.conf.task_default_queue = queue
    no_send_task(app, monkeypatch)
    dispatcher = CeleryDispatcher(app)
    fires = fires_of(4)
    try:
        assert dispatcher.dispatch(fires) == [None] * 4
        assert dispatcher._confirmed is not None
        with Connection(rabbitmq_url) as connection:  # type: ignore[no-untyped-call]
            channel = connection.channel()
            messages = [channel.basic_get(queue, no_ack=True) for _ in fires]
    finally:
        dispatcher.close()
        delete_amqp_queue(rabbitmq_url, queue)
    assert [m.headers["x-trace"] for m in messages] == [f"trace-{f.task_id}" for f in fires]
    assert [call["headers"]["id"] for call in receivers.after] == [f.task_id for f in fires]
    assert all(call["routing_key"] == queue and call["exchange"] == "" for call in receivers.after)
    assert json.loads(messages[0].body)[0] == [0]
