"""The leader lease and the beat status of a Redis store (:class:`beatx.stores.base.LeaderLease`).

:class:`beatx.stores.redis.RedisStore` serves it by delegating to :class:`RedisLease`, and its
claims and write-backs are fenced by the same ``lease`` key, in their own scripts.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from beatx.errors import SerializationError
from beatx.stores.base import BeatStatus, LeaseInfo
from beatx.stores.redis_common import SharedClient, as_str, from_iso, from_ts, iso, lua, ts

__all__ = ["RedisLease", "decode_status", "encode_status"]

logger = logging.getLogger("beatx.stores.redis")

LUA_ACQUIRE_LEASE = lua("acquire_lease")
LUA_RELEASE_LEASE = lua("release_lease")


class RedisLease:
    """The lease the beats compete for and the leader's health report.

    Lease validity is judged against the time passed in, not Redis key expiry. The lease this
    object last took or renewed is remembered (:attr:`taken`), so the store can tell whether
    its beat still holds it without a read (:meth:`holds`).

    :param key: the lease hash (``{prefix}lease``): ``owner``, ``acquired_at``, ``expires_at``.
    :param status_key: the string holding the JSON of the last :class:`BeatStatus`
        (``{prefix}status``).
    """

    def __init__(self, shared: SharedClient, *, key: str, status_key: str, server_time: bool = True) -> None:
        self._shared = shared
        #: Judge expiry by the Redis server's clock (``now`` then only names the caller's).
        self.server_time = server_time
        self.key = key
        self.status_key = status_key
        self._take = shared.client.register_script(LUA_ACQUIRE_LEASE)
        self._give = shared.client.register_script(LUA_RELEASE_LEASE)
        #: The lease this store last took or renewed: its owner and the expiry it wrote.
        self.taken: tuple[str, datetime] | None = None

    def holds(self, owner: str, now: datetime) -> bool:
        """Whether ``owner`` holds the lease at ``now`` by the lease this store last took:
        another beat takes a lease only once it has expired, so no read is needed (a read
        would wait behind the scripts of the burst that Redis is running)."""
        taken = self.taken
        return taken is not None and taken[0] == owner and now < taken[1]

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        """See :meth:`beatx.stores.base.LeaderLease.acquire_lease`; with ``server_time`` the
        lease is taken, renewed and judged expired by the Redis server's clock, so a beat
        whose clock runs ahead cannot take a lease early."""
        args = [owner, "" if self.server_time else ts(now), repr(float(ttl))]
        self.taken = None
        with self._shared.errors(f"acquire the lease for {owner!r}"):
            reply = self._take(keys=[self.key], args=args)
        if not reply or as_str(reply) == "0":
            return False
        if not self._replicated(owner):
            return False
        # The memory of :meth:`holds` is on the caller's clock (it is compared with the
        # caller's ``now``): the lease asked for, from the caller's now.
        self.taken = (owner, now + timedelta(seconds=ttl))
        return True

    def _replicated(self, owner: str) -> bool:
        """Whether the lease write just made reached ``wait_replicas`` replicas (``WAIT``;
        always True when none are asked for). A write only the primary holds can be lost in a
        failover, and with it the lease another beat would then see expired: the beat leads
        only on a replicated lease."""
        wanted = self._shared.wait_replicas
        if wanted <= 0:
            return True
        timeout_ms = max(int(self._shared.wait_timeout * 1000), 1)
        with self._shared.errors(f"wait for {wanted} replica(s) to take the lease of {owner!r}"):
            acknowledged = int(self._shared.client.wait(wanted, timeout_ms))
        if acknowledged >= wanted:
            return True
        logger.warning(
            "lease of %s not led on: %d of %d replica(s) acknowledged it within %gs (a failover "
            "could lose it)",
            owner,
            acknowledged,
            wanted,
            self._shared.wait_timeout,
        )
        return False

    def release_lease(self, owner: str) -> None:
        self.taken = None
        with self._shared.errors(f"release the lease of {owner!r}"):
            self._give(keys=[self.key], args=[owner])

    def get_lease(self) -> LeaseInfo | None:
        with self._shared.errors("read the lease"):
            owner, acquired, expires = self._shared.client.hmget(
                self.key, ["owner", "acquired_at", "expires_at"]
            )
        if owner is None or acquired is None or expires is None:
            return None
        try:
            return LeaseInfo(
                owner=as_str(owner),
                acquired_at=from_ts(as_str(acquired)),
                expires_at=from_ts(as_str(expires)),
            )
        except ValueError as exc:
            raise SerializationError(f"corrupt lease record at {self.key!r}: {exc}") from exc

    def write_status(self, status: BeatStatus) -> None:
        with self._shared.errors("write the beat status"):
            self._shared.client.set(self.status_key, encode_status(status))

    def read_status(self) -> BeatStatus | None:
        with self._shared.errors("read the beat status"):
            raw = self._shared.client.get(self.status_key)
        return None if raw is None else decode_status(raw, self.status_key)


def encode_status(status: BeatStatus) -> str:
    """A beat's status as the JSON the Redis stores keep."""
    return json.dumps(
        {
            "owner": status.owner,
            "leader_since": iso(status.leader_since),
            "last_tick_at": iso(status.last_tick_at),
            "due_backlog": status.due_backlog,
            "jobs_fired": status.jobs_fired,
            "jobs_missed": status.jobs_missed,
            "jobs_skipped": status.jobs_skipped,
        }
    )


def decode_status(raw: Any, key: str) -> BeatStatus:
    """:func:`encode_status`'s JSON read back from ``key``.

    :raises SerializationError: naming the key, when it is not a status.
    """
    try:
        data = json.loads(as_str(raw))
        last_tick = from_iso(data["last_tick_at"])
        if last_tick is None:
            raise ValueError("last_tick_at is null")
        return BeatStatus(
            owner=data["owner"],
            leader_since=from_iso(data.get("leader_since")),
            last_tick_at=last_tick,
            due_backlog=int(data["due_backlog"]),
            jobs_fired=int(data.get("jobs_fired", 0)),
            jobs_missed=int(data.get("jobs_missed", 0)),
            jobs_skipped=int(data.get("jobs_skipped", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"corrupt beat status at {key!r}: {exc}") from exc
