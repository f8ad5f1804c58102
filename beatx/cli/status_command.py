"""``beatx status``: the leader, last tick, backlog, totals and jobs per status."""

from __future__ import annotations

import click

from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.group import cli
from beatx.cli.render import _console, _count_by_status, _echo_json, _key_value_table, _when
from beatx.cli.target import _target


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
