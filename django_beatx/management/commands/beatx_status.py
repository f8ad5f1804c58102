"""``manage.py beatx_status``: which beat leads, when it last ticked, the backlog, job counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from beatx.jobs import JobStatus
from django_beatx import conf


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


class Command(BaseCommand):
    help = "Show the scheduler's health: leader, last tick, due backlog and jobs by status."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        manager = conf.get_manager()
        health = manager.health()
        now = datetime.now(UTC)
        counts = {
            status.value: n
            for status, n in manager.store.count_jobs_by_status().items()
            if status is not JobStatus.CANCELLED  # never stored
        }
        next_run = manager.store.next_run_time()
        report: dict[str, Any] = {
            "leader": health.leader,
            "leader_since": _iso(health.leader_since),
            "lease_expires_at": _iso(health.lease_expires_at),
            "last_tick_at": _iso(health.last_tick_at),
            "seconds_since_last_tick": (
                None if health.last_tick_at is None else round((now - health.last_tick_at).total_seconds(), 1)
            ),
            "due_backlog": health.due_backlog,
            "running": manager.store.running_count(now),
            "next_run_time": _iso(next_run),
            "jobs_fired": health.jobs_fired,
            "jobs_missed": health.jobs_missed,
            "jobs_skipped": health.jobs_skipped,
            "jobs": {"total": sum(counts.values()), **counts},
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        lines = [
            ("leader", report["leader"] or self.style.ERROR("none (no beat is running)")),
            ("leader since", report["leader_since"] or "-"),
            ("lease expires", report["lease_expires_at"] or "-"),
            (
                "last tick",
                "never"
                if report["last_tick_at"] is None
                else f"{report['last_tick_at']} ({report['seconds_since_last_tick']}s ago)",
            ),
            ("due backlog", str(report["due_backlog"])),
            ("running", str(report["running"])),
            ("next run", report["next_run_time"] or "-"),
            (
                "fired / missed / skipped",
                f"{health.jobs_fired} / {health.jobs_missed} / {health.jobs_skipped}",
            ),
        ]
        lines += [(f"jobs {status}", str(n)) for status, n in report["jobs"].items()]
        width = max(len(label) for label, _ in lines)
        for label, value in lines:
            self.stdout.write(f"{label.ljust(width)}  {value}")
