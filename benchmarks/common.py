"""Shared plumbing: the benchmark Redis databases, child processes, timing and memory helpers.

Every measurement runs in a fresh child process (``python -m benchmarks.child``) so imports,
caches and resident memory never leak from one scheduler or one size into the next. The
parent holds the Redis database locks (the same ``beatx-test-lock:<db>`` keys the test suite
uses) and hands the database numbers to the children through the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
LOCK_TTL = 900
ENV_STORE_DB = "BEATX_BENCH_STORE_DB"
ENV_BROKER_DB = "BEATX_BENCH_BROKER_DB"
ENV_TMP = "BEATX_BENCH_TMP"
RESULT_MARK = "BENCH-RESULT "
#: A broker URL that replaces the Redis broker database (the ``amqp`` scenario sets an
#: ``amqp://`` one for its children), and the queue name that goes with it.
ENV_BROKER_URL = "BEATX_BENCH_BROKER_URL"
ENV_QUEUE = "BEATX_BENCH_QUEUE"
#: The Celery queue every benchmark publishes to (the default queue name, on the broker db).
QUEUE = os.environ.get(ENV_QUEUE) or "celery"
#: The task name every scheduler sends (registered by :mod:`benchmarks.tasks`).
TASK = "benchmarks.tasks.noop"
#: beatx's beat runs with the lookahead ``celery beat -S beatx`` uses by default
#: (``beatx_lookahead``), and freezes the start-up objects out of the garbage collector as it
#: does, so the benchmark measures what users get.
LOOKAHEAD = 0.05


# -- the Redis databases ------------------------------------------------------------------------


def store_db() -> int:
    return int(os.environ.get(ENV_STORE_DB, "14"))


def broker_db() -> int:
    return int(os.environ.get(ENV_BROKER_DB, "15"))


def store_url() -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{store_db()}"


def broker_url() -> str:
    return os.environ.get(ENV_BROKER_URL) or f"redis://{REDIS_HOST}:{REDIS_PORT}/{broker_db()}"


def amqp_broker() -> bool:
    """Whether the children publish to RabbitMQ (the ``amqp`` scenario) instead of Redis."""
    return broker_url().startswith("amqp")


def amqp_queue_length(url: str, queue: str) -> int:
    """Messages in the RabbitMQ queue ``queue`` (0 when it does not exist)."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(url) as connection:
        try:
            return int(connection.channel().queue_declare(queue, passive=True).message_count)
        except NotFound:
            return 0


def tmp_dir() -> Path:
    path = Path(os.environ.get(ENV_TMP) or f"/tmp/beatx-bench-{os.getpid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def redis_client(db: int) -> Any:
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=30)


def flush(*dbs: int) -> None:
    """Empty the given benchmark databases (only those: they are locked by this run)."""
    for db in dbs:
        client = redis_client(db)
        try:
            client.flushdb()
        finally:
            client.close()


class BenchDatabases:
    """Holds two locked Redis databases (store, broker) for the length of a run.

    Tries 14 and 15 first, then any other free database from 13 down to 1. The locks are
    ``SET NX EX 900`` like ``tests/conftest.py`` takes them, refreshed every minute while the
    run lasts, and released (only if still ours) at the end. Both databases are flushed at
    the start and at the end.
    """

    def __init__(self, preferred: Sequence[int] = (14, 15)) -> None:
        self.preferred = list(preferred)
        self.token = uuid.uuid4().hex
        self.dbs: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        admin = redis_client(0)
        try:
            candidates = self.preferred + [d for d in range(13, 0, -1) if d not in self.preferred]
            for db in candidates:
                if admin.set(f"beatx-test-lock:{db}", self.token, nx=True, ex=LOCK_TTL):
                    self.dbs.append(db)
                    if len(self.dbs) == 2:
                        break
        finally:
            admin.close()
        if len(self.dbs) < 2:
            self._release()
            raise RuntimeError("no two free Redis databases for the benchmarks (beatx-test-lock:* all taken)")
        flush(*self.dbs)
        os.environ[ENV_STORE_DB], os.environ[ENV_BROKER_DB] = str(self.dbs[0]), str(self.dbs[1])
        self._thread = threading.Thread(target=self._refresh, name="bench-lock-refresh", daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(60):
            admin = redis_client(0)
            try:
                for db in self.dbs:
                    key = f"beatx-test-lock:{db}"
                    if admin.get(key) == self.token.encode():
                        admin.expire(key, LOCK_TTL)
            except Exception as exc:  # a missed refresh is retried a minute later
                sys.stderr.write(f"benchmarks: could not refresh the Redis lock: {exc}\n")
            finally:
                admin.close()

    def _release(self) -> None:
        admin = redis_client(0)
        try:
            for db in self.dbs:
                key = f"beatx-test-lock:{db}"
                if admin.get(key) == self.token.encode():
                    admin.delete(key)
        finally:
            admin.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            flush(*self.dbs)
        finally:
            self._release()


# -- child processes ----------------------------------------------------------------------------


@dataclass
class ChildResult:
    ok: bool
    value: dict[str, Any]
    error: str = ""
    seconds: float = 0.0


def run_child(target: str, timeout: float, **kwargs: Any) -> ChildResult:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; return what it printed.

    The child prints one ``BENCH-RESULT {json}`` line. A child that runs past ``timeout`` is
    killed (its whole process group) and reported as an error, never waited on forever.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    argv = [sys.executable, "-m", "benchmarks.child", target, json.dumps(kwargs)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return ChildResult(False, {}, f"timeout after {timeout:.0f}s", time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_MARK):
            return ChildResult(True, json.loads(line[len(RESULT_MARK) :]), seconds=elapsed)
    tail = (err or out).strip().splitlines()[-6:]
    return ChildResult(False, {}, f"exit {proc.returncode}: " + " | ".join(tail), elapsed)


# -- measuring ------------------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident memory of this process (VmRSS), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def hwm_mb() -> float:
    """Peak resident memory of this process (VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median_time(call: Callable[[], object], *, repeat: int, warmup: int = 3, budget: float = 10.0) -> float:
    """Median seconds of ``call`` over up to ``repeat`` runs (and at most ``budget`` seconds)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return statistics.median(times)


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def queue_length(client: Any = None) -> int:
    """Messages in :data:`QUEUE` on the broker (``client``: a Redis client on the broker db)."""
    if amqp_broker():
        return amqp_queue_length(broker_url(), QUEUE)
    own = client is None
    client = client or redis_client(broker_db())
    try:
        return int(client.llen(QUEUE))
    finally:
        if own:
            client.close()


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    import logging

    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def summarize_fires(
    fires: list[tuple[str, float, float]],
    n: int,
    every: float,
    window_start: float,
    window_end: float,
) -> dict[str, Any]:
    """Lateness percentiles of the fires scheduled in ``[window_start, window_end)``, and how
    many fires were expected there (jobs × the cadence) and how many were sent."""
    late = [(pub - sched) for _, sched, pub in fires if window_start <= sched < window_end]
    expected = round(n * (window_end - window_start) / every)
    return {
        "n": n,
        "every_s": every,
        "window_s": window_end - window_start,
        "fires": len(late),
        "expected": expected,
        "p50_ms": percentile(late, 0.50) * 1000,
        "p99_ms": percentile(late, 0.99) * 1000,
        "max_ms": max(late) * 1000 if late else float("nan"),
    }
