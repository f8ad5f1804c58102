"""Runs fires in this process, on an asyncio loop: coroutines on the loop, plain functions
in worker threads."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from beatx.clock import Clock, SystemClock
from beatx.dispatch.base import lease_lost
from beatx.errors import PermanentDispatchError
from beatx.events import Event, EventBus, EventKind
from beatx.failure_pause import pause_if_failing
from beatx.jobs import Fire, module_allowed, resolve_func
from beatx.stores.base import JobStore

__all__ = ["AsyncioDispatcher"]

logger = logging.getLogger("beatx.dispatch.local")


class AsyncioDispatcher:
    """Executes each fire as a task on ``loop``.

    A run is recorded in the store when it is dispatched (so ``max_instances`` counts it at
    once) and when it ends, with its error if it raised. ``dispatch`` may be called from
    the loop's thread or from another one.

    The store is never called on the loop's thread, where a store that blocks (the Django
    ORM, Redis) would hold up every run, or refuses to work (Django raises
    ``SynchronousOnlyOperation`` in async code). The end of a run is recorded on
    ``store_executor``. ``dispatch`` records the start on the thread that calls it (the
    beat's), or, called on the loop's thread, on ``store_executor``, waiting for it: work on
    that executor must never wait for the loop.

    :param run_timeout: seconds after which a run that never reported its end stops counting
        as in flight.
    :param store_executor: where the store calls made from the loop run. Omitted: a thread of
        the dispatcher's own. One thread keeps a store with per-thread connections (the Django
        ORM) on one connection; :class:`beatx.Scheduler` passes the thread its beat ticks on.
    :param allowed_modules: for jobs read from a store others write to (a database): the
        modules (and their submodules) whose ``module:function`` references may run here. A
        fire naming any other is refused (:class:`~beatx.PermanentDispatchError`: the job
        turns FAILED with the reason) and never imported. None: any module.
    """

    def __init__(
        self,
        store: JobStore,
        loop: asyncio.AbstractEventLoop,
        *,
        clock: Clock | None = None,
        run_timeout: float = 3600.0,
        events: EventBus | None = None,
        store_executor: Executor | None = None,
        allowed_modules: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.allowed_modules = None if allowed_modules is None else tuple(allowed_modules)
        self.loop = loop
        self.clock = clock or SystemClock()
        self.run_timeout = run_timeout
        self.events = events or EventBus()
        self.store_executor: Executor = store_executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="beatx-run-state"
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        on_loop = self._on_loop()
        results: list[BaseException | None] = []
        for index, fire in enumerate(fires):
            if guard is not None and not guard():
                results.extend(lease_lost(len(fires) - index))
                break
            refused = self._refused(fire)
            if refused is not None:
                results.append(refused)
                continue
            try:
                self._record_start(fire, on_loop)
                if on_loop:
                    self._spawn(fire)
                else:
                    # The task is created by the loop before it runs anything this thread
                    # schedules later (the end of the tick that called dispatch).
                    self.loop.call_soon_threadsafe(self._spawn, fire)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results

    def _refused(self, fire: Fire) -> PermanentDispatchError | None:
        """Why ``fire`` may not run in this process: a reference outside ``allowed_modules``."""
        func = fire.job.func
        if self.allowed_modules is None or callable(func) or module_allowed(str(func), self.allowed_modules):
            return None
        allowed = ", ".join(self.allowed_modules) or "none"
        return PermanentDispatchError(
            f"job {fire.job_id!r}: {func!r} is not in a module this scheduler may run "
            f"(allowed modules: {allowed}); it was not imported"
        )

    def _record_start(self, fire: Fire, on_loop: bool) -> None:
        record = functools.partial(
            self.store.run_started,
            fire.job_id,
            fire.task_id,
            started_at=self.clock.now(),
            timeout=self.run_timeout,
        )
        if on_loop:
            # A fire sent from the loop (run_job_now in a coroutine): the loop waits for this
            # one store call, as for any synchronous management call made there.
            self.store_executor.submit(record).result()
        else:
            record()

    def _spawn(self, fire: Fire) -> None:
        task = self.loop.create_task(self._run(fire))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> int:
        """Runs started by this dispatcher and not finished."""
        return sum(1 for task in self._tasks if not task.done())

    async def _run(self, fire: Fire) -> None:
        job = fire.job
        started = self.clock.monotonic()
        error: str | None = None
        try:
            func: Any = job.func if callable(job.func) else resolve_func(job.func)
            if inspect.iscoroutinefunction(func):
                await func(*job.args, **job.kwargs)
            else:
                result = await asyncio.to_thread(func, *job.args, **job.kwargs)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:
            error = "CancelledError: the run was cancelled at shutdown"
            raise
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            logger.exception(
                "run failed job=%s scheduled_at=%s error=%s", job.id, fire.scheduled_at.isoformat(), error
            )
        finally:
            duration = self.clock.monotonic() - started
            record = functools.partial(
                self._record_end,
                job.id,
                fire.task_id,
                finished_at=self.clock.now(),
                duration=duration,
                error=error,
            )
            try:
                # Shielded: a second cancellation (shutdown) must not lose the record.
                await asyncio.shield(self.loop.run_in_executor(self.store_executor, record))
            except Exception:
                logger.exception("could not record the end of a run of job %s", job.id)
            if self.events.has_listeners:
                kind = EventKind.JOB_FAILED if error else EventKind.JOB_SUCCEEDED
                data: dict[str, Any] = {"duration": duration}
                if error:
                    data["error"] = error
                self.events.emit(Event(kind, self.clock.now(), job.id, fire.scheduled_at, data))

    def _record_end(
        self, job_id: str, task_id: str, *, finished_at: datetime, duration: float, error: str | None
    ) -> None:
        """Record a run's end; after a failure, pause the job if ``pause_after_failures``
        says so (:mod:`beatx.failure_pause`)."""
        self.store.run_finished(job_id, task_id, finished_at=finished_at, duration=duration, error=error)
        if error is not None:
            try:
                pause_if_failing(self.store, job_id, clock=self.clock)
            except Exception:
                logger.exception("could not check pause_after_failures of job %s", job_id)

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for every run in flight to end. Returns False if ``timeout`` passed first."""
        pending = [task for task in self._tasks if not task.done()]
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
