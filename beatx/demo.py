"""A zero-server demo: ``python -m beatx.demo``.

Runs the in-process scheduler on the memory store and prints every fire as it happens:
interval, cron and one-shot jobs, a paused job that is resumed, and a job that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from beatx import CronTrigger, DateTimeTrigger, Event, EventKind, IntervalTrigger, Scheduler, SchedulerConfig

_started: dict[str, datetime] = {}

#: How long the demo runs, whatever the wall clock: every job fires in it, the one-shot at
#: :data:`ONE_SHOT_AFTER` seconds and the cron job (every 5 s, on the wall clock's seconds) at
#: least twice.
DEFAULT_DURATION = 12.0
ONE_SHOT_AFTER = 4.0


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _clock(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


async def heartbeat() -> None:
    await asyncio.sleep(0)


def resize_images() -> None:
    """A synchronous job: runs in a worker thread."""
    sum(i * i for i in range(50_000))


async def send_report(recipient: str) -> None:
    await asyncio.sleep(0.05)


async def sync_inventory() -> None:
    await asyncio.sleep(0.01)


def flaky_export() -> None:
    raise ConnectionError("export server refused the connection")


async def rollup() -> None:
    await asyncio.sleep(0)


def _on_event(event: Event) -> None:
    if event.kind is EventKind.JOB_FIRED:
        lateness = event.data.get("lateness", 0.0) * 1000
        _say(
            f"  fired   {event.job_id:<15} scheduled {_clock(event.scheduled_at)}  "
            f"sent {_clock(event.at)}  ({lateness:5.1f} ms late)"
        )
    elif event.kind is EventKind.JOB_FAILED:
        _say(f"  FAILED  {event.job_id:<15} {event.data.get('error')}")
    elif event.kind is EventKind.JOB_SKIPPED:
        _say(f"  skipped {event.job_id:<15} {event.data.get('count')} fire(s): max_instances reached")


def _table(scheduler: Scheduler) -> None:
    _say(f"  {'job':<15} {'trigger':<34} {'status':<10} {'runs':>4}  {'next run (UTC)':<12}  last error")
    for job in scheduler.jobs():
        _say(
            f"  {job['id']:<15} {job['trigger'][:34]:<34} {job['status']:<10} {job['total_run_count']:>4}  "
            # A paused job has no next run: its stored time is where it stopped.
            f"{_clock(None if job['status'] == 'paused' else job['next_run_time']):<12}  "
            f"{job['last_error'] or ''}"
        )


async def main(duration: float = DEFAULT_DURATION) -> None:
    scheduler = Scheduler(SchedulerConfig(timezone="UTC"))
    scheduler.events.subscribe(_on_event)
    now = datetime.now(UTC)
    scheduler.add_job(heartbeat, IntervalTrigger(seconds=2), id="heartbeat")
    scheduler.add_job(resize_images, IntervalTrigger(seconds=3), id="resize-images")
    # Six fields, seconds first: every 5 s on the clock, so the demo's length never depends on
    # where in the minute it starts.
    scheduler.add_job(rollup, CronTrigger("*/5 * * * * *", seconds=True), id="rollup")
    scheduler.add_job(
        send_report,
        DateTimeTrigger(now + timedelta(seconds=ONE_SHOT_AFTER)),
        args=["ops@example.com"],
        id="one-shot-report",
    )
    scheduler.add_job(sync_inventory, IntervalTrigger(seconds=1), id="inventory", paused=True)
    scheduler.add_job(flaky_export, IntervalTrigger(seconds=5), id="flaky-export")

    _say(f"beatx demo: in-process scheduler, memory store, no server. Running {duration:.0f} s.\n")
    _table(scheduler)
    _say("")
    async with scheduler:
        await asyncio.sleep(min(7.0, duration / 2))
        _say("  -- resuming 'inventory' (it was added paused: nothing of its paused time is caught up)")
        scheduler.resume_job("inventory")
        await asyncio.sleep(min(3.0, duration / 4))
        _say("  -- pausing 'inventory' again")
        scheduler.pause_job("inventory")
        remaining = duration - min(7.0, duration / 2) - min(3.0, duration / 4)
        await asyncio.sleep(max(remaining, 0.0))
    _say("")
    _table(scheduler)


def run() -> None:
    parser = argparse.ArgumentParser(description="Watch beatx fire jobs in-process, with no server.")
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help=f"seconds to run (default: {DEFAULT_DURATION:g})",
    )
    args = parser.parse_args()
    try:
        asyncio.run(main(args.duration))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
