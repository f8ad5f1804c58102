"""beatx in the benchmarks: the Redis store, the real Beat loop and the Celery dispatcher.

Every function here runs inside a measurement child (see :mod:`benchmarks.child`).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    LOOKAHEAD,
    QUEUE,
    TASK,
    broker_db,
    hwm_mb,
    median_time,
    queue_length,
    redis_client,
    rss_mb,
    store_url,
    summarize_fires,
    tmp_dir,
)

if TYPE_CHECKING:
    from beatx.beat import Beat

PREFIX = "beatx-bench:"
#: A fixed far-future instant the burst jobs are due at (driven by a shifted clock).
BURST_AT = datetime(2030, 1, 1, tzinfo=UTC)


class ShiftedClock:
    """The real clock moved by ``shift`` (the engine never reads the time itself)."""

    def __init__(self, shift: timedelta) -> None:
        self.shift = shift

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def monotonic(self) -> float:
        return time.monotonic()


def _store(clock: Any = None) -> Any:
    from beatx.stores.redis import RedisStore

    return RedisStore(store_url(), key_prefix=PREFIX, clock=clock)


def _jobs(
    start: int, stop: int, *, first: datetime, spread: float, every: float, **extra: Any
) -> Iterator[Any]:
    from beatx.jobs import Job
    from beatx.triggers import IntervalTrigger

    trigger = IntervalTrigger(seconds=every, start_date=first)
    for n in range(start, stop):
        yield Job(
            id=f"job-{n:07d}",
            func=TASK,
            trigger=trigger,
            kwargs={"n": n},
            next_run_time=first + timedelta(seconds=spread * n) if spread else first,
            **extra,
        )


def _dispatcher(kind: str = "celery") -> Any:
    from benchmarks.tasks import declare_queue, make_app

    app = make_app("bench-beatx")
    declare_queue(app)
    from beatx.dispatch.celery import CeleryDispatcher

    # "send_task": the dispatcher without its Redis pipeline path, one send_task per fire.
    # ("publish": the pipelined path, but the beat publishes, then writes back: see burst.)
    return CeleryDispatcher(app, pipeline=kind != "send_task")


def bench_beat(
    store: Any, dispatcher: Any, clock: Any = None, *, atomic_fire: bool = True, log_each_fire: bool = False
) -> Beat:
    """A beat as ``celery beat -S beatx`` builds it: its default lookahead, the start-up
    objects frozen out of the garbage collector, and the atomic fire when broker and store
    share the Redis server (they do here)."""
    from beatx.beat import Beat

    return Beat(
        store,
        dispatcher,
        clock=clock,
        lookahead=LOOKAHEAD,
        freeze_gc=True,
        atomic_fire=atomic_fire,
        log_each_fire=log_each_fire,
    )


def warm_up(dispatcher: Any) -> None:
    """Open the dispatcher's broker connection with one throw-away message (a beat that has
    fired before has it open; the first connection is not what an edit scenario measures)."""
    from beatx.jobs import Fire, Job
    from beatx.triggers import IntervalTrigger

    now = datetime.now(UTC)
    job = Job(id="warm-up", func=TASK, trigger=IntervalTrigger(hours=1, start_date=now))
    dispatcher.dispatch([Fire(job, now)])


class Recorder:
    """Wraps a dispatcher and notes, per fire, the wall time at which its publish returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fires: list[tuple[str, float, float]] = []  # job id, scheduled epoch, published epoch
        self.calls = 0
        self.errors = 0
        self.first_error: str | None = None
        send = getattr(inner, "_send", None)
        self.per_message = send is not None
        if send is not None:

            def timed_send(producer: Any, fire: Any, *rest: Any) -> None:
                send(producer, fire, *rest)
                self.fires.append((fire.job.id, fire.scheduled_at.timestamp(), time.time()))

            inner._send = timed_send
        from beatx.dispatch.celery import CeleryDispatcher

        confirm = getattr(inner, "_confirm", None) if isinstance(inner, CeleryDispatcher) else None
        self._batch: Sequence[Any] = ()
        if confirm is not None:
            # CeleryDispatcher's Redis path sends pipelines and reads their replies at the end
            # of a batch: a fire counts as published when its pipeline's reply is read.
            def timed_confirm(connection: Any, unconfirmed: Any, results: Any, *rest: Any) -> None:
                indices = [i for _, carried in unconfirmed for i in carried]
                confirm(connection, unconfirmed, results, *rest)
                if indices and self._batch:
                    now = time.time()
                    self.fires += [
                        (self._batch[i].job.id, self._batch[i].scheduled_at.timestamp(), now)
                        for i in indices
                        if results[i] is None
                    ]

            inner._confirm = timed_confirm

    # The atomic fire: the beat asks the dispatcher for the messages and the store pushes them
    # in its write-back (see watch_atomic_releases), when the wrapped dispatcher can build them.
    def broker_server(self) -> str | None:
        server = getattr(self.inner, "broker_server", None)
        return server() if server is not None else None

    def render(self, fires: Sequence[Any]) -> Sequence[Any]:
        return self.inner.render(fires)  # type: ignore[no-any-return]

    def watch_atomic_releases(self, store: Any) -> None:
        """Count a fire as published when the store's write-back that pushed its message
        returned (the atomic fire: no dispatch call for it)."""
        release = store.release_jobs

        def timed_release(releases: Sequence[Any], **kwargs: Any) -> None:
            release(releases, **kwargs)
            now = time.time()
            self.fires += [(r.job_id, at.timestamp(), now) for r in releases if r.messages for at in r.fired]

        store.release_jobs = timed_release

    def dispatch(self, fires: Sequence[Any], *, guard: Any = None) -> Sequence[BaseException | None]:
        self.calls += 1
        self._batch = fires
        results = self.inner.dispatch(fires, guard=guard)
        failed = [r for r in results if r is not None]
        self.errors += len(failed)
        if failed and self.first_error is None:
            self.first_error = repr(failed[0])
        if not self.per_message:
            now = time.time()
            self.fires += [(f.job.id, f.scheduled_at.timestamp(), now) for f in fires]
        return results


# -- loading --------------------------------------------------------------------------------------


def load(n: int, every: float = 3600.0, batch_size: int = 1000) -> dict[str, Any]:
    """Store ``n`` interval jobs, none due for an hour (the idle state of a beat)."""
    store = _store()
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    started = time.perf_counter()
    stored = store.add_jobs(_jobs(0, n, first=first, spread=0.001, every=every), batch_size=batch_size)
    elapsed = time.perf_counter() - started
    count = store.count_jobs()
    store.close()
    return {"loaded": stored, "count": count, "load_s": elapsed, "load_rate": n / elapsed if elapsed else 0}


# -- start-up, idle tick, memory -------------------------------------------------------------------


def scale(n: int, repeat: int = 300) -> dict[str, Any]:
    """Start a beat on ``n`` stored jobs: start-up, idle tick and resident memory."""
    import beatx.beat
    import beatx.dispatch.celery
    import beatx.stores.redis  # noqa: F401

    rss_base = rss_mb()
    dispatcher = _dispatcher()  # the Celery app, built before the clock starts (as for the peers)
    started = time.perf_counter()
    store = _store()
    beat = bench_beat(store, dispatcher)
    beat.run_once()
    startup = time.perf_counter() - started
    count = store.count_jobs()
    idle_beat = median_time(beat.run_once, repeat=repeat)
    now = datetime.now(UTC)
    idle_engine = median_time(lambda: beat.engine.tick(now), repeat=repeat)
    result = {
        "n": n,
        "stored": count,
        "startup_s": startup,
        "idle_tick_s": idle_beat,
        "idle_engine_tick_s": idle_engine,
        "rss_mb": rss_mb(),
        "rss_base_mb": rss_base,
        "hwm_mb": hwm_mb(),
    }
    beat.close()
    store.close()
    return result


# -- burst ----------------------------------------------------------------------------------------


def burst(
    n_due: int,
    n_total: int,
    dispatcher: str = "celery",
    time_cap: float = 120.0,
    log_info: bool = False,
    log_each_fire: bool = False,
) -> dict[str, Any]:
    """``n_due`` jobs due in the same second (of ``n_total``): time until the last message is in
    the broker, through the real Beat loop (claim, plan, publish, release). ``log_info``: with
    logging on at INFO, as ``celery beat -l info`` sets it (root handler, Celery's format), to a
    file in the run's temp dir; ``log_each_fire``: one INFO line per fire (``beatx_log_each_fire``)."""
    log_lines = _log_at_info("burst") if log_info else None
    store = _store()
    store.add_jobs(_jobs(0, n_due, first=BURST_AT, spread=0, every=3600))
    if n_total > n_due:
        store.add_jobs(_jobs(n_due, n_total, first=BURST_AT + timedelta(hours=1), spread=0.001, every=3600))
    broker = redis_client(broker_db())
    broker.delete(QUEUE)
    inner = _dispatcher(dispatcher)
    # Start the beat just before the burst second, on a clock shifted to it.
    clock = ShiftedClock(BURST_AT - datetime.now(UTC) - timedelta(seconds=0.5))
    beat = bench_beat(store, inner, clock, atomic_fire=dispatcher == "celery", log_each_fire=log_each_fire)
    beat.run_once()  # lease taken, nothing due yet
    while clock.now() < BURST_AT:
        time.sleep(0.001)
    started = time.perf_counter()
    cpu_started = time.process_time()
    deadline = started + time_cap
    ticks = 0
    while time.perf_counter() < deadline:
        beat.run_once()
        ticks += 1
        if beat.totals["fired"] >= n_due:
            break
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    queued = queue_length(broker)
    broker.close()
    beat.close()
    store.close()
    return {
        "n_due": n_due,
        "n_total": n_total,
        "dispatcher": dispatcher,
        "fired": beat.totals["fired"],
        # Fires the dispatcher counted as sent (on RabbitMQ: each one confirmed by the broker).
        "sent": getattr(inner, "sent", None),
        "queued": queued,
        "seconds": elapsed,
        "fires_per_s": queued / elapsed if elapsed else 0.0,
        # The beat's own CPU time (user + system) for the burst: what the other processes on
        # the machine cannot inflate, unlike the wall time.
        "cpu_s": cpu,
        "ticks": ticks,
        "complete": queued >= n_due,
        "atomic_fire": beat.engine.outbox is not None,
        **({"log_lines": log_lines()} if log_lines is not None else {}),
    }


def _log_at_info(name: str) -> Callable[[], int]:
    """Turn logging on at INFO as ``celery beat -l info --logfile=...`` does (a handler on the
    root logger with Celery's format; the child turned logging off); returns a function that
    counts the lines written so far."""
    import logging

    path = tmp_dir() / f"{name}-{os.getpid()}.log"
    logging.disable(logging.NOTSET)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> int:
        handler.flush()
        with open(path, "rb") as f:
            return sum(1 for _ in f)

    return lines


def burst_profile(n_due: int, dispatcher: str = "celery", top: int = 25) -> dict[str, Any]:
    """cProfile of a burst (for the report's pointers)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result = burst(n_due, n_due, dispatcher=dispatcher)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    result["profile"] = out.getvalue()
    return result


# -- lateness -------------------------------------------------------------------------------------


def lateness(
    n: int, every: float, duration: float, same_phase: bool, seed: int = 7, dispatcher: str = "celery"
) -> dict[str, Any]:
    """A real beat for ``duration`` seconds with ``n`` interval jobs every ``every`` seconds
    (random phases, or all in the same phase): lateness = publish time - scheduled time."""
    from beatx.jobs import Job
    from beatx.triggers import IntervalTrigger

    rng = random.Random(seed)
    store = _store()
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3 + n // 10_000)
    jobs = []
    for i in range(n):
        start = base if same_phase else base + timedelta(seconds=rng.uniform(0, every))
        jobs.append(
            Job(
                id=f"late-{i:06d}",
                func=TASK,
                trigger=IntervalTrigger(seconds=every, start_date=start),
                next_run_time=start,
            )
        )
    store.add_jobs(jobs)
    recorder = Recorder(_dispatcher(dispatcher))
    warm_up(recorder.inner)
    recorder.watch_atomic_releases(store)
    beat = bench_beat(store, recorder)
    window_start = base.timestamp()
    margin = window_start - time.time()
    window_end = window_start + duration
    while time.time() < window_end + 0.5:
        beat.wait(min(beat.run_once(), window_end + 0.5 - time.time()))
    beat.close()
    store.close()
    return {
        **summarize_fires(recorder.fires, n, every, window_start, window_end),
        "setup_margin_s": margin,
        "dispatch_calls": recorder.calls,
        "dispatch_errors": recorder.errors,
        "first_error": recorder.first_error,
        "beat_totals": beat.totals,
        "atomic_fire": beat.engine.outbox is not None,
    }


# -- edit propagation -----------------------------------------------------------------------------


def edit(n: int, lead: float = 0.2, timeout: float = 10.0) -> dict[str, Any]:
    """A running beat idles on ``n`` far jobs; another process edits one to be due ``lead``
    seconds later (``update_job``): when is it published, and what did the beat re-read?"""
    from beatx.events import EventKind
    from benchmarks.peers import edit_harness

    store = _store()
    store.add_jobs(_jobs(0, n, first=datetime.now(UTC) + timedelta(hours=1), spread=0.001, every=3600))
    recorder = Recorder(_dispatcher())
    warm_up(recorder.inner)
    recorder.watch_atomic_releases(store)
    beat = bench_beat(store, recorder)
    ticks: list[tuple[float, int]] = []
    beat.events.subscribe(lambda e: ticks.append((e.data["duration"], e.data["due"])), kinds={EventKind.TICK})

    def run_forever() -> None:
        while True:
            beat.wait(beat.run_once())

    def published() -> float | None:
        return next((f[2] for f in recorder.fires if f[0] == "job-0000000"), None)

    result = edit_harness(
        run_forever, "benchmarks.beatx_side:edit_once", published, lead=lead, timeout=timeout
    )
    time.sleep(0.05)  # the tick that published the fire reports itself after the publish
    busy = [(d, c) for d, c in ticks if c]
    return {
        "n": n,
        **result,
        "tick_after_edit_ms": busy[0][0] * 1000 if busy else None,
        "claimed_after_edit": busy[0][1] if busy else 0,
    }


def edit_once(lead: float) -> dict[str, Any]:
    """The editing process: moves job-0000000 to ``lead`` seconds from now when told to."""
    from benchmarks.peers import edit_signal

    store = _store()
    job = store.get_job("job-0000000")

    def apply(due: float) -> None:
        job.next_run_time = datetime.fromtimestamp(due, UTC)
        store.update_job(job, reschedule=True)  # a new next run: a schedule write

    return edit_signal(lead, apply)
