"""Redis behind Sentinel: the ``redis+sentinel://`` store URL and the client it makes.

::

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service_name[/db][?options]

The hosts are the sentinels (port 26379 by default), ``service_name`` the master name they
monitor, ``db`` the database (0 by default); the password is the primary's. Options:

- ``sentinel_password`` (and ``sentinel_username``): the sentinels' own ``requirepass``;
- ``wait_replicas`` (default 1): after the beat takes or renews the leader lease, it waits
  for this many replicas to acknowledge the write (``WAIT``), and leads only if they did, so
  a renewal acknowledged by a primary that dies before replicating it cannot let a second
  beat lead while the first still believes it holds the lease; 0 turns the wait off;
- ``wait_timeout`` (seconds, default 0.5): how long that ``WAIT`` waits.

The client asks the sentinels for the primary when it connects, and again after a
connection error or a ``READONLY`` reply (the old primary, now a replica): a beat follows a
failover on its next call. Parsing is pure (:func:`parse_sentinel_url`); :func:`sentinel_client`
connects nothing until the first command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from beatx.errors import ConfigurationError
from beatx.redaction import redact_url

__all__ = ["SCHEME", "SentinelURL", "parse_sentinel_url", "sentinel_client"]

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_WAIT_REPLICAS = 1
DEFAULT_WAIT_TIMEOUT = 0.5
_OPTIONS = frozenset({"sentinel_password", "sentinel_username", "wait_replicas", "wait_timeout"})


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    wait_replicas: int = DEFAULT_WAIT_REPLICAS
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT

    @property
    def server(self) -> str:
        """The identity of the deployment (not of one server: the primary moves)."""
        hosts = ",".join(f"{host}:{port}" for host, port in sorted(self.sentinels))
        return f"sentinel:{self.service_name}@{hosts}"


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL (see the module docstring).

    :raises ConfigurationError: naming what is wrong with it.
    """

    def bad(what: str) -> ConfigurationError:
        return ConfigurationError(f"Redis Sentinel URL {redact_url(url)!r}: {what}")

    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise bad(f"expected {SCHEME}://host:port[,host:port...]/service_name[/db]")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(item, bad) for item in hosts.split(",") if item.strip())
    if not sentinels:
        raise bad("no sentinel host:port")
    parts = [part for part in path.split("/") if part]
    if not parts or len(parts) > 2:
        raise bad("expected /service_name or /service_name/db after the sentinels")
    service_name = unquote(parts[0])
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise bad(f"the database must be a number, got {parts[1]!r}")
        db = int(parts[1])
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise bad(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_OPTIONS))})")
    try:
        wait_replicas = int(options.get("wait_replicas", DEFAULT_WAIT_REPLICAS))
        wait_timeout = float(options.get("wait_timeout", DEFAULT_WAIT_TIMEOUT))
    except ValueError as exc:
        raise bad(f"wait_replicas must be an integer and wait_timeout seconds: {exc}") from None
    if wait_replicas < 0 or not wait_timeout > 0:
        raise bad("wait_replicas must be >= 0 and wait_timeout > 0")
    return SentinelURL(
        sentinels=sentinels,
        service_name=service_name,
        db=db,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        wait_replicas=wait_replicas,
        wait_timeout=wait_timeout,
    )


def sentinel_client(parsed: SentinelURL, *, socket_timeout: float) -> Any:
    """A ``redis.Redis`` on the current primary of ``parsed.service_name``, as the sentinels
    name it (asked again after a connection error or a ``READONLY`` reply)."""
    from redis.sentinel import Sentinel

    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
    }
    if parsed.sentinel_password is not None:
        sentinel_kwargs["password"] = parsed.sentinel_password
    if parsed.sentinel_username is not None:
        sentinel_kwargs["username"] = parsed.sentinel_username
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    return sentinel.master_for(  # type: ignore[no-untyped-call]
        parsed.service_name,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        decode_responses=True,
    )


def _host_port(item: str, bad: Any) -> tuple[str, int]:
    text = item.strip()
    if text.startswith("["):  # [::1]:26379
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise bad(f"no host in {item!r}")
    if port and not port.isdigit():
        raise bad(f"the port of {item!r} must be a number")
    return host, int(port) if port else DEFAULT_SENTINEL_PORT
