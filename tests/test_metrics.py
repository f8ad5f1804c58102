"""Prometheus metrics: BeatxMetrics fed by an EventBus, and `beatx run --metrics-port`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from beatx.events import Event, EventBus, EventKind
from beatx.metrics import LATENESS_BUCKETS, BeatxMetrics

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def emit(bus: EventBus, kind: EventKind, job_id: str | None = None, **data: object) -> None:
    bus.emit(Event(kind, T0, job_id, T0, dict(data)))


def test_counters_histograms_and_leader_follow_events() -> None:
    bus, registry = EventBus(), CollectorRegistry()
    metrics = BeatxMetrics(bus, registry=registry)
    assert sample(registry, "beatx_leader") == 0
    emit(bus, EventKind.LEADER_ACQUIRED)
    assert sample(registry, "beatx_leader") == 1
    emit(bus, EventKind.JOB_FIRED, "a", task_id="t1", lateness=0.004)
    emit(bus, EventKind.JOB_FIRED, "a", task_id="t2", lateness=2.0)
    emit(bus, EventKind.JOB_FIRED, "b", task_id="t3", lateness=0.0)
    emit(bus, EventKind.JOB_MISSED, "a", count=3)
    emit(bus, EventKind.JOB_SKIPPED, "b", count=2)
    emit(bus, EventKind.JOB_FAILED, "b", error="RuntimeError('x')")
    emit(bus, EventKind.TICK, duration=0.002, due=1, fired=1)
    emit(bus, EventKind.JOB_ADDED, "c")  # not counted anywhere, and harmless
    assert sample(registry, "beatx_fires_dispatched_total", job="a") == 2
    assert sample(registry, "beatx_fires_dispatched_total", job="b") == 1
    assert sample(registry, "beatx_misfires_total", job="a") == 3
    assert sample(registry, "beatx_skipped_total", job="b") == 2
    assert sample(registry, "beatx_runs_failed_total", job="b") == 1
    assert sample(registry, "beatx_dispatch_lateness_seconds_count") == 3
    assert sample(registry, "beatx_dispatch_lateness_seconds_bucket", le="0.005") == 2
    assert sample(registry, "beatx_dispatch_lateness_seconds_bucket", le="2.5") == 3
    assert sample(registry, "beatx_tick_duration_seconds_count") == 1
    assert sample(registry, "beatx_last_tick_timestamp_seconds") == T0.timestamp()
    emit(bus, EventKind.LEADER_LOST)
    assert sample(registry, "beatx_leader") == 0
    assert sample(registry, "beatx_jobs", status="active") is None  # no callback, no gauge
    metrics.close()
    emit(bus, EventKind.JOB_FIRED, "a", lateness=0.1)
    assert not bus.has_listeners
    assert sample(registry, "beatx_fires_dispatched_total", job="a") is None  # unregistered


def test_lateness_buckets_span_1ms_to_60s() -> None:
    assert LATENESS_BUCKETS[0] == 0.001 and LATENESS_BUCKETS[-1] == 60.0
    assert list(LATENESS_BUCKETS) == sorted(LATENESS_BUCKETS)


def test_without_per_job_labels_counters_are_one_series() -> None:
    bus, registry = EventBus(), CollectorRegistry()
    BeatxMetrics(bus, registry=registry, per_job_labels=False)
    for job in ("a", "b", "c"):
        emit(bus, EventKind.JOB_FIRED, job, lateness=0.01)
    assert sample(registry, "beatx_fires_dispatched_total", job="") == 3
    assert sample(registry, "beatx_fires_dispatched_total", job="a") is None


def test_jobs_gauge_reads_the_callback_at_most_every_refresh_interval() -> None:
    calls: list[int] = []
    counts = {"active": 5, "paused": 1}

    def jobs_by_status() -> dict[str, int]:
        calls.append(1)
        return counts

    bus, registry = EventBus(), CollectorRegistry()
    metrics = BeatxMetrics(bus, registry=registry, jobs_by_status=jobs_by_status, jobs_refresh_interval=60)
    assert calls == []  # registering does not call it
    assert sample(registry, "beatx_jobs", status="active") == 5
    counts = {"active": 4, "paused": 2}
    assert sample(registry, "beatx_jobs", status="paused") == 1  # cached
    assert len(calls) == 1
    assert metrics.job_counts(refresh=True) == {"active": 4, "paused": 2}
    assert sample(registry, "beatx_jobs", status="paused") == 2


def test_a_failing_jobs_callback_keeps_the_last_counts() -> None:
    answers: list[dict[str, int] | Exception] = [{"active": 2}, RuntimeError("store down")]

    def jobs_by_status() -> dict[str, int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    registry = CollectorRegistry()
    BeatxMetrics(EventBus(), registry=registry, jobs_by_status=jobs_by_status, jobs_refresh_interval=0)
    assert sample(registry, "beatx_jobs", status="active") == 2
    assert sample(registry, "beatx_jobs", status="active") == 2


def test_http_server_serves_the_registry_on_loopback() -> None:
    bus, registry = EventBus(), CollectorRegistry()
    metrics = BeatxMetrics(bus, registry=registry)
    port = metrics.start_http_server(0)
    try:
        emit(bus, EventKind.JOB_FIRED, "a", lateness=0.01)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'beatx_fires_dispatched_total{job="a"} 1.0' in body
    finally:
        metrics.close()


# -- `beatx run --metrics-port` ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


def _scrape_when_up(
    port: int, proc: subprocess.Popen[str], timeout: float = 15
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            values = _scrape(port)
            if values.get(("beatx_leader", ())) == 1:
                return values
        except OSError:
            pass
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the metrics endpoint never showed a leader"
        time.sleep(0.1)


def test_beatx_run_exports_metrics(tmp_path: Path) -> None:
    (tmp_path / "metrics_test_jobs.py").write_text("def noop():\n    pass\n")
    config = tmp_path / "beatx.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            scheduler:
              backend: memory
              jobs:
                - id: fast
                  func: "metrics_test_jobs:noop"
                  trigger: interval
                  seconds: 0.2
            """
        )
    )
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "beatx.cli", "run", "--config", str(config), "--metrics-port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _scrape_when_up(port, proc)
        time.sleep(1.5)
        second = _scrape(port)
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    fired = ("beatx_fires_dispatched_total", (("job", "fast"),))
    assert second[fired] > first.get(fired, 0.0)
    assert second[("beatx_leader", ())] == 1
    assert second[("beatx_dispatch_lateness_seconds_count", ())] > 0
    assert second[("beatx_tick_duration_seconds_count", ())] > 0
    assert second[("beatx_jobs", (("status", "active"),))] == 1


def test_beatx_run_refuses_a_busy_metrics_port(tmp_path: Path) -> None:
    config = tmp_path / "beatx.yaml"
    config.write_text("scheduler:\n  backend: memory\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "beatx.cli", "run", "--config", str(config), "--metrics-port", str(port)],
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("kind", [EventKind.JOB_MISSED, EventKind.JOB_SKIPPED])
def test_missing_count_counts_one(kind: EventKind) -> None:
    bus, registry = EventBus(), CollectorRegistry()
    BeatxMetrics(bus, registry=registry)
    emit(bus, kind, "a")
    name = "beatx_misfires_total" if kind is EventKind.JOB_MISSED else "beatx_skipped_total"
    assert sample(registry, name, job="a") == 1
