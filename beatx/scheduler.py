"""The in-process scheduler: jobs run on this process's asyncio loop.

>>> scheduler = Scheduler()
>>> @scheduler.interval(minutes=5)
... async def check_updates() -> None: ...
>>> async with scheduler:
...     await asyncio.sleep(3600)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from beatx.beat import Beat
from beatx.clock import Clock
from beatx.config import SchedulerConfig
from beatx.dispatch.local import AsyncioDispatcher
from beatx.errors import BeatxError, ConfigurationError
from beatx.events import EventBus
from beatx.jobs import JobFunc, func_ref, resolve_func
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


def check_local_func(func: JobFunc) -> None:
    """Refuse a func this process cannot call."""
    if callable(func):
        return
    if isinstance(func, str) and ":" in func:
        resolve_func(func)
        return
    raise ConfigurationError(
        f"func {func!r}: the in-process scheduler needs a callable or a 'package.module:callable' reference"
    )


class Scheduler(JobManager):
    """Runs jobs in this process on asyncio: coroutine functions on the loop, plain functions
    in worker threads.

    Management methods (``add_job``, ``pause_job``...) are synchronous and may be called
    before :meth:`start`, from the loop, or from other threads.

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
            func_validator=check_local_func,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._local: AsyncioDispatcher | None = None
        self._beat: Beat | None = None
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

    @property
    def beat(self) -> Beat | None:
        """The beat of a started scheduler (lease, last tick, totals)."""
        return self._beat

    async def start(self) -> None:
        """Start firing jobs on the running loop. Does nothing if ``enabled`` is false."""
        if self.running:
            return
        if not self.config.enabled:
            logger.info("scheduler disabled by configuration; not starting")
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._local = AsyncioDispatcher(self.store, self._loop, clock=self.clock, events=self.events)
        self.dispatcher = self._local
        self._beat = Beat(
            self.store,
            self._local,
            clock=self.clock,
            events=self.events,
            lease_timeout=self.config.lease_timeout,
            max_concurrent_jobs=self.config.max_concurrent_jobs,
        )
        job_count = len(self.store.get_jobs())
        self._loop_task = self._loop.create_task(self._run(), name="beatx-scheduler")
        logger.info("scheduler started with %d job(s)", job_count)

    async def _run(self) -> None:
        assert self._beat is not None and self._wake is not None
        shared = not isinstance(self.store, MemoryStore)
        while True:
            self._wake.clear()
            try:
                if shared:
                    sleep = min(await asyncio.to_thread(self._beat.run_once), _SHARED_STORE_POLL)
                else:
                    sleep = self._beat.run_once()
            except Exception:
                logger.exception("scheduler tick failed; retrying in 1s")
                sleep = 1.0
            if sleep > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), sleep)
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
            loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop firing. With ``wait`` the runs in flight finish first (up to ``timeout``
        seconds, then they are cancelled); without it they are cancelled at once."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._local is not None and (not wait or not await self._local.wait_idle(timeout)):
            self._local.cancel_all()
            await self._local.wait_idle(5)
        if self._beat is not None:
            await asyncio.to_thread(self._beat.close)
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
