"""Alerts end to end (issue 19): real ``celery beat -S beatx`` processes and a real worker, a
local HTTP server as the webhook (``beatx_alert_webhook``).

- a run longer than its job's ``max_runtime`` raises ``max_runtime`` (and resolves it when
  the run ends);
- a job stopped by killing every beat (SIGKILL, leader and standby) raises
  ``missed_heartbeat`` within ``expect_every`` + one check interval of the next beat taking the
  lease, and resolves it once that beat's catch-up fire goes out.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from beatx.celery import get_job_manager
from beatx.triggers import DateTimeTrigger, IntervalTrigger
from tests.e2e.conftest import CeleryCluster, CeleryProcess

pytestmark = [pytest.mark.slow, pytest.mark.redis]

EXPECT_EVERY = 3.0
CHECK_INTERVAL = 1.0


class Webhook:
    """A local HTTP server that keeps every POSTed alert with the time it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.received.append((time.monotonic(), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def alerts(self, job_id: str, kind: str, state: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        return [
            (at, body)
            for at, body in list(self.received)
            if body["job_id"] == job_id and body["kind"] == kind and (state is None or body["state"] == state)
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def _kill(process: CeleryProcess) -> int:
    assert process.proc is not None and process.proc.poll() is None
    os.killpg(process.proc.pid, signal.SIGKILL)
    return process.proc.wait(10)


def test_a_long_run_and_a_heartbeat_missed_while_every_beat_was_dead_reach_the_webhook(
    cluster_factory: Callable[..., CeleryCluster], redis_url: str, webhook: Webhook
) -> None:
    cluster = cluster_factory(
        redis_url,
        redis_url,
        BEATX_TEST_ALERT_WEBHOOK=webhook.url,
        BEATX_TEST_ALERT_INTERVAL=str(CHECK_INTERVAL),
        BEATX_TEST_LEASE_TIMEOUT="3",
    )
    cluster.worker(concurrency=4)
    leader = cluster.beat()
    standby = CeleryProcess(
        "beat-standby",
        ["beat", "-S", "beatx", "--loglevel=INFO", f"--schedule={cluster.logs / 'unused-schedule-2'}"],
        cluster.env,
        cluster.logs / "beat-standby.log",
    )
    cluster.processes.append(standby)
    standby.start("standing by")
    manager = get_job_manager(cluster.app())
    manager.add_job("e2e.record", IntervalTrigger(seconds=1), id="hb", args=["hb"], expect_every=EXPECT_EVERY)
    started = time.monotonic()
    manager.add_job(
        "e2e.record",
        DateTimeTrigger(datetime.now(UTC) + timedelta(seconds=1)),
        id="long",
        args=["long"],
        kwargs={"sleep": 6.0},
        max_runtime=2.0,
    )

    # max_runtime: the run starts about 1 s in and is still running 2 s later.
    cluster.wait_for(lambda: webhook.alerts("long", "max_runtime", "raised"), 15, "max_runtime raised")
    ((raised_at, raised),) = webhook.alerts("long", "max_runtime", "raised")
    assert raised["details"]["max_runtime"] == 2.0 and raised["details"]["running_for"] > 2.0
    (long_run,) = cluster.records("long")
    assert raised_at - started < 1.0 + 2.0 + CHECK_INTERVAL + 2.0  # fire, max_runtime, a check, slack
    cluster.wait_for(lambda: webhook.alerts("long", "max_runtime", "resolved"), 15, "max_runtime resolved")
    assert len(cluster.records("hb")) >= 5
    assert webhook.alerts("hb", "missed_heartbeat") == []  # it fired every second so far

    # Every beat killed: the job stops firing.
    assert _kill(leader) == -signal.SIGKILL
    assert _kill(standby) == -signal.SIGKILL
    killed = time.monotonic()
    fired_before = len(cluster.records("hb"))
    time.sleep(EXPECT_EVERY + 2.0)
    assert len(cluster.records("hb")) == fired_before  # nothing fired while no beat ran
    assert webhook.alerts("hb", "missed_heartbeat") == []  # and nobody was there to notice

    spawned = time.monotonic()
    cluster.beat()  # returns once it took the lease
    leading = time.monotonic()
    cluster.wait_for(
        lambda: webhook.alerts("hb", "missed_heartbeat", "raised"),
        EXPECT_EVERY + CHECK_INTERVAL + 2,
        "heartbeat",
    )
    ((heartbeat_at, heartbeat),) = webhook.alerts("hb", "missed_heartbeat", "raised")
    assert spawned < heartbeat_at <= leading + EXPECT_EVERY + CHECK_INTERVAL
    assert heartbeat["details"]["silent_for"] > EXPECT_EVERY
    assert heartbeat_at - killed > EXPECT_EVERY
    # The new leader's catch-up fire ends the episode: resolved once, and fires go on.
    cluster.wait_for(lambda: webhook.alerts("hb", "missed_heartbeat", "resolved"), 10, "heartbeat resolved")
    cluster.wait_for(lambda: len(cluster.records("hb")) >= fired_before + 3, 10, "hb fires again")
    time.sleep(CHECK_INTERVAL * 2)
    kinds = sorted((b["job_id"], b["kind"], b["state"]) for _, b in webhook.received)
    assert kinds == [
        ("hb", "missed_heartbeat", "raised"),
        ("hb", "missed_heartbeat", "resolved"),
        ("long", "max_runtime", "raised"),
        ("long", "max_runtime", "resolved"),
    ]
    assert long_run["tag"] == "long"
