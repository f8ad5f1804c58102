"""``beatx cron EXPR``: explain a cron expression and list its next fire times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.group import cli
from beatx.cli.params import TIMEZONE
from beatx.cli.render import _echo_json
from beatx.triggers.base import get_timezone, timezone_name
from beatx.triggers.cron import CronTrigger


@cli.command("cron", epilog=EXIT_CODES_HELP)
@click.argument("expression", metavar="EXPR")
@click.option(
    "--tz", type=TIMEZONE, default="UTC", show_default=True, help="Timezone the expression runs in."
)
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True, help="Fire times.")
@click.option("--extended", is_flag=True, help="Accept the Quartz day tokens L, L-n, nW, LW, ?, d#n and dL.")
@click.option("--seconds", is_flag=True, help="Read six fields, seconds first.")
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    metavar="CALENDAR",
    help="Apply this exclusion calendar of the store (repeatable): excluded times are struck out.",
)
@click.option(
    "--on-excluded",
    type=click.Choice(["skip", "next_business_day"]),
    default="skip",
    show_default=True,
    help="What an excluded fire does, with --exclude.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (ISO 8601 datetimes).")
@click.pass_context
def cron_command(
    ctx: click.Context,
    expression: str,
    tz: str,
    count: int,
    extended: bool,
    seconds: bool,
    exclude: tuple[str, ...],
    on_excluded: str,
    as_json: bool,
) -> None:
    """Explain a cron expression and list its next fire times.

    Needs no store, except with --exclude (the calendars are read from it)."""
    from beatx.clock import SystemClock
    from beatx.triggers.cron import describe_cron

    trigger = CronTrigger(expression, timezone=tz, extended=extended, seconds=seconds)
    zone = get_timezone(tz)
    if exclude:
        _preview_with_calendars(ctx, trigger, exclude, on_excluded, count, as_json)
        return
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


def _preview_with_calendars(
    ctx: click.Context,
    trigger: CronTrigger,
    names: tuple[str, ...],
    on_excluded: str,
    count: int,
    as_json: bool,
) -> None:
    """The next fires with the store's calendars applied: excluded times struck out, with the
    reason (and where ``next_business_day`` moves them)."""
    from beatx.calendar_book import named_calendars
    from beatx.cli.target import _target
    from beatx.clock import SystemClock
    from beatx.exclusion import ExcludingTrigger, preview_fires
    from beatx.stores.calendar_base import calendar_storage_of

    manager = _target(ctx).manager()
    calendars = named_calendars(names, calendar_storage_of(manager.store))
    wrapped = ExcludingTrigger(trigger, calendars, on_excluded)  # type: ignore[arg-type]
    zone = wrapped.zone
    entries = preview_fires(wrapped, SystemClock().now(), count)
    if as_json:
        _echo_json(
            {
                "expression": trigger.expression,
                "timezone": timezone_name(zone),
                "exclude": list(names),
                "on_excluded": on_excluded,
                "fires": [
                    {"at": e.at.astimezone(zone), "excluded": e.reason, "moved_to": e.moved_to}
                    for e in entries
                ],
            }
        )
        return
    click.echo(f"{trigger.expression}  ({timezone_name(zone)}), except {', '.join(names)} ({on_excluded})")
    clock = "%H:%M:%S" if trigger.seconds else "%H:%M"
    for entry in entries:
        when = entry.at.astimezone(zone).strftime(f"%a %Y-%m-%d {clock} %Z")
        if entry.reason is None:
            click.echo(f"  {when}")
            continue
        note = f"  excluded: {entry.reason}"
        if entry.moved_to is not None:
            note += f"; runs {entry.moved_to.astimezone(zone).strftime(f'%a %Y-%m-%d {clock} %Z')} instead"
        click.echo(f"  {click.style(when, strikethrough=True)}{note}")
