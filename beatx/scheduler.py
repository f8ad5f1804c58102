"""The in-process scheduler: jobs run on this process's asyncio loop.

>>> scheduler = Scheduler()
>>> @scheduler.interval(minutes=5)
... async def check_updates() -> None: ...
>>> async with scheduler:
...     await asyncio.sleep(3600)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from beatx.alert_delivery import AlertDelivery
from beatx.beat import Beat
from beatx.clock import Clock
from beatx.config import SchedulerConfig
from beatx.dispatch.local import AsyncioDispatcher
from beatx.errors import BeatxError, ConfigurationError
from beatx.events import EventBus
from beatx.jobs import JobFunc, func_ref, module_allowed, resolve_func
from beatx.manager import JobManager
from beatx.stores import open_store
from beatx.stores.base import JobStore
from beatx.stores.memory import MemoryStore
from beatx.triggers import CronTrigger, IntervalTrigger

__all__ = ["Scheduler"]

logger = logging.getLogger("beatx.scheduler")

F = TypeVar("F", bound=Callable[..., Any])

#: How often the loop looks at a shared store when it cannot be woken by it directly.
_SHARED_STORE_POLL = 1.0

R = TypeVar("R")


def release_thread_resources() -> None:
    """Close what store calls opened on this thread and would keep open after it: Django's
    database connections are per thread. Run on the scheduler's store thread as it retires."""
    if "django.db" not in sys.modules:
        return
    from django.conf import settings
    from django.db import connections

    try:
        if settings.configured:
            connections.close_all()
    except Exception as exc:
        logger.warning("could not close the store thread's database connections: %s", exc)


def check_local_func(func: JobFunc, allowed_modules: Sequence[str] | None = None) -> None:
    """Refuse a func this process cannot call, or (with ``allowed_modules``) may not."""
    if not callable(func) and not (isinstance(func, str) and ":" in func):
        raise ConfigurationError(
            f"func {func!r}: the in-process scheduler needs a callable or a 'package.module:callable' reference"
        )
    if allowed_modules is not None and not module_allowed(func_ref(func), allowed_modules):
        raise ConfigurationError(
            f"func {func_ref(func)!r}: jobs kept in the database may run functions of the modules "
            f'of BEATX["ALLOWED_CALLABLE_MODULES"] only (now: {", ".join(allowed_modules) or "none"})'
        )
    if isinstance(func, str):
        resolve_func(func)


def database_allowed_modules(store: JobStore) -> tuple[str, ...] | None:
    """The modules whose functions jobs read from ``store`` may run in this process: for the
    Django store, ``BEATX["ALLOWED_CALLABLE_MODULES"]`` (anyone with the admin's change
    permission writes those rows, and must not be able to name ``os:system``); None (any)
    for the others, whose jobs only code writes."""
    if type(store).__module__ != "django_beatx.store":
        return None
    from django_beatx.conf import allowed_callable_modules

    return allowed_callable_modules()


class Scheduler(JobManager):
    """Runs jobs in this process on asyncio: coroutine functions on the loop, plain functions
    in worker threads.

    Management methods (``add_job``, ``pause_job``...) are synchronous and may be called
    before :meth:`start`, from the loop, or from other threads; they call the store on the
    caller's thread (with a store that blocks, the Django ORM or Redis, call them from
    synchronous code or through ``asyncio.to_thread``).

    ``run_job_now`` called on the running event loop does not wait for the scheduler's own
    claim on the job (it holds a fire back for a run in flight, and only the loop ends that):
    it raises :class:`~beatx.errors.JobClaimedError` at once; from another thread (or
    ``asyncio.to_thread``) it waits as on any store.

    While started, the scheduler itself never calls the store on the event loop: its ticks,
    and the start and end of each run, go to one dedicated thread (``beatx-store``), one call
    at a time. A store whose connections are per thread (the Django ORM) thus uses a single
    connection for the scheduler, closed when :meth:`shutdown` retires the thread.

    :param config: timezone, policy defaults, backend; :class:`SchedulerConfig` defaults if omitted.
    :param store: overrides the backend named by ``config``.
    """

    def __init__(
        self,
        config: SchedulerConfig | None = None,
        store: JobStore | None = None,
        *,
        clock: Clock | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.config = config or SchedulerConfig()
        if store is None:
            store = open_store(self.config.store_url, key_prefix=self.config.key_prefix, clock=clock)
        super().__init__(
            store,
            timezone=self.config.timezone,
            job_defaults=self.config.job_defaults,
            clock=clock,
            events=events,
            func_validator=functools.partial(
                check_local_func, allowed_modules=database_allowed_modules(store)
            ),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._starting = False
        self._stopping = False
        self._store_thread: ThreadPoolExecutor | None = None
        self._local: AsyncioDispatcher | None = None
        self._beat: Beat | None = None
        #: Posts the alerts of the jobs' rules to ``config.alert_webhook`` (a daemon thread).
        self._alert_delivery = AlertDelivery(webhook_url=self.config.alert_webhook)
        for calendar in self.config.calendars:
            try:
                self.add_calendar(calendar, replace_existing=True)
            except BeatxError as exc:
                raise ConfigurationError(f"calendar {calendar.name!r}: {exc}") from exc
        with self.changes_through("yaml"):
            for spec in self.config.jobs:
                try:
                    self.ensure_job(spec.func, spec.trigger, id=spec.id, **spec.options, **spec.trigger_args)
                except BeatxError as exc:
                    raise ConfigurationError(f"job {spec.id!r}: {exc}") from exc

    @classmethod
    def from_yaml(
        cls, path: str | Path, *, store: JobStore | None = None, clock: Clock | None = None
    ) -> Scheduler:
        """A scheduler configured by a YAML file, with the file's jobs added.

        :raises ConfigurationError: naming the file, the job and the field at fault.
        """
        return cls(SchedulerConfig.from_yaml(path), store=store, clock=clock)

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def _manual_claim_wait(self) -> float:
        """``run_job_now`` called on this scheduler's own loop does not wait for a claim: the
        loop is what would end it (its tick), so waiting there could only time out."""
        try:
            on_loop = self._loop is not None and asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop runs in this thread
            on_loop = False
        return 0.0 if on_loop else super()._manual_claim_wait()

    @property
    def beat(self) -> Beat | None:
        """The beat of a started scheduler (lease, last tick, totals)."""
        return self._beat

    async def start(self) -> None:
        """Start firing jobs on the running loop. Does nothing if ``enabled`` is false."""
        if self.running or self._starting:
            return
        if not self.config.enabled:
            logger.info("scheduler disabled by configuration; not starting")
            return
        loop = asyncio.get_running_loop()
        store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beatx-store")
        self._starting = True
        try:
            # Also fails fast, here, on a store that cannot be reached.
            counts = await loop.run_in_executor(store_thread, self.store.count_jobs_by_status)
        except BaseException:
            store_thread.submit(release_thread_resources)
            store_thread.shutdown(wait=False)
            raise
        finally:
            self._starting = False
        self._loop, self._store_thread, self._stopping = loop, store_thread, False
        self._wake = asyncio.Event()
        self._local = AsyncioDispatcher(
            self.store,
            loop,
            clock=self.clock,
            events=self.events,
            store_executor=store_thread,
            allowed_modules=database_allowed_modules(self.store),
        )
        self.dispatcher = self._local
        self._beat = Beat(
            self.store,
            self._local,
            clock=self.clock,
            events=self.events,
            lease_timeout=self.config.lease_timeout,
            max_concurrent_jobs=self.config.max_concurrent_jobs,
            log_each_fire=self.config.log_each_fire,
            alert_interval=self.config.alert_interval,
            alert_deliver=self._alert_delivery.deliver,
        )
        self._loop_task = loop.create_task(self._run(self._beat, self._wake), name="beatx-scheduler")
        logger.info("scheduler started with %d job(s)", sum(counts.values()))

    async def _in_store_thread(self, func: Callable[[], R]) -> R:
        """Call ``func`` (which calls the store) on the store thread and wait for it. The call
        runs to its end even if the caller is cancelled, so no store call is cut off."""
        assert self._store_thread is not None
        future = asyncio.get_running_loop().run_in_executor(self._store_thread, func)
        return await asyncio.shield(future)

    async def _run(self, beat: Beat, wake: asyncio.Event) -> None:
        shared = not isinstance(self.store, MemoryStore)
        while not self._stopping:
            wake.clear()
            try:
                sleep = await self._in_store_thread(beat.run_once)
            except Exception:
                logger.exception("scheduler tick failed; retrying in 1s")
                sleep = 1.0
            if shared:
                sleep = min(sleep, _SHARED_STORE_POLL)
            if sleep > 0 and not self._stopping:
                # Not asyncio.wait_for: on Python 3.11 it returns the wake-up instead of
                # raising a cancellation that arrives in the same loop iteration.
                try:
                    async with asyncio.timeout(sleep):
                        await wake.wait()
                except TimeoutError:
                    pass

    def _changed(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    async def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop firing. With ``wait`` the runs in flight finish first (up to ``timeout``
        seconds, then they are cancelled); without it they are cancelled at once.

        A tick under way ends first (a tick is never cut off halfway); then the jobs claimed
        ahead and the leader lease are given back and the store thread closes its connections
        and ends. Cancelling the caller cancels the runs in flight and the loop at once.
        """
        task, self._loop_task = self._loop_task, None
        if task is None:
            return
        store_thread, local, beat = self._store_thread, self._local, self._beat
        assert store_thread is not None and local is not None and beat is not None
        self._stopping = True
        try:
            if self._wake is not None:
                self._wake.set()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                logger.error("the scheduler loop failed", exc_info=task.exception())
            if not wait or not await local.wait_idle(timeout):
                local.cancel_all()
                await local.wait_idle(5)
            await self._in_store_thread(beat.close)
            await self._in_store_thread(release_thread_resources)
        except BaseException:
            task.cancel()
            local.cancel_all()
            store_thread.submit(release_thread_resources)
            raise
        finally:
            self._store_thread = None
            self.dispatcher = None
            store_thread.shutdown(wait=False)
        logger.info("scheduler stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    # -- decorators ----------------------------------------------------------------------------

    def interval(
        self,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
        *,
        start_now: bool = True,
        **job_fields: Any,
    ) -> Callable[[F], F]:
        """Decorate a function to run every so often: ``@scheduler.interval(minutes=5)``.

        The job id defaults to the function's ``module:qualname``, so a restart with a
        persistent store finds the same job and keeps its run state.
        """
        trigger = IntervalTrigger(
            seconds=seconds, minutes=minutes, hours=hours, days=days, weeks=weeks, start_now=start_now
        )

        def register(func: F) -> F:
            self._register(func, trigger, job_fields)
            return func

        return register

    def cron(self, expression: str, *, timezone: str | None = None, **job_fields: Any) -> Callable[[F], F]:
        """Decorate a function to run on a cron schedule: ``@scheduler.cron("0 3 * * *")``."""
        trigger = CronTrigger(expression, timezone=timezone)

        def register(func: F) -> F:
            self._register(func, trigger, job_fields)
            return func

        return register

    def _register(
        self, func: Callable[..., Any], trigger: IntervalTrigger | CronTrigger, fields: dict[str, Any]
    ) -> None:
        job_id = fields.pop("id", None)
        if job_id is None:
            try:
                job_id = func_ref(func)
            except BeatxError:
                self.add_job(func, trigger, **fields)
                return
        self.ensure_job(func, trigger, id=job_id, **fields)
