"""CeleryDispatcher against a real Redis broker (kombu keeps a queue as a Redis list)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery

from beatx import IntervalTrigger, Job, PermanentDispatchError, TransientDispatchError
from beatx.dispatch.base import is_transient
from beatx.dispatch.celery import CeleryDispatcher
from beatx.jobs import Fire, fire_task_id
from tests.celery.conftest import queued

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_job(job_id: str = "job-1", **fields: Any) -> Job:
    return Job(
        id=job_id, func=fields.pop("func", "proj.tasks.ping"), trigger=IntervalTrigger(seconds=10), **fields
    )


@pytest.mark.redis
def test_one_message_per_fire_with_task_id_headers_and_routing(broker: tuple[Celery, redis.Redis]) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app)
    job = make_job(
        args=(1, "a"),
        kwargs={"k": True},
        options={
            "queue": "reports",
            "priority": 3,
            "headers": {"x-extra": "1"},
            "beatx_source": "beat_schedule",
        },
    )
    other = make_job("job-2")
    fires = [Fire(job, AT), Fire(job, AT + timedelta(seconds=10)), Fire(other, AT)]
    assert dispatcher.dispatch(fires) == [None, None, None]

    # kombu's Redis transport keeps priority 3 of queue "reports" in the list "reports\x06\x163".
    messages = queued(client, "reports\x06\x163")
    assert len(messages) == 2
    first = messages[0]
    headers = first["headers"]
    assert headers["id"] == fire_task_id("job-1", AT) == fires[0].task_id
    assert headers["task"] == "proj.tasks.ping"
    assert headers["beatx_job_id"] == "job-1"
    assert headers["beatx_scheduled_at"] == AT.isoformat()
    assert headers["x-extra"] == "1"
    assert "beatx_source" not in headers and "beatx_source" not in first["properties"]
    assert first["properties"]["priority"] == 3
    body = json.loads(__import__("base64").b64decode(first["body"]))
    assert body[0] == [1, "a"] and body[1] == {"k": True}
    assert messages[1]["headers"]["id"] == fires[1].task_id
    (default,) = queued(client, "default-q")
    assert default["headers"]["beatx_job_id"] == "job-2"
    dispatcher.close()


@pytest.mark.redis
def test_a_batch_uses_one_kept_producer(broker: tuple[Celery, redis.Redis]) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app)
    acquired: list[Any] = []
    real = app.connection_for_write

    def counting() -> Any:
        acquired.append(1)
        return real()

    app.connection_for_write = counting  # type: ignore[method-assign]
    jobs = [make_job(f"job-{i}") for i in range(500)]
    assert dispatcher.dispatch([Fire(jobs[0], AT - timedelta(seconds=10))]) == [None]
    producer, connections = dispatcher._producer, len(acquired)
    started = time.perf_counter()
    assert dispatcher.dispatch([Fire(job, AT) for job in jobs]) == [None] * 500
    elapsed = time.perf_counter() - started
    assert dispatcher.dispatch([Fire(jobs[0], AT + timedelta(seconds=10))]) == [None]
    # No connection acquired per message or per batch: the producer is kept.
    assert len(acquired) == connections and dispatcher._producer is producer
    assert client.llen("default-q") == 502
    assert elapsed < 5.0
    dispatcher.close()


@pytest.mark.parametrize("pipeline", [True, False])
def test_broker_down_returns_errors_and_does_not_raise(pipeline: bool) -> None:
    app = Celery("down-test", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.broker_connection_timeout = 1
    dispatcher = CeleryDispatcher(
        app,
        retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.1},
        pipeline=pipeline,
        publish_timeout=2,
    )
    fires = [Fire(make_job(f"job-{i}"), AT) for i in range(3)]
    started = time.monotonic()
    results = dispatcher.dispatch(fires)
    assert len(results) == 3 and all(isinstance(r, TransientDispatchError) for r in results)
    assert all(is_transient(r) and r.__cause__ is not None for r in results if r is not None)
    assert time.monotonic() - started < 2 + 1
    # The next batch tries again (a new connection), and still does not raise.
    assert all(isinstance(r, TransientDispatchError) for r in dispatcher.dispatch(fires[:1]))
    dispatcher.close()


@pytest.mark.redis
def test_a_message_error_fails_only_its_fire(broker: tuple[Celery, redis.Redis]) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app)
    bad = make_job("bad", args=(object(),))  # not JSON-serialisable
    good = make_job("good")
    results = dispatcher.dispatch([Fire(bad, AT), Fire(good, AT)])
    assert isinstance(results[0], PermanentDispatchError) and results[1] is None
    assert not is_transient(results[0]) and "'bad'" in str(results[0])
    assert [m["headers"]["beatx_job_id"] for m in queued(client, "default-q")] == ["good"]
    dispatcher.close()


def _strip_volatile(message: dict[str, Any]) -> dict[str, Any]:
    properties = {
        k: v for k, v in message["properties"].items() if k not in ("delivery_tag", "correlation_id")
    }
    return {**message, "properties": properties}


@pytest.mark.redis
def test_the_pipelined_path_writes_what_send_task_writes(broker: tuple[Celery, redis.Redis]) -> None:
    app, client = broker
    job = make_job(args=(1,), kwargs={"k": "v"}, options={"queue": "q2", "priority": 2, "expires": 60})
    fires = [Fire(job, AT), Fire(job, AT + timedelta(seconds=10))]
    assert CeleryDispatcher(app, pipeline=False).dispatch(fires) == [None, None]
    one_by_one = queued(client, "q2")
    client.delete("q2")
    assert CeleryDispatcher(app).dispatch(fires) == [None, None]
    pipelined = queued(client, "q2")
    assert len(pipelined) == len(one_by_one) == 2
    for a, b in zip(one_by_one, pipelined, strict=True):
        a_headers = {k: v for k, v in a["headers"].items() if k != "expires"}
        b_headers = {k: v for k, v in b["headers"].items() if k != "expires"}
        assert a_headers == b_headers
        assert a["body"] == b["body"]
        a_props, b_props = _strip_volatile(a)["properties"], _strip_volatile(b)["properties"]
        assert {k: v for k, v in a_props.items() if k != "reply_to"} == {
            k: v for k, v in b_props.items() if k != "reply_to"
        }
        assert a["headers"]["expires"] is not None and b["headers"]["expires"] is not None


@pytest.mark.redis
def test_the_pipelined_path_stops_between_pipelines_when_the_lease_is_lost(
    broker: tuple[Celery, redis.Redis],
) -> None:
    from beatx.dispatch.celery import PIPELINE_CHUNK
    from beatx.errors import LeaseLostError

    app, client = broker
    fires = [Fire(make_job(f"job-{i}"), AT) for i in range(PIPELINE_CHUNK * 3)]
    checks = iter([True, False])
    results = CeleryDispatcher(app).dispatch(fires, guard=lambda: next(checks))
    assert results[:PIPELINE_CHUNK] == [None] * PIPELINE_CHUNK
    assert all(isinstance(r, LeaseLostError) for r in results[PIPELINE_CHUNK:])
    assert client.llen("default-q") == PIPELINE_CHUNK


@pytest.mark.redis
def test_publish_signal_receivers_get_each_fire(broker: tuple[Celery, redis.Redis]) -> None:
    from celery import signals

    app, _client = broker
    seen: list[str] = []

    def receiver(sender: str | None = None, **kwargs: Any) -> None:
        seen.append(str(kwargs.get("headers", {}).get("id")))

    signals.before_task_publish.connect(receiver, weak=False)
    try:
        fires = [Fire(make_job(f"job-{i}"), AT) for i in range(3)]
        assert CeleryDispatcher(app).dispatch(fires) == [None] * 3
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert seen == [f.task_id for f in fires]
