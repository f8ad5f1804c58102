"""Runs fires in this process, on an asyncio loop: coroutines on the loop, plain functions
in worker threads."""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from beatx.clock import Clock, SystemClock
from beatx.dispatch.base import lease_lost
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import Fire, resolve_func
from beatx.stores.base import JobStore

__all__ = ["AsyncioDispatcher"]

logger = logging.getLogger("beatx.dispatch.local")


class AsyncioDispatcher:
    """Executes each fire as a task on ``loop``.

    A run is recorded in the store when it is dispatched (so ``max_instances`` counts it at
    once) and when it ends, with its error if it raised. ``dispatch`` may be called from
    the loop's thread or from another one.

    :param run_timeout: seconds after which a run that never reported its end stops counting
        as in flight.
    """

    def __init__(
        self,
        store: JobStore,
        loop: asyncio.AbstractEventLoop,
        *,
        clock: Clock | None = None,
        run_timeout: float = 3600.0,
        events: EventBus | None = None,
    ) -> None:
        self.store = store
        self.loop = loop
        self.clock = clock or SystemClock()
        self.run_timeout = run_timeout
        self.events = events or EventBus()
        self._tasks: set[asyncio.Future[None]] = set()

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for index, fire in enumerate(fires):
            if guard is not None and not guard():
                results.extend(lease_lost(len(fires) - index))
                break
            try:
                self.store.run_started(
                    fire.job_id, fire.task_id, started_at=self.clock.now(), timeout=self.run_timeout
                )
                self._start(fire)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results

    def _start(self, fire: Fire) -> None:
        try:
            running_loop = asyncio.get_running_loop()
        except RuntimeError:
            running_loop = None
        if running_loop is self.loop:
            task: asyncio.Future[None] = self.loop.create_task(self._run(fire))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            future = asyncio.run_coroutine_threadsafe(self._run(fire), self.loop)
            wrapped = asyncio.wrap_future(future, loop=self.loop)
            self.loop.call_soon_threadsafe(self._track, wrapped)

    def _track(self, future: asyncio.Future[None]) -> None:
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

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
            try:
                self.store.run_finished(
                    job.id, fire.task_id, finished_at=self.clock.now(), duration=duration, error=error
                )
            except Exception:
                logger.exception("could not record the end of a run of job %s", job.id)
            if self.events.has_listeners:
                kind = EventKind.JOB_FAILED if error else EventKind.JOB_SUCCEEDED
                data: dict[str, Any] = {"duration": duration}
                if error:
                    data["error"] = error
                self.events.emit(Event(kind, self.clock.now(), job.id, fire.scheduled_at, data))

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
