"""``manage.py create_demo_jobs``: a few jobs to watch in the admin (idempotent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand

from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger
from django_beatx import conf


class Command(BaseCommand):
    help = "Create the demo jobs of the example shop."

    def handle(self, *args: Any, **options: Any) -> None:
        manager = conf.get_manager()
        soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
        jobs = [
            (
                "sync-inventory",
                "shop.tasks.sync_inventory",
                IntervalTrigger(seconds=10),
                {"name": "Sync inventory", "kwargs": {"warehouse": "lyon"}},
            ),
            (
                "cleanup-sessions",
                "shop.tasks.cleanup_sessions",
                IntervalTrigger(seconds=45),
                {"name": "Clean up sessions", "kwargs": {"older_than_days": 14}},
            ),
            (
                "flaky-export",
                "shop.tasks.flaky_export",
                IntervalTrigger(seconds=20),
                {"name": "Export orders (flaky)", "kwargs": {"failure_rate": 0.5}},
            ),
            (
                "daily-digest",
                "shop.tasks.send_digest",
                CronTrigger("0 8 * * 1-5", timezone="Europe/Paris"),
                {"name": "Weekday digest", "args": ("customers",), "kwargs": {"limit": 10}},
            ),
            (
                "every-minute-digest",
                "shop.tasks.send_digest",
                CronTrigger("* * * * *", timezone="Europe/Paris"),
                {"name": "Staff digest (every minute)", "args": ("staff",)},
            ),
            (
                "launch-announcement",
                "shop.tasks.send_digest",
                DateTimeTrigger(soon),
                {"name": "Launch announcement (one-shot)", "args": ("everyone",)},
            ),
        ]
        for job_id, task, trigger, fields in jobs:
            manager.ensure_job(task, trigger, id=job_id, **fields)
            self.stdout.write(f"  {job_id}: {trigger.describe()}")
        self.stdout.write(self.style.SUCCESS(f"{len(jobs)} demo jobs are ready."))
