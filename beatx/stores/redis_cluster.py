"""Redis Cluster: the ``redis+cluster://`` store URL, jobs hashed to shards, one lease per shard.

::

    redis+cluster://[[username]:password@]host:port[,host:port...]/[?shards=N]

The hosts are some nodes of the cluster (redis-py's ``RedisCluster`` finds the others);
``shards`` (default 1) is how many shards the jobs are hashed to when the store is first
opened; after that the layout stored in the cluster is the truth (changing it is a reshard,
:mod:`beatx.stores.redis_reshard`).

**Layout.** A job belongs to shard ``crc32(job id) % shards``. A shard is a whole
:class:`~beatx.stores.redis.RedisStore` (the same Lua scripts, the same key layout) whose key
prefix holds a hash tag, ``{key_prefix}{s3}:`` (``{key_prefix}{g2s3}:`` after the first
reshard: generation 2), so every key of a shard is in one slot and every script touches one
slot (no ``CROSSSLOT``). Each shard is served by a plain client on the node that owns its slot
(so pipelines, scripts and claims sent ahead work as on one server). What belongs to no shard
is under ``{key_prefix}{cluster}:``: the layout, the beats' heartbeats, the calendars, the meta
values and status of the store as a whole, and the duplicate-delivery marks of the workers.

:class:`ClusterStore` is a whole :class:`~beatx.stores.base.JobStore`: management calls go to
the shard of the job id; reads over every job merge the shards; its lease is every shard's
lease at once (a plain :class:`~beatx.beat.Beat` on it leads every shard).
:class:`beatx.sharded_beat.ShardedBeat` instead runs one beat per shard it leads, so several
beat processes share the shards.

The atomic fire (the write-back script pushing the Celery message onto the broker's list) is
off: a broker list is in another slot than the shard's keys (Redis Cluster runs a script on
one slot), and kombu has no Redis Cluster transport. Fires are published, then written back;
the worker-side guard (``beatx_dedupe``) drops the repeat of a fire a killed beat had sent.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import redis
from redis.cluster import ClusterNode, RedisCluster

from beatx.audit import JobChange
from beatx.clock import Clock, SystemClock
from beatx.errors import (
    ConfigurationError,
    ConflictingIdError,
    LeaseLostError,
    SerializationError,
    StoreError,
)
from beatx.jobs import Job, JobStatus
from beatx.ledger import RunOutcome, RunRecord
from beatx.redaction import redact_url
from beatx.stores.base import DELIVERY_MEMORY, BeatStatus, JobRelease, LeaseInfo
from beatx.stores.calendar_redis import RedisCalendarStorage
from beatx.stores.redis import RedisStore
from beatx.stores.redis_common import SharedClient, as_str, redis_server
from beatx.stores.redis_lease import decode_status, encode_status

__all__ = [
    "SCHEME",
    "ClusterLayout",
    "ClusterStore",
    "ClusterURL",
    "ReshardingError",
    "fair_share",
    "parse_cluster_url",
    "shard_of",
    "shard_prefix",
]

logger = logging.getLogger("beatx.stores.redis")

_T = TypeVar("_T")

SCHEME = "redis+cluster"
DEFAULT_CLUSTER_PORT = 6379
#: The hash tag of what belongs to no shard.
GLOBAL_TAG = "{cluster}"
_OPTIONS = frozenset({"shards"})


def shard_of(job_id: str, shards: int) -> int:
    """The shard of a job: ``crc32(job id) % shards`` (stable across processes and versions)."""
    return zlib.crc32(job_id.encode("utf-8")) % shards if shards > 1 else 0


def shard_prefix(key_prefix: str, shard: int, generation: int = 1) -> str:
    """The key prefix of one shard, a hash tag included: ``beatx:{s3}:`` (generation 1),
    ``beatx:{g2s3}:`` (after a reshard)."""
    tag = f"s{shard}" if generation == 1 else f"g{generation}s{shard}"
    return f"{key_prefix}{{{tag}}}:"


def global_prefix(key_prefix: str) -> str:
    """The prefix of the keys that belong to no shard (one slot)."""
    return f"{key_prefix}{GLOBAL_TAG}:"


@dataclass(frozen=True)
class ClusterURL:
    """What a ``redis+cluster://`` URL says."""

    nodes: tuple[tuple[str, int], ...]
    shards: int = 1
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClusterLayout:
    """The shards of a deployment, as stored in the cluster (``{prefix}{cluster}:layout``).

    :param resharding: the token of a reshard in progress ('' for none): beats lead nothing
        and management writes are refused while it is set.
    """

    shards: int
    generation: int = 1
    resharding: str = ""


def parse_cluster_url(url: str) -> ClusterURL:
    """Read a ``redis+cluster://`` URL (see the module docstring).

    :raises ConfigurationError: naming what is wrong with it.
    """

    def bad(what: str) -> ConfigurationError:
        return ConfigurationError(f"Redis Cluster URL {redact_url(url)!r}: {what}")

    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise bad(f"expected {SCHEME}://host:port[,host:port...]/[?shards=N]")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise bad("a Redis Cluster has database 0 only: no /db after the hosts")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_host_port(item, bad) for item in hosts.split(",") if item.strip())
    if not nodes:
        raise bad("no node host:port")
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise bad(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_OPTIONS))})")
    text = options.get("shards", "1")
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise bad(f"shards must be a whole number from 1 to 1024, got {text!r}")
    return ClusterURL(nodes=nodes, shards=int(text), username=username, password=password)


def _host_port(item: str, bad: Any) -> tuple[str, int]:
    text = item.strip()
    if text.startswith("["):  # [::1]:7000
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise bad(f"no host in {item!r}")
    if port and not port.isdigit():
        raise bad(f"the port of {item!r} must be a number")
    return host, int(port) if port else DEFAULT_CLUSTER_PORT


class ReshardingError(StoreError):
    """A management write was refused because a reshard is moving the jobs (retry after it)."""


class ClusterStore:
    """Jobs in a Redis Cluster, hashed to shards (see the module docstring).

    :param url: ``redis+cluster://host:port[,host:port...]/[?shards=N]``.
    :param key_prefix: prepended to every key (before the hash tag).
    :param shards: the shard count of a new deployment (wins over the URL's); an existing
        deployment keeps its stored layout (see :meth:`layout`).
    :param client: a ready ``RedisCluster`` to use (not closed by :meth:`close`).

    The other parameters are :class:`~beatx.stores.redis.RedisStore`'s, for each shard.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "beatx:",
        clock: Clock | None = None,
        shards: int | None = None,
        client: RedisCluster | None = None,
        socket_timeout: float = 5.0,
        server_time: bool | None = None,
        **shard_options: Any,
    ) -> None:
        parsed = parse_cluster_url(url)
        self.url = redact_url(url)
        self.key_prefix = key_prefix
        self._clock = clock or SystemClock()
        self._server_time = clock is None if server_time is None else server_time
        self._socket_timeout = socket_timeout
        self._shard_options = shard_options
        self._owns_client = client is None
        if client is None:
            client = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],  # type: ignore[no-untyped-call]
                username=parsed.username,
                password=parsed.password,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                decode_responses=True,
            )
        #: The cluster client: routes the keys of no shard, and finds each shard's node.
        self.cluster: RedisCluster = client
        g = global_prefix(key_prefix)
        self._layout_key = f"{g}layout"
        self._members_key = f"{g}members"
        self._meta_key = f"{g}meta"
        self._status_key = f"{g}status"
        self._delivered_prefix = f"{g}delivered:"
        self._lock = threading.Lock()
        self._generation = 0
        self._views: list[RedisStore] = []
        self._layout_read_at = float("-inf")
        #: How often (seconds) the shard layout is read again for :attr:`views`.
        self.layout_check_interval = 1.0
        self._global = SharedClient(
            url, client=self._node_client(f"{g}layout"), socket_timeout=socket_timeout
        )
        self._global.url = self.url
        #: The exclusion calendars, one set for every shard (``{prefix}{cluster}:calendars``).
        self.calendars = RedisCalendarStorage(self._global, key_prefix=g)
        self._feed: _ClusterFeed | None = None
        self._wanted_shards = shards if shards is not None else parsed.shards
        if self._wanted_shards < 1:
            raise ConfigurationError(f"shards must be at least 1, got {self._wanted_shards!r}")

    def __repr__(self) -> str:
        return f"ClusterStore({self.url!r}, key_prefix={self.key_prefix!r})"

    # -- the layout and the shard views ---------------------------------------------------------

    def _errors(self, what: str) -> Any:
        return self._global.errors(what)

    def _node_client(self, key: str) -> redis.Redis:
        """A plain client on the node that owns ``key``'s slot."""
        try:
            node = self.cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
            client: redis.Redis = self.cluster.get_redis_connection(node)
        except (redis.RedisError, OSError) as exc:
            raise StoreError(f"Redis Cluster at {self.url}: find the node of {key!r}: {exc}") from exc
        return client

    def read_layout(self) -> ClusterLayout:
        """The stored layout; a new deployment's is written first (``shards`` of the URL)."""
        fields = ["shards", "generation", "resharding"]
        with self._errors("read the shard layout"):
            values = self.cluster.hmget(self._layout_key, fields)
            if values[0] is None or values[1] is None:
                self.cluster.hsetnx(self._layout_key, "shards", str(self._wanted_shards))
                self.cluster.hsetnx(self._layout_key, "generation", "1")
                values = self.cluster.hmget(self._layout_key, fields)
        try:
            return ClusterLayout(
                shards=int(as_str(values[0])),
                generation=int(as_str(values[1])),
                resharding=as_str(values[2] or ""),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"corrupt shard layout at {self._layout_key!r}: {exc}") from exc

    def write_layout(self, layout: ClusterLayout) -> None:
        """Store ``layout`` (the reshard's last step, or its fence)."""
        mapping = {"shards": str(layout.shards), "generation": str(layout.generation)}
        with self._errors("write the shard layout"):
            pipe = self.cluster.pipeline()  # type: ignore[no-untyped-call]
            pipe.hset(self._layout_key, mapping=mapping)
            if layout.resharding:
                pipe.hset(self._layout_key, "resharding", layout.resharding)
            else:
                pipe.hdel(self._layout_key, "resharding")
            pipe.execute()

    def shard_view(self, shard: int, generation: int | None = None) -> RedisStore:
        """A :class:`RedisStore` on one shard's keys (of the current layout's generation, or
        ``generation``'s), on the node that owns its slot. It shares :attr:`calendars`."""
        prefix = shard_prefix(self.key_prefix, shard, generation or self._generation or 1)
        view = RedisStore(
            self.url,
            key_prefix=prefix,
            clock=self._clock,
            client=self._node_client(prefix),
            socket_timeout=self._socket_timeout,
            server_time=self._server_time,
            **self._shard_options,
        )
        view.calendars = self.calendars
        return view

    @property
    def views(self) -> list[RedisStore]:
        """The shard views of the current layout, read again at most every
        :attr:`layout_check_interval` seconds (a worker follows a reshard within it)."""
        if not self._views or time.monotonic() - self._layout_read_at >= self.layout_check_interval:
            self.refresh()
        return self._views

    def refresh(self) -> ClusterLayout:
        """Read the layout again and rebuild the shard views if it changed."""
        layout = self.read_layout()
        self._layout_read_at = time.monotonic()
        with self._lock:
            if layout.generation != self._generation or len(self._views) != layout.shards:
                old = self._views
                self._generation = layout.generation
                self._views = [self.shard_view(n, layout.generation) for n in range(layout.shards)]
                for view in old:
                    view.close()
        return layout

    @property
    def shards(self) -> int:
        return len(self.views)

    @property
    def generation(self) -> int:
        self.views  # noqa: B018 - reads the layout once
        return self._generation

    def view_of(self, job_id: str) -> RedisStore:
        """The shard view a job belongs to."""
        views = self.views
        return views[shard_of(job_id, len(views))]

    def _writable_view_of(self, job_id: str) -> RedisStore:
        """The shard view of a management write: refused while a reshard moves the jobs."""
        layout = self.refresh()
        if layout.resharding:
            raise ReshardingError(
                f"Redis Cluster at {self.url}: a reshard is moving the jobs ({layout.resharding}); "
                "retry once it is done"
            )
        return self.view_of(job_id)

    def _on_shard(self, job_id: str, call: Callable[[RedisStore], _T], *, write: bool = False) -> _T:
        """``call`` on the shard view of ``job_id``. After a :class:`StoreError` the cluster's
        slot map is read again; when the shard's slot moved to another node (a failover, a slot
        migration), the view follows it and ``call`` is tried once more there."""
        view = self._writable_view_of(job_id) if write else self.view_of(job_id)
        try:
            return call(view)
        except LeaseLostError:
            raise
        except StoreError:
            if not self.follow_nodes():
                raise
        return call(self._writable_view_of(job_id) if write else self.view_of(job_id))

    def follow_nodes(self) -> bool:
        """Read the cluster's slot map again and rebuild the views whose shard's slot is now on
        another node. Returns whether one moved."""
        try:
            self.cluster.nodes_manager.initialize()
        except (redis.RedisError, OSError) as exc:
            logger.warning("Redis Cluster at %s: cannot read the slot map: %s", self.url, exc)
            return False
        moved = False
        with self._lock:
            for shard, view in enumerate(self._views):
                if self.node_moved(view):
                    self._views[shard] = self.shard_view(shard, self._generation)
                    view.close()
                    moved = True
        return moved

    def node_moved(self, view: RedisStore) -> bool:
        """Whether the node that owns ``view``'s slot (by the cluster client's slot map) is not
        the one ``view`` talks to."""
        node = self.cluster.get_node_from_key(view._prefix)  # type: ignore[no-untyped-call]
        return bool(redis_server({"host": node.host, "port": node.port}) != view._shared.server)

    # -- management ------------------------------------------------------------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        self._on_shard(job.id, lambda view: view.add_job(job, replace_existing=replace_existing), write=True)

    def add_jobs(self, jobs: Iterable[Job], *, replace_existing: bool = False, batch_size: int = 1000) -> int:
        """Store many jobs, grouped by shard (see :meth:`RedisStore.add_jobs`)."""
        self._writable_view_of("")
        groups: dict[int, list[Job]] = {}
        for job in jobs:
            groups.setdefault(shard_of(job.id, self.shards), []).append(job)
        stored = 0
        conflict: ConflictingIdError | None = None
        for shard, group in sorted(groups.items()):
            try:
                stored += self.views[shard].add_jobs(
                    group, replace_existing=replace_existing, batch_size=batch_size
                )
            except ConflictingIdError as exc:
                conflict = conflict or exc
        if conflict is not None:
            raise conflict
        return stored

    def update_job(self, job: Job, *, expected_revision: int | None = None, reschedule: bool = False) -> None:
        self._on_shard(
            job.id,
            lambda view: view.update_job(job, expected_revision=expected_revision, reschedule=reschedule),
            write=True,
        )

    def remove_job(self, job_id: str) -> bool:
        return self._on_shard(job_id, lambda view: view.remove_job(job_id), write=True)

    def get_job(self, job_id: str) -> Job | None:
        return self._on_shard(job_id, lambda view: view.get_job(job_id))

    def get_jobs(self, status: JobStatus | None = None) -> list[Job]:
        jobs: list[Job] = []
        for view in self.views:
            jobs += view.get_jobs(status)
        far = float("inf")
        jobs.sort(key=lambda j: (j.next_run_time.timestamp() if j.next_run_time else far, j.id))
        return jobs

    def count_jobs(self) -> int:
        return sum(view.count_jobs() for view in self.views)

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for view in self.views:
            for status, count in view.count_jobs_by_status().items():
                counts[status] += count
        return counts

    def alerting_jobs(self, *, batch_size: int = 1000) -> list[Job]:
        """The jobs that set an alert rule, from every shard."""
        jobs: list[Job] = []
        for view in self.views:
            jobs += view.alerting_jobs(batch_size=batch_size)
        return jobs

    def reindex_orphans_step(self, cursor: str = "0", batch_size: int = 1000) -> tuple[str, list[str]]:
        """:meth:`RedisStore.reindex_orphans_step` over every shard: the cursor is
        ``"{shard}:{cursor}"``."""
        shard_text, _, inner = cursor.partition(":") if ":" in cursor else ("0", "", cursor)
        shard = int(shard_text)
        views = self.views
        if shard >= len(views):
            return "0", []
        inner, found = views[shard].reindex_orphans_step(inner or "0", batch_size)
        if inner != "0":
            return f"{shard}:{inner}", found
        return ("0" if shard + 1 >= len(views) else f"{shard + 1}:0"), found

    # -- the beat over every shard -----------------------------------------------------------------

    def next_run_time(self) -> datetime | None:
        times = [t for t in (view.next_run_time() for view in self.views) if t is not None]
        return min(times) if times else None

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        """Up to ``limit`` due jobs of every shard, earliest first: each shard claims up to
        ``limit``, and the claims past the earliest ``limit`` are given back unchanged. (A
        :class:`~beatx.sharded_beat.ShardedBeat` claims from each shard on its own.)"""
        jobs: list[Job] = []
        for view in self.views:
            jobs += view.acquire_due_jobs(now, limit=limit, owner=owner, claim_ttl=claim_ttl)
        far = float("inf")
        jobs.sort(key=lambda j: (j.next_run_time.timestamp() if j.next_run_time else far, j.id))
        if len(jobs) > limit:
            self.release_jobs([JobRelease.unchanged(job) for job in jobs[limit:]], owner=owner)
            del jobs[limit:]
        return jobs

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        groups: dict[int, list[JobRelease]] = {}
        for release in releases:
            groups.setdefault(shard_of(release.job_id, self.shards), []).append(release)
        if owner is not None and not groups:
            groups = {n: [] for n in range(self.shards)}
        for shard, group in sorted(groups.items()):
            self.views[shard].release_jobs(group, owner=owner)

    def due_count(self, now: datetime) -> int:
        return sum(view.due_count(now) for view in self.views)

    def can_publish(self, broker_server: str) -> bool:
        """Never: the atomic fire needs the broker's list in the shard's slot (see the module)."""
        return False

    # -- run state: the job's shard ----------------------------------------------------------------

    def run_started(
        self, job_id: str, task_id: str, *, started_at: datetime, timeout: float, worker: str | None = None
    ) -> None:
        self._on_shard(
            job_id,
            lambda view: view.run_started(
                job_id, task_id, started_at=started_at, timeout=timeout, worker=worker
            ),
        )

    def start_run_once(
        self,
        job_id: str,
        task_id: str,
        *,
        attempt: int,
        started_at: datetime,
        timeout: float,
        worker: str | None = None,
    ) -> bool:
        """The delivery mark is a key of no shard (``{prefix}{cluster}:delivered:{task id}``,
        routed by the cluster client): it survives a reshard, which moves the job."""
        key = self._delivered_prefix + task_id + (f":{attempt}" if attempt else "")
        remember = int(max(timeout, DELIVERY_MEMORY))
        with self._errors(f"record the delivery of run {task_id!r} of job {job_id!r}"):
            if not self.cluster.set(key, "1", nx=True, ex=remember):
                return False
        self.run_started(job_id, task_id, started_at=started_at, timeout=timeout, worker=worker)
        return True

    def run_finished(
        self,
        job_id: str,
        task_id: str,
        *,
        finished_at: datetime,
        duration: float | None,
        error: str | None,
        outcome: RunOutcome | None = None,
        worker: str | None = None,
    ) -> None:
        self._on_shard(
            job_id,
            lambda view: view.run_finished(
                job_id,
                task_id,
                finished_at=finished_at,
                duration=duration,
                error=error,
                outcome=outcome,
                worker=worker,
            ),
        )

    def run_retried(
        self,
        job_id: str,
        task_id: str,
        *,
        at: datetime,
        error: str | None,
        retries: int,
        worker: str | None = None,
    ) -> None:
        self._on_shard(
            job_id,
            lambda view: view.run_retried(
                job_id, task_id, at=at, error=error, retries=retries, worker=worker
            ),
        )

    def claim_job(self, job_id: str, *, claim_ttl: float = 60.0) -> Job | None:
        """:meth:`RedisStore.claim_job` on the job's shard (whose :meth:`release_jobs` ends the
        claim)."""
        return self._on_shard(job_id, lambda view: view.claim_job(job_id, claim_ttl=claim_ttl))

    def record_dispatch(self, job_id: str, task_id: str, *, scheduled_at: datetime) -> None:
        """:meth:`RedisStore.record_dispatch` on the job's shard."""
        self._on_shard(job_id, lambda view: view.record_dispatch(job_id, task_id, scheduled_at=scheduled_at))

    def job_runs(self, job_id: str, *, limit: int = 20) -> list[RunRecord]:
        return self._on_shard(job_id, lambda view: view.job_runs(job_id, limit=limit))

    def running_count(self, now: datetime) -> int:
        return sum(view.running_count(now) for view in self.views)

    def record_change(self, change: JobChange) -> None:
        self._on_shard(change.job_id, lambda view: view.record_change(change))

    def job_changes(self, job_id: str, *, limit: int = 20) -> list[JobChange]:
        return self._on_shard(job_id, lambda view: view.job_changes(job_id, limit=limit))

    # -- the store as a whole ---------------------------------------------------------------------

    def read_meta(self, key: str) -> str | None:
        with self._errors(f"read {key!r}"):
            value = self.cluster.hget(self._meta_key, key)
        return None if value is None else as_str(value)

    def write_meta(self, key: str, value: str) -> None:
        with self._errors(f"write {key!r}"):
            self.cluster.hset(self._meta_key, key, value)

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        """Take or renew every shard's lease; True when all are ``owner``'s."""
        results = [view.acquire_lease(owner, now=now, ttl=ttl) for view in self.views]
        return all(results)

    def release_lease(self, owner: str) -> None:
        for view in self.views:
            view.release_lease(owner)

    def get_lease(self) -> LeaseInfo | None:
        """The lease of shard 0 (each shard has its own: :meth:`shard_leases`)."""
        return self.views[0].get_lease()

    def shard_statuses(self) -> list[BeatStatus | None]:
        """The status each shard's leader wrote, in shard order."""
        return [view.read_status() for view in self.views]

    def shard_leases(self) -> list[LeaseInfo | None]:
        """Each shard's lease, in shard order."""
        return [view.get_lease() for view in self.views]

    def write_status(self, status: BeatStatus) -> None:
        with self._errors("write the beat status"):
            self.cluster.set(self._status_key, encode_status(status))

    def read_status(self) -> BeatStatus | None:
        """The status a beat over the whole store wrote, else shard 0's leader's (sharded beats
        write each shard's own: :meth:`shard_statuses`)."""
        with self._errors("read the beat status"):
            raw = self.cluster.get(self._status_key)
        if raw is None:
            return self.views[0].read_status()
        return decode_status(raw, self._status_key)

    # -- the beats' heartbeats (how many beats share the shards) ----------------------------------

    def heartbeat(self, member: str, *, ttl: float) -> list[str]:
        """Note ``member`` alive for ``ttl`` seconds (by this process's clock) and return the
        live members, sorted."""
        now = time.time()
        with self._errors(f"heartbeat of {member!r}"):
            pipe = self.cluster.pipeline()  # type: ignore[no-untyped-call]
            pipe.zadd(self._members_key, {member: now + ttl})
            pipe.zremrangebyscore(self._members_key, "-inf", now)
            pipe.zrange(self._members_key, 0, -1)
            *_, members = pipe.execute()
        return sorted(as_str(m) for m in members)

    def leave(self, member: str) -> None:
        """Forget ``member`` (a clean shutdown)."""
        with self._errors(f"remove the heartbeat of {member!r}"):
            self.cluster.zrem(self._members_key, member)

    # -- changes: every shard's channel on one subscription ----------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a change of any shard (a pattern subscription on every shard's channel)."""
        if self._feed is None:
            self._feed = _ClusterFeed(self)
        return self._feed.wait(timeout)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        with self._lock:
            views, self._views = self._views, []
        for view in views:
            view.close()
        if self._owns_client:
            self.cluster.close()


def fair_share(shards: int, live_beats: int) -> int:
    """The most shards one beat leads while ``live_beats`` share ``shards``."""
    return math.ceil(shards / max(live_beats, 1))


class _ClusterFeed:
    """One pattern subscription (``PSUBSCRIBE``) to every shard's change channel. Pub/sub
    messages reach every node of a cluster, so one node's connection hears them all; the
    subscription stays open between waits, so a change made during a tick is heard after it."""

    def __init__(self, store: ClusterStore) -> None:
        self._store = store
        # A shard's channel is ``{prefix}{tag}:changes@0``: the pattern escapes the prefix.
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in store.key_prefix)
        self.pattern = f"{escaped}{{*}}:changes@0"
        self._pubsub: Any = None
        self._lock = threading.Lock()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock, self._store._errors("wait for changes"):
            try:
                if self._pubsub is None:
                    client = self._store._node_client(self._store._layout_key)
                    self._pubsub = client.pubsub()  # type: ignore[no-untyped-call]
                    self._pubsub.psubscribe(self.pattern)
                    self._pubsub.get_message(timeout=1.0)  # the confirmation
                new = False
                while True:
                    remaining = deadline - time.monotonic()
                    message = self._pubsub.get_message(timeout=0.0 if new else max(remaining, 0.0))
                    if message is not None and as_str(message["type"]) == "pmessage":
                        new = True
                        continue
                    if message is None and (new or remaining <= 0):
                        return new
            except (redis.RedisError, OSError):
                self.close_unlocked()
                raise

    def close_unlocked(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except redis.RedisError:
                pass

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()
