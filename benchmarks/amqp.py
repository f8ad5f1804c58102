"""RabbitMQ: a burst of fires due at once, every one confirmed by the broker, beside the raw
publishing ceiling measured in the same run.

The ``amqp`` scenario (:func:`scenario`) points every child at RabbitMQ (``amqp://`` on
loopback, a queue of the run's own, deleted at the end) through
:data:`benchmarks.common.ENV_BROKER_URL`, then, ``repeats`` times in turn:

- ``raw``: a plain py-amqp ``basic_publish`` loop of one message (the message beatx builds
  for the burst's first fire), no publisher confirms: the ceiling;
- ``confirmed``: the same message through beatx's own framing and confirms
  (:class:`beatx.dispatch.amqp.ConfirmedChannel`, batches of ``CONFIRM_BATCH``), with no store
  or engine work: the broker's ceiling with publisher confirms;
- beatx's burst (:func:`benchmarks.beatx_side.burst`): the real Beat loop on the Redis store,
  the AMQP path of ``CeleryDispatcher`` (batches, publisher confirms, a fire counted only once
  confirmed);

and once each: beatx's ``send_task`` path, celery beat's default scheduler and RedBeat on the
same broker, the same burst size, cut at ``peer_cap`` seconds (their rate is what they sent
by then).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import ENV_BROKER_URL, ENV_QUEUE, QUEUE, TASK, amqp_queue_length, broker_url

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"

Log = Callable[[str], None]
Child = Callable[..., dict[str, Any]]


def _purge(url: str, queue: str) -> None:
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(url) as connection:
        try:
            connection.channel().queue_purge(queue)
        except NotFound:
            pass


def _delete(url: str, queue: str) -> None:
    from kombu import Connection

    with Connection(url) as connection:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)


def _first_fire_message() -> tuple[Any, Any, Any]:
    """A dispatcher on the run's broker, the AMQP template of the burst's first job, and the
    message beatx builds for its first fire."""
    from beatx.dispatch.celery import CeleryDispatcher
    from beatx.jobs import Fire, Job
    from beatx.triggers import IntervalTrigger
    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-amqp-raw")
    declare_queue(app)
    dispatcher = CeleryDispatcher(app)
    now = datetime.now(UTC)
    job = Job(id="job-0000000", func=TASK, trigger=IntervalTrigger(hours=1, start_date=now), kwargs={"n": 0})
    template = dispatcher._amqp_template(dispatcher._get_producer().channel, job)
    assert template is not None, "no AMQP template for the benchmark task"
    message, _ = dispatcher._amqp_message(Fire(job, now), template, {})
    return dispatcher, template, message


def _landed(n: int) -> int:
    """The queue's length once it holds ``n`` messages (or after 30 s)."""
    deadline = time.monotonic() + 30
    while (landed := amqp_queue_length(broker_url(), QUEUE)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return landed


def raw(n: int) -> dict[str, Any]:
    """``n`` plain ``basic_publish`` calls of one message on one py-amqp channel, without
    confirms (a child). The message is the one beatx publishes for the burst's first fire."""
    dispatcher, template, message = _first_fire_message()
    publish = dispatcher._get_producer().channel.basic_publish
    exchange, routing_key = template.exchange, template.routing_key
    started = time.perf_counter()
    for _ in range(n):
        publish(message, exchange, routing_key)
    elapsed = time.perf_counter() - started
    dispatcher.close()
    landed = _landed(n)
    return {"msgs": n, "landed": landed, "seconds": elapsed, "msg_per_s": n / elapsed if elapsed else 0.0}


def confirmed(n: int) -> dict[str, Any]:
    """``n`` copies of the same message through beatx's framing in confirm mode (a child):
    written ``CONFIRM_BATCH`` at a time, then every confirm awaited, as the AMQP path of
    ``CeleryDispatcher`` does, without the store, the engine or per-fire values."""
    from beatx.dispatch.amqp import ConfirmedChannel
    from beatx.dispatch.celery import CONFIRM_BATCH

    dispatcher, template, message = _first_fire_message()
    channel = ConfirmedChannel(dispatcher._get_producer().connection.channel())
    started = time.perf_counter()
    cpu_started = time.process_time()
    for index in range(n):
        channel.add(index, f"confirmed-{index}", template, message)
        if (index + 1) % CONFIRM_BATCH == 0:
            channel.flush()
            channel.poll()
    channel.flush()
    channel.wait(60)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    acked = sum(1 for reason in channel.settled.values() if reason is None)
    dispatcher.close()
    landed = _landed(n)
    return {
        "msgs": n,
        "acked": acked,
        "landed": landed,
        "seconds": elapsed,
        "cpu_s": cpu,
        "msg_per_s": acked / elapsed if elapsed else 0.0,
    }


def scenario(
    child: Child,
    log: Log,
    *,
    n_due: int,
    repeats: int,
    time_cap: float,
    peer_cap: float,
    peers: dict[str, str],
) -> dict[str, Any]:
    """See the module docstring. ``child(log, target, timeout, **kwargs)`` runs one child."""
    queue = f"beatx-bench-amqp-{uuid.uuid4().hex[:8]}"
    saved = {key: os.environ.get(key) for key in (ENV_BROKER_URL, ENV_QUEUE)}
    os.environ[ENV_BROKER_URL], os.environ[ENV_QUEUE] = RABBITMQ_URL, queue
    out: dict[str, Any] = {"n_due": n_due, "queue": queue, "raw": [], "confirmed": [], "beatx": []}
    try:
        try:
            _purge(RABBITMQ_URL, queue)
        except Exception as exc:  # no server: the other scenarios still run
            log(f"  RabbitMQ unavailable: {exc}")
            return {"error": f"RabbitMQ unavailable: {exc}"}
        timeout = time_cap + 120
        for _ in range(repeats):
            _purge(RABBITMQ_URL, queue)
            out["raw"].append(child(log, "benchmarks.amqp:raw", 120, n=n_due))
            _purge(RABBITMQ_URL, queue)
            out["confirmed"].append(child(log, "benchmarks.amqp:confirmed", 120, n=n_due))
            _purge(RABBITMQ_URL, queue)
            out["beatx"].append(
                child(
                    log,
                    "benchmarks.beatx_side:burst",
                    timeout,
                    n_due=n_due,
                    n_total=n_due,
                    dispatcher="celery",
                    time_cap=time_cap,
                )
            )
        _purge(RABBITMQ_URL, queue)
        out["beatx, send_task path"] = child(
            log,
            "benchmarks.beatx_side:burst",
            peer_cap + 120,
            n_due=n_due,
            n_total=n_due,
            dispatcher="send_task",
            time_cap=peer_cap,
        )
        for name, module in peers.items():
            _purge(RABBITMQ_URL, queue)
            out[name] = child(
                log, f"{module}:burst", peer_cap + 180, n_due=n_due, n_total=n_due, time_cap=peer_cap
            )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            _delete(RABBITMQ_URL, queue)
        except Exception as exc:
            log(f"  could not delete the RabbitMQ queue {queue}: {exc}")
    return out
