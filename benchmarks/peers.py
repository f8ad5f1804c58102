"""What the three peer adapters share: recording publishes and driving a beat loop.

Every peer is a ``celery.beat.Scheduler`` subclass, so one recorder and one loop fit all:
``apply_async(entry)`` is wrapped to note the entry's own due time (``last_run_at +
run_every`` of the entry being sent) and the wall time at which the publish returned, and the
loop is ``celery.beat.Service.start``'s: ``tick()``, sleep what it returned, sync when due.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import ROOT, broker_db, queue_length, redis_client, summarize_fires


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def due_ts(entry: Any) -> float:
    """When ``entry`` (an interval entry) was due by its scheduler's own reckoning."""
    return (aware(entry.last_run_at) + entry.schedule.run_every).timestamp()


def record_publishes(scheduler: Any) -> list[tuple[str, float, float]]:
    """Wrap ``scheduler.apply_async``; returns the list it appends (name, due, published) to."""
    fires: list[tuple[str, float, float]] = []
    original = scheduler.apply_async

    def apply_async(entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        due = due_ts(entry)
        result = original(entry, producer=producer, advance=advance, **kwargs)
        fires.append((entry.name, due, time.time()))
        return result

    scheduler.apply_async = apply_async
    return fires


def run_loop(scheduler: Any, until: float, stop: Callable[[], bool] | None = None) -> int:
    """``celery.beat.Service.start``'s loop until the wall time ``until`` (or ``stop()``)."""
    ticks = 0
    while time.time() < until:
        interval = scheduler.tick()
        ticks += 1
        if stop is not None and stop():
            break
        if interval and interval > 0:
            time.sleep(max(0.0, min(interval, until - time.time())))
            if scheduler.should_sync():
                scheduler._do_sync()
    return ticks


def drive_burst(
    scheduler: Any, fires: list[Any], n_due: int, due_at: float, time_cap: float
) -> dict[str, Any]:
    """Loop ``scheduler`` from ``due_at`` until ``n_due`` publishes (or ``time_cap`` seconds).
    ``setup_margin_s``: how long before ``due_at`` the setup was done (negative: the burst's
    clock started before the scheduler could run, and its time is overstated by that much)."""
    margin = due_at - time.time()
    while time.time() < due_at:
        time.sleep(0.0005)
    started = time.time()
    ticks = run_loop(scheduler, started + time_cap, stop=lambda: len(fires) >= n_due)
    client = redis_client(broker_db())
    queued = queue_length(client)
    client.close()
    last = max((f[2] for f in fires), default=time.time())
    elapsed = (last if len(fires) >= n_due else time.time()) - due_at
    return {
        "n_due": n_due,
        "fired": len(fires),
        "queued": queued,
        "seconds": elapsed,
        "fires_per_s": len(fires) / elapsed if elapsed > 0 else 0.0,
        "ticks": ticks,
        "complete": queued >= n_due,
        "setup_margin_s": margin,
    }


def lateness_summary(fires: list[Any], n: int, every: float, start: float, duration: float) -> dict[str, Any]:
    return summarize_fires(fires, n, every, start, start + duration)


def edit_harness(
    run_forever: Callable[[], None],
    editor: str,
    published: Callable[[], float | None],
    *,
    lead: float,
    timeout: float,
    settle: float = 1.0,
) -> dict[str, Any]:
    """A beat runs (``run_forever`` in a thread) and idles; after ``settle`` seconds another
    process (``editor``, a ``module:function`` taking ``lead``) edits one job to be due
    ``lead`` seconds later. ``published()`` returns the publish time of that job's fire, or
    None. The beat is never poked: it sees the edit only the way it would in production."""
    thread = threading.Thread(target=run_forever, name="beat", daemon=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.child", editor, f'{{"lead": {lead}}}'],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()  # the editor is ready (imports done)
    thread.start()
    time.sleep(settle)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    edited_at = float(line.split()[1]) if line.startswith("edited ") else time.time()
    deadline = edited_at + lead + timeout
    while time.time() < deadline and published() is None:
        time.sleep(0.005)
    fired = published()
    # Only now let the editor exit: its interpreter shutdown must not compete with the beat.
    proc.communicate(timeout=60)
    return {
        "seen": fired is not None,
        "fire_lateness_ms": (fired - (edited_at + lead)) * 1000 if fired else None,
        "edit_to_fire_ms": (fired - edited_at) * 1000 if fired else None,
        "timeout_s": timeout,
    }


def edit_signal(lead: float, apply: Callable[[float], None]) -> dict[str, Any]:
    """The editor's side of :func:`edit_harness`: say ready, wait for go, edit, print the time."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    edited_at = time.time()
    apply(edited_at + lead)
    sys.stdout.write(f"edited {edited_at!r}\n")
    sys.stdout.flush()
    sys.stdin.read()  # stay idle until the measurement is over (EOF)
    return {"edited_at": edited_at}
