"""Helpers of the high-availability tests: real ``celery -A tests.ha.proj worker|beat``
subprocesses (built on the e2e fixtures' :class:`CeleryProcess`), a store handle and the
records of the ``ha.record`` task.

Every process is started with a bounded readiness wait and stopped at teardown (SIGTERM, then
SIGKILL of its process group), also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from beatx.stores.redis import RedisStore
from tests.e2e.conftest import CELERY, ROOT, CeleryProcess, make_cluster, wait_for, worker_argv

APP = "tests.ha.proj"
#: Logged by every beat once its store is open (leader or standby).
BEAT_READY = "beatx scheduler ready"
#: Logged by the worker when it starts consuming.
WORKER_READY = "ready."


class HAProcess(CeleryProcess):
    """A ``celery -A tests.ha.proj ...`` subprocess; ``spawn`` does not wait for readiness."""

    started_at: float = 0.0

    def spawn(self) -> HAProcess:
        handle = self.log.open("ab")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [CELERY, "-A", APP, *self.argv],
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return self

    def start(self, ready: str, timeout: float = 20.0) -> HAProcess:
        self.spawn()
        self.wait_for_log(ready, timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(5)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def output_since(self, offset: int) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> int | None:
        # A stopped (SIGSTOP) process never handles SIGTERM: continue it first.
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return super().stop(timeout)


class HACluster:
    """One test's broker / store / queue / record list and its processes."""

    def __init__(self, tmp_path: Path, redis_url: str, key_prefix: str, **extra: str) -> None:
        base = make_cluster(tmp_path, redis_url, redis_url, key_prefix, **extra)
        self.env = base.env
        base.records_client.close()
        self.logs = tmp_path
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.queue = self.env["BEATX_TEST_QUEUE"]
        self.record_key = self.env["BEATX_TEST_RECORD_KEY"]
        self.client = redis.Redis.from_url(redis_url)
        self.store = RedisStore(redis_url, key_prefix=key_prefix)
        self.processes: list[HAProcess] = []
        self._beats = 0

    def _process(self, name: str, argv: list[str]) -> HAProcess:
        process = HAProcess(name, argv, self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        return process

    def worker(self, concurrency: int = 16) -> HAProcess:
        name = f"worker-{len(self.processes)}"
        return self._process(name, worker_argv(name, concurrency)).start(WORKER_READY, timeout=30)

    def spawn_beat(self) -> HAProcess:
        self._beats += 1
        name = f"beat-{self._beats}"
        return self._process(
            name,
            ["beat", "-S", "beatx", "--loglevel=INFO", f"--schedule={self.logs / 'unused-schedule'}"],
        ).spawn()

    def beats(self, count: int, *, together: bool = False, timeout: float = 30.0) -> list[HAProcess]:
        """Start ``count`` beats and wait until each has opened the store: one after the other,
        or all at once (``together``)."""
        started: list[HAProcess] = []
        for _ in range(count):
            started.append(self.spawn_beat())
            if not together:
                started[-1].wait_for_log(BEAT_READY, timeout)
        for process in started:
            process.wait_for_log(BEAT_READY, timeout)
        return started

    def app(self) -> Any:
        from tests.ha.proj import make_app

        return make_app(self.env)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(self.record_key, 0, -1)]

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery of a fire at the worker, duplicates (dropped by the guard) included."""
        return [json.loads(raw) for raw in self.client.lrange(self.record_key + "deliveries", 0, -1)]

    def record_count(self) -> int:
        return int(self.client.llen(self.record_key))

    def queue_length(self) -> int:
        return int(self.client.llen(self.queue))

    def leader_pid(self) -> int | None:
        lease = self.store.get_lease()
        if lease is None or lease.expires_at <= datetime.now(UTC):
            return None
        return owner_pid(lease.owner)

    def by_pid(self, pid: int | None) -> HAProcess | None:
        return next((p for p in self.processes if p.proc is not None and p.proc.pid == pid), None)

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
        return wait_for(condition, timeout, what, self.processes, step)

    def drain(self, timeout: float = 20.0, quiet: float = 1.5) -> None:
        """Wait (bounded) until the queue is empty and no record arrived for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = self.record_count()
            if count != last or self.queue_length():
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError(f"the queue did not drain within {timeout}s (length {self.queue_length()})")

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {process.name}: {exc!r}")
        self.store.close()
        self.client.close()


@pytest.fixture
def ha_cluster_factory(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[Callable[..., HACluster]]:
    clusters: list[HACluster] = []

    def factory(**extra: str) -> HACluster:
        cluster = HACluster(tmp_path, redis_url, key_prefix, **extra)
        clusters.append(cluster)
        return cluster

    try:
        yield factory
    finally:
        for cluster in clusters:
            cluster.stop_all()


def owner_pid(owner: str) -> int | None:
    """The pid in a lease owner token ``host:pid:random`` (a beat adds ``:term`` after it)."""
    host = socket.gethostname()
    rest = owner[len(host) + 1 :] if owner.startswith(host + ":") else owner.partition(":")[2]
    head = rest.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def origin_pid(origin: str | None) -> int | None:
    """The pid in a Celery ``origin`` header (``gen<pid>@host``)."""
    if not origin or not origin.startswith("gen"):
        return None
    try:
        return int(origin[3:].partition("@")[0])
    except ValueError:
        return None
