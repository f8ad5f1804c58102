"""Fixtures that run real ``celery worker`` and ``celery beat`` subprocesses.

Every process is started with a bounded readiness wait and is stopped at teardown (SIGTERM,
then SIGKILL after a timeout), also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import delete_amqp_queue

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


class CeleryProcess:
    """One ``celery -A tests.e2e.proj <command>`` subprocess, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: str, timeout: float = 20.0) -> CeleryProcess:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [CELERY, "-A", "tests.e2e.proj", *self.argv],
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.wait_for_log(ready, timeout)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, text: str, timeout: float, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output().count(text) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: {text!r} not logged within {timeout}s:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the process group. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        # Children (prefork) of a worker killed hard must not linger.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return proc.returncode


def worker_argv(name: str, concurrency: int) -> list[str]:
    """``celery worker`` arguments of a test worker: threads, no gossip, mingle or heartbeat."""
    return [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname={name}-{uuid.uuid4().hex[:6]}@localhost",
    ]


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    processes: Sequence[CeleryProcess],
    step: float = 0.05,
) -> Any:
    """The first truthy ``condition()`` within ``timeout`` s; otherwise an AssertionError with
    the tail of each process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in processes)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")


class CeleryCluster:
    """The env of one test (broker, store, queue, record list) and its processes."""

    def __init__(self, env: dict[str, str], logs: Path, record_url: str, record_key: str) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[CeleryProcess] = []
        self.records_client = redis.Redis.from_url(record_url)
        self.record_key = record_key

    def worker(self, concurrency: int = 8) -> CeleryProcess:
        name = f"worker-{len(self.processes)}"
        process = CeleryProcess(name, worker_argv(name, concurrency), self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        return process.start("ready.")

    def beat(self) -> CeleryProcess:
        name = f"beat-{len(self.processes)}"
        process = CeleryProcess(
            name,
            ["beat", "-S", "beatx", "--loglevel=INFO", f"--schedule={self.logs / 'unused-schedule'}"],
            self.env,
            self.logs / f"{name}.log",
        )
        self.processes.append(process)
        return process.start("leader lease acquired")

    def app(self) -> Any:
        from tests.e2e.proj import make_app

        return make_app(self.env)

    def records(self, tag: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(raw) for raw in self.records_client.lrange(self.record_key, 0, -1)]
        return [row for row in rows if tag is None or row["tag"] == tag]

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        return wait_for(condition, timeout, what, self.processes)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.records_client.close()


def make_cluster(tmp_path: Path, broker: str, store: str, key_prefix: str, **extra: str) -> CeleryCluster:
    queue = f"beatx-e2e-{uuid.uuid4().hex[:8]}"
    record_key = f"{key_prefix}records"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "BEATX_TEST_BROKER": broker,
        "BEATX_TEST_STORE": store,
        "BEATX_TEST_PREFIX": key_prefix,
        "BEATX_TEST_QUEUE": queue,
        "BEATX_TEST_RECORD_URL": store,
        "BEATX_TEST_RECORD_KEY": record_key,
        **extra,
    }
    return CeleryCluster(env, tmp_path, store, record_key)


@pytest.fixture
def cluster_factory(
    tmp_path: Path, key_prefix: str, redis_url: str
) -> Iterator[Callable[..., CeleryCluster]]:
    # Takes redis_url (the store and record database of every cluster) so the processes stop
    # before that database is emptied: a key written after it would be left behind.
    clusters: list[CeleryCluster] = []

    def factory(broker: str, store: str, **extra: str) -> CeleryCluster:
        cluster = make_cluster(tmp_path, broker, store, key_prefix, **extra)
        clusters.append(cluster)
        return cluster

    try:
        yield factory
    finally:
        for cluster in clusters:
            cluster.stop_all()
        for cluster in clusters:  # the test's queue on RabbitMQ is durable: it would outlive the test
            if cluster.env["BEATX_TEST_BROKER"].startswith("amqp"):
                delete_amqp_queue(cluster.env["BEATX_TEST_BROKER"], cluster.env["BEATX_TEST_QUEUE"])


@pytest.fixture
def cluster(cluster_factory: Callable[..., CeleryCluster], redis_url: str) -> CeleryCluster:
    """A Redis broker + Redis store on the test's own Redis database."""
    return cluster_factory(redis_url, redis_url)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
