"""``beatx import redbeat URL``: bring RedBeat's schedule into the chosen store."""

from __future__ import annotations

import click

from beatx.cli.exit_codes import EXIT_CODES_HELP, EXIT_REFUSED, CommandError
from beatx.cli.group import cli
from beatx.cli.target import _target


@cli.group("import", epilog=EXIT_CODES_HELP)
def import_group() -> None:
    """Import the schedule of another scheduler into the store."""


@import_group.command("redbeat", epilog=EXIT_CODES_HELP)
@click.argument("url", metavar="URL")
@click.option(
    "--prefix",
    default="redbeat:",
    show_default=True,
    help="RedBeat's key prefix (its redbeat_key_prefix setting).",
)
@click.option(
    "--include-static",
    is_flag=True,
    help="Also import the entries RedBeat took from beat_schedule (celery beat -S beatx imports "
    "beat_schedule itself at start).",
)
@click.option("--update", is_flag=True, help="Update jobs that already exist (their run state is kept).")
@click.option("--dry-run", is_flag=True, help="Report what would be imported; write nothing.")
@click.pass_context
def import_redbeat(
    ctx: click.Context, url: str, prefix: str, include_static: bool, update: bool, dry_run: bool
) -> None:
    """Import RedBeat's entries from the Redis at URL (read only) as beatx jobs.

    Job ids are the entry names (spaces and other characters become '-'); run counts and last
    runs are kept; an interval job goes on from its last run. Exits 1 when an entry was
    refused."""
    from beatx.importers.common import ImportReport, save_imported
    from beatx.importers.redbeat import Refused, convert_entry, read_redbeat

    manager = _target(ctx).manager()
    report = ImportReport()
    taken: set[str] = set()
    now = manager.clock.now()
    timezone = manager.timezone
    for entry in read_redbeat(url, prefix=prefix):
        if entry.static and not include_static:
            name = entry.key.removeprefix(prefix)
            report.note(f"- {name}: from beat_schedule, which celery beat -S beatx imports itself")
            continue
        try:
            job = convert_entry(entry, timezone=timezone, now=now)
        except Refused as exc:
            report.refuse(entry.key, str(exc))
            continue
        save_imported(manager, job, report, update=update, dry_run=dry_run, taken=taken)
    for kind, text in report.lines:
        click.echo(f"  {text}", err=kind == "refused")
    click.echo(report.summary(dry_run=dry_run))
    if report.counts["refused"]:
        raise CommandError(f"{report.counts['refused']} RedBeat entries refused (see above)", EXIT_REFUSED)
