"""Job stores: where jobs live. ``open_store(url)`` picks one from a URL."""

from __future__ import annotations

from typing import Any

from beatx.clock import Clock
from beatx.errors import ConfigurationError
from beatx.stores.base import JobStore
from beatx.stores.memory import MemoryStore

__all__ = ["JobStore", "MemoryStore", "open_store"]


def open_store(
    url: str, *, key_prefix: str = "beatx:", clock: Clock | None = None, **options: Any
) -> JobStore:
    """Open the store a URL names:

    - ``memory://``: :class:`MemoryStore` (this process only, lost on exit);
    - ``redis://host:port/db`` (or ``rediss://``, ``unix://``): :class:`beatx.stores.redis.RedisStore`
      with ``key_prefix``; ``redis+sentinel://host:port[,host:port...]/service_name[/db]``: the
      same store on the primary a Sentinel group names (:mod:`beatx.stores.redis_sentinel`);
      ``redis+cluster://host:port[,host:port...]/?shards=N``: the jobs hashed to shards of a
      Redis Cluster (:class:`beatx.stores.redis_cluster.ClusterStore`);
    - ``django://``: :class:`django_beatx.store.DjangoStore` (the Django app must be installed)
      on the database ``BEATX["DATABASE"]`` names, the one the admin uses (``django://<alias>``
      names it too, and must agree; see :func:`django_beatx.conf.store_database`).

    :raises ConfigurationError: for another scheme or a missing optional dependency.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        ledger = {k: v for k, v in options.items() if k in ("run_history", "run_history_days")}
        return MemoryStore(clock=clock, **ledger)
    if scheme in ("redis", "rediss", "unix", "redis+sentinel"):
        try:
            from beatx.stores.redis import RedisStore
        except ImportError as exc:
            raise ConfigurationError(f"store {url!r} needs redis-py: pip install 'beatx[redis]'") from exc
        return RedisStore(url, key_prefix=key_prefix, clock=clock, **options)
    if scheme == "redis+cluster":
        try:
            from beatx.stores.redis_cluster import ClusterStore
        except ImportError as exc:
            raise ConfigurationError(f"store {url!r} needs redis-py: pip install 'beatx[redis]'") from exc
        return ClusterStore(url, key_prefix=key_prefix, clock=clock, **options)
    if scheme == "django":
        try:
            from django_beatx.conf import store_database  # type: ignore[import-not-found,unused-ignore]
            from django_beatx.store import DjangoStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                f"store {url!r} needs Django and django_beatx in INSTALLED_APPS: pip install 'beatx[django]' ({exc})"
            ) from exc
        if "using" not in options:
            options["using"] = store_database(url)
        store: JobStore = DjangoStore(clock=clock, **options)
        return store
    raise ConfigurationError(
        f"unknown store URL {url!r}: expected memory://, redis://host:port/db, "
        "redis+sentinel://host:port/service_name/db, redis+cluster://host:port/?shards=N or django://"
    )
