"""What the parts of a :class:`beatx.stores.redis.RedisStore` share: the one Redis client with
the translation of its errors, the Lua loader, and how timestamps are written.

The store is three parts, one a module, over one :class:`SharedClient`:

- :mod:`beatx.stores.redis`: the jobs (:class:`beatx.stores.base.JobStorage`), and the
  :class:`RedisStore` that serves all three protocols;
- :mod:`beatx.stores.redis_lease`: the leader lease and the beat status
  (:class:`beatx.stores.base.LeaderLease`);
- :mod:`beatx.stores.redis_changes`: the change counter and its pub/sub channel
  (:class:`beatx.stores.base.ChangeFeed`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import redis

from beatx.errors import LeaseLostError, StoreError
from beatx.redaction import redact_url

__all__ = ["SharedClient"]

#: The error a Lua script raises when the claiming or releasing beat does not hold the lease.
LEASE_LOST = "BEATX_LEASE_LOST"


def lua(name: str) -> str:
    """The script ``beatx/stores/lua/{name}.lua``, with ``helpers.lua`` before it when it
    uses them (its first lines say so).

    Scripts read job keys they build from the ``job:`` and ``running:`` prefixes passed in
    ARGV (which come from the key templates), so the templates stay the one source of truth.
    Timestamps travel as exact decimal strings (:func:`ts`) and are stored as given, because
    Lua's number-to-string conversion keeps only 14 digits.
    """
    text = (resources.files("beatx.stores") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    if "-- Runs after helpers.lua" in text:
        return lua("helpers") + "\n" + text
    return text


# -- timestamps and replies --------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts(value: datetime) -> str:
    """Epoch seconds as an exact decimal string (microsecond precision)."""
    micros = (utc(value) - EPOCH) // _MICRO
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{seconds}.{fraction:06d}"


def from_ts(value: str) -> datetime:
    """The inverse of :func:`ts` (also reads plain numbers)."""
    text = value.strip()
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("+-").partition(".")
    micros = int(whole or "0") * 1_000_000 + int((fraction + "000000")[:6])
    return EPOCH + _MICRO * (-micros if negative else micros)


def iso(value: datetime | None) -> str | None:
    return None if value is None else utc(value).isoformat()


def from_iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    return utc(datetime.fromisoformat(value))


def as_str(value: Any) -> str:
    """A reply as a string, whichever ``decode_responses`` setting the client has."""
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the client --------------------------------------------------------------------------------


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def redis_server(connection_kwargs: Mapping[str, Any]) -> str:
    """The Redis server a client's connection settings point at, whatever the database:
    ``host:port`` (the loopback names made one) or ``unix:<path>``. Two clients with the same
    value talk to the same server."""
    if "path" in connection_kwargs:
        return f"unix:{connection_kwargs['path']}"
    host = str(connection_kwargs.get("host") or "localhost").lower()
    if host in _LOOPBACK:
        host = "loopback"
    return f"{host}:{int(connection_kwargs.get('port') or 6379)}"


def _describe(client: redis.Redis) -> str:
    """A URL naming the server a client talks to (for error messages)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if client.connection_pool.connection_class is redis.SSLConnection else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


class SharedClient:
    """The one ``redis.Redis`` the parts of a store use, and the translation of its errors.

    :param url: where to connect, when ``client`` is not given.
    :param client: a ready client to use instead (it is not closed by :meth:`close`).
    :param socket_timeout: seconds to wait for a connection or a reply.
    """

    def __init__(self, url: str, *, client: redis.Redis | None, socket_timeout: float) -> None:
        #: The server, for error messages (without a password).
        self.url = redact_url(url) if client is None else _describe(client)
        self._owns_client = client is None
        sentinel = None
        if client is None and url.partition("://")[0].lower() == "redis+sentinel":
            from beatx.stores.redis_sentinel import parse_sentinel_url, sentinel_client

            sentinel = parse_sentinel_url(url)
            client = sentinel_client(sentinel, socket_timeout=socket_timeout)
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                    decode_responses=True,
                )
            except ValueError as exc:
                raise StoreError(f"Redis store at {self.url}: invalid URL: {exc}") from exc
        self.client: redis.Redis = client
        kwargs = client.connection_pool.connection_kwargs
        #: Whether replies come back as ``str`` (else ``bytes``).
        self.decodes = bool(kwargs.get("decode_responses"))
        #: The database number: keys are per database, pub/sub channels are per server.
        self.db = int(kwargs.get("db") or 0)
        #: The server (:func:`redis_server`); behind Sentinel, the deployment (the primary moves).
        self.server = sentinel.server if sentinel is not None else redis_server(kwargs)
        #: Replicas that must acknowledge a lease write (``WAIT``) before the beat leads on
        #: it, and how long to wait for them (``redis+sentinel://...?wait_replicas=``).
        self.wait_replicas = sentinel.wait_replicas if sentinel is not None else 0
        self.wait_timeout = sentinel.wait_timeout if sentinel is not None else 0.0

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn redis-py errors into :class:`StoreError` naming the server and the operation
        (:class:`LeaseLostError` for a script's lease check)."""
        try:
            yield
        except redis.ResponseError as exc:
            if LEASE_LOST in str(exc):
                raise self.lease_lost(what) from exc
            raise StoreError(f"Redis store at {self.url}: {what} failed: {exc}") from exc
        except (redis.RedisError, OSError) as exc:
            raise StoreError(
                f"Redis store at {self.url}: {what} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def lease_lost(self, what: str) -> LeaseLostError:
        return LeaseLostError(f"Redis store at {self.url}: {what}: the beat does not hold the leader lease")

    def close(self) -> None:
        """Close the client, if this object made it."""
        if self._owns_client:
            self.client.close()
