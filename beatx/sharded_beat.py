"""Sharded leadership on a Redis Cluster store: several beat processes, each leading some shards.

A :class:`ShardedBeat` runs one :class:`~beatx.beat.Beat` per shard of a
:class:`~beatx.stores.redis_cluster.ClusterStore`, each with its own lease (the shard's), its
own engine and the same dispatcher. Which shards it tries to lead is :func:`shards_to_take`,
a pure rule over what it reads each poll:

- every beat notes itself alive (a heartbeat, ``{prefix}{cluster}:members``) each poll;
- with ``live`` beats alive, a beat leads at most ``ceil(shards / live)`` shards: it takes a
  free shard (its lease expired or released) while it leads fewer, and gives up the shards
  above its share when another live beat leads fewer than its share;
- a shard free for longer than ``2 × poll`` is taken by any beat, whatever its share, so no
  shard stays unled while a beat is alive.

A beat that dies stops renewing its heartbeat and its leases: within the lease the others count
one beat fewer, their share grows, and they take its shards (each under a new term token, so
nothing planned by the dead beat is written back); its claims expire and its jobs are planned
again with the same task ids. One beat alone leads every shard.

While a reshard is in progress (:mod:`beatx.stores.redis_reshard`), a beat gives up every
shard and waits; when the layout's generation moved, it builds the beats of the new shards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from beatx.beat import Beat, make_owner_token
from beatx.clock import Clock, SystemClock
from beatx.dispatch.base import Dispatcher
from beatx.errors import StoreError
from beatx.events import EventBus
from beatx.stores.base import LeaseInfo
from beatx.stores.redis import RedisStore
from beatx.stores.redis_cluster import ClusterLayout, ClusterStore, fair_share

__all__ = ["ShardedBeat", "shards_to_give", "shards_to_take"]

logger = logging.getLogger("beatx.beat")


def base_of(owner: str) -> str:
    """The beat a shard's lease token names: ``{base}/g{generation}s{shard}b{n}:{term}`` -> ``base``."""
    return owner.rpartition(":")[0].rpartition("/")[0] or owner


def shards_to_take(
    *,
    me: str,
    leases: Sequence[LeaseInfo | None],
    now: datetime,
    live: Sequence[str],
    led: set[int],
    free_since: Mapping[int, float],
    monotonic: float,
    grace: float,
) -> list[int]:
    """The shards this beat (``me``) tries to take now: free shards while it leads fewer than its
    share, and any shard free for longer than ``grace`` (seconds, on ``monotonic``)."""
    share = fair_share(len(leases), len(set(live) | {me}))
    room = share - len(led)
    take: list[int] = []
    for shard, lease in enumerate(leases):
        if shard in led or not _free(lease, now):
            continue
        if room > 0:
            take.append(shard)
            room -= 1
        elif monotonic - free_since.get(shard, monotonic) >= grace:
            take.append(shard)
    return take


def shards_to_give(
    *, me: str, leases: Sequence[LeaseInfo | None], now: datetime, live: Sequence[str], led: set[int]
) -> list[int]:
    """The shards this beat gives up: those above its share, when another live beat leads
    fewer shards than its share (so they are taken at once, not left unled)."""
    share = fair_share(len(leases), len(set(live) | {me}))
    if len(led) <= share:
        return []
    counts = dict.fromkeys(live, 0)
    for lease in leases:
        if lease is not None and not _free(lease, now):
            holder = base_of(lease.owner)
            if holder in counts:
                counts[holder] += 1
    wanting = sum(share - n for beat, n in counts.items() if beat != me and n < share)
    if wanting <= 0:
        return []
    return sorted(led, reverse=True)[: min(len(led) - share, wanting)]


def _free(lease: LeaseInfo | None, now: datetime) -> bool:
    return lease is None or lease.expires_at <= now


class ShardedBeat:
    """One beat process over every shard of a cluster store (see the module docstring).

    Call :meth:`run_once` and then :meth:`wait` with what it returned, in a loop. The
    keyword arguments are :class:`~beatx.beat.Beat`'s, given to each shard's beat; the atomic
    fire is off (see :mod:`beatx.stores.redis_cluster`).
    """

    def __init__(
        self,
        store: ClusterStore,
        dispatcher: Dispatcher,
        *,
        clock: Clock | None = None,
        events: EventBus | None = None,
        lease_timeout: float = 30.0,
        owner: str | None = None,
        restore: Callable[[], str] | None = None,
        **beat_options: Any,
    ) -> None:
        beat_options.pop("atomic_fire", None)
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock or SystemClock()
        self.events = events or EventBus()
        self.lease_timeout = lease_timeout
        #: This beat's name in the heartbeats and in its lease tokens (``{base}:{term}``).
        self.base_owner = owner or make_owner_token()
        self.poll_interval = min(1.0, lease_timeout / 10)
        self.restore = restore
        self._beat_options = beat_options
        self.layout: ClusterLayout | None = None
        #: The beat of each shard of the current layout, and its shard's store.
        self.beats: list[Beat] = []
        self.views: list[RedisStore] = []
        self._free_since: dict[int, float] = {}
        self._polled_at = float("-inf")
        self._given_at = float("-inf")
        self._followed_at = float("-inf")
        self._built = 0
        self.live: list[str] = []
        self.totals = {"fired": 0, "missed": 0, "skipped": 0}

    @property
    def owner(self) -> str:
        return self.base_owner

    @property
    def led(self) -> set[int]:
        """The shards this beat leads now (by its own monotonic clock)."""
        return {n for n, beat in enumerate(self.beats) if beat.leadership.is_leader}

    def _build(self, layout: ClusterLayout) -> None:
        self._drop_all()
        self.layout = layout
        self._free_since = {}
        self.views = [self.store.shard_view(n, layout.generation) for n in range(layout.shards)]
        self.beats = [self._beat(self.views[n], layout.generation, n) for n in range(layout.shards)]
        logger.info(
            "sharded beat %s: %d shard(s), layout generation %d",
            self.base_owner,
            layout.shards,
            layout.generation,
        )

    def _beat(self, view: RedisStore, generation: int, shard: int) -> Beat:
        """The beat of one shard; its lease token names this beat, the layout generation and
        the shard (and how many times this beat rebuilt it: :meth:`_follow`)."""
        self._built += 1
        return Beat(
            view,
            self.dispatcher,
            clock=self.clock,
            events=self.events,
            lease_timeout=self.lease_timeout,
            owner=f"{self.base_owner}/g{generation}s{shard}b{self._built}",
            restore=self.restore,
            atomic_fire=False,
            **self._beat_options,
        )

    def _follow(self, shards: list[int], mono: float) -> None:
        """Shards whose node did not answer: read the cluster's slot map again (at most every
        other poll) and rebuild the beat of each shard whose slot is now on another node (a
        failover promoted a replica, or the slot migrated), under a new lease token."""
        if mono - self._followed_at < 2 * self.poll_interval or self.layout is None:
            return
        self._followed_at = mono
        try:
            self.store.cluster.nodes_manager.initialize()
        except Exception as exc:  # redis-py raises several kinds here; the next poll retries
            logger.warning("cannot read the cluster's slot map: %s", exc)
            return
        for shard in shards:
            if not self.store.node_moved(self.views[shard]):
                continue
            logger.warning("shard %d moved to another node: its beat follows it", shard)
            old_beat, old_view = self.beats[shard], self.views[shard]
            old_beat.engine.discard()
            old_beat.leadership.lost()
            old_view.close()
            self.views[shard] = self.store.shard_view(shard, self.layout.generation)
            self.beats[shard] = self._beat(self.views[shard], self.layout.generation, shard)

    def _drop_all(self) -> None:
        for beat in self.beats:
            self._give_up(beat)
        for view in self.views:
            view.close()
        self.beats, self.views = [], []

    @staticmethod
    def _give_up(beat: Beat) -> None:
        try:
            beat.engine.discard()
            beat.close()
        except StoreError as exc:
            logger.warning("could not give a shard up cleanly (its lease expires by itself): %s", exc)

    def run_once(self) -> float:
        """Poll (heartbeat, layout, leases), then tick every shard this beat leads or takes.
        Returns the seconds to wait before the next call."""
        mono = self.clock.monotonic()
        take: list[int] = []
        if mono - self._polled_at >= self.poll_interval or not self.beats:
            self._polled_at = mono
            try:
                take = self._poll(mono)
            except StoreError as exc:
                logger.warning("cannot poll the cluster store: %s", exc)
                take = []
        if self.layout is None or self.layout.resharding:
            return self.poll_interval
        sleep = self.poll_interval
        for shard in sorted(self.led | set(take)):
            beat = self.beats[shard]
            before = dict(beat.totals)
            seconds = beat.run_once()
            for key in self.totals:
                self.totals[key] += beat.totals[key] - before[key]
            if beat.leadership.is_leader:
                sleep = min(sleep, seconds)
        return max(0.0, sleep)

    def _poll(self, mono: float) -> list[int]:
        """Heartbeat, read the layout and the leases; give up shards above this beat's share.
        Returns the shards to try to take."""
        # A heartbeat outlives three polls but not the lease: a dead beat leaves the count of
        # live beats before its leases expire, so the others' shares have grown by then.
        ttl = max(3 * self.poll_interval, self.lease_timeout / 2)
        self.live = self.store.heartbeat(self.base_owner, ttl=ttl)
        layout = self.store.read_layout()
        if layout.resharding:
            if self.beats:
                logger.warning(
                    "a reshard is in progress (%s): this beat leads nothing until it ends", layout.resharding
                )
                self._drop_all()
            self.layout = layout
            return []
        if self.layout is None or layout.generation != self.layout.generation or not self.beats:
            self._build(layout)
        now = self.clock.now()
        leases: list[LeaseInfo | None] = []
        unreachable: list[int] = []
        for shard, view in enumerate(self.views):
            try:
                leases.append(view.get_lease())
            except StoreError:
                # Unknown: counted as held, so no beat takes it on a guess.
                leases.append(
                    LeaseInfo(owner="", acquired_at=now, expires_at=datetime.max.replace(tzinfo=UTC))
                )
                unreachable.append(shard)
        if unreachable:
            self._follow(unreachable, mono)
        for shard, lease in enumerate(leases):
            if _free(lease, now):
                self._free_since.setdefault(shard, mono)
            else:
                self._free_since.pop(shard, None)
        led = self.led
        renew = self.lease_timeout / 3
        if mono - self._given_at >= renew:
            give = shards_to_give(me=self.base_owner, leases=leases, now=now, live=self.live, led=led)
            if give:
                self._given_at = mono
                logger.info("sharded beat %s gives up shard(s) %s to the other beats", self.base_owner, give)
                for shard in give:
                    self._give_up(self.beats[shard])
                    led.discard(shard)
                return []
        return shards_to_take(
            me=self.base_owner,
            leases=leases,
            now=now,
            live=self.live,
            led=led,
            free_since=self._free_since,
            monotonic=mono,
            grace=2 * self.poll_interval,
        )

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when any shard announces a change."""
        if seconds <= 0:
            return
        try:
            self.store.wait_for_change(seconds)
        except StoreError as exc:
            logger.warning("change notifications unavailable: %s", exc)
            time.sleep(min(seconds, 1.0))

    def run(self, stop: Callable[[], bool]) -> None:
        """Run until ``stop()`` says so, then :meth:`close`."""
        try:
            while not stop():
                self.wait(self.run_once())
        finally:
            self.close()

    def close(self) -> None:
        """Give up every shard and the heartbeat (the store is left open for its owner)."""
        self._drop_all()
        try:
            self.store.leave(self.base_owner)
        except StoreError as exc:
            logger.warning("could not remove this beat's heartbeat (it expires by itself): %s", exc)
