"""``manage.py beatx_prune_runs --days N --keep M``: bound the run history (the run ledger) by
age and by count per job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from django_beatx import conf
from django_beatx.models import JobRun
from django_beatx.querysets import IN_FLIGHT, JobRunQuerySet

#: Runs deleted per statement, so a large backlog never holds one long lock on the table.
CHUNK = 5_000


class Command(BaseCommand):
    help = (
        "Delete the job runs that ended more than --days days ago, and/or all but the latest --keep "
        "runs of each job (runs still in flight are kept). The beat adds one run per fire and never "
        "deletes them: run this daily."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, help="keep the runs of the last DAYS days, e.g. 30")
        parser.add_argument("--keep", type=int, help="keep at most KEEP runs per job (the latest), e.g. 1000")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted")

    def handle(self, *args: Any, **options: Any) -> None:
        days, keep = options["days"], options["keep"]
        if days is None and keep is None:
            raise CommandError("give --days, --keep or both")
        if days is not None and not days >= 0:
            raise CommandError(f"--days must be a number of days >= 0, got {days!r}")
        if keep is not None and keep < 0:
            raise CommandError(f"--keep must be a number of runs >= 0, got {keep!r}")
        runs: JobRunQuerySet = JobRun.objects.using(conf.setting("DATABASE"))  # type: ignore[assignment]
        now = datetime.now(UTC)
        if days is not None:
            cutoff = now - timedelta(days=days)
            self._delete(runs, runs.ended_before(cutoff, now), f"ended before {cutoff.isoformat()}", options)
        if keep is not None:
            self._delete(
                runs, self._beyond(runs, keep, now), f"beyond the latest {keep} of their job", options
            )

    @staticmethod
    def _beyond(runs: JobRunQuerySet, keep: int, now: datetime) -> list[int]:
        """The ids of the runs past the ``keep`` latest (by insertion) of each job that has
        more, runs in flight left out."""
        crowded = (
            runs.values("job_id").annotate(n=Count("id")).filter(n__gt=keep).values_list("job_id", flat=True)
        )
        ids: list[int] = []
        for job_id in crowded:
            of_job = runs.filter(job_id=job_id)
            cut = of_job.order_by("-id").values_list("id", flat=True)[keep]
            old = of_job.filter(id__lte=cut).exclude(outcome__in=IN_FLIGHT, expires_at__gt=now)
            ids += old.values_list("id", flat=True)
        return ids

    def _delete(self, runs: JobRunQuerySet, old: Any, what: str, options: dict[str, Any]) -> None:
        if options["dry_run"]:
            count = len(old) if isinstance(old, list) else old.count()
            self.stdout.write(f"[dry run] {count} run(s) {what} would be deleted")
            return
        deleted = 0
        if isinstance(old, list):
            for start in range(0, len(old), CHUNK):
                deleted += runs.filter(pk__in=old[start : start + CHUNK]).delete()[0]
        else:
            while True:
                chunk = list(old.values_list("pk", flat=True)[:CHUNK])
                if not chunk:
                    break
                deleted += runs.filter(pk__in=chunk).delete()[0]
        self.stdout.write(f"{deleted} run(s) {what} deleted")
