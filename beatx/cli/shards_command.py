"""``beatx shards``: the shards of a Redis Cluster store (``redis+cluster://``): their layout and
leaders (``status``), and changing how many there are (``reshard --to N``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from beatx.cli.exit_codes import EXIT_BAD_INPUT, EXIT_CODES_HELP, CommandError
from beatx.cli.group import cli
from beatx.cli.target import _target

if TYPE_CHECKING:
    from beatx.stores.redis_cluster import ClusterStore


def _cluster_store(ctx: click.Context) -> ClusterStore:
    from beatx.stores.redis_cluster import ClusterStore

    store = _target(ctx).manager().store
    if not isinstance(store, ClusterStore):
        raise CommandError(
            f"the store {store!r} is not a Redis Cluster store (redis+cluster://): it has no shards",
            EXIT_BAD_INPUT,
        )
    return store


@cli.group(epilog=EXIT_CODES_HELP)
def shards() -> None:
    """Show and change the shards of a Redis Cluster store (redis+cluster://)."""


@shards.command("status", epilog=EXIT_CODES_HELP)
@click.pass_context
def shards_status(ctx: click.Context) -> None:
    """Print the layout (shards, generation, a reshard in progress) and each shard's leader."""
    store = _cluster_store(ctx)
    layout = store.refresh()
    fence = f", reshard in progress ({layout.resharding})" if layout.resharding else ""
    click.echo(f"{layout.shards} shard(s), generation {layout.generation}{fence}")
    for shard, lease in enumerate(store.shard_leases()):
        holder = "no leader" if lease is None else f"{lease.owner} until {lease.expires_at.isoformat()}"
        click.echo(f"shard {shard}: {store.views[shard].count_jobs()} job(s), {holder}")


@shards.command("reshard", epilog=EXIT_CODES_HELP)
@click.option("--to", "to_shards", type=click.IntRange(1, 1024), required=True, help="The new shard count.")
@click.option(
    "--lease-wait",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for each shard's lease (a dead beat's expires within beatx_lease_timeout).",
)
@click.pass_context
def shards_reshard(ctx: click.Context, to_shards: int, lease_wait: float) -> None:
    """Move every job to TO shards without losing or doubling a fire: fence the beats, take
    every shard's lease, move each job with its state, switch the layout (docs/operations.md)."""
    from beatx.stores.redis_reshard import reshard

    report = reshard(_cluster_store(ctx), to_shards, lease_wait=lease_wait, progress=click.echo)
    click.echo(
        f"resharded {report.moved} job(s): {report.from_shards} -> {report.to_shards} shard(s), "
        f"generation {report.generation}, in {report.seconds:.2f}s"
    )
