"""The ``beatx`` command group (its global options) and the ``beatx jobs`` group."""

from __future__ import annotations

import click
from click.core import ParameterSource

from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.params import TIMEZONE
from beatx.cli.target import Target


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
