"""CeleryDispatcher when a fire or the broker fails: poison fires, error replies, broker outages
and a broker that stops answering, against real servers (the shared Redis, RabbitMQ, and
private ``redis-server`` processes started, frozen and killed by the tests)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from beatx import IntervalTrigger, Job, LeaseLostError, PermanentDispatchError, TransientDispatchError
from beatx.dispatch.base import is_transient
from beatx.dispatch.celery import PIPELINE_CHUNK, CeleryDispatcher
from beatx.jobs import Fire
from tests.celery.conftest import DEFAULT_QUEUE, queued
from tests.conftest import delete_amqp_queue

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: The queue of the apps on a private redis-server (Celery's default).
DEFAULT_QUEUE_OF_PRIVATE = "celery"
#: The publish timeout of the tests that make the broker fail, and the slack they allow.
TIMEOUT = 1.0
SLACK = 2.0

both_paths = pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "send_task"])


def make_job(job_id: str, **fields: Any) -> Job:
    return Job(id=job_id, func="proj.tasks.ping", trigger=IntervalTrigger(seconds=10), **fields)


def fires_of(count: int, prefix: str = "job", **fields: Any) -> list[Fire]:
    return [Fire(make_job(f"{prefix}-{i}", **fields), AT) for i in range(count)]


def error_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "beatx.celery" and r.levelno >= logging.ERROR]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class PrivateRedis:
    """A ``redis-server`` of this test only, on a free port, that the test can freeze."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(
            [*command, "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        pytest.fail(f"the private redis-server on port {self.port} did not start")
                    time.sleep(0.05)
        finally:
            client.close()

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()  # a stopped process does not die from SIGKILL until it is continued
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


# -- poison fires ---------------------------------------------------------------------------


def poison_batch() -> tuple[list[Fire], dict[str, type[BaseException]]]:
    """Good fires with three that can never be sent between them, and what each one raises."""
    poison = {
        "bad-headers": make_job("bad-headers", options={"headers": {"x": object()}}),
        "bad-kwargs": make_job("bad-kwargs", kwargs={"when": object()}),
        "bad-option": make_job("bad-option", options={"task_id": "mine"}),  # send_task refuses it
    }
    good = [make_job(f"good-{i}") for i in range(4)]
    jobs = [
        good[0],
        poison["bad-headers"],
        good[1],
        poison["bad-kwargs"],
        good[2],
        poison["bad-option"],
        good[3],
    ]
    return [Fire(job, AT) for job in jobs], {
        "bad-headers": TypeError,
        "bad-kwargs": Exception,
        "bad-option": TypeError,
    }


def check_poison_results(
    fires: list[Fire], results: list[BaseException | None], causes: dict[str, type[BaseException]]
) -> None:
    for fire, result in zip(fires, results, strict=True):
        if fire.job_id.startswith("good"):
            assert result is None, (fire.job_id, result)
            continue
        assert isinstance(result, PermanentDispatchError), (fire.job_id, result)
        assert not is_transient(result)
        assert isinstance(result.__cause__, causes[fire.job_id])
        message = str(result)
        assert repr(fire.job_id) in message and "'proj.tasks.ping'" in message
        assert str(result.__cause__).strip() in message  # says what is wrong


@pytest.mark.redis
@both_paths
def test_poison_fires_fail_permanently_alone_and_the_producer_is_kept(
    broker: tuple[Celery, redis.Redis], caplog: pytest.LogCaptureFixture, pipeline: bool
) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app, pipeline=pipeline)
    assert dispatcher.dispatch(fires_of(1, "warm-up")) == [None]
    producer = dispatcher._producer
    fires, causes = poison_batch()
    caplog.set_level(logging.ERROR, logger="beatx.celery")

    results = dispatcher.dispatch(fires)

    check_poison_results(fires, results, causes)
    sent = [m["headers"]["beatx_job_id"] for m in queued(client, DEFAULT_QUEUE)]
    assert sent == ["warm-up-0", "good-0", "good-1", "good-2", "good-3"]
    assert dispatcher._producer is producer  # not dropped: the broker is fine
    logs = error_logs(caplog)
    assert sorted(r.getMessage().split("job=")[1].split()[0] for r in logs) == sorted(causes)  # once each
    dispatcher.close()


@pytest.mark.rabbitmq
def test_poison_fires_on_rabbitmq_fail_permanently_alone(
    rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from amqp.exceptions import FrameSyntaxError  # type: ignore[import-untyped]
    from kombu.connection import Connection

    queue = f"beatx-test-{uuid.uuid4().hex[:8]}"
    app = Celery("poison-amqp", broker=rabbitmq_url, set_as_current=False)
    app.conf.task_default_queue = queue
    dispatcher = CeleryDispatcher(app)
    try:
        assert dispatcher.dispatch(fires_of(1, "warm-up")) == [None]
        producer = dispatcher._producer
        fires, causes = poison_batch()
        caplog.set_level(logging.ERROR, logger="beatx.celery")

        results = dispatcher.dispatch(fires)

        # py-amqp cannot encode the header (its FrameSyntaxError is a "connection error"
        # class, raised before anything is written): still this fire's fault.
        check_poison_results(fires, results, {**causes, "bad-headers": FrameSyntaxError})
        assert dispatcher._producer is producer
        assert len(error_logs(caplog)) == 3
        assert dispatcher.dispatch(fires_of(1, "after")) == [None]
    finally:
        dispatcher.close()
        with Connection(rabbitmq_url) as connection:  # type: ignore[no-untyped-call]
            channel = connection.channel()
            try:
                # Publishes without confirms: the queue counts them a moment later.
                deadline = time.monotonic() + 10
                while channel.queue_declare(queue, passive=True).message_count < 6:
                    assert time.monotonic() < deadline, "the good fires never reached the queue"
                    time.sleep(0.05)
                assert channel.queue_declare(queue, passive=True).message_count == 1 + 4 + 1
            finally:
                delete_amqp_queue(rabbitmq_url, queue)


# -- error replies --------------------------------------------------------------------------


@pytest.mark.redis
@both_paths
def test_an_error_reply_fails_only_the_fires_it_carried(
    broker: tuple[Celery, redis.Redis], caplog: pytest.LogCaptureFixture, pipeline: bool
) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app, pipeline=pipeline)
    # Resolve both routes while both lists are fine, then make one of them a string: every
    # LPUSH to it gets WRONGTYPE.
    assert dispatcher.dispatch([Fire(make_job("warm-good", options={"queue": "good-q"}), AT)]) == [None]
    assert dispatcher.dispatch([Fire(make_job("warm-bad", options={"queue": "bad-q"}), AT)]) == [None]
    client.delete("good-q")
    client.set("bad-q", "not a list")
    producer = dispatcher._producer
    fires = [
        Fire(make_job(f"job-{i}", options={"queue": "bad-q" if i % 3 == 1 else "good-q"}), AT)
        for i in range(PIPELINE_CHUNK * 2 + 50)  # three pipelines, each with an error reply
    ]
    caplog.set_level(logging.ERROR, logger="beatx.celery")

    results = dispatcher.dispatch(fires)

    good = [f for f in fires if f.job.options["queue"] == "good-q"]
    for fire, result in zip(fires, results, strict=True):
        if fire.job.options["queue"] == "good-q":
            assert result is None, (fire.job_id, result)
        else:
            assert isinstance(result, TransientDispatchError), (fire.job_id, result)
            assert is_transient(result)
            # The Redis error reply, or kombu's OperationalError raised from it (send_task).
            cause = result.__cause__
            assert cause is not None
            assert isinstance(cause, redis.ResponseError) or isinstance(cause.__cause__, redis.ResponseError)
            assert "WRONGTYPE" in str(result)
    # Every fire reported sent is in its list, exactly once, and in order.
    assert [m["headers"]["id"] for m in queued(client, "good-q")] == [f.task_id for f in good]
    assert client.get("bad-q") == b"not a list"
    assert dispatcher._producer is producer
    (log,) = error_logs(caplog)
    assert f"refused {len(fires) - len(good)} fire(s)" in log.getMessage()
    assert dispatcher.sent == 2 + len(good)
    dispatcher.close()


# -- the broker fails -----------------------------------------------------------------------


@both_paths
def test_a_refused_connection_fails_the_batch_transiently_within_the_timeout(
    caplog: pytest.LogCaptureFixture, pipeline: bool
) -> None:
    app = Celery("refused", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    dispatcher = CeleryDispatcher(app, pipeline=pipeline, publish_timeout=TIMEOUT)
    fires = fires_of(5)
    caplog.set_level(logging.ERROR, logger="beatx.celery")
    for _ in range(2):  # the producer is dropped, and the next batch connects again
        started = time.monotonic()
        results = dispatcher.dispatch(fires)
        # Refusals are immediate: kombu's sleeps between connection attempts stop in time.
        assert time.monotonic() - started < TIMEOUT
        assert all(isinstance(r, TransientDispatchError) and is_transient(r) for r in results), results
        assert all(isinstance(r.__cause__, Exception) and is_transient(r.__cause__) for r in results if r)
        assert "Connection refused" in str(results[0]) or "111" in str(results[0])
        assert dispatcher._producer is None
        (log,) = error_logs(caplog)
        assert "5 fire(s) not sent" in log.getMessage()
        caplog.clear()
    dispatcher.close()


@both_paths
def test_a_broker_dying_mid_batch_fails_that_fire_and_the_rest_once(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, pipeline: bool
) -> None:
    app = Celery("dies", broker=private_redis.url, set_as_current=False)
    dispatcher = CeleryDispatcher(app, pipeline=pipeline, publish_timeout=TIMEOUT)
    assert dispatcher.dispatch(fires_of(1, "warm-up")) == [None]
    fires = fires_of(PIPELINE_CHUNK * 3)
    checks = 0

    def kill_on_second_check() -> bool:
        # The guard runs before each fire (send_task) or each pipeline (pipelined).
        nonlocal checks
        checks += 1
        if checks == 2:
            private_redis.stop()
        return True

    caplog.set_level(logging.ERROR, logger="beatx.celery")
    started = time.monotonic()
    results = dispatcher.dispatch(fires, guard=kill_on_second_check)
    assert time.monotonic() - started < TIMEOUT + SLACK

    if pipeline:
        # The replies are read at the end: the first pipeline's fires are unconfirmed.
        assert all(isinstance(r, TransientDispatchError) for r in results)
        assert "may have reached the broker" in str(results[0])
    else:
        assert results[0] is None
        assert all(isinstance(r, TransientDispatchError) for r in results[1:])
        assert checks == 2  # nothing was tried after the failure
    assert all(is_transient(r) for r in results if r is not None)
    (log,) = error_logs(caplog)
    assert f"{len(fires) - (0 if pipeline else 1)} fire(s) not sent" in log.getMessage()
    assert dispatcher._producer is None
    dispatcher.close()


@both_paths
@pytest.mark.parametrize("warm", [False, True], ids=["new", "connected"])
def test_a_frozen_broker_costs_one_publish_timeout(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, pipeline: bool, warm: bool
) -> None:
    app = Celery("frozen", broker=private_redis.url, set_as_current=False)
    dispatcher = CeleryDispatcher(app, pipeline=pipeline, publish_timeout=TIMEOUT)
    if warm:  # the connection, routes and templates exist already
        assert dispatcher.dispatch(fires_of(1, "warm-up")) == [None]
    fires = fires_of(PIPELINE_CHUNK + 20)
    caplog.set_level(logging.ERROR, logger="beatx.celery")
    private_redis.freeze()
    try:
        started = time.monotonic()
        results = dispatcher.dispatch(fires)
        elapsed = time.monotonic() - started
    finally:
        private_redis.thaw()
    assert elapsed < TIMEOUT + SLACK
    assert all(isinstance(r, TransientDispatchError) and is_transient(r) for r in results), results
    assert all(r.__cause__ is not None for r in results if r is not None)
    (log,) = error_logs(caplog)
    assert f"{len(fires)} fire(s) not sent" in log.getMessage()
    # Once the broker answers again the next batch connects again and goes out.
    assert dispatcher.dispatch(fires_of(3, "after")) == [None] * 3
    dispatcher.close()


@pytest.mark.redis
@both_paths
def test_no_message_is_written_after_the_publish_timeout(
    broker: tuple[Celery, redis.Redis], caplog: pytest.LogCaptureFixture, pipeline: bool
) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app, pipeline=pipeline, publish_timeout=1.0)
    assert dispatcher.dispatch(fires_of(1, "warm-up")) == [None]
    client.delete(DEFAULT_QUEUE)
    fires = fires_of(PIPELINE_CHUNK * 3)
    checks = 0

    def slow_guard() -> bool:  # the first check is quick, each later one takes 0.6 s
        nonlocal checks
        checks += 1
        if checks > 1:
            time.sleep(0.6)
        return True

    caplog.set_level(logging.ERROR, logger="beatx.celery")
    results = dispatcher.dispatch(fires, guard=slow_guard)

    # The guard runs before each fire (send_task) or pipeline (pipelined): the first two go
    # out (at 0 and 0.6 s), the third would start at 1.2 s, after the 1 s publish timeout.
    sent = 2 if not pipeline else PIPELINE_CHUNK * 2
    assert results[:sent] == [None] * sent
    assert all(isinstance(r, TransientDispatchError) and is_transient(r) for r in results[sent:])
    assert "publish_timeout=1s" in str(results[-1])
    assert [m["headers"]["id"] for m in queued(client, DEFAULT_QUEUE)] == [f.task_id for f in fires[:sent]]
    (log,) = error_logs(caplog)
    assert f"{len(fires) - sent} fire(s) not sent" in log.getMessage()
    dispatcher.close()


def test_an_amqp_broker_that_never_answers_costs_one_publish_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A listening socket that nobody accepts on: the kernel completes the TCP handshake and
    # py-amqp then waits for the AMQP greeting forever (without timeouts).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        app = Celery("silent", broker=f"amqp://guest:guest@127.0.0.1:{port}//", set_as_current=False)
        app.conf.broker_connection_timeout = 30
        dispatcher = CeleryDispatcher(app, publish_timeout=TIMEOUT)
        caplog.set_level(logging.ERROR, logger="beatx.celery")
        started = time.monotonic()
        results = dispatcher.dispatch(fires_of(3))
        assert time.monotonic() - started < TIMEOUT + SLACK
        dispatcher.close()
    assert all(isinstance(r, TransientDispatchError) and is_transient(r) for r in results), results
    assert len(error_logs(caplog)) == 1


def test_every_broker_wait_is_capped_at_the_publish_timeout() -> None:
    redis_app = Celery("caps", broker="redis://127.0.0.1:6379/0", set_as_current=False)
    redis_app.conf.broker_transport_options = {"socket_timeout": 60, "socket_connect_timeout": 0.25}
    connection = CeleryDispatcher(redis_app, publish_timeout=2)._new_connection()
    assert connection.transport_options["socket_timeout"] == 2
    assert connection.transport_options["socket_connect_timeout"] == 0.25  # smaller: kept
    assert connection.connect_timeout == 2
    assert redis_app.conf.broker_transport_options["socket_timeout"] == 60  # the app is untouched

    amqp_app = Celery("caps", broker="amqp://guest:guest@127.0.0.1:5672//", set_as_current=False)
    amqp_app.conf.broker_transport_options = {"connect_retries_timeout": 30}
    connection = CeleryDispatcher(amqp_app, publish_timeout=3)._new_connection()
    options = connection.transport_options
    assert options["read_timeout"] == options["write_timeout"] == options["connect_retries_timeout"] == 3
    assert connection.connect_timeout == 3


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_the_publish_timeout_must_be_a_positive_number_of_seconds(value: Any) -> None:
    app = Celery("bad", broker="redis://127.0.0.1:6379/0", set_as_current=False)
    with pytest.raises(ValueError, match="publish_timeout"):
        CeleryDispatcher(app, publish_timeout=value)


@pytest.mark.redis
def test_a_lost_lease_still_gives_lease_lost_errors(broker: tuple[Celery, redis.Redis]) -> None:
    app, client = broker
    fires = fires_of(PIPELINE_CHUNK + 10)
    mixed = [*fires[:5], Fire(make_job("countdown", options={"countdown": 60}), AT), *fires[5:]]
    checks = iter([True, False])
    results = CeleryDispatcher(app).dispatch(mixed, guard=lambda: next(checks, False))
    # The send_task fire (6th) asked the guard first (yes), the first pipeline asked next (no).
    assert results[5] is None
    assert all(isinstance(r, LeaseLostError) for i, r in enumerate(results) if i != 5)
    assert [m["headers"]["beatx_job_id"] for m in queued(client, DEFAULT_QUEUE)] == ["countdown"]


@both_paths
def test_a_broker_out_of_memory_refuses_every_fire_but_is_not_an_outage(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, pipeline: bool
) -> None:
    app = Celery("oom", broker=private_redis.url, set_as_current=False)
    dispatcher = CeleryDispatcher(app, pipeline=pipeline)
    assert dispatcher.dispatch(fires_of(1, "warm-up")) == [None]
    producer = dispatcher._producer
    admin = redis.Redis.from_url(private_redis.url)
    try:
        admin.config_set("maxmemory", 1)  # every write is refused: OOM
        caplog.set_level(logging.ERROR, logger="beatx.celery")
        # (kombu retries each refused publish of the send_task path: fewer fires there.)
        fires = fires_of(PIPELINE_CHUNK + 50 if pipeline else 30)
        results = dispatcher.dispatch(fires)
        assert all(isinstance(r, TransientDispatchError) and is_transient(r) for r in results), results[:3]
        assert all("used memory > 'maxmemory'" in str(r) for r in results)
        assert dispatcher._producer is producer  # the connection is fine: not dropped
        (log,) = error_logs(caplog)
        assert f"refused {len(fires)} fire(s)" in log.getMessage()
        admin.config_set("maxmemory", 0)
        assert dispatcher.dispatch(fires[:3]) == [None] * 3
        assert admin.llen(DEFAULT_QUEUE_OF_PRIVATE) == 1 + 3
    finally:
        admin.close()
        dispatcher.close()


@pytest.mark.redis
@both_paths
def test_an_error_from_the_guard_propagates_and_fails_no_job(
    broker: tuple[Celery, redis.Redis], pipeline: bool
) -> None:
    app, _client = broker
    dispatcher = CeleryDispatcher(app, pipeline=pipeline)
    # One fire that takes the send_task path (the guard is asked before it) on both paths.
    fires = [Fire(make_job("countdown", options={"countdown": 60}), AT), *fires_of(3)]

    def broken_guard() -> bool:
        raise RuntimeError("cannot check the lease")

    with pytest.raises(RuntimeError, match="cannot check the lease"):
        dispatcher.dispatch(fires, guard=broken_guard)
    assert dispatcher.dispatch(fires) == [None] * 4  # and the dispatcher still works
    dispatcher.close()
