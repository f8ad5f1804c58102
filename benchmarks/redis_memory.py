"""Redis bytes per job: beatx beside RedBeat, on one private Redis server, in one run.

The ``redis-memory`` scenario (:func:`scenario`) starts a private ``redis-server`` on a free
loopback port (no persistence, in the run's temp dir, stopped by its pid at the end) and
stores ``n`` jobs (10,000) three ways, each in a database of its own, reading the server's
``used_memory`` before and after:

- **beatx, job alone**: ``RedisStore.add_jobs`` of ``n`` jobs
  (``Job(func="tasks.add", trigger=IntervalTrigger(seconds=60), args=(1, 2))``, next run
  set as the manager sets it);
- **beatx, job + audit entry**: ``JobManager(store).add_job(...)`` of the same jobs, the
  path ``get_scheduler().add_job`` takes: the job and its "added" audit entry;
- **RedBeat**: ``RedBeatSchedulerEntry(name, "tasks.add", schedule(60 s), args=(1, 2)).save()``.

Reported per way: ``(used_memory after - before) / n`` in bytes. The same ids
(``job-0000000`` ...) are used by all three. The Lua scripts of each way are loaded before
its first reading (one job stored in a scratch database), so they are not counted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Log = Callable[[str], None]

#: The figures of the three ways, in the order the table prints them.
WAYS = ("beatx, job alone", "beatx, job + audit entry", "RedBeat")
#: The task every job names.
FUNC = "tasks.add"
#: Databases of the private server: one per way, and a scratch one for the warm-up.
_DBS = {"beatx, job alone": 1, "beatx, job + audit entry": 2, "RedBeat": 3}
_SCRATCH_DB = 9


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(directory: Path) -> Iterator[int]:
    """A ``redis-server`` of its own on a free loopback port, without persistence; yields the
    port and stops the server (by its pid) on the way out."""
    import redis

    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--databases",
            "16",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start") from None
                time.sleep(0.02)
        client.close()
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def used_memory(port: int) -> int:
    """The server's ``used_memory`` (bytes), read once its allocator has settled."""
    import redis

    client = redis.Redis(port=port)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def job_id(i: int) -> str:
    return f"job-{i:07d}"


def _beatx_jobs(ids: range) -> list[Any]:
    from beatx.jobs import Job
    from beatx.triggers import IntervalTrigger

    first = datetime.now(UTC) + timedelta(seconds=60)
    return [
        Job(id=job_id(i), func=FUNC, trigger=IntervalTrigger(seconds=60), args=(1, 2), next_run_time=first)
        for i in ids
    ]


def beatx_alone(port: int, n: int) -> int:
    """Bytes ``n`` jobs added with ``RedisStore.add_jobs`` cost."""
    from beatx.stores.redis import RedisStore

    warm = RedisStore(f"redis://127.0.0.1:{port}/{_SCRATCH_DB}", key_prefix="warm-alone:")
    warm.add_jobs(_beatx_jobs(range(1)))
    warm.close()
    store = RedisStore(f"redis://127.0.0.1:{port}/{_DBS[WAYS[0]]}")
    jobs = _beatx_jobs(range(n))
    store.count_jobs()  # its connection is open before the first reading
    before = used_memory(port)
    store.add_jobs(jobs)
    after = used_memory(port)
    store.close()
    return after - before


def beatx_managed(port: int, n: int) -> int:
    """Bytes ``n`` jobs added with ``JobManager.add_job`` (job + audit entry) cost."""
    from beatx.manager import JobManager
    from beatx.stores.redis import RedisStore
    from beatx.triggers import IntervalTrigger

    warm = RedisStore(f"redis://127.0.0.1:{port}/{_SCRATCH_DB}", key_prefix="warm-managed:")
    JobManager(warm).add_job(FUNC, IntervalTrigger(seconds=60), id=job_id(0), args=(1, 2))
    warm.close()
    store = RedisStore(f"redis://127.0.0.1:{port}/{_DBS[WAYS[1]]}")
    manager = JobManager(store)
    store.count_jobs()
    before = used_memory(port)
    for i in range(n):
        manager.add_job(FUNC, IntervalTrigger(seconds=60), id=job_id(i), args=(1, 2))
    after = used_memory(port)
    store.close()
    return after - before


def redbeat(port: int, n: int) -> int:
    """Bytes ``n`` RedBeat entries (``RedBeatSchedulerEntry.save()``) cost."""
    from celery import Celery
    from celery.schedules import schedule
    from redbeat import RedBeatSchedulerEntry
    from redbeat.schedulers import get_redis

    def app_on(db: int) -> Celery:
        app = Celery("bench-redis-memory", set_as_current=False)
        app.conf.redbeat_redis_url = f"redis://127.0.0.1:{port}/{db}"
        app.conf.redbeat_key_prefix = "redbeat:"
        return app

    def entry(app: Celery, i: int) -> Any:
        every = schedule(timedelta(seconds=60), app=app)
        return RedBeatSchedulerEntry(job_id(i), FUNC, every, args=(1, 2), app=app)

    warm = app_on(_SCRATCH_DB)
    entry(warm, 0).save()
    app = app_on(_DBS[WAYS[2]])
    entries = [entry(app, i) for i in range(n)]
    get_redis(app).ping()
    before = used_memory(port)
    for item in entries:
        item.save()
    after = used_memory(port)
    return after - before


def measure(port: int, n: int) -> dict[str, Any]:
    """Bytes per job of each way (one child process, the server given)."""
    import redis

    client = redis.Redis(port=port)
    info = client.info("server")
    config = client.config_get("hash-max-*-value")
    client.close()
    totals = {
        WAYS[0]: beatx_alone(port, n),
        WAYS[1]: beatx_managed(port, n),
        WAYS[2]: redbeat(port, n),
    }
    encoding = redis.Redis(port=port, db=_DBS[WAYS[0]]).object("encoding", f"beatx:job:{job_id(0)}")
    return {
        "n": n,
        "redis_server": info.get("redis_version", "?"),
        "hash_max_value": next(iter(config.values()), "?"),
        "job_hash_encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
        "bytes_per_job": {way: total / n for way, total in totals.items()},
    }


def scenario(child: Callable[..., dict[str, Any]], log: Log, *, n: int, directory: Path) -> dict[str, Any]:
    """Start the private server, measure the three ways in a child process, stop it."""
    try:
        with private_redis(directory) as port:
            log(f"  private redis-server on 127.0.0.1:{port}")
            return child(log, "benchmarks.redis_memory:measure", 300, port=port, n=n)
    except RuntimeError as exc:
        log(f"  {exc}")
        return {"error": str(exc)}


def report_table(res: dict[str, Any]) -> str:
    """The scenario's Markdown table (:func:`benchmarks.report.render`)."""
    from benchmarks.report import table

    if "error" in res:
        return f"not run: {res['error']}"
    per = res["bytes_per_job"]
    rows = [[way, f"{per[way]:,.0f}", f"×{per[way] / per['RedBeat']:.2f}"] for way in WAYS]
    return (
        table(["way", "Redis bytes per job", "÷ RedBeat"], rows)
        + f"\n\n{res['n']:,} jobs each, Redis {res['redis_server']} (hash-max-listpack-value "
        f"{res['hash_max_value']}); a beatx job hash is a {res['job_hash_encoding']}."
    )


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) of the scenario, for the targets table."""
    if not res or "error" in res:
        return []
    per = res["bytes_per_job"]
    alone, managed, peer = per[WAYS[0]], per[WAYS[1]], per[WAYS[2]]
    return [
        (
            "Redis bytes per job <= RedBeat's",
            f"{alone:,.0f} B (with its audit entry {managed:,.0f} B) vs RedBeat {peer:,.0f} B",
            max(alone, managed) <= peer,
        )
    ]
