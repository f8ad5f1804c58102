"""``beatx calendars list|show|add|remove``: the store's exclusion calendars."""

from __future__ import annotations

from typing import Any

import click

from beatx.calendars import ExclusionCalendar, calendar_to_dict
from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.group import cli
from beatx.cli.render import _console, _echo_json, _key_value_table
from beatx.cli.target import _target
from beatx.errors import CalendarLookupError


@cli.group(epilog=EXIT_CODES_HELP)
def calendars() -> None:
    """List, inspect, add and remove exclusion calendars."""


@calendars.command("list", epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def calendars_list(ctx: click.Context, as_json: bool) -> None:
    """Every exclusion calendar, with the jobs that use it."""
    manager = _target(ctx).manager()
    found = manager.get_calendars()
    users = {calendar.name: manager.calendar_users(calendar.name) for calendar in found}
    if as_json:
        _echo_json([{**calendar_to_dict(c), "used_by": users[c.name]} for c in found])
        return
    if not found:
        click.echo("no calendars")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "excludes", "used by"):
        table.add_column(column)
    for calendar in found:
        table.add_row(
            calendar.name, calendar.describe().partition(": ")[2], ", ".join(users[calendar.name]) or "-"
        )
    _console().print(table)


@calendars.command("show", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def calendars_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """One calendar's fields and the jobs that use it."""
    manager = _target(ctx).manager()
    calendar = manager.get_calendar(name)
    if calendar is None:
        raise CalendarLookupError(name)
    data: dict[str, Any] = {**calendar_to_dict(calendar), "used_by": manager.calendar_users(name)}
    data.pop("version")
    if as_json:
        _echo_json(data)
        return
    table = _key_value_table()
    for key, value in data.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    _console().print(table)


@calendars.command("add", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option(
    "--date", "dates", multiple=True, metavar="YYYY-MM-DD", help="A whole day excluded (repeatable)."
)
@click.option(
    "--range", "ranges", multiple=True, metavar="FIRST:LAST", help="Days FIRST to LAST excluded (repeatable)."
)
@click.option(
    "--weekday", "weekdays", multiple=True, metavar="DAY", help="mon..sun, excluded every week (repeatable)."
)
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="CRON",
    help="Cron expression whose minutes are excluded (repeatable).",
)
@click.option(
    "--holidays",
    "holiday_codes",
    multiple=True,
    metavar="CODE",
    help="Public holidays of FR, US-CA... (repeatable).",
)
@click.option("--description", default="", help="What the calendar is for.")
@click.option("--replace", is_flag=True, help="Replace a calendar with the same name (reschedules its jobs).")
@click.pass_context
def calendars_add(
    ctx: click.Context,
    name: str,
    dates: tuple[str, ...],
    ranges: tuple[str, ...],
    weekdays: tuple[str, ...],
    windows: tuple[str, ...],
    holiday_codes: tuple[str, ...],
    description: str,
    replace: bool,
) -> None:
    """Add (or with --replace, replace) an exclusion calendar."""
    pairs = []
    for text in ranges:
        first, sep, last = text.partition(":")
        if not sep:
            raise click.BadParameter(
                f"{text!r}: expected FIRST:LAST, e.g. 2026-08-01:2026-08-15", param_hint="--range"
            )
        pairs.append((first, last))
    calendar = ExclusionCalendar(
        name=name,
        description=description,
        dates=dates,  # type: ignore[arg-type]  # checked and converted by the calendar
        date_ranges=pairs,  # type: ignore[arg-type]
        weekdays=weekdays,  # type: ignore[arg-type]
        windows=windows,
        holidays=holiday_codes,
    )
    _target(ctx).manager().add_calendar(calendar, replace_existing=replace)
    click.echo(f"added calendar {calendar.describe()}")


@calendars.command("remove", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.pass_context
def calendars_remove(ctx: click.Context, name: str) -> None:
    """Remove a calendar no job uses."""
    if not _target(ctx).manager().remove_calendar(name):
        raise CalendarLookupError(name)
    click.echo(f"removed calendar {name!r}")
