"""The ``celery beat`` scheduler class behind ``celery -A proj beat -S beatx``: :class:`BeatxScheduler`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from celery.beat import Scheduler

from beatx.alert_delivery import AlertDelivery
from beatx.beat import Beat
from beatx.celery.beat_schedule import _default_entries, import_beat_schedule, plan_beat_schedule
from beatx.celery.manager_cache import task_validator
from beatx.celery.settings import BeatxSettings
from beatx.dispatch.celery import DEFAULT_PUBLISH_TIMEOUT, CeleryDispatcher
from beatx.errors import BeatxError, ConfigurationError, StoreError
from beatx.manager import JobManager
from beatx.stores import open_store

if TYPE_CHECKING:
    from celery import Celery

    from beatx.metrics import BeatxMetrics
    from beatx.sharded_beat import ShardedBeat
    from beatx.stores.base import JobStore

__all__ = ["BeatxScheduler"]

logger = logging.getLogger("beatx.celery")

#: The longest wait between two tries of a store unreachable at start-up.
_MAX_START_RETRY_DELAY = 10.0


class BeatxScheduler(Scheduler):  # type: ignore[misc]
    """celery beat's scheduler, replaced by a beatx :class:`~beatx.beat.Beat`.

    Run it with ``celery -A proj beat -S beatx`` or ``beat_scheduler = "beatx"``.

    At start-up it reads :class:`BeatxSettings`, opens the store, imports
    ``app.conf.beat_schedule`` (see :func:`import_beat_schedule`) and creates the beat. Then
    celery's service loop calls :meth:`tick` forever; **beatx sleeps inside tick**: ``tick()``
    runs one ``beat.run_once()`` (renew or take the leader lease, send what is due), then
    blocks in ``beat.wait(seconds)`` until the next fire is due, the lease needs renewing, or
    the store announces a change (a job added, edited, paused from any process: with the Redis
    store this is a pub/sub message, so a new job is seen immediately), and returns ``0`` so the
    service loop does not sleep on its own. There is no fixed poll interval; one wait is capped
    at ``min(max_interval, 60)`` seconds.

    SIGTERM / SIGINT: celery's handler calls :meth:`close` (which releases the leader lease,
    so a standby beat takes over at once) and raises ``SystemExit`` in the main thread, which
    interrupts the wait; the service then closes the scheduler again, which closes the store.

    Nothing here reads or writes celery's ``celerybeat-schedule`` shelve file; ``schedule``
    is an empty dict (the jobs are in the store: use :func:`get_job_manager` to see them).
    """

    def __init__(self, app: Celery, *args: Any, lazy: bool = False, **kwargs: Any) -> None:
        # celery beat's service passes schedule_filename; there a start-up error is one log
        # line and exit status 1 (raised further, celery would log the traceback once and
        # then print it again through its stderr logger, one fragment per log line).
        self._exit_on_start_error = "schedule_filename" in kwargs
        self.store: JobStore | None = None
        self.manager: JobManager | None = None
        self.dispatcher: CeleryDispatcher | None = None
        self.beat: Beat | ShardedBeat | None = None
        self.alert_delivery: AlertDelivery | None = None
        self.metrics: BeatxMetrics | None = None
        self._in_tick = False
        self._closed = False
        #: Whether ``beat_schedule`` is in the store; False while the store is unreachable
        #: at start-up (each tick tries again, as a running beat retries its store).
        self._schedule_imported = False
        self._import_failures = 0
        self._next_import_try = 0.0
        kwargs.pop("schedule_filename", None)
        with self._start_errors():
            self.settings = BeatxSettings.from_app(app)
            super().__init__(app, *args, lazy=lazy, **kwargs)

    @contextlib.contextmanager
    def _start_errors(self) -> Iterator[None]:
        try:
            yield
        except BeatxError as exc:
            if not self._exit_on_start_error:
                raise
            logger.critical("beatx cannot start: %s", exc)
            raise SystemExit(1) from None

    def setup_schedule(self) -> None:
        settings = self.settings
        # Built first: a missing sentry-sdk is a configuration error before anything opens.
        self.alert_delivery = AlertDelivery(webhook_url=settings.alert_webhook, sentry=settings.alert_sentry)
        self.store = open_store(settings.store, key_prefix=settings.key_prefix, **settings.store_options())
        try:
            # A publish never outlasts a quarter of the lease: a frozen broker cannot keep the
            # leader busy past its lease.
            self.dispatcher = CeleryDispatcher(
                self.app, publish_timeout=min(DEFAULT_PUBLISH_TIMEOUT, float(settings.lease_timeout) / 4)
            )
            self.manager = JobManager(
                self.store,
                timezone=settings.timezone,
                job_defaults=settings.job_defaults,
                dispatcher=self.dispatcher,
                func_validator=task_validator(self.app),
            )
            # A bad entry is a configuration error now, whether the store answers or not.
            plan_beat_schedule(self._beat_schedule_entries(), timezone=settings.timezone)
            self._try_import_beat_schedule()
            beat_class: Any = Beat
            if settings.store.partition("://")[0].lower() == "redis+cluster":
                # A Redis Cluster store: one beat per shard this process leads (sharded leadership).
                from beatx.sharded_beat import ShardedBeat

                beat_class = ShardedBeat
            self.beat = beat_class(
                self.store,
                self.dispatcher,
                lease_timeout=float(settings.lease_timeout),
                max_concurrent_jobs=settings.max_concurrent_jobs,
                max_sleep=float(min(self.max_interval or 60.0, 60.0)),
                lookahead=float(settings.lookahead),
                freeze_gc=True,
                restore=self._import_beat_schedule,
                atomic_fire=settings.atomic_fire,
                log_each_fire=settings.log_each_fire,
                alert_interval=float(settings.alert_interval),
                alert_deliver=self.alert_delivery.deliver,
            )
            if settings.metrics_port is not None:
                self._serve_metrics(settings.metrics_port)
        except BaseException:
            self.store.close()
            self.store = None
            raise
        logger.info(
            "beatx scheduler ready store=%s prefix=%s owner=%s",
            settings.redacted_store(),
            settings.key_prefix,
            self.beat.owner,
        )

    def _beat_schedule_entries(self) -> dict[str, Any]:
        return {**_default_entries(self.app), **dict(self.app.conf.beat_schedule or {})}

    def _try_import_beat_schedule(self) -> float:
        """Import ``beat_schedule`` if the store answers. Returns 0, or the seconds to wait
        before the next try (the store is unreachable: one log line, not a start-up failure)."""
        assert self.store is not None
        try:
            # A plain read first: an unreachable store is reported as such, not as a failure
            # of the first entry (often celery.backend_cleanup, which the user never wrote).
            self.store.next_run_time()
        except StoreError as exc:
            self._import_failures += 1
            delay = float(min(2 ** (self._import_failures - 1), _MAX_START_RETRY_DELAY))
            self._next_import_try = time.monotonic() + delay
            logger.error(
                "store unreachable at start-up, retrying in %gs (beat_schedule is imported once it "
                "answers): %s",
                delay,
                exc,
            )
            return delay
        self._import_beat_schedule()
        self._schedule_imported = True
        if self._import_failures:
            logger.info("store reachable again after %d attempt(s)", self._import_failures + 1)
        return 0.0

    def _import_beat_schedule(self) -> str:
        """Import ``beat_schedule`` (at start-up, and again after the store lost its data)."""
        assert self.manager is not None
        entries = self._beat_schedule_entries()
        imported = import_beat_schedule(self.manager, entries, timezone=self.settings.timezone)
        return f"re-imported {len(imported)} beat_schedule entries ({', '.join(imported) or 'none'})"

    def _serve_metrics(self, port: int) -> None:
        try:
            from beatx.metrics import BeatxMetrics
        except ImportError as exc:
            raise ConfigurationError(
                "beatx_metrics_port needs prometheus-client: pip install 'beatx[metrics]'"
            ) from exc
        assert self.beat is not None
        self.metrics = BeatxMetrics(self.beat.events)
        try:
            self.metrics.start_http_server(port)
        except OSError as exc:
            raise ConfigurationError(f"beatx_metrics_port: cannot listen on 127.0.0.1:{port}: {exc}") from exc
        logger.info("beatx metrics on http://127.0.0.1:%d/metrics", port)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Run the beat once, then sleep until the next fire or a change; always returns 0."""
        if self.beat is None:
            with self._start_errors():
                self.setup_schedule()
        beat = self.beat
        assert beat is not None
        self._in_tick = True
        try:
            if not self._schedule_imported:
                pause = self._next_import_try - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # SIGTERM's SystemExit interrupts it
                    return 0
                with self._start_errors():
                    self._try_import_beat_schedule()
                if not self._schedule_imported:
                    return 0
            try:
                seconds = beat.run_once()
            except Exception:
                logger.exception("beat tick failed; trying again in 1s")
                seconds = 1.0
            beat.wait(seconds)
        finally:
            self._in_tick = False
        return 0

    @property
    def schedule(self) -> dict[str, Any]:
        return {}

    @schedule.setter
    def schedule(self, value: Any) -> None:
        pass

    def sync(self) -> None:
        """Nothing to sync: every change is written to the store as it happens."""

    def should_sync(self) -> bool:
        return False

    def close(self) -> None:
        """Release the leader lease; outside a tick also close the producer and the store."""
        if self.beat is not None and not self._closed:
            self._closed = True
            try:
                self.beat.close()
            except Exception:
                logger.exception("could not release the leader lease")
        if not self._in_tick:
            # Inside a tick (a signal handler interrupting the wait) the store may hold a
            # lock of the interrupted call; the service closes us again after unwinding.
            if self.dispatcher is not None:
                self.dispatcher.close()
                self.dispatcher = None
            if self.alert_delivery is not None:
                self.alert_delivery.close()
            if self.metrics is not None:
                self.metrics.close()
                self.metrics = None
            if self.store is not None:
                try:
                    self.store.close()
                except Exception:
                    logger.exception("could not close the store")
                self.store = None
        super().close()

    @property
    def info(self) -> str:
        # celery prints "maxinterval" above: beatx wakes on store changes and due fires, and
        # uses max_interval only as a cap on one wait (60 s at most).
        cap = min(float(self.max_interval or 60.0), 60.0)
        return (
            f"    . beatx store -> {self.settings.redacted_store()} (prefix {self.settings.key_prefix!r})\n"
            f"    . beatx wakes on due fires and store changes; one wait lasts {cap:g}s at most"
        )
