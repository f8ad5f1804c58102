"""The AMQP path of CeleryDispatcher on a real RabbitMQ: messages built from templates as
``send_task`` builds them, written in batches, each counted as sent only once the broker
confirmed it (a ``basic.nack`` or a ``basic.return`` is not sent), the lease checked between
batches. Every test publishes to a queue of its own and deletes it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

from beatx import IntervalTrigger, Job
from beatx.dispatch.base import is_transient
from beatx.dispatch.celery import CONFIRM_BATCH, CeleryDispatcher
from beatx.errors import LeaseLostError, TransientDispatchError
from beatx.jobs import Fire
from tests.conftest import delete_amqp_queue

pytestmark = pytest.mark.rabbitmq

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_job(job_id: str, func: str = "proj.tasks.ping", **fields: Any) -> Job:
    return Job(id=job_id, func=func, trigger=IntervalTrigger(seconds=10), **fields)


@pytest.fixture
def queue_name(rabbitmq_url: str) -> Iterator[str]:
    name = f"beatx-test-amqp-{uuid.uuid4().hex[:8]}"
    yield name
    delete_amqp_queue(rabbitmq_url, name)


@pytest.fixture
def app(rabbitmq_url: str, queue_name: str) -> Celery:
    app = Celery("amqp-dispatch-test", broker=rabbitmq_url, set_as_current=False)
    app.conf.task_default_queue = queue_name
    return app


def take_all(url: str, queue: str) -> list[Any]:
    """The raw py-amqp messages of ``queue``, oldest first (taken off the queue)."""
    messages = []
    with Connection(url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.channel()
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            messages.append(message)
    return messages


def test_a_fire_goes_out_as_the_bytes_send_task_writes(
    app: Celery, rabbitmq_url: str, queue_name: str
) -> None:
    plain = make_job("plain", args=(1, "x"), kwargs={"k": "vé"})
    routed = make_job(
        "routed", options={"priority": 3, "headers": {"x-h": "1"}, "time_limit": 30, "ignore_result": True}
    )
    expiring = make_job("expiring", args=(2,), options={"expires": 60})
    fires = [Fire(plain, AT), Fire(routed, AT + timedelta(seconds=1)), Fire(expiring, AT)]
    by_send_task = CeleryDispatcher(app, pipeline=False)
    assert by_send_task.dispatch(fires) == [None] * 3
    dispatcher = CeleryDispatcher(app)
    assert dispatcher.dispatch(fires) == [None] * 3
    assert dispatcher._confirmed is not None, "the AMQP path was not taken"
    messages = take_all(rabbitmq_url, queue_name)
    assert len(messages) == 6
    for sent, fast in zip(messages[:3], messages[3:], strict=True):
        assert fast.body == sent.body
        sent_headers, fast_headers = sent.headers, fast.headers
        if sent_headers.get("expires") is not None:  # now + 60 s, at each publish
            sent_headers = {**sent_headers, "expires": "now+60"}
            fast_headers = {**fast_headers, "expires": "now+60"}
            assert fast.properties["expiration"] == sent.properties["expiration"] == "60000"
        assert list(fast_headers.items()) == list(sent_headers.items())  # the same headers, in order
        fast.properties["application_headers"] = sent.properties["application_headers"] = sent_headers
        assert fast._serialize_properties() == sent._serialize_properties()  # byte for byte
        assert fast.delivery_info["routing_key"] == sent.delivery_info["routing_key"] == queue_name
    assert messages[4].properties["priority"] == 3
    assert messages[3].headers["beatx_job_id"] == "plain"
    assert messages[3].headers["id"] == fires[0].task_id
    dispatcher.close()
    by_send_task.close()


def test_a_message_the_broker_nacks_is_not_counted_as_sent(rabbitmq_url: str, queue_name: str) -> None:
    app = Celery("amqp-nack-test", broker=rabbitmq_url, set_as_current=False)
    # A queue that refuses what it cannot hold: RabbitMQ answers basic.nack.
    full = Queue(
        queue_name,
        Exchange(queue_name),
        routing_key=queue_name,
        queue_arguments={"x-max-length": 5, "x-overflow": "reject-publish"},
    )
    app.conf.task_queues = [full]
    app.conf.task_default_queue = queue_name
    dispatcher = CeleryDispatcher(app)
    fires = [Fire(make_job(f"n-{i}"), AT) for i in range(8)]
    results = dispatcher.dispatch(fires)
    assert results[:5] == [None] * 5
    assert all(isinstance(r, TransientDispatchError) and "basic.nack" in str(r) for r in results[5:]), results
    assert all(is_transient(r) for r in results[5:] if r is not None)
    assert dispatcher.sent == 5
    assert len(take_all(rabbitmq_url, queue_name)) == 5
    # Room again: the same fires go out on the same connection.
    assert dispatcher.dispatch(fires[5:]) == [None] * 3
    assert dispatcher.sent == 8
    dispatcher.close()


def test_a_returned_message_is_not_counted_as_sent_and_its_queue_is_declared_again(
    app: Celery, rabbitmq_url: str, queue_name: str
) -> None:
    dispatcher = CeleryDispatcher(app)
    assert dispatcher.dispatch([Fire(make_job("first"), AT)]) == [None]
    # Someone deletes the queue: the next messages are unroutable and come back (mandatory).
    with Connection(rabbitmq_url) as connection:  # type: ignore[no-untyped-call]
        connection.channel().queue_delete(queue_name)
    fires = [Fire(make_job(f"r-{i}"), AT) for i in range(3)]
    results = dispatcher.dispatch(fires)
    assert all(isinstance(r, TransientDispatchError) and "returned" in str(r) for r in results), results
    assert dispatcher.sent == 1
    # The retry declares the queue again, as send_task would on a new connection.
    assert dispatcher.dispatch(fires) == [None] * 3
    assert [m.headers["beatx_job_id"] for m in take_all(rabbitmq_url, queue_name)] == ["r-0", "r-1", "r-2"]
    dispatcher.close()


def test_the_lease_is_checked_before_each_batch(app: Celery, rabbitmq_url: str, queue_name: str) -> None:
    fires = [Fire(make_job(f"l-{i}"), AT) for i in range(CONFIRM_BATCH * 3)]
    checks = iter([True, False])
    dispatcher = CeleryDispatcher(app)
    results = dispatcher.dispatch(fires, guard=lambda: next(checks))
    assert results[:CONFIRM_BATCH] == [None] * CONFIRM_BATCH
    assert all(isinstance(r, LeaseLostError) for r in results[CONFIRM_BATCH:])
    assert len(take_all(rabbitmq_url, queue_name)) == CONFIRM_BATCH
    # The channel's confirm count still matches the broker's after the dropped batch.
    assert dispatcher.dispatch(fires[CONFIRM_BATCH:]) == [None] * (CONFIRM_BATCH * 2)
    assert dispatcher.sent == CONFIRM_BATCH * 3
    dispatcher.close()


def test_a_fire_only_send_task_can_send_goes_out_with_the_batch(
    app: Celery, rabbitmq_url: str, queue_name: str
) -> None:
    later = make_job("countdown", options={"countdown": 60})
    fires = [Fire(make_job("a"), AT), Fire(later, AT), Fire(make_job("b"), AT)]
    dispatcher = CeleryDispatcher(app)
    assert dispatcher.dispatch(fires) == [None] * 3
    messages = take_all(rabbitmq_url, queue_name)
    # Two channels: RabbitMQ keeps the order of each, not between them.
    by_job = {m.headers["beatx_job_id"]: m for m in messages}
    assert sorted(by_job) == ["a", "b", "countdown"] and len(messages) == 3
    assert by_job["countdown"].headers["eta"] is not None and by_job["a"].headers["eta"] is None
    dispatcher.close()
