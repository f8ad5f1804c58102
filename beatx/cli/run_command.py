"""``beatx run --config FILE``: its options; the service itself is in :mod:`beatx.cli.service`."""

from __future__ import annotations

import asyncio
import logging
import sys

import click
from click.core import ParameterSource

from beatx.cli.exit_codes import EXIT_CODES_HELP
from beatx.cli.group import cli
from beatx.cli.service import _serve
from beatx.cli.target import _target


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
