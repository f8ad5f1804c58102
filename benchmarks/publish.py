"""Publishing to the Redis broker, and whether an unmodified Celery worker consumes the result.

``throughput`` (a child) times, on one connection, messages per second for: ``app.send_task``
one by one; ``send_task`` inside kombu's ``Producer.batch()``; beatx's ``CeleryDispatcher``;
beatx's dispatcher without its Redis pipeline path (``pipeline=False``); and a raw pipelined
``LPUSH`` of one pre-serialised message (the ceiling).

``worker_smoke`` (a child) publishes a sample through both beatx paths, runs a stock
``celery -A benchmarks.tasks worker`` until every sampled task ran (the task counts itself in
Redis), and stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import QUEUE, ROOT, TASK, broker_db, redis_client, store_db, tmp_dir


def _fires(n: int, tag: str) -> list[Any]:
    from beatx.jobs import Fire, Job
    from beatx.triggers import IntervalTrigger

    now = datetime.now(UTC).replace(microsecond=0)
    trigger = IntervalTrigger(hours=1, start_date=now)
    return [
        Fire(Job(id=f"{tag}-{i:07d}", func=TASK, trigger=trigger, kwargs={"n": i}), now) for i in range(n)
    ]


def throughput(n: int = 5000) -> dict[str, Any]:
    from beatx.dispatch.celery import CeleryDispatcher
    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-publish")
    declare_queue(app)
    broker = redis_client(broker_db())
    results: dict[str, Any] = {}

    def timed(name: str, count: int, call: Any) -> None:
        broker.delete(QUEUE)
        started = time.perf_counter()
        call()
        elapsed = time.perf_counter() - started
        landed = int(broker.llen(QUEUE))
        results[name] = {"msgs": count, "landed": landed, "seconds": elapsed, "msg_per_s": landed / elapsed}

    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()

        def one_by_one() -> None:
            for i in range(n):
                app.send_task(TASK, kwargs={"n": i}, producer=producer)

        def batched() -> None:
            with producer.batch():
                for i in range(n):
                    app.send_task(TASK, kwargs={"n": i}, producer=producer)

        timed("send_task", n, one_by_one)
        timed("send_task, Producer.batch()", n, batched)

    dispatcher = CeleryDispatcher(app)
    dispatcher.dispatch(_fires(1, "warm"))
    fires = _fires(n, "cd")
    timed("beatx CeleryDispatcher", n, lambda: dispatcher.dispatch(fires))
    dispatcher.close()

    one_at_a_time = CeleryDispatcher(app, pipeline=False)
    one_at_a_time.dispatch(_fires(1, "warm"))
    fires = _fires(n, "st")
    timed("beatx CeleryDispatcher, send_task path", n, lambda: one_at_a_time.dispatch(fires))
    one_at_a_time.close()

    message = broker.lindex(QUEUE, 0)
    raw_n = n * 10

    def raw() -> None:
        pipe = broker.pipeline(transaction=False)
        for i in range(raw_n):
            pipe.lpush(QUEUE, message)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()

    timed("raw pipelined LPUSH", raw_n, raw)
    broker.delete(QUEUE)
    broker.close()
    return results


def worker_smoke(sample: int = 200, timeout: float = 60.0) -> dict[str, Any]:
    from beatx.dispatch.celery import CeleryDispatcher
    from benchmarks.tasks import COUNTER_KEY, declare_queue, make_app

    app = make_app("bench-smoke")
    declare_queue(app)
    broker, store = redis_client(broker_db()), redis_client(store_db())
    broker.delete(QUEUE)
    store.delete(COUNTER_KEY)
    half = sample // 2
    errors = [e for e in CeleryDispatcher(app).dispatch(_fires(half, "smoke-cd")) if e is not None]
    send_task_path = CeleryDispatcher(app, pipeline=False)
    errors += [e for e in send_task_path.dispatch(_fires(sample - half, "smoke-st")) if e]
    queued = int(broker.llen(QUEUE))
    log = tmp_dir() / "worker-smoke.log"
    env = {
        **os.environ,
        "BEATX_BENCH_WORKER": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    celery = str(ROOT / ".venv" / "bin" / "celery")
    if not os.path.exists(celery):
        celery = os.path.join(os.path.dirname(sys.executable), "celery")
    started = time.perf_counter()
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [
                celery,
                "-A",
                "benchmarks.tasks",
                "worker",
                "--pool=solo",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname=bench-smoke-{os.getpid()}@localhost",
            ],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and int(store.get(COUNTER_KEY) or 0) < sample:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    consumed = int(store.get(COUNTER_KEY) or 0)
    text = log.read_text(errors="replace")
    problems = [line for line in text.splitlines() if "ERROR" in line or "unregistered" in line.lower()]
    store.delete(COUNTER_KEY)
    broker.delete(QUEUE)
    broker.close()
    store.close()
    return {
        "sample": sample,
        "queued": queued,
        "consumed": consumed,
        "seconds": time.perf_counter() - started,
        "publish_errors": len(errors),
        "worker_errors": problems[:5],
        "ok": consumed == sample and not problems and not errors,
    }
