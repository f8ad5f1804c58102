"""``beatx jobs history ID``: a job's audit log (who changed it, through what, when, the diff)."""

from __future__ import annotations

import json

import click

from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.group import jobs
from beatx.cli.render import _cell, _console, _echo_json, _when
from beatx.cli.target import _target


def _diff(changes: dict[str, list[object]]) -> str:
    """``field: before -> after`` per changed field, one a line."""
    return "\n".join(
        f"{name}: {json.dumps(before, ensure_ascii=False)} -> {json.dumps(after, ensure_ascii=False)}"
        for name, (before, after) in changes.items()
    )


@jobs.command("history", epilog=EXIT_CODES_HELP)
@click.argument("job_id", metavar="ID")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many changes, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (ISO 8601 datetimes).")
@click.pass_context
def jobs_history(ctx: click.Context, job_id: str, limit: int, as_json: bool) -> None:
    """Show who changed a job, through what (api, cli, admin, yaml, beat_schedule), when, and
    what changed. A removed job keeps its history."""
    manager = _target(ctx).manager()
    changes = manager.job_history(job_id, limit=limit)
    if as_json:
        _echo_json([change.to_dict() for change in changes])
        return
    if not changes:
        click.echo(f"No recorded changes of {job_id!r}.")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("AT", "ACTION", "THROUGH", "BY", "CHANGES"):
        table.add_column(column, overflow="fold")
    for change in changes:
        table.add_row(
            _when(change.at, manager.timezone),
            change.action,
            change.source,
            _cell(change.actor),
            _diff(change.changes) or "-",
        )
    _console().print(table)
