"""Prometheus metrics for a beat, fed by its :class:`~beatx.events.EventBus`.

>>> metrics = BeatxMetrics(scheduler.events, jobs_by_status=count_jobs_cheaply)
>>> metrics.start_http_server(9808)          # http://127.0.0.1:9808/metrics

Needs ``pip install 'beatx[metrics]'``. Metric names:

============================================ ========= =====================================================
name                                         type      meaning
============================================ ========= =====================================================
``beatx_fires_dispatched_total{job}``        counter   fires handed to the dispatcher (Celery broker / loop)
``beatx_misfires_total{job}``                counter   fires dropped: later than ``misfire_grace_time``
``beatx_skipped_total{job}``                 counter   fires skipped: ``max_instances`` runs in flight
``beatx_runs_failed_total{job}``             counter   a run raised, a fire could not be sent, or a job could
                                                       not be planned (``JOB_FAILED`` events)
``beatx_dispatch_lateness_seconds``          histogram fire time minus scheduled time, 1 ms to 60 s buckets
``beatx_tick_duration_seconds``              histogram time one engine tick took
``beatx_leader``                             gauge     1 while this process holds the leader lease, else 0
``beatx_last_tick_timestamp_seconds``        gauge     Unix time of the last engine tick (alert on its age)
``beatx_jobs{status}``                       gauge     jobs per status, from the optional ``jobs_by_status``
                                                       callback (absent without it)
``beatx_alerts_raised_total{job,kind}``      counter   alerts raised (:mod:`beatx.alerts`): ``kind`` is
                                                       ``missed_heartbeat``, ``late``, ``max_runtime``,
                                                       ``failures``
``beatx_alerts_open{job,kind}``              gauge     1 while that alert is raised, 0 once resolved
============================================ ========= =====================================================

Label cardinality: the ``job`` label makes one series per job per counter. That is right for
hundreds or thousands of jobs; for a very large number of jobs pass ``per_job_labels=False``:
the label is then always empty (``job=""``), which Prometheus treats as no label, and each
counter is a single series.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from beatx.events import Event, EventBus, EventKind

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["LATENESS_BUCKETS", "TICK_BUCKETS", "BeatxMetrics"]

logger = logging.getLogger("beatx.metrics")

#: Buckets of ``beatx_dispatch_lateness_seconds``: 1 ms to 60 s.
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Buckets of ``beatx_tick_duration_seconds``: 0.5 ms to 10 s.
TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_KINDS = frozenset(
    {
        EventKind.JOB_FIRED,
        EventKind.JOB_MISSED,
        EventKind.JOB_SKIPPED,
        EventKind.JOB_FAILED,
        EventKind.TICK,
        EventKind.LEADER_ACQUIRED,
        EventKind.LEADER_LOST,
        EventKind.ALERT_RAISED,
        EventKind.ALERT_RESOLVED,
    }
)


class BeatxMetrics:
    """Prometheus collectors updated from a scheduler's events.

    :param events: the bus of the scheduler or beat to observe (``scheduler.events``).
    :param registry: where the metrics are registered; the ``prometheus_client`` default
        registry when omitted (so an existing ``/metrics`` endpoint shows them). Two
        instances need two registries.
    :param per_job_labels: label the counters with the job id (one series per job); with
        ``False`` the ``job`` label is always empty.
    :param jobs_by_status: optional callback returning ``{status: count}`` for the
        ``beatx_jobs{status}`` gauge. It is called on a scrape when the last answer is older
        than ``jobs_refresh_interval`` seconds (0: every scrape). Make it cheap: at a million
        jobs, do not read every job (``store.get_jobs()``); keep counts, or query an index.
        Without it the gauge is not exported.
    """

    def __init__(
        self,
        events: EventBus,
        *,
        registry: CollectorRegistry | None = None,
        per_job_labels: bool = True,
        jobs_by_status: Callable[[], Mapping[str, int]] | None = None,
        jobs_refresh_interval: float = 15.0,
    ) -> None:
        self.registry = REGISTRY if registry is None else registry
        self.per_job_labels = per_job_labels
        self.jobs_by_status = jobs_by_status
        self.jobs_refresh_interval = jobs_refresh_interval
        r = self.registry
        self.fires_dispatched = Counter(
            "beatx_fires_dispatched", "Fires handed to the dispatcher.", ["job"], registry=r
        )
        self.misfires = Counter(
            "beatx_misfires", "Fires dropped for being later than misfire_grace_time.", ["job"], registry=r
        )
        self.skipped = Counter(
            "beatx_skipped", "Fires skipped because max_instances runs were in flight.", ["job"], registry=r
        )
        self.runs_failed = Counter(
            "beatx_runs_failed",
            "Runs that raised, fires that could not be sent, jobs that could not be planned.",
            ["job"],
            registry=r,
        )
        self.dispatch_lateness = Histogram(
            "beatx_dispatch_lateness_seconds",
            "Seconds between a fire's scheduled time and its dispatch.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.tick_duration = Histogram(
            "beatx_tick_duration_seconds",
            "Seconds one engine tick took (with the wait for fires claimed ahead).",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.alerts_raised = Counter(
            "beatx_alerts_raised", "Alerts raised, per job and kind.", ["job", "kind"], registry=r
        )
        self.alerts_open = Gauge(
            "beatx_alerts_open", "1 while an alert is raised, per job and kind.", ["job", "kind"], registry=r
        )
        self.leader = Gauge("beatx_leader", "1 while this process holds the leader lease.", registry=r)
        self.leader.set(0)
        self.last_tick = Gauge(
            "beatx_last_tick_timestamp_seconds", "Unix time of the last engine tick.", registry=r
        )
        self._jobs_lock = threading.Lock()
        self._jobs_counts: dict[str, int] = {}
        self._jobs_read_at = float("-inf")
        self._jobs_collector: _JobsCollector | None = None
        if jobs_by_status is not None:
            self._jobs_collector = _JobsCollector(self)
            r.register(self._jobs_collector)
        self._server: WSGIServer | None = None
        self._unsubscribe: Callable[[], None] | None = events.subscribe(self.observe, kinds=_KINDS)

    # -- events --------------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Update the metrics from one event (the bus calls this)."""
        job = (event.job_id or "") if self.per_job_labels else ""
        kind = event.kind
        if kind is EventKind.JOB_FIRED:
            self.fires_dispatched.labels(job).inc()
            self.dispatch_lateness.observe(max(0.0, _number(event.data.get("lateness"))))
        elif kind is EventKind.JOB_MISSED:
            self.misfires.labels(job).inc(_count(event.data))
        elif kind is EventKind.JOB_SKIPPED:
            self.skipped.labels(job).inc(_count(event.data))
        elif kind is EventKind.JOB_FAILED:
            self.runs_failed.labels(job).inc()
        elif kind is EventKind.TICK:
            self.tick_duration.observe(max(0.0, _number(event.data.get("duration"))))
            self.last_tick.set(event.at.timestamp())
        elif kind is EventKind.ALERT_RAISED:
            alert_kind = str(event.data.get("kind", ""))
            self.alerts_raised.labels(job, alert_kind).inc()
            self.alerts_open.labels(job, alert_kind).set(1)
        elif kind is EventKind.ALERT_RESOLVED:
            self.alerts_open.labels(job, str(event.data.get("kind", ""))).set(0)
        elif kind is EventKind.LEADER_ACQUIRED:
            self.leader.set(1)
        elif kind is EventKind.LEADER_LOST:
            self.leader.set(0)

    # -- the jobs gauge ------------------------------------------------------------------------

    def job_counts(self, *, refresh: bool = False) -> dict[str, int]:
        """The last ``{status: count}`` from ``jobs_by_status``, read again when older than
        ``jobs_refresh_interval`` (or when ``refresh``). A callback that raises is logged and
        the previous counts are kept."""
        if self.jobs_by_status is None:
            return {}
        with self._jobs_lock:
            now = time.monotonic()
            if refresh or now - self._jobs_read_at >= self.jobs_refresh_interval:
                try:
                    counts = self.jobs_by_status()
                except Exception:
                    logger.exception("jobs_by_status callback failed; keeping the previous counts")
                else:
                    self._jobs_counts = {str(status): int(n) for status, n in counts.items()}
                    self._jobs_read_at = now
            return dict(self._jobs_counts)

    # -- serving -------------------------------------------------------------------------------

    def start_http_server(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` from a daemon thread. Returns the bound port (useful with 0).

        :raises OSError: if the address cannot be bound.
        """
        server, _thread = _start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop observing events, stop the HTTP server and unregister the metrics."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        collectors: Iterable[Any] = (
            self.fires_dispatched,
            self.misfires,
            self.skipped,
            self.runs_failed,
            self.alerts_raised,
            self.alerts_open,
            self.dispatch_lateness,
            self.tick_duration,
            self.leader,
            self.last_tick,
            *([self._jobs_collector] if self._jobs_collector is not None else []),
        )
        for collector in collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass


class _JobsCollector:
    """``beatx_jobs{status}``, read through :meth:`BeatxMetrics.job_counts` at scrape time."""

    def __init__(self, metrics: BeatxMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [_jobs_family()]

    def collect(self) -> Iterator[Metric]:
        family = _jobs_family()
        for status, count in sorted(self._metrics.job_counts().items()):
            family.add_metric([status], count)
        yield family


def _jobs_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("beatx_jobs", "Jobs per status.", labels=["status"])


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _count(data: Mapping[str, Any]) -> int:
    count = data.get("count", 1)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
