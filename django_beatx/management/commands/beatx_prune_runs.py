"""``manage.py beatx_prune_runs --days N``: delete the run history older than N days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_beatx import conf
from django_beatx.models import JobRun
from django_beatx.querysets import JobRunQuerySet

#: Runs deleted per statement, so a large backlog never holds one long lock on the table.
CHUNK = 5_000


class Command(BaseCommand):
    help = (
        "Delete the job runs that ended more than --days days ago (runs still in flight are kept). "
        "The beat adds one run per fire and never deletes them: run this daily."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=float,
            required=True,
            help="keep the runs of the last DAYS days, e.g. 30",
        )
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if not days >= 0:
            raise CommandError(f"--days must be a number of days >= 0, got {days!r}")
        now = datetime.now(UTC)
        cutoff = now - timedelta(days=days)
        runs: JobRunQuerySet = JobRun.objects.using(conf.setting("DATABASE"))  # type: ignore[assignment]
        old = runs.ended_before(cutoff, now)
        if options["dry_run"]:
            count = old.count()
            self.stdout.write(f"[dry run] {count} run(s) ended before {cutoff.isoformat()} would be deleted")
            return
        deleted = 0
        while True:
            chunk = list(old.values_list("pk", flat=True)[:CHUNK])
            if not chunk:
                break
            deleted += runs.filter(pk__in=chunk).delete()[0]
        self.stdout.write(f"{deleted} run(s) ended before {cutoff.isoformat()} deleted")
