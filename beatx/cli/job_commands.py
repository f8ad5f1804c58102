"""``beatx jobs list|show|add|pause|resume|remove|run-now|backfill``."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from beatx.backfill import BACKFILL_OVERLAPS
from beatx.cli.exit_codes import EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_REFUSED, CommandError
from beatx.cli.group import jobs
from beatx.cli.params import TIMEZONE, JsonType
from beatx.cli.render import (
    _SORTS,
    _cell,
    _console,
    _echo_json,
    _job_detail,
    _job_summary,
    _jsonable,
    _key_value_table,
    _when,
)
from beatx.cli.target import _target
from beatx.engine.overlap import MANUAL_OVERLAPS
from beatx.errors import ConfigurationError, JobLookupError
from beatx.jobs import CatchUp, Job, JobStatus, Overlap

if TYPE_CHECKING:
    from beatx.manager import JobManager
    from beatx.triggers.base import Trigger


@jobs.command("list", epilog=EXIT_CODES_HELP)
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs with this status.")
@click.option(
    "--sort",
    type=click.Choice(sorted(_SORTS)),
    default="next_run",
    show_default=True,
    help="Order of the rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (ISO 8601 datetimes).")
@click.pass_context
def jobs_list(ctx: click.Context, status: str | None, sort: str, as_json: bool) -> None:
    """List the jobs of the store."""
    manager = _target(ctx).manager()
    found = sorted(manager.get_jobs(status), key=_SORTS[sort])
    if as_json:
        _echo_json([_job_summary(job) for job in found])
        return
    if not found:
        click.echo("No jobs." if status is None else f"No {status} jobs.")
        return
    from rich.table import Table

    tz = manager.timezone
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "FUNC", "TRIGGER", "STATUS", "NEXT RUN", "LAST RUN", "RUNS", "MISSED", "SKIPPED"):
        table.add_column(column, overflow="fold")
    for job in found:
        table.add_row(
            job.id,
            job.func_ref,
            job.trigger.describe(),
            _status_cell(job),
            _when(_shown_next_run(job), tz),
            _when(job.last_run_time, tz),
            str(job.total_run_count),
            str(job.misfire_count),
            str(job.skip_count),
        )
    _console().print(table)


@jobs.command("show", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (ISO 8601 datetimes).")
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show one job: definition, policy, state and last run."""
    manager = _target(ctx).manager()
    job = manager.get_job(job_id)
    if job is None:
        raise JobLookupError(job_id)
    if as_json:
        _echo_json(_job_detail(job))
        return
    tz = manager.timezone
    table = _key_value_table()
    rows: list[tuple[str, str]] = [
        ("id", job.id),
        ("name", job.name),
        ("func", job.func_ref),
        ("trigger", job.trigger.describe()),
        ("args", json.dumps(_jsonable(list(job.args)))),
        ("kwargs", json.dumps(_jsonable(job.kwargs))),
        ("options", json.dumps(_jsonable(job.options))),
        ("max instances", str(job.max_instances)),
        ("misfire grace", "no limit" if job.misfire_grace_time is None else f"{job.misfire_grace_time:g}s"),
        ("coalesce", "yes" if job.coalesce else "no"),
        ("catch-up", _catch_up_cell(job)),
        ("jitter", "none" if not job.jitter else f"{job.jitter:g}s"),
        ("max runs", "no limit" if job.max_runs is None else f"{job.max_runs} ({job.remaining_runs} left)"),
        ("overlap", job.overlap.value),
        (
            "pause after failures",
            "never" if job.pause_after_failures is None else str(job.pause_after_failures),
        ),
        ("alerts", _alerts_cell(job)),
        ("status", _status_cell(job)),
        *([("paused at", _when(job.paused_at, tz))] if job.paused_at is not None else []),
        ("next run", _when(_shown_next_run(job), tz)),
        ("last run", _when(job.last_run_time, tz)),
        ("last finished", _when(job.last_finished_at, tz)),
        ("last duration", "-" if job.last_duration is None else f"{job.last_duration:.3f}s"),
        ("last error", _cell(job.last_error)),
        ("runs", str(job.total_run_count)),
        ("missed", str(job.misfire_count)),
        ("skipped", str(job.skip_count)),
        ("running now", str(job.running)),
    ]
    for label, value in rows:
        table.add_row(label, value)
    _console().print(table)


@jobs.command("add", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option("--func", required=True, help="What to call: a Celery task name or 'package.module:callable'.")
@click.option("--cron", metavar="EXPR", help="Five-field cron expression or alias (@daily...).")
@click.option("--every", metavar="SECONDS", type=float, help="Fire every SECONDS.")
@click.option("--at", metavar="ISO", help="Fire once at this ISO 8601 time.")
@click.option("--tz", type=TIMEZONE, help="Timezone of --cron and of a --at without offset.")
@click.option("--name", help="Display name (default: the id).")
@click.option("--args", "args", type=JsonType(list), default="[]", help="Positional arguments, a JSON array.")
@click.option(
    "--kwargs", "kwargs", type=JsonType(dict), default="{}", help="Keyword arguments, a JSON object."
)
@click.option("--queue", help="Celery queue the fires are sent to.")
@click.option("--max-instances", type=click.IntRange(min=1), help="Runs in flight at once (default 1).")
@click.option("--misfire-grace", metavar="SECONDS", type=click.FloatRange(min=0), help="Lateness allowed.")
@click.option("--no-coalesce", is_flag=True, help="Run every missed fire instead of one.")
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    metavar="CALENDAR",
    help="An exclusion calendar of the store (repeatable).",
)
@click.option(
    "--on-excluded",
    type=click.Choice(["skip", "next_business_day"]),
    default="skip",
    help="What a fire the calendars exclude does (default skip).",
)
@click.option(
    "--catchup",
    type=click.Choice([policy.value for policy in CatchUp]),
    help="What the fires missed while no beat ran do (default: as coalesce says, latest).",
)
@click.option(
    "--catchup-window",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    help="How far back an outage is caught up.",
)
@click.option(
    "--catchup-limit", metavar="N", type=click.IntRange(min=1), help="The most fires one catch-up runs."
)
@click.option(
    "--jitter",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    help="Each fire goes out up to this much later.",
)
@click.option("--max-runs", metavar="N", type=click.IntRange(min=1), help="The most fires in the job's life.")
@click.option(
    "--overlap",
    type=click.Choice([policy.value for policy in Overlap]),
    help="What a fire does while max-instances runs are in flight (default skip).",
)
@click.option(
    "--pause-after-failures",
    metavar="N",
    type=click.IntRange(min=1),
    help="Pause the job after N failed runs in a row.",
)
@click.option(
    "--expect-every",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    help="Alert when no fire was sent for this long (a missed heartbeat).",
)
@click.option(
    "--max-lateness",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    help="Alert when a fire goes out (or is still unsent) this late.",
)
@click.option(
    "--max-runtime",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    help="Alert when a run has not finished this long after it started.",
)
@click.option(
    "--alert-after-failures",
    metavar="N",
    type=click.IntRange(min=1),
    help="Alert after N failed runs in a row.",
)
@click.option("--paused", is_flag=True, help="Add the job paused.")
@click.option("--replace", is_flag=True, help="Replace a job with the same id instead of refusing.")
@click.option("--json", "as_json", is_flag=True, help="Print the added job as JSON.")
@click.pass_context
def jobs_add(
    ctx: click.Context,
    job_id: str,
    func: str,
    cron: str | None,
    every: float | None,
    at: str | None,
    tz: str | None,
    name: str | None,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str | None,
    max_instances: int | None,
    misfire_grace: float | None,
    no_coalesce: bool,
    exclude: tuple[str, ...],
    on_excluded: str,
    catchup: str | None,
    catchup_window: float | None,
    catchup_limit: int | None,
    jitter: float | None,
    max_runs: int | None,
    overlap: str | None,
    pause_after_failures: int | None,
    expect_every: float | None,
    max_lateness: float | None,
    max_runtime: float | None,
    alert_after_failures: int | None,
    paused: bool,
    replace: bool,
    as_json: bool,
) -> None:
    """Add a job firing on --cron, --every or --at (exactly one)."""
    kinds = [opt for opt, value in (("--cron", cron), ("--every", every), ("--at", at)) if value is not None]
    if len(kinds) != 1:
        raise click.UsageError(
            "give exactly one of --cron, --every and --at"
            + (f" (got {' and '.join(kinds)})" if kinds else ""),
            ctx,
        )
    if tz is not None and every is not None:
        raise click.UsageError("--tz applies to --cron and --at, not --every", ctx)
    trigger = _build_trigger(cron, every, at, tz)
    fields: dict[str, Any] = {"id": job_id, "args": args, "kwargs": kwargs, "paused": paused}
    if name:
        fields["name"] = name
    if queue:
        fields["options"] = {"queue": queue}
    if max_instances is not None:
        fields["max_instances"] = max_instances
    if misfire_grace is not None:
        fields["misfire_grace_time"] = misfire_grace
    if no_coalesce:
        fields["coalesce"] = False
    policies = {
        "catchup": catchup,
        "catchup_window": catchup_window,
        "catchup_limit": catchup_limit,
        "jitter": jitter,
        "max_runs": max_runs,
        "overlap": overlap,
        "pause_after_failures": pause_after_failures,
        "expect_every": expect_every,
        "max_lateness": max_lateness,
        "max_runtime": max_runtime,
        "alert_after_failures": alert_after_failures,
    }
    fields.update({name: value for name, value in policies.items() if value is not None})
    if exclude:
        fields["exclude"], fields["on_excluded"] = list(exclude), on_excluded
    target = _target(ctx)
    manager = target.manager()
    try:
        job = manager.add_job(func, trigger, replace_existing=replace, **fields)
    except ConfigurationError as exc:
        # Raised by the func check: bad input, not a broken configuration.
        raise CommandError(str(exc), EXIT_BAD_INPUT) from exc
    warning = target.task_warning(func)
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        _echo_json(_job_summary(job))
        return
    click.echo(
        f"added job {job.id!r}: {job.trigger.describe()}; "
        f"{'paused' if paused else 'next run ' + _when(job.next_run_time, manager.timezone)}"
    )


def _status_cell(job: Job) -> str:
    """The status, with why and by whom a paused job was paused."""
    if job.status is not JobStatus.PAUSED or not (job.pause_note or job.paused_by):
        return job.status.value
    why = [part for part in (job.pause_note, f"by {job.paused_by}" if job.paused_by else None) if part]
    return f"paused ({', '.join(why)})"


def _catch_up_cell(job: Job) -> str:
    limits = [
        f"window {job.catchup_window:g}s" if job.catchup_window is not None else None,
        f"at most {job.catchup_limit}" if job.catchup_limit is not None else None,
    ]
    shown = [limit for limit in limits if limit]
    return job.catchup_policy.value + (f" ({', '.join(shown)})" if shown else "")


def _alerts_cell(job: Job) -> str:
    rules = [
        f"expect every {job.expect_every:g}s" if job.expect_every is not None else None,
        f"max lateness {job.max_lateness:g}s" if job.max_lateness is not None else None,
        f"max runtime {job.max_runtime:g}s" if job.max_runtime is not None else None,
        f"after {job.alert_after_failures} failures" if job.alert_after_failures is not None else None,
    ]
    return ", ".join(rule for rule in rules if rule) or "none"


def _shown_next_run(job: Job) -> datetime | None:
    """The next run a table shows: none for a paused job (its stored time is where it stopped,
    often in the past)."""
    return None if job.status is JobStatus.PAUSED else job.next_run_time


def _build_trigger(cron: str | None, every: float | None, at: str | None, tz: str | None) -> Trigger:
    from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger

    if cron is not None:
        return CronTrigger(cron, timezone=tz)
    if every is not None:
        return IntervalTrigger(seconds=every)
    assert at is not None
    return DateTimeTrigger(at, timezone=tz)


def _require_job(manager: JobManager, job_id: str) -> Job:
    job = manager.get_job(job_id)
    if job is None:
        raise JobLookupError(job_id)
    return job


@jobs.command("pause", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option("--note", help="Why it is paused, shown beside its status.")
@click.option("--by", help="Who paused it (default: the login name).")
@click.pass_context
def jobs_pause(ctx: click.Context, job_id: str, note: str | None, by: str | None) -> None:
    """Stop a job from firing until it is resumed."""
    manager = _target(ctx).manager()
    job = _require_job(manager, job_id)
    if not manager.pause_job(job_id, note=note, by=by if by is not None else _login_name()):
        raise CommandError(f"job {job_id!r} is {job.status.value} and cannot be paused", EXIT_REFUSED)
    click.echo(f"paused job {job_id!r}")


@jobs.command("resume", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option(
    "--from",
    "from_",
    default="now",
    show_default=True,
    metavar="now|catch_up|ISO",
    help="now: the paused period is not caught up; catch_up: from where the job stopped; a time: from then "
    "(the late fires follow the job's catch-up policy).",
)
@click.pass_context
def jobs_resume(ctx: click.Context, job_id: str, from_: str) -> None:
    """Let a paused job fire again (by default from now on: the paused period is not caught up)."""
    manager = _target(ctx).manager()
    job = _require_job(manager, job_id)
    start: str | datetime = from_
    if from_ not in ("now", "catch_up"):
        try:
            start = datetime.fromisoformat(from_)
        except ValueError:
            raise click.BadParameter("give now, catch_up or an ISO 8601 time", param_hint="--from") from None
    if not manager.resume_job(job_id, from_=start):
        raise CommandError(f"job {job_id!r} is {job.status.value}, not paused", EXIT_REFUSED)
    resumed = manager.get_job(job_id)
    when = _when(resumed.next_run_time if resumed else None, manager.timezone)
    click.echo(f"resumed job {job_id!r}; next run {when}")


@jobs.command("remove", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.pass_context
def jobs_remove(ctx: click.Context, job_id: str) -> None:
    """Delete a job and its run state."""
    manager = _target(ctx).manager()
    if not manager.remove_job(job_id):
        raise JobLookupError(job_id)
    click.echo(f"removed job {job_id!r}")


@jobs.command("run-now", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option(
    "--overlap",
    type=click.Choice([policy.value for policy in MANUAL_OVERLAPS]),
    default=Overlap.ALLOW_ALL.value,
    show_default=True,
    help="What the fire does while max-instances runs of the job are in flight.",
)
@click.pass_context
def jobs_run_now(ctx: click.Context, job_id: str, overlap: str) -> None:
    """Send one fire of a job now, outside its schedule (needs --app: the Celery broker)."""
    target = _target(ctx)
    target.check_one()
    if not target.app:
        raise CommandError(
            "run-now needs a dispatcher: use --app PROJ so the fire goes to the Celery broker "
            "(--store and --config have none)",
            EXIT_REFUSED,
        )
    manager = target.manager()
    _require_job(manager, job_id)
    if manager.dispatcher is None:
        raise CommandError("run-now needs a dispatcher, and this Celery app gave none", EXIT_REFUSED)
    task_id = manager.run_job_now(job_id, overlap=overlap)
    if task_id is None:
        click.echo(f"skipped job {job_id!r}: max instances runs in flight (overlap={overlap})")
        return
    click.echo(f"sent job {job_id!r}: task id {task_id}")


@jobs.command("backfill", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option("--start", "start", required=True, metavar="ISO", help="First nominal time (included).")
@click.option("--end", "end", required=True, metavar="ISO", help="Last nominal time (included).")
@click.option(
    "--overlap",
    type=click.Choice(list(BACKFILL_OVERLAPS)),
    default="allow_all",
    show_default=True,
    help="skip: send nothing while a run of the job is in flight.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was sent as JSON.")
@click.pass_context
def jobs_backfill(ctx: click.Context, job_id: str, start: str, end: str, overlap: str, as_json: bool) -> None:
    """Send the fires a job's schedule has from --start to --end, each with the task id of its
    nominal time; a range sent before is not sent again (needs --app: the Celery broker).
    Times without an offset are in the scheduler's timezone."""
    try:
        first, last = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError as exc:
        raise click.BadParameter(f"give ISO 8601 times: {exc}", param_hint="--start/--end") from None
    target = _target(ctx)
    target.check_one()
    if not target.app:
        raise CommandError(
            "backfill needs a dispatcher: use --app PROJ so the fires go to the Celery broker "
            "(--store and --config have none)",
            EXIT_REFUSED,
        )
    manager = target.manager()
    _require_job(manager, job_id)
    if manager.dispatcher is None:
        raise CommandError("backfill needs a dispatcher, and this Celery app gave none", EXIT_REFUSED)
    result = manager.backfill(job_id, first, last, overlap=overlap)
    if as_json:
        _echo_json(
            {
                "job_id": job_id,
                "sent": list(result.sent),
                "task_ids": list(result.task_ids),
                "already_sent": result.already_sent,
                "skipped": result.skipped,
            }
        )
        return
    click.echo(
        f"backfilled job {job_id!r}: {len(result.sent)} fire(s) sent, {result.already_sent} sent before"
        + (f", {result.skipped} held back by a run in flight" if result.skipped else "")
    )


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
