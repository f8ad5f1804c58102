"""The ``beatx`` command: inspect and change jobs in a store, read cron expressions, run a
scheduler as a service.

It is thin on purpose: it parses arguments, builds a :class:`~beatx.JobManager` (or a
:class:`~beatx.Scheduler` for ``beatx run``), calls the library and renders the answer with
rich (or JSON with ``--json``). Exit codes a script can rely on:

- 0: done;
- 1: no such job, or the operation was refused (pausing a finished job, an id already taken);
- 2: bad input (usage errors, a bad cron expression, bad JSON, a bad date or interval);
- 3: the store is unreachable, or the configuration is wrong.

Needs ``pip install 'beatx[cli]'``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from beatx.errors import (
    BeatxError,
    ConfigurationError,
    ConflictingIdError,
    InvalidJobError,
    InvalidTriggerError,
    JobLookupError,
    SerializationError,
    StoreError,
)
from beatx.jobs import Job, JobStatus
from beatx.triggers.base import get_timezone

if TYPE_CHECKING:
    from rich.console import Console

    from beatx.manager import JobManager
    from beatx.stores.base import JobStore
    from beatx.triggers.base import Trigger

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNAVAILABLE", "cli", "main"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  1  no such job, or the operation was refused
  2  bad input (usage, cron expression, JSON, date, interval)
  3  store unreachable, or a configuration error"""

logger = logging.getLogger("beatx.cli")


class CommandError(Exception):
    """An error :func:`main` shows as one ``error: ...`` line on stderr, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- choosing the store ------------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    """Where the jobs are, as the global options name it; the manager is built on first use."""

    app: str | None
    config: str | None
    store: str | None
    key_prefix: str | None
    timezone: str | None
    _manager: JobManager | None = None

    def check_one(self) -> None:
        given = [name for name, value in (("--app", self.app), ("--config", self.config)) if value]
        if self.store:
            given.append("--store")
        if len(given) > 1:
            raise click.UsageError(f"give one of --app, --config and --store, not {' and '.join(given)}")
        if not given:
            raise click.UsageError(
                "no store: give --app PROJ, --config FILE or --store URL (or set BEATX_STORE)"
            )

    def manager(self) -> JobManager:
        if self._manager is None:
            self.check_one()
            self._manager = self._build()
            ctx = click.get_current_context()
            ctx.call_on_close(self._close)
        return self._manager

    def _build(self) -> JobManager:
        from beatx.manager import JobManager
        from beatx.stores import open_store

        if self.app:
            overrides = {"key_prefix": self.key_prefix, "timezone": self.timezone}
            return _celery_manager(self.app, {k: v for k, v in overrides.items() if v})
        if self.config:
            from beatx.config import SchedulerConfig
            from beatx.scheduler import check_local_func

            config = SchedulerConfig.from_yaml(self.config)
            store = open_store(config.store_url, key_prefix=self.key_prefix or config.key_prefix)
            _warn_if_memory(store)
            # Jobs of a --config store run in-process under `beatx run`: their func must import.
            return JobManager(
                store,
                timezone=self.timezone or config.timezone,
                job_defaults=config.job_defaults,
                func_validator=check_local_func,
            )
        assert self.store is not None
        store = open_store(self.store, key_prefix=self.key_prefix or "beatx:")
        _warn_if_memory(store)
        return JobManager(store, timezone=self.timezone or "UTC")

    def _close(self) -> None:
        if self._manager is not None:
            try:
                self._manager.store.close()
            except Exception as exc:
                logger.debug("closing the store failed: %s", exc)


def _celery_manager(app_path: str, overrides: dict[str, str]) -> JobManager:
    # Like `celery -A`: the app is looked up from the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        from celery.app.utils import find_app
    except ImportError as exc:
        raise ConfigurationError(f"--app needs Celery: pip install 'beatx[celery]' ({exc})") from exc
    try:
        app = find_app(app_path)
    except Exception as exc:
        raise ConfigurationError(f"cannot load the Celery app {app_path!r}: {exc}") from exc
    try:
        from beatx.celery import get_scheduler
    except ImportError as exc:
        raise ConfigurationError(f"--app needs beatx's Celery integration: {exc}") from exc
    manager: JobManager = get_scheduler(app, **overrides)
    _warn_if_memory(manager.store)  # the app sets no beatx_store (or sets memory://)
    return manager


def _warn_if_memory(store: JobStore) -> None:
    from beatx.stores.memory import MemoryStore

    if isinstance(store, MemoryStore):
        click.echo(
            "warning: the memory:// store lives only as long as this command; use a redis:// store",
            err=True,
        )


def _target(ctx: click.Context) -> Target:
    target = ctx.find_object(Target)
    assert target is not None
    return target


# -- parameter types ---------------------------------------------------------------------------


class TimezoneType(click.ParamType[str]):
    name = "ZONE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            get_timezone(str(value))
        except (InvalidTriggerError, ValueError) as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class JsonType(click.ParamType[Any]):
    """A JSON value of one type (``list`` for --args, ``dict`` for --kwargs)."""

    def __init__(self, kind: type[list[Any] | dict[str, Any]]) -> None:
        self.kind = kind
        self.name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON ({exc.msg} at column {exc.colno}): {value!r}", param, ctx)
        if not isinstance(parsed, self.kind):
            expected = (
                "a JSON array such as '[1, \"a\"]'"
                if self.kind is list
                else "a JSON object such as '{\"k\": 1}'"
            )
            self.fail(f"expected {expected}, got {value!r}", param, ctx)
        return parsed


TIMEZONE = TimezoneType()

# -- rendering ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _key_value_table() -> Any:
    """A borderless two-column table: bold keys, folded values."""
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(_jsonable(value), indent=2, ensure_ascii=False))


def _console() -> Console:
    from rich.console import Console

    # Pipes and files get a wide console, so tables are not squeezed to 80 columns.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(width=width, highlight=False, soft_wrap=False)


def _when(value: datetime | None, tz: tzinfo) -> str:
    if value is None:
        return "-"
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value)


def _job_summary(job: Job) -> dict[str, Any]:
    return job.describe()


def _job_detail(job: Job) -> dict[str, Any]:
    detail = job.describe()
    detail.update(
        {
            "trigger_state": job.trigger.to_dict(),
            "args": list(job.args),
            "kwargs": job.kwargs,
            "options": job.options,
            "last_finished_at": job.last_finished_at,
            "last_duration": job.last_duration,
            "revision": job.revision,
        }
    )
    return detail


_SORTS: dict[str, Callable[[Job], Any]] = {
    # Jobs without a next run (paused, completed) sort last.
    "next_run": lambda job: (
        job.next_run_time is None,
        job.next_run_time or datetime.min.replace(tzinfo=UTC),
        job.id,
    ),
    "id": lambda job: job.id,
    "name": lambda job: (job.name, job.id),
}


# -- the command tree --------------------------------------------------------------------------


@click.group(
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-A",
    "--app",
    metavar="PROJ",
    help="Celery app whose beatx settings name the store (as celery -A: proj, proj.celery:app).",
)
@click.option(
    "-c",
    "--config",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="beatx YAML configuration whose backend/url name the store.",
)
@click.option(
    "-s",
    "--store",
    metavar="URL",
    envvar="BEATX_STORE",
    help="Store URL: redis://host:port/db, memory:// or django://. Default: $BEATX_STORE.",
)
@click.option("--key-prefix", metavar="PREFIX", help="Prefix of every Redis key (default beatx:).")
@click.option(
    "--timezone", type=TIMEZONE, help="Default timezone of new jobs and of times shown (default UTC)."
)
@click.version_option(package_name="beatx", prog_name="beatx")
@click.pass_context
def cli(
    ctx: click.Context,
    app: str | None,
    config: str | None,
    store: str | None,
    key_prefix: str | None,
    timezone: str | None,
) -> None:
    """beatx: periodic jobs for Celery and asyncio.

    Choose the store with exactly one of --app, --config or --store (BEATX_STORE is the
    default of --store and is ignored when --app or --config is given).
    """
    if store and (app or config) and ctx.get_parameter_source("store") is ParameterSource.ENVIRONMENT:
        store = None
    ctx.obj = Target(app=app, config=config, store=store, key_prefix=key_prefix, timezone=timezone)


@cli.group(epilog=EXIT_CODES_HELP)
def jobs() -> None:
    """List, inspect, add, pause, resume, remove and run jobs."""


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
            job.status.value,
            _when(job.next_run_time, tz),
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
        ("status", job.status.value),
        ("next run", _when(job.next_run_time, tz)),
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
    manager = _target(ctx).manager()
    try:
        job = manager.add_job(func, trigger, replace_existing=replace, **fields)
    except ConfigurationError as exc:
        # Raised by the func check: bad input, not a broken configuration.
        raise CommandError(str(exc), EXIT_BAD_INPUT) from exc
    if as_json:
        _echo_json(_job_summary(job))
        return
    click.echo(
        f"added job {job.id!r}: {job.trigger.describe()}; "
        f"{'paused' if paused else 'next run ' + _when(job.next_run_time, manager.timezone)}"
    )


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
@click.pass_context
def jobs_pause(ctx: click.Context, job_id: str) -> None:
    """Stop a job from firing until it is resumed."""
    manager = _target(ctx).manager()
    job = _require_job(manager, job_id)
    if not manager.pause_job(job_id):
        raise CommandError(f"job {job_id!r} is {job.status.value} and cannot be paused", EXIT_REFUSED)
    click.echo(f"paused job {job_id!r}")


@jobs.command("resume", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.pass_context
def jobs_resume(ctx: click.Context, job_id: str) -> None:
    """Let a paused job fire again, from now on (the paused period is not caught up)."""
    manager = _target(ctx).manager()
    job = _require_job(manager, job_id)
    if not manager.resume_job(job_id):
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
@click.pass_context
def jobs_run_now(ctx: click.Context, job_id: str) -> None:
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
    task_id = manager.run_job_now(job_id)
    click.echo(f"sent job {job_id!r}: task id {task_id}")


@cli.command("cron", epilog=EXIT_CODES_HELP)
@click.argument("expression", metavar="EXPR")
@click.option(
    "--tz", type=TIMEZONE, default="UTC", show_default=True, help="Timezone the expression runs in."
)
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True, help="Fire times.")
@click.option("--extended", is_flag=True, help="Accept the Quartz day tokens L, L-n, nW, LW, ?, d#n and dL.")
@click.option("--seconds", is_flag=True, help="Read six fields, seconds first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (ISO 8601 datetimes).")
def cron_command(expression: str, tz: str, count: int, extended: bool, seconds: bool, as_json: bool) -> None:
    """Explain a cron expression and list its next fire times.

    Needs no store."""
    from beatx.clock import SystemClock
    from beatx.triggers import CronTrigger
    from beatx.triggers.cron import describe_cron

    trigger = CronTrigger(expression, timezone=tz, extended=extended, seconds=seconds)
    zone = get_timezone(tz)
    times: list[datetime] = []
    after = SystemClock().now()
    while len(times) < count:
        nxt = trigger.next_fire_time(after)
        if nxt is None:
            break
        times.append(nxt.astimezone(zone))
        after = nxt
    description = describe_cron(expression, extended=extended, seconds=seconds)
    if as_json:
        report: dict[str, Any] = {
            "expression": trigger.expression,
            "timezone": tz,
            "description": description,
            "wildcard": trigger.is_wildcard,
            "next": times,
        }
        if extended:
            report["extended"] = True
        if seconds:
            report["seconds"] = True
        _echo_json(report)
        return
    click.echo(f"{trigger.expression}  ({tz})")
    click.echo(description)
    if not times:
        click.echo("It never fires again.")
        return
    click.echo(f"Next {len(times)} fire time{'s' if len(times) != 1 else ''}:")
    for when in times:
        clock = "%H:%M:%S" if seconds else "%H:%M"
        click.echo(f"  {when.strftime(f'%a %Y-%m-%d {clock} %Z')}  ({when.isoformat()})")


@cli.command("status", epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (ISO 8601 datetimes).")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """Show the leader, last tick, backlog, totals and jobs per status."""
    manager = _target(ctx).manager()
    health = manager.health()
    counts = _count_by_status(manager.store)
    now = manager.clock.now()
    report = health.as_dict()
    report["lease_valid"] = health.lease_expires_at is not None and health.lease_expires_at > now
    report["jobs"] = counts
    report["jobs_total"] = sum(counts.values())
    if as_json:
        _echo_json(report)
        return
    tz = manager.timezone
    table = _key_value_table()
    leader = health.leader or "none"
    if health.leader and not report["lease_valid"]:
        leader += " (lease expired)"
    for label, value in (
        ("leader", leader),
        ("leader since", _when(health.leader_since, tz)),
        ("lease expires", _when(health.lease_expires_at, tz)),
        ("last tick", _when(health.last_tick_at, tz)),
        ("due backlog", str(health.due_backlog)),
        ("data loss", health.data_loss or "none noticed"),
        ("fired", str(health.jobs_fired)),
        ("missed", str(health.jobs_missed)),
        ("skipped", str(health.jobs_skipped)),
        (
            "jobs",
            f"{report['jobs_total']} (" + ", ".join(f"{k} {v}" for k, v in report["jobs"].items()) + ")",
        ),
    ):
        table.add_row(label, value)
    _console().print(table)


@cli.command("run", epilog=EXIT_CODES_HELP)
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="beatx YAML configuration: store, timezone, job defaults, jobs.",
)
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True, help="Address of the metrics server.")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="INFO shows a line per fire, skip and error.",
)
@click.option(
    "--shutdown-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, how long running jobs may take to finish before they are cancelled.",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    config_path: str | None,
    metrics_port: int | None,
    metrics_addr: str,
    log_level: str,
    shutdown_timeout: float,
) -> None:
    """Run the in-process asyncio scheduler until SIGTERM or SIGINT.

    On a signal it stops firing, lets running jobs finish (up to --shutdown-timeout), gives
    up the leader lease and exits 0.
    """
    target = _target(ctx)
    path = config_path or target.config
    if not path:
        raise click.UsageError("run needs --config FILE", ctx)
    if target.app or (target.store and ctx.parent is not None and _explicit(ctx.parent, "store")):
        raise click.UsageError("run takes its store from --config; drop --app / --store", ctx)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve(path, target, metrics_port, metrics_addr, shutdown_timeout))


def _explicit(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.ENVIRONMENT, None)


async def _serve(
    path: str, target: Target, metrics_port: int | None, metrics_addr: str, shutdown_timeout: float
) -> None:
    from beatx.config import SchedulerConfig
    from beatx.scheduler import Scheduler
    from beatx.stores import open_store

    config = SchedulerConfig.from_yaml(path)
    if target.timezone:
        config = dataclasses.replace(config, timezone=target.timezone)
    store = None
    if target.key_prefix:
        store = open_store(config.store_url, key_prefix=target.key_prefix)
    scheduler = Scheduler(config, store=store)
    metrics = None
    if metrics_port is not None:
        from beatx.metrics import BeatxMetrics

        metrics = BeatxMetrics(scheduler.events, jobs_by_status=lambda: _count_by_status(scheduler.store))
        try:
            port = metrics.start_http_server(metrics_port, metrics_addr)
        except OSError as exc:
            raise ConfigurationError(
                f"metrics: cannot listen on {metrics_addr}:{metrics_port}: {exc}"
            ) from exc
        logger.info("metrics on http://%s:%d/metrics", metrics_addr, port)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            logger.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        # Fail fast, with exit code 3, when the store is unreachable at start-up; later
        # outages are retried by the beat.
        await asyncio.to_thread(scheduler.store.next_run_time)
        await scheduler.start()
        logger.info(
            "beatx running: config=%s store=%s", path, _describe_store(scheduler.store, config.store_url)
        )
        await stop.wait()
        await scheduler.shutdown(wait=True, timeout=shutdown_timeout)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if metrics is not None:
            metrics.close()
        scheduler.store.close()


def _describe_store(store: JobStore, url: str) -> str:
    from beatx.stores.memory import MemoryStore

    # RedisStore's repr hides the password of its URL.
    return url if isinstance(store, MemoryStore) else repr(store)


def _count_by_status(store: JobStore) -> dict[str, int]:
    return {status.value: n for status, n in store.count_jobs_by_status().items()}


# -- entry point -------------------------------------------------------------------------------

_EXIT_BY_ERROR: Sequence[tuple[type[BaseException], int]] = (
    (JobLookupError, EXIT_REFUSED),
    (ConflictingIdError, EXIT_REFUSED),
    (InvalidTriggerError, EXIT_BAD_INPUT),
    (InvalidJobError, EXIT_BAD_INPUT),
    (StoreError, EXIT_UNAVAILABLE),
    (SerializationError, EXIT_UNAVAILABLE),
    (ConfigurationError, EXIT_UNAVAILABLE),
    (BeatxError, EXIT_UNAVAILABLE),
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line; exits with the documented exit code."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="beatx", standalone_mode=False
        )
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `beatx` or `beatx jobs` alone: the help, as click shows it, on stderr.
            click.echo(exc.format_message(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(f"{exc.format_message()}{hint}", EXIT_BAD_INPUT)
    except CommandError as exc:
        _fail(str(exc), exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except BeatxError as exc:
        code = next(code for kind, code in _EXIT_BY_ERROR if isinstance(exc, kind))
        hint = " (add --replace to replace it)" if isinstance(exc, ConflictingIdError) else ""
        _fail(f"{exc}{hint}", code)
    sys.exit(result if isinstance(result, int) else EXIT_OK)


if __name__ == "__main__":
    main()
