"""Resharding a Redis Cluster store: changing how many shards the jobs are hashed to.

``beatx shards reshard --to 16`` (or :func:`reshard`) moves every job to its shard of the new
layout without losing or doubling a fire:

1. **Fence.** The layout gets ``resharding = <token>``. Every :class:`~beatx.sharded_beat.ShardedBeat`
   reads the layout each poll (at most a second) and, seeing the fence, gives up every shard
   (engine discarded, lease released) and leads nothing until the fence is gone; management
   writes are refused (:class:`~beatx.stores.redis_cluster.ReshardingError`) meanwhile.
2. **Take every lease.** The reshard takes each old shard's lease under its own token, waiting
   for each to be released or to expire (a beat that was killed, or frozen, holds it until
   then). From here no beat can claim or write back in an old shard: its scripts are fenced by
   the lease.
3. **Move.** Each job's keys (its hash with next run, counters, claim tokens; its definition;
   its runs in flight; its run ledger and audit log, with their expiry) are copied to its shard of the new
   generation (new key prefixes: ``{prefix}{g2s3}:``), indexed as they were (scheduled by
   next run, or claimed until the claim's deadline), then deleted from the old shard. A
   management write that raced the fence and landed in an old shard after its jobs were moved
   is moved by a second pass.
4. **Flip.** The layout gets the new shard count and generation, and the fence is lifted. The
   beats build the new shards' beats and take their leases (each under a new term token).

**In-flight fires.** Between ticks a beat holds no claim (a tick claims, sends and writes back;
a beat giving up its shards writes back or gives back what it claimed first). A fire a beat
sent and had not written back when it died (or when the fence came) keeps its job claimed;
the claim moves with the job, expires at its deadline, and the new shard's leader sends that
fire again with the same task id, which the worker-side guard (``beatx_dedupe``) drops: its
delivery marks (``{prefix}{cluster}:delivered:*``) belong to no shard and are not moved. Fires
that fall due during the reshard (a few seconds for thousands of jobs) are sent after it with
their own times, as after a failover (the catch-up window is the lease plus a claim).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beatx.errors import ConfigurationError, StoreError
from beatx.stores.redis import RedisStore
from beatx.stores.redis_cluster import ClusterLayout, ClusterStore, shard_of
from beatx.stores.redis_common import as_str

__all__ = ["ReshardReport", "reshard"]

logger = logging.getLogger("beatx.stores.redis")

#: How long the reshard waits for one shard's lease (a live beat releases at its next poll;
#: a dead one's lease expires within its ``lease_timeout``).
DEFAULT_LEASE_WAIT = 120.0


@dataclass(frozen=True)
class ReshardReport:
    """What a reshard did."""

    from_shards: int
    to_shards: int
    generation: int
    moved: int
    seconds: float


def reshard(
    store: ClusterStore,
    to_shards: int,
    *,
    lease_wait: float = DEFAULT_LEASE_WAIT,
    settle: float = 1.5,
    progress: Callable[[str], None] | None = None,
) -> ReshardReport:
    """Move every job of ``store`` to ``to_shards`` shards (see the module docstring).

    :param lease_wait: how long to wait for each old shard's lease.
    :param settle: seconds to wait after raising the fence, for management writes that read
        the layout before it to land (they are moved by the second pass otherwise).
    :raises ConfigurationError: for a bad shard count, or while another reshard is running.
    :raises StoreError: when a lease could not be taken in time; the fence is lifted and the
        layout is left as it was (nothing moved yet).
    """
    say = progress or (lambda text: logger.info("%s", text))
    if not 1 <= to_shards <= 1024:
        raise ConfigurationError(f"shards must be a whole number from 1 to 1024, got {to_shards!r}")
    started = time.monotonic()
    layout = store.refresh()
    if layout.resharding:
        raise ConfigurationError(
            f"a reshard is already in progress ({layout.resharding}); if it died, run again with --force"
        )
    token = f"reshard:{uuid.uuid4().hex[:12]}"
    fenced = ClusterLayout(layout.shards, layout.generation, token)
    store.write_layout(fenced)
    say(f"fence raised ({token}): beats give up their shards, management writes wait")
    old = [store.shard_view(n, layout.generation) for n in range(layout.shards)]
    new_generation = layout.generation + 1
    new = [store.shard_view(n, new_generation) for n in range(to_shards)]
    try:
        try:
            time.sleep(settle)
            _take_leases(old, token, lease_wait, say)
        except BaseException:
            store.write_layout(ClusterLayout(layout.shards, layout.generation))
            for view in old:
                _release(view, token)
            raise
        moved: set[str] = set()
        for attempt in range(2):  # the second pass moves writes that raced the fence
            for view in old:
                ids = _move_shard(view, new, to_shards)
                if attempt and ids:
                    say(f"moved {len(ids)} job(s) written during the fence: {', '.join(sorted(ids)[:10])}")
                moved.update(ids)
        store.write_layout(ClusterLayout(to_shards, new_generation))
        for view in old:
            _release(view, token)
        store.refresh()
        say(
            f"moved {len(moved)} job(s) from {layout.shards} to {to_shards} shard(s), generation {new_generation}"
        )
        return ReshardReport(layout.shards, to_shards, new_generation, len(moved), time.monotonic() - started)
    finally:
        for view in old + new:
            view.close()


def _take_leases(old: list[RedisStore], token: str, lease_wait: float, say: Callable[[str], None]) -> None:
    for n, view in enumerate(old):
        deadline = time.monotonic() + lease_wait
        while not view.acquire_lease(token, now=view._clock.now(), ttl=lease_wait + 600):
            if time.monotonic() > deadline:
                raise StoreError(f"reshard: shard {n}'s lease was not released within {lease_wait:g}s")
            time.sleep(0.2)
        say(f"shard {n}: lease taken")


def _release(view: RedisStore, token: str) -> None:
    try:
        view.release_lease(token)
    except StoreError as exc:
        logger.warning("reshard: could not release a lease (it expires by itself): %s", exc)


#: Per job: the keys moved with it (key template suffixes after the shard prefix).
_PER_JOB = ("job:", "def:", "running:", "runs:", "history:")


def _move_shard(view: RedisStore, new: list[RedisStore], to_shards: int) -> list[str]:
    """Move every job of one old shard; returns their ids."""
    client = view._client
    old_prefix = view._prefix
    ids = [as_str(i) for i in client.smembers(view._jobs_key)]
    # Jobs removed but with history, and runs in flight, are moved with their ids too.
    claims = dict(_scored(client, view._claims_key))
    schedule = dict(_scored(client, view._schedule_key))
    running_all = _scored(client, view._running_all_key)
    for job_id in ids:
        target = new[shard_of(job_id, to_shards)]
        _move_job(view, target, job_id, old_prefix, claims.get(job_id), schedule.get(job_id))
    for member, score in running_all:
        job_id = member.partition("\0")[0]
        target = new[shard_of(job_id, to_shards)]
        target._client.zadd(target._running_all_key, {member: score})
    client.delete(view._running_all_key)
    alerting_key = getattr(view, "_alerting_key", None)
    if alerting_key is not None:
        for job_id in (as_str(i) for i in client.smembers(alerting_key)):
            target = new[shard_of(job_id, to_shards)]
            target._client.sadd(target._alerting_key, job_id)
        client.delete(alerting_key)
    # What no job owns is dropped with the old shard: its beat status, meta values (the data
    # loss epoch: the new shard gets its own) and change counter. Its lease goes last.
    client.delete(f"{old_prefix}status", f"{old_prefix}meta", f"{old_prefix}changes")
    for key in client.scan_iter(match=_escape(old_prefix) + "history:*", count=1000):
        job_id = as_str(key)[len(old_prefix) + len("history:") :]
        target = new[shard_of(job_id, to_shards)]
        _copy_key(client, as_str(key), target._client, f"{target._prefix}history:{job_id}")
    return ids


def _scored(client: Any, key: str) -> list[tuple[str, float]]:
    """Every member of a sorted set with its score."""
    return [(as_str(member), float(score)) for member, score in client.zrange(key, 0, -1, withscores=True)]


def _move_job(
    view: RedisStore,
    target: RedisStore,
    job_id: str,
    old_prefix: str,
    claim_deadline: float | None,
    next_score: float | None,
) -> None:
    src, dst = view._client, target._client
    for part in _PER_JOB:
        _copy_key(src, f"{old_prefix}{part}{job_id}", dst, f"{target._prefix}{part}{job_id}")
    pipe = dst.pipeline(transaction=True)
    pipe.sadd(target._jobs_key, job_id)
    if claim_deadline is not None:
        pipe.zadd(target._claims_key, {job_id: claim_deadline})
    elif next_score is not None:
        pipe.zadd(target._schedule_key, {job_id: next_score})
    pipe.execute()
    pipe = src.pipeline(transaction=True)
    pipe.srem(view._jobs_key, job_id)
    pipe.zrem(view._claims_key, job_id)
    pipe.zrem(view._schedule_key, job_id)
    pipe.execute()


def _copy_key(src: Any, key: str, dst: Any, new_key: str) -> None:
    """Copy one key (any type) with its expiry, then delete it (DUMP / RESTORE: the nodes of
    two slots may differ)."""
    dumped = src.dump(key)
    if dumped is None:
        return
    ttl = int(src.pttl(key))
    dst.restore(new_key, max(ttl, 0), dumped, replace=True)
    src.delete(key)


def _escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
