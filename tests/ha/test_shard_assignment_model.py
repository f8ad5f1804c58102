"""The rules of sharded leadership (:func:`beatx.sharded_beat.shards_to_take` and
:func:`~beatx.sharded_beat.shards_to_give`) as a state machine: beats join, die and poll in any
order over a lease table that behaves as the store's (a lease is taken only when free, renewed
by its holder, and expires); after the beats settle, every shard is led by a live beat and no
beat leads more than ``ceil(shards / live beats)``; no shard is ever held by two beats, and a
dead beat's shards are led again within the lease plus a few polls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from beatx.sharded_beat import shards_to_give, shards_to_take
from beatx.stores.base import LeaseInfo
from beatx.stores.redis_cluster import fair_share

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEASE = 6.0
POLL = 0.6
HEARTBEAT = LEASE / 2


class ShardAssignment(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.shards = 1
        #: shard -> (holder, expiry); the store's lease table.
        self.leases: dict[int, tuple[str, float]] = {}
        self.heartbeats: dict[str, float] = {}
        self.alive: set[str] = set()
        self.free_since: dict[str, dict[int, float]] = {}
        self.names = 0

    @initialize(shards=st.integers(1, 16), beats=st.integers(1, 4))
    def start(self, shards: int, beats: int) -> None:
        self.shards = shards
        for _ in range(beats):
            self.join()

    def lease_infos(self) -> list[LeaseInfo | None]:
        infos: list[LeaseInfo | None] = []
        for shard in range(self.shards):
            held = self.leases.get(shard)
            if held is None:
                infos.append(None)
            else:
                holder, expiry = held
                at = T0 + timedelta(seconds=expiry)
                infos.append(LeaseInfo(owner=f"{holder}/g1s{shard}b1:1", acquired_at=T0, expires_at=at))
        return infos

    def led_by(self, beat: str) -> set[int]:
        return {n for n, (holder, expiry) in self.leases.items() if holder == beat and expiry > self.now}

    def poll(self, beat: str) -> None:
        """One poll of a live beat, as ShardedBeat._poll and run_once do it."""
        self.heartbeats[beat] = self.now + HEARTBEAT
        live = sorted(b for b, expiry in self.heartbeats.items() if expiry > self.now)
        now = T0 + timedelta(seconds=self.now)
        leases = self.lease_infos()
        free = self.free_since.setdefault(beat, {})
        for shard, lease in enumerate(leases):
            if lease is None or lease.expires_at <= now:
                free.setdefault(shard, self.now)
            else:
                free.pop(shard, None)
        led = self.led_by(beat)
        for shard in shards_to_give(me=beat, leases=leases, now=now, live=live, led=led):
            del self.leases[shard]
            led.discard(shard)
        take = shards_to_take(
            me=beat,
            leases=leases,
            now=now,
            live=live,
            led=led,
            free_since=free,
            monotonic=self.now,
            grace=2 * POLL,
        )
        for shard in [*led, *take]:
            held = self.leases.get(shard)
            if held is None or held[0] == beat or held[1] <= self.now:  # the acquire script
                self.leases[shard] = (beat, self.now + LEASE - POLL)

    @rule()
    def join(self) -> None:
        self.names += 1
        self.alive.add(f"beat-{self.names}")

    @precondition(lambda self: len(self.alive) > 1)
    @rule(data=st.data())
    def kill(self, data: st.DataObject) -> None:
        self.alive.discard(data.draw(st.sampled_from(sorted(self.alive))))

    @rule(order=st.randoms(use_true_random=False))
    def tick(self, order: object) -> None:
        self.now += POLL
        beats = sorted(self.alive)
        order.shuffle(beats)  # type: ignore[attr-defined]
        for beat in beats:
            self.poll(beat)

    @invariant()
    def settles(self) -> None:
        """Run the beats for a lease and a few polls more: every shard led by a live beat,
        none above its share. (The machine then goes on from the settled state.)"""
        for _ in range(int((LEASE + 6 * POLL) / POLL) + 1):
            self.now += POLL
            for beat in sorted(self.alive):
                self.poll(beat)
        holders = {n: holder for n, (holder, expiry) in self.leases.items() if expiry > self.now}
        assert sorted(holders) == list(range(self.shards)), f"unled shards: {holders}"
        assert set(holders.values()) <= self.alive, "a dead beat still holds a lease"
        share = fair_share(self.shards, len(self.alive))
        counts = {beat: len(self.led_by(beat)) for beat in self.alive}
        assert max(counts.values()) <= share, f"{counts} above the share {share}"


TestShardAssignment = ShardAssignment.TestCase
TestShardAssignment.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)
