"""``beatx jobs runs ID``: a job's latest runs from the store's run ledger."""

from __future__ import annotations

import click

from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.group import jobs
from beatx.cli.render import _cell, _console, _echo_json, _when
from beatx.cli.target import _target


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


@jobs.command("runs", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs, newest first."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (ISO 8601 datetimes).")
@click.pass_context
def jobs_runs(ctx: click.Context, job_id: str, limit: int, as_json: bool) -> None:
    """Show a job's latest runs: nominal time, lateness (sent minus nominal), start, duration,
    outcome, worker, error. ``--json`` has every field (sent and finished times too)."""
    manager = _target(ctx).manager()
    runs = manager.job_runs(job_id, limit=limit)
    if as_json:
        _echo_json([run.to_dict() for run in runs])
        return
    if not runs:
        click.echo(f"No runs of {job_id!r} in the ledger.")
        return
    from rich.table import Table

    tz = manager.timezone
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NOMINAL", "LATE", "STARTED", "DURATION", "OUTCOME", "WORKER", "ERROR / REASON"):
        table.add_column(column, overflow="fold")
    for run in runs:
        outcome = run.outcome.value + (f" ({run.retries} retries)" if run.retries else "")
        table.add_row(
            _when(run.scheduled_at, tz),
            _seconds(run.lateness),
            _when(run.started_at, tz),
            _seconds(run.duration),
            outcome,
            _cell(run.worker),
            _cell(run.error or run.reason),
        )
    _console().print(table)
