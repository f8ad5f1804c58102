"""The change feed of a Redis store (:class:`beatx.stores.base.ChangeFeed`): a counter every
write bumps, and a pub/sub channel on which its new value is published.

The store's scripts bump and publish in the same atomic step as the change they make, given
the :attr:`RedisChangeFeed.key` in KEYS and the :attr:`RedisChangeFeed.channel` in ARGV;
:class:`beatx.stores.redis.RedisStore` serves :meth:`~RedisChangeFeed.wait_for_change` by
delegating to :class:`RedisChangeFeed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import redis
from redis.client import PubSub

from beatx.stores.redis_common import SharedClient, as_str, lua

__all__ = ["RedisChangeFeed"]

LUA_NOTIFY = lua("notify")


class RedisChangeFeed:
    """Waits for changes on one long-lived pub/sub subscription, re-created after an error.

    The counter covers what the subscription cannot: a change made between two waits (the
    counter moved since the last one) and a change announced while no one was subscribed.

    :param key: the counter (``{prefix}changes``).
    :param channel: the channel its new values are published on (``{prefix}changes@{db}``).
        Channels are server-wide, not per database, so it must name the database: two stores
        sharing it wake each other.
    """

    def __init__(self, shared: SharedClient, *, key: str, channel: str) -> None:
        self._shared = shared
        self.key = key
        self.channel = channel
        self._notify = shared.client.register_script(LUA_NOTIFY)
        self._wait_lock = threading.Lock()
        self._pubsub: PubSub | None = None
        self._seen_changes: int | None = None

    def notify(self) -> None:
        """Bump the counter and publish it (for writes whose script did not)."""
        with self._shared.errors("change notification"):
            self._notify(keys=[self.key], args=[self.channel])

    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a message on the store's ``changes`` channel (one long-lived subscription).

        Returns ``True`` at once if the ``changes`` counter moved since the previous call, so
        a change made between two waits is not lost. The first call (and the first after a
        connection error) subscribes and only sees changes from then on.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._wait_lock, self._shared.errors("wait for changes"):
            try:
                if self._pubsub is None:
                    self._pubsub = self._subscribe()
                else:
                    queued = self._drain(self._pubsub)
                    current = self._changes()
                    # Lower than seen means the counter was reset (FLUSHDB): moved too.
                    moved = current != self._seen_changes
                    self._seen_changes = current
                    if queued or moved:
                        return True
                pubsub = self._pubsub
                while True:
                    remaining = deadline - time.monotonic()
                    message = pubsub.get_message(timeout=max(remaining, 0.0))
                    if self._is_new_change(message):
                        self._drain(pubsub)  # one wake-up covers what is already queued
                        return True
                    if remaining <= 0:
                        return False
            except (redis.RedisError, OSError):
                self._drop_pubsub()
                raise

    def close(self) -> None:
        """End the subscription (the shared client is the store's to close)."""
        with self._wait_lock:
            self._drop_pubsub()

    def _changes(self) -> int:
        return int(self._shared.client.get(self.key) or 0)

    def _subscribe(self) -> PubSub:
        pubsub: PubSub = self._shared.client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            # Wait for the confirmation, so a change published after it cannot be missed.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=max(deadline - time.monotonic(), 0.0))
                if message is not None and as_str(message["type"]) == "subscribe":
                    break
            self._seen_changes = self._changes()
        except BaseException:
            pubsub.close()
            raise
        return pubsub

    def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except redis.RedisError:
                pass

    def _drain(self, pubsub: PubSub) -> bool:
        """Read every message already received, without waiting. Returns whether one was new."""
        new = False
        while (message := pubsub.get_message(timeout=0.0)) is not None:
            new = self._is_new_change(message) or new
        return new

    def _is_new_change(self, message: Mapping[str, Any] | None) -> bool:
        """Whether ``message`` announces a change not seen yet (and note it as seen)."""
        if message is None or as_str(message["type"]) != "message":
            return False
        try:
            value = int(as_str(message["data"]))
        except ValueError:
            return True
        if self._seen_changes is not None and value <= self._seen_changes:
            return False
        self._seen_changes = value
        return True
