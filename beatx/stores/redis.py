"""A Redis store: jobs in hashes, due order in a sorted set, claims and leases in Lua.

Every step the beat takes is one atomic Lua script whose cost depends on what is due, never on
how many jobs exist, and the beat process keeps no copy of the jobs. See :class:`RedisStore`
for the key layout.

This module holds the jobs (:class:`beatx.stores.base.JobStorage`); :class:`RedisStore`
delegates the leader lease to :mod:`beatx.stores.redis_lease` and the change feed to
:mod:`beatx.stores.redis_changes`, all three over one client (:mod:`beatx.stores.redis_common`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis

from beatx.alerts import has_alert_rules
from beatx.audit import DEFAULT_HISTORY, JobChange, diff_jobs
from beatx.clock import Clock, SystemClock
from beatx.errors import (
    ConfigurationError,
    ConflictingIdError,
    JobLookupError,
    RevisionConflictError,
    SerializationError,
    StoreError,
)
from beatx.jobs import (
    ALERT_FIELDS,
    EXCLUSION_FIELDS,
    PAUSE_FIELDS,
    POLICY_FIELDS,
    Job,
    JobStatus,
    fire_task_id,
    job_from_dict,
    job_to_dict,
)
from beatx.ledger import (
    DEFAULT_RUN_HISTORY,
    DEFAULT_RUN_HISTORY_DAYS,
    RunOutcome,
    RunRecord,
    newest_first,
    summaries,
)
from beatx.stores.base import DELIVERY_MEMORY, BeatStatus, JobRelease, LeaseInfo, new_claim_token
from beatx.stores.calendar_redis import RedisCalendarStorage
from beatx.stores.redis_changes import RedisChangeFeed
from beatx.stores.redis_common import EPOCH, SharedClient, as_str, from_iso, lua, ts, utc
from beatx.stores.redis_lease import RedisLease
from beatx.stores.redis_ledger import ENTRIES_PER_RUN, RUNS_KEY, entry, records_from_entries, sent_entry
from beatx.triggers import IntervalTrigger

__all__ = ["RedisStore"]

# -- key layout (``prefix`` is the store's ``key_prefix``) ------------------------------------

#: Hash per job: its mutable state in plain fields, small enough to stay a listpack.
JOB_KEY = "{prefix}job:{job_id}"
#: String per job: its definition, compact JSON (:func:`encode_definition`).
DEF_KEY = "{prefix}def:{job_id}"
#: Set of every job id (for :meth:`RedisStore.get_jobs` and :meth:`RedisStore.count_jobs`).
JOBS_KEY = "{prefix}jobs"
#: Sorted set: unclaimed schedulable jobs, scored by next run time (epoch seconds).
SCHEDULE_KEY = "{prefix}schedule"
#: Sorted set: claimed jobs, scored by claim deadline (epoch seconds).
CLAIMS_KEY = "{prefix}claims"
#: Sorted set per job: task ids of runs in flight, scored by expiry (epoch seconds).
RUNNING_KEY = "{prefix}running:{job_id}"
#: Sorted set: every run in flight as ``"job_id\\0task_id"``, scored by expiry.
RUNNING_ALL_KEY = "{prefix}running"
#: Hash: ``owner``, ``acquired_at``, ``expires_at`` (epoch seconds) of the leader lease.
LEASE_KEY = "{prefix}lease"
#: String per delivered task id (``:{attempt}`` appended for a retry), set by the worker-side
#: duplicate guard (:meth:`RedisStore.start_run_once`); expires after a day.
DELIVERED_KEY = "{prefix}delivered:{task_id}"
#: String: JSON of the last :class:`BeatStatus`.
STATUS_KEY = "{prefix}status"
#: Hash of beatx's own small named values (read_meta / write_meta).
META_KEY = "{prefix}meta"
#: Counter bumped on every change.
CHANGES_KEY = "{prefix}changes"
#: List per job: its audit log (:class:`beatx.audit.JobChange` as JSON), oldest first.
HISTORY_KEY = "{prefix}history:{job_id}"
#: Set of the ids of the jobs that set an alert rule (:meth:`RedisStore.alerting_jobs`).
ALERTING_KEY = "{prefix}alerting"
#: The pub/sub channel that announces each new value of the counter. Keys are per database but
#: channels are per server, so the channel names the database (``db``): stores with the same
#: prefix on two databases of one server do not wake each other.
CHANGES_CHANNEL = "{prefix}changes@{db}"

#: The hash fields a job is read from, in the order :meth:`RedisStore._decode` takes them:
#: the definition as an older beatx kept it (a ``def`` field holding the whole of
#: :func:`job_to_dict`), then the mutable state (which wins over the same keys in that ``def``).
#: A record is these fields' values followed by the value of the job's :data:`DEF_KEY`.
RECORD_FIELDS = (
    "def",
    "status",
    "next_run_time",
    "revision",
    "total_run_count",
    "misfire_count",
    "skip_count",
    "last_run_time",
    "last_error",
    "last_finished_at",
    "last_duration",
)
_REVISION_AT = RECORD_FIELDS.index("revision")
#: Keys of :func:`job_to_dict` that go into the definition; the rest are state fields of the hash.
DEFINITION_KEYS = (
    "version",
    "id",
    "name",
    "func",
    "trigger",
    "args",
    "kwargs",
    "options",
    *POLICY_FIELDS,
    *PAUSE_FIELDS,
    *EXCLUSION_FIELDS,
    *ALERT_FIELDS,
)

#: The values :func:`job_to_dict` gives the definition keys of a job left at its defaults:
#: the compact definition leaves out a key at its default (``version`` is always written;
#: ``id`` never, it is in the key; ``name`` only when it is not the id).
_DEFINITION_DEFAULTS: dict[str, Any] = {
    key: value
    for key, value in job_to_dict(Job(id="_", func="_:_", trigger=IntervalTrigger(seconds=1))).items()
    if key in DEFINITION_KEYS and key not in ("version", "id", "name", "func", "trigger")
}


def _at_default(value: Any, default: Any) -> bool:
    """Whether ``value`` is ``default`` exactly (``True`` is not ``1``, nor ``1.0``)."""
    return type(value) is type(default) and value == default


def encode_definition(data: dict[str, Any]) -> str:
    """The compact JSON of the definition keys of ``data`` (a :func:`job_to_dict`), as
    :data:`DEF_KEY` holds it: keys at their default left out, no spaces.
    :func:`decode_definition` gives back exactly the same keys and values."""
    compact: dict[str, Any] = {}
    for key in DEFINITION_KEYS:
        value = data[key]
        if key == "id" or (key == "name" and value == data["id"]):
            continue
        if key in _DEFINITION_DEFAULTS and _at_default(value, _DEFINITION_DEFAULTS[key]):
            continue
        compact[key] = value
    return json.dumps(compact, separators=(",", ":"), ensure_ascii=False)


def decode_definition(job_id: str, compact: dict[str, Any]) -> dict[str, Any]:
    """The definition keys of :func:`job_to_dict` from a compact definition of ``job_id``."""
    return {**_DEFINITION_DEFAULTS, "id": job_id, "name": job_id, **compact}


logger = logging.getLogger("beatx.stores.redis")

# -- Lua: one script a file in beatx/stores/lua/, each documented there (see redis_common.lua) ---

LUA_PUT = lua("put")
LUA_UPDATE = lua("update")
LUA_REMOVE = lua("remove")
LUA_NEXT_RUN_TIME = lua("next_run_time")
LUA_ACQUIRE = lua("acquire")
LUA_RELEASE = lua("release")
LUA_DUE_COUNT = lua("due_count")
LUA_RUN_STARTED = lua("run_started")
LUA_RUN_FINISHED = lua("run_finished")
LUA_RUN_RETRIED = lua("run_retried")
LUA_COUNT_STATUSES = lua("count_statuses")
LUA_SWEEP = lua("sweep")
LUA_RECORD_CHANGE = lua("record_change")

#: The longest ``added`` value kept in a job's hash: Redis's default
#: ``hash-max-listpack-value`` (``hash-max-ziplist-value`` on Redis 6), so the hash stays a
#: listpack.
ADDED_IN_HASH_MAX = 64
LUA_CLAIM_JOB = lua("claim_job")


def _batched(items: Iterable[Job], size: int) -> Iterator[list[Job]]:
    batch: list[Job] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True, slots=True)
class _ClaimAhead:
    """A claim sent and not read yet: its connection and the claim's arguments."""

    connection: Any
    now: datetime
    limit: int
    owner: str
    token: str


@dataclass(frozen=True, slots=True)
class _SentRelease:
    """A release sent during a burst and not read yet (its arguments, to run it again)."""

    connection: Any
    what: str
    keys: list[str]
    args: list[Any]


#: The reply read for a script Redis did not run (its script cache was empty).
_NOT_RUN = object()


class RedisStore:
    """Keeps jobs in Redis, for one or several beats (high availability) and many processes.

    Key layout (``{prefix}`` is ``key_prefix``, ``beatx:`` by default)::

        {prefix}job:{id}       hash    the state: status, next_run_time (ISO), next_run_ts
                                       (epoch), revision, claim while claimed, and once set
                                       total_run_count, misfire_count, skip_count,
                                       last_run_time, last_error, last_finished_at,
                                       last_duration (absent field = None, or 0 for a count);
                                       added: a new job's "added" audit entry, until the job's
                                       next change (:meth:`RedisStore.record_change`)
        {prefix}def:{id}       string  the definition: compact JSON of job_to_dict's
                                       definition keys (a key at its default left out)
        {prefix}jobs           set     every job id
        {prefix}schedule       zset    unclaimed schedulable jobs -> next run (epoch seconds)
        {prefix}claims         zset    claimed jobs -> claim deadline
        {prefix}running:{id}   zset    task ids in flight -> expiry
        {prefix}running        zset    "{id}\\0{task id}" in flight -> expiry (all jobs)
        {prefix}history:{id}   list    the job's audit log (JSON of each JobChange), the latest
                                       ``DEFAULT_HISTORY``; kept after the job is removed; an
                                       entry moved from ``added`` is {"added", "definition"}
        {prefix}runs:{id}      list    the job's run ledger (:mod:`beatx.stores.redis_ledger`):
                                       JSON entries, cut to ``3 × run_history``, expiring
                                       ``run_history_days`` after its last entry
        {prefix}alerting       set     ids of the jobs that set an alert rule (added on a write
                                       with rules, removed with the job)
        {prefix}delivered:{task id}  string  set by the worker-side duplicate guard (a day)
        {prefix}lease          hash    owner, acquired_at, expires_at (epoch seconds)
        {prefix}status         string  JSON of the leading beat's BeatStatus
        {prefix}meta           hash    beatx's own small named values (read_meta / write_meta)
        {prefix}changes        counter bumped on every change
        {prefix}changes@{db}   pub/sub channel on which each new value of the counter is
                               published ({db}: the database number, as channels are
                               server-wide)

    What is due is a ``ZRANGEBYSCORE`` of the schedule, so a tick costs O(log n + due).
    Claiming and releasing are one Lua script each, fenced by the lease token when ``owner``
    is given; lease validity is judged against the time passed in (not Redis key expiry).
    All timestamps are stored in UTC and returned as aware UTC datetimes.

    A claim that fills a ``limit`` of at least ``claim_ahead_from`` (a burst) sends the same
    claim again at once, on a connection of its own, and returns without reading its reply:
    Redis claims the next batch while the beat sends this one. The next
    :meth:`acquire_due_jobs` for the same owner and limit, at the same time or later, reads
    that reply instead of claiming; any other call (and :meth:`close`) gives those jobs back
    unchanged. While a claim is ahead, :meth:`release_jobs` is sent the same way; its reply (or
    error) is read by a later :meth:`acquire_due_jobs` (the latest release may stay in flight
    while Redis runs it), by the first :meth:`release_jobs` after the burst, or by
    :meth:`close`. A beat that dies holding claimed jobs leaves them claimed until their claim
    deadline, like the batch it was sending.

    A job costs Redis a small hash (a listpack while every value is under
    ``hash-max-listpack-value``, 64 bytes by default), a string and its entries in ``jobs``
    and ``schedule``. A store written by an older beatx kept the definition in the hash
    (a ``def`` field): it is read as it is, and the next write of the definition (an update, a
    replace) moves it to ``{prefix}def:{id}``.

    The process keeps no copy of the jobs (no in-memory index): its memory does not depend on
    how many jobs are stored. :meth:`get_jobs` reads every job (SSCAN of ``jobs`` and a
    pipeline per batch); the beat never calls it. Scripts build job keys from ids, so the
    store needs a single Redis server (or a primary with replicas); on Redis Cluster, each
    shard of a :class:`~beatx.stores.redis_cluster.ClusterStore` is one of these stores with
    every key under one hash tag.

    The jobs are this class's own; the lease and beat status are served by a
    :class:`~beatx.stores.redis_lease.RedisLease` and :meth:`wait_for_change` by a
    :class:`~beatx.stores.redis_changes.RedisChangeFeed`, over the same client.

    Connection failures and timeouts raise :class:`StoreError` naming the server; the client
    reconnects on the next call, and the pub/sub connection of :meth:`wait_for_change` is
    re-created after an error. A stored record beatx cannot read raises
    :class:`SerializationError` naming the job.

    :param url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``), or
        ``redis+sentinel://host:port[,host:port...]/service_name[/db]`` for the primary a
        Sentinel group names, followed through failovers (:mod:`beatx.stores.redis_sentinel`).
    :param key_prefix: prepended to every key, so several schedulers can share a database.
    :param clock: the time source for reads that count running jobs and for the lease check
        of :meth:`release_jobs` (which takes no ``now``).
    :param client: a ready ``redis.Redis`` to use instead of connecting to ``url`` (it is not
        closed by :meth:`close`); either ``decode_responses`` setting works.
    :param socket_timeout: seconds to wait for a connection or a reply before raising
        :class:`StoreError`.
    :param claim_ahead_from: the smallest ``limit`` of a claim that is claimed ahead when it
        comes back full. Smaller claims (a beat claiming its next lookahead window a few jobs
        at a time) are not: the claim after them usually differs, and would give them back.
    :param run_history: how many runs the ledger keeps per job (at least: the list keeps
        ``3 × run_history`` entries, and a run takes one to three); 0 keeps none.
    :param run_history_days: how long a job's ledger outlives its last entry, and the age past
        which :meth:`job_runs` leaves a run out.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "beatx:",
        clock: Clock | None = None,
        client: redis.Redis | None = None,
        socket_timeout: float = 5.0,
        claim_ahead_from: int = 100,
        server_time: bool | None = None,
        run_history: int = DEFAULT_RUN_HISTORY,
        run_history_days: float = DEFAULT_RUN_HISTORY_DAYS,
    ) -> None:
        if claim_ahead_from < 1:
            raise ConfigurationError(f"claim_ahead_from must be at least 1, got {claim_ahead_from!r}")
        self._claim_ahead_from = claim_ahead_from
        if run_history < 0 or not run_history_days > 0:
            raise ConfigurationError(
                f"run_history must be >= 0 and run_history_days > 0, got {run_history!r} and {run_history_days!r}"
            )
        self._run_history = int(run_history)
        self._run_history_age = timedelta(days=run_history_days)
        #: The ledger's cap (entries, '0': off) and TTL (seconds), as the scripts take them.
        self._ledger_args = (
            str(self._run_history * ENTRIES_PER_RUN),
            str(max(int(run_history_days * 86400), 1)),
        )
        self._prefix = key_prefix
        self._clock = clock or SystemClock()
        #: Whether leases and claims are judged by the Redis server's clock (TIME) rather
        #: than the callers' (the default unless a clock is given, as tests with a fake one do).
        self._server_time = clock is None if server_time is None else server_time
        self._shared = SharedClient(url, client=client, socket_timeout=socket_timeout)
        self._client: redis.Redis = self._shared.client
        self._url = self._shared.url
        self._errors = self._shared.errors
        self._lease_lost = self._shared.lease_lost
        self._decodes = self._shared.decodes
        self._db = self._shared.db
        p = key_prefix
        self._leader = RedisLease(
            self._shared,
            key=LEASE_KEY.format(prefix=p),
            status_key=STATUS_KEY.format(prefix=p),
            server_time=self._server_time,
        )
        self._feed = RedisChangeFeed(
            self._shared,
            key=CHANGES_KEY.format(prefix=p),
            channel=CHANGES_CHANNEL.format(prefix=p, db=self._shared.db),
        )
        #: The exclusion calendars, under the same prefix (:mod:`beatx.stores.calendar_redis`).
        self.calendars = RedisCalendarStorage(self._shared, key_prefix=p)
        self._jobs_key = JOBS_KEY.format(prefix=p)
        self._schedule_key = SCHEDULE_KEY.format(prefix=p)
        self._claims_key = CLAIMS_KEY.format(prefix=p)
        self._running_all_key = RUNNING_ALL_KEY.format(prefix=p)
        self._meta_key = META_KEY.format(prefix=p)
        self._alerting_key = ALERTING_KEY.format(prefix=p)
        self._job_prefix = JOB_KEY.format(prefix=p, job_id="")
        self._def_prefix = DEF_KEY.format(prefix=p, job_id="")
        self._running_prefix = RUNNING_KEY.format(prefix=p, job_id="")
        reg = self._client.register_script
        self._put = reg(LUA_PUT)
        self._update = reg(LUA_UPDATE)
        self._due_count = reg(LUA_DUE_COUNT)
        self._remove = reg(LUA_REMOVE)
        self._next = reg(LUA_NEXT_RUN_TIME)
        self._acquire = reg(LUA_ACQUIRE)
        self._release = reg(LUA_RELEASE)
        self._started = reg(LUA_RUN_STARTED)
        self._finished = reg(LUA_RUN_FINISHED)
        self._retried = reg(LUA_RUN_RETRIED)
        self._count_statuses = reg(LUA_COUNT_STATUSES)
        self._sweep = reg(LUA_SWEEP)
        self._record = reg(LUA_RECORD_CHANGE)
        self._history_prefix = HISTORY_KEY.format(prefix=p, job_id="")
        self._claim_ahead_lock = threading.Lock()
        self._claim_ahead: _ClaimAhead | None = None
        self._releases_sent: list[_SentRelease] = []

    def can_publish(self, broker_server: str) -> bool:
        """Whether :meth:`release_jobs` can push the messages of a Redis broker at
        ``broker_server`` (:func:`~beatx.stores.redis_common.redis_server`) in the same
        script as the write-back (:attr:`JobRelease.messages`, the atomic fire): broker and
        store are on one server, whatever their databases."""
        return broker_server == self._shared.server

    def __repr__(self) -> str:
        return f"RedisStore({self._url!r}, key_prefix={self._prefix!r})"

    # -- the keys of the lease and the change feed, which the job scripts also take ------------

    @property
    def _lease_key(self) -> str:
        return self._leader.key

    @property
    def _status_key(self) -> str:
        return self._leader.status_key

    @property
    def _changes_key(self) -> str:
        return self._feed.key

    @property
    def _channel(self) -> str:
        return self._feed.channel

    @property
    def _lease_taken(self) -> tuple[str, datetime] | None:
        """The lease this store last took or renewed: its owner and the expiry it wrote."""
        return self._leader.taken

    @_lease_taken.setter
    def _lease_taken(self, value: tuple[str, datetime] | None) -> None:
        self._leader.taken = value

    # -- helpers -------------------------------------------------------------------------------

    def _job_key(self, job_id: str) -> str:
        return JOB_KEY.format(prefix=self._prefix, job_id=job_id)

    def _def_key(self, job_id: str) -> str:
        return DEF_KEY.format(prefix=self._prefix, job_id=job_id)

    def _history_key(self, job_id: str) -> str:
        return HISTORY_KEY.format(prefix=self._prefix, job_id=job_id)

    def _running_key(self, job_id: str) -> str:
        return RUNNING_KEY.format(prefix=self._prefix, job_id=job_id)

    def _runs_key(self, job_id: str) -> str:
        return RUNS_KEY.format(prefix=self._prefix, job_id=job_id)

    def _put_item(self, job: Job) -> list[Any]:
        """``[id, [field, value, ...], status, next run epoch or '', definition]`` of one job
        for :data:`LUA_PUT` (absent fields are None; absent counters are 0)."""
        data = job_to_dict(job)
        fields = ["status", data["status"]]
        next_ts = ""
        if job.next_run_time is not None:
            next_ts = ts(job.next_run_time)
            fields += ("next_run_time", data["next_run_time"], "next_run_ts", next_ts)
        for name in ("total_run_count", "misfire_count", "skip_count"):
            if data[name]:
                fields += (name, str(data[name]))
        for name in ("last_run_time", "last_finished_at", "last_error"):
            if data[name] is not None:
                fields += (name, data[name])
        if job.last_run_time is not None:
            fields += ("last_run_ts", ts(job.last_run_time))
        if job.last_duration is not None:
            fields += ("last_duration", repr(float(job.last_duration)))
        return [job.id, fields, data["status"], next_ts, encode_definition(data)]

    def _put_jobs(self, jobs: Sequence[Job], mode: str, *, notify: bool = True) -> list[int]:
        return self._send_put(self._put_args(jobs, mode, notify=notify), mode, len(jobs))

    def _put_args(self, jobs: Sequence[Job], mode: str, *, notify: bool) -> list[str]:
        items = json.dumps([self._put_item(job) for job in jobs], separators=(",", ":"), ensure_ascii=False)
        return [
            self._job_prefix,
            mode,
            "1" if notify else "0",
            self._channel,
            items,
            self._def_prefix,
            self._history_prefix,
        ]

    def _send_put(self, args: list[str], mode: str, count: int) -> list[int]:
        keys = [self._jobs_key, self._schedule_key, self._claims_key, self._changes_key]
        with self._errors(f"{mode} of {count} job(s)"):
            result = self._put(keys=keys, args=args)
        return [int(r) for r in result]

    @staticmethod
    def _missing(record: Sequence[Any]) -> bool:
        """Whether a record (:data:`RECORD_FIELDS` then the definition) is of no job: its
        hash has no revision (it is gone, or only a stray write made it), or there is no
        definition anywhere (a definition string alone is a leftover, not a job)."""
        return record[_REVISION_AT] is None or (record[0] is None and record[-1] is None)

    def _decode(self, job_id: str, values: Sequence[Any], running: int) -> Job:
        """A job from its record: the values of its :data:`RECORD_FIELDS`, then of its
        :data:`DEF_KEY`. A ``def`` field in the hash wins: this beatx deletes it whenever it
        writes the definition, so one there was written since, by an older beatx."""
        if not self._decodes:
            values = [None if v is None else as_str(v) for v in values]
        (
            old,
            status,
            next_run,
            revision,
            total,
            misfires,
            skips,
            last_run,
            error,
            finished,
            duration,
            compact,
        ) = values
        text = compact if old is None else old
        if text is None:
            raise SerializationError(f"job {job_id!r}: corrupt stored record: no definition")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SerializationError(f"job {job_id!r}: corrupt stored record: {exc}") from exc
        if not isinstance(data, dict):
            raise SerializationError(
                f"job {job_id!r}: corrupt stored record: the definition is not an object"
            )
        if old is None:
            data = decode_definition(job_id, data)
        data.setdefault("id", job_id)
        try:
            if status is not None:
                data["status"] = status
            data["next_run_time"] = next_run
            data["last_run_time"] = last_run
            data["last_error"] = error
            data["last_finished_at"] = finished
            data["last_duration"] = None if duration is None else float(duration)
            data["revision"] = int(revision or 0)
            data["total_run_count"] = int(total or 0)
            data["misfire_count"] = int(misfires or 0)
            data["skip_count"] = int(skips or 0)
        except ValueError as exc:
            raise SerializationError(f"job {job_id!r}: corrupt stored state: {exc}") from exc
        try:
            job = job_from_dict(data)
        except SerializationError as exc:
            if repr(job_id) in str(exc):
                raise
            raise SerializationError(f"job {job_id!r}: {exc}") from exc
        job.running = running
        return job

    # -- management ----------------------------------------------------------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        (revision,) = self._put_jobs([job], "replace" if replace_existing else "add")
        if revision == -1:
            raise ConflictingIdError(job.id)
        job.revision = revision
        self._mark_alerting([job])

    def _mark_alerting(self, jobs: Sequence[Job]) -> None:
        """Add the jobs that set an alert rule to the ``alerting`` set. Never removes one (a
        remove racing a concurrent edit could drop a job that has rules): a job that lost its
        rules costs one read per alert check until it is removed."""
        ids = [job.id for job in jobs if has_alert_rules(job)]
        if ids:
            with self._errors("index the jobs with alert rules"):
                self._client.sadd(self._alerting_key, *ids)

    def alerting_jobs(self, *, batch_size: int = 1000) -> list[Job]:
        """The jobs that set an alert rule (:mod:`beatx.alerts`), read from the ``alerting``
        set: the cost is theirs, not every job's."""
        now = ts(self._clock.now())
        with self._errors("list the jobs with alert rules"):
            ids = sorted(as_str(job_id) for job_id in self._client.smembers(self._alerting_key))
            jobs: list[Job] = []
            for start in range(0, len(ids), batch_size):
                jobs += self._read_batch(ids[start : start + batch_size], now, None)
        return [job for job in jobs if has_alert_rules(job)]

    def record_dispatch(self, job_id: str, task_id: str, *, scheduled_at: datetime) -> None:
        """Add a fire sent outside the beat (``run_job_now``) to the job's run ledger."""
        if not self._run_history:
            return
        sent = sent_entry(task_id, utc(scheduled_at).isoformat(), utc(self._clock.now()).isoformat())
        with self._errors(f"record the fire {task_id!r} of job {job_id!r}"):
            # run_retried.lua appends one entry to the ledger of a job that exists: all this needs.
            self._retried(
                keys=[self._job_key(job_id), self._runs_key(job_id)], args=[*self._ledger_args, sent]
            )

    def add_jobs(self, jobs: Iterable[Job], *, replace_existing: bool = False, batch_size: int = 1000) -> int:
        """Store many jobs, ``batch_size`` per Lua call, with one change notification at the end.

        Not part of :class:`JobStore`: for imports and bulk loads. While one batch is written
        (on a helper thread), the next one is encoded. Sets each stored job's ``revision``.
        Returns how many jobs were stored.

        :raises ConflictingIdError: for the first existing id (without ``replace_existing``),
            after its batch: the other jobs of that batch and earlier batches are stored, later
            batches are not.
        """
        mode = "replace" if replace_existing else "add"
        stored = 0
        conflict: str | None = None
        alerting: list[Job] = []
        sent = False
        pending: tuple[list[Job], Future[list[int]]] | None = None

        def collect(batch: list[Job], future: Future[list[int]]) -> None:
            nonlocal stored, conflict
            for job, revision in zip(batch, future.result(), strict=True):
                if revision == -1:
                    conflict = conflict or job.id
                else:
                    job.revision = revision
                    stored += 1
                    if has_alert_rules(job):
                        alerting.append(job)

        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="beatx-redis-add-jobs") as pool:
                for batch in _batched(jobs, max(batch_size, 1)):
                    args = self._put_args(batch, mode, notify=False)
                    if pending is not None:
                        collect(*pending)
                        pending = None
                        if conflict is not None:
                            break
                    pending = (batch, pool.submit(self._send_put, args, mode, len(batch)))
                    sent = True
                if pending is not None:
                    collect(*pending)
        finally:
            if sent:
                self._feed.notify()
        self._mark_alerting(alerting)
        if conflict is not None:
            raise ConflictingIdError(conflict)
        return stored

    def count_jobs(self) -> int:
        """How many jobs are stored (O(1)). Not part of :class:`JobStore`."""
        with self._errors("count jobs"):
            return int(self._client.scard(self._jobs_key))

    def update_job(self, job: Job, *, expected_revision: int | None = None, reschedule: bool = False) -> None:
        definition = encode_definition(job_to_dict(job))
        nrt = job.next_run_time
        args = [
            self._job_key(job.id),
            job.id,
            "" if expected_revision is None else str(int(expected_revision)),
            definition,
            "1" if reschedule else "0",
            job.status.value,
            "" if nrt is None else utc(nrt).isoformat(),
            "" if nrt is None else ts(nrt),
            self._channel,
            self._def_key(job.id),
            self._history_key(job.id),
        ]
        keys = [self._schedule_key, self._claims_key, self._changes_key]
        with self._errors(f"update job {job.id!r}"):
            revision, stored = (int(v) for v in self._update(keys=keys, args=args))
        if revision == -2:
            raise JobLookupError(job.id)
        if revision == -3:
            raise RevisionConflictError(job.id, int(expected_revision or 0), stored)
        job.revision = revision
        self._mark_alerting([job])

    def remove_job(self, job_id: str) -> bool:
        keys = [
            self._jobs_key,
            self._schedule_key,
            self._claims_key,
            self._changes_key,
            self._running_all_key,
        ]
        args = [
            self._job_prefix,
            self._running_prefix,
            self._channel,
            job_id,
            self._runs_key(job_id),
            self._def_key(job_id),
            self._history_key(job_id),
        ]
        with self._errors(f"remove job {job_id!r}"):
            removed = bool(self._remove(keys=keys, args=args))
            self._client.srem(self._alerting_key, job_id)
            return removed

    def get_job(self, job_id: str) -> Job | None:
        now = ts(self._clock.now())
        with self._errors(f"read job {job_id!r}"):
            pipe = self._client.pipeline(transaction=False)
            pipe.hmget(self._job_key(job_id), RECORD_FIELDS)
            pipe.get(self._def_key(job_id))
            pipe.zcount(self._running_key(job_id), f"({now}", "+inf")
            values, definition, running = pipe.execute()
        record = [*values, definition]
        if self._missing(record):
            return None
        return self._decode(job_id, record, int(running))

    def get_jobs(self, status: JobStatus | None = None, *, batch_size: int = 1000) -> list[Job]:
        """Every job (or those with ``status``), read in batches of ``batch_size`` (SSCAN and a
        pipeline per batch), ordered by next run time then id."""
        now = ts(self._clock.now())
        jobs: list[Job] = []
        wanted = None if status is None else JobStatus(status).value
        with self._errors("list jobs"):
            for ids in self._id_batches(batch_size):
                jobs += self._read_batch(ids, now, wanted)
        far = float("inf")
        jobs.sort(key=lambda j: (j.next_run_time.timestamp() if j.next_run_time else far, j.id))
        return jobs

    def count_jobs_by_status(self, *, batch_size: int = 1000) -> dict[JobStatus, int]:
        """Counted in Redis by one script call per ``batch_size`` jobs (an SSCAN step and
        each job's status), so only the counts cross the network. A status beatx does not
        know is not counted."""
        counts = dict.fromkeys(JobStatus, 0)
        by_value = {status.value: status for status in JobStatus}
        cursor = "0"
        with self._errors("count jobs by status"):
            while True:
                reply = self._count_statuses(
                    keys=[self._jobs_key], args=[self._job_prefix, cursor, batch_size]
                )
                cursor = as_str(reply[0])
                for i in range(1, len(reply), 2):
                    status = by_value.get(as_str(reply[i]))
                    if status is not None:
                        counts[status] += int(reply[i + 1])
                if cursor == "0":
                    return counts

    def reindex_orphans_step(self, cursor: str = "0", batch_size: int = 1000) -> tuple[str, list[str]]:
        """One step of the sweep that puts back in the schedule every schedulable job found
        in no index (neither scheduled nor claimed): about ``batch_size`` jobs from the SSCAN
        ``cursor`` ("0" to start). Returns the next cursor ("0" when the sweep is done) and
        the ids put back. A leading beat runs one step per renewal interval from the start of
        each term (see :meth:`beatx.beat.Beat.run_once`)."""
        keys = [self._jobs_key, self._schedule_key, self._claims_key]
        with self._errors("re-index jobs found in no index"):
            reply = self._sweep(keys=keys, args=[self._job_prefix, cursor, batch_size])
        found = [as_str(job_id) for job_id in reply[1:]]
        if found:
            logger.error("re-indexed %d job(s) found in no index: %s", len(found), ", ".join(found[:20]))
        return as_str(reply[0]), found

    def reindex_orphans(self, *, batch_size: int = 1000) -> list[str]:
        """The whole sweep of :meth:`reindex_orphans_step` at once; returns the ids put back."""
        found: list[str] = []
        cursor, step = self.reindex_orphans_step("0", batch_size)
        found += step
        while cursor != "0":
            cursor, step = self.reindex_orphans_step(cursor, batch_size)
            found += step
        return found

    def _id_batches(self, batch_size: int) -> Iterator[list[str]]:
        """Every job id (SSCAN of ``jobs``), ``batch_size`` at a time."""
        ids: list[str] = []
        for job_id in self._client.sscan_iter(self._jobs_key, count=batch_size):
            ids.append(as_str(job_id))
            if len(ids) >= batch_size:
                yield ids
                ids = []
        if ids:
            yield ids

    def _read_batch(self, ids: list[str], now: str, wanted: str | None) -> list[Job]:
        pipe = self._client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self._job_key(job_id), RECORD_FIELDS)
            pipe.get(self._def_key(job_id))
            pipe.zcount(self._running_key(job_id), f"({now}", "+inf")
        results = pipe.execute()
        out: list[Job] = []
        status_at = RECORD_FIELDS.index("status")
        for i, job_id in enumerate(ids):
            values = [*results[3 * i], results[3 * i + 1]]
            running = results[3 * i + 2]
            if self._missing(values):  # removed since the scan
                continue
            if wanted is not None and as_str(values[status_at] or "") != wanted:
                continue
            out.append(self._decode(job_id, values, int(running)))
        return out

    # -- the beat ------------------------------------------------------------------------------

    def next_run_time(self) -> datetime | None:
        with self._errors("read the next run time"):
            try:
                value, claims = self._next_and_first_claim()
            except redis.exceptions.NoScriptError:
                # Redis lost its scripts (a restart, SCRIPT FLUSH): load it, try once more.
                self._next.sha = self._client.script_load(LUA_NEXT_RUN_TIME)
                value, claims = self._next_and_first_claim()
        earliest = None if value is None else from_iso(as_str(value))
        if claims:
            expires = EPOCH + timedelta(seconds=float(claims[0][1]))
            earliest = expires if earliest is None else min(earliest, expires)
        return earliest

    def _next_and_first_claim(self) -> list[Any]:
        """The next run time (:data:`LUA_NEXT_RUN_TIME`) and the earliest claim, in one round
        trip. The script goes as a plain EVALSHA: a registered script in a pipeline would cost
        a SCRIPT EXISTS every time (redis-py checks a pipeline's scripts before sending it),
        and this runs on every idle tick."""
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._next.sha, 1, self._schedule_key, self._job_prefix)
        pipe.zrange(self._claims_key, 0, 0, withscores=True)
        return pipe.execute()

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        what = "claim due jobs" if owner is None else f"claim due jobs for beat {owner!r}"
        self._finish_releases(all_of_them=False)
        taken = self._take_claim_ahead(now, limit, owner or "", what)
        if taken is not None:
            result, token = taken
        else:
            token = new_claim_token(owner)
            keys, args = self._claim_arguments(now, limit, owner or "", claim_ttl, token)
            with self._errors(what):
                result = self._acquire(keys=keys, args=args)
        if limit >= self._claim_ahead_from and len(result) >= 3 * limit:
            self._send_claim_ahead(now, limit, owner or "", claim_ttl)
        jobs: list[Job] = []
        broken: list[tuple[str, str]] = []
        for i in range(0, len(result), 3):
            job_id = as_str(result[i])
            try:
                job = self._decode(job_id, result[i + 1], int(result[i + 2]))
            except SerializationError as exc:
                broken.append((job_id, str(exc)))
                continue
            job.claim = token
            jobs.append(job)
        for job_id, error in broken:
            try:
                self._quarantine(job_id, error)
            except StoreError as exc:
                # The good jobs of this claim are returned all the same; this one stays
                # claimed and is quarantined when claimed again, after its claim deadline.
                logger.error("job %r could not be marked failed: %s", job_id, exc)
        return jobs

    def _claim_arguments(
        self, now: datetime, limit: int, owner: str, claim_ttl: float, token: str
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of :data:`LUA_ACQUIRE`."""
        keys = [self._lease_key, self._schedule_key, self._claims_key]
        claim_clock = "" if self._server_time else ts(now)
        args = [
            owner,
            ts(now),
            str(int(limit)),
            repr(float(claim_ttl)),
            self._job_prefix,
            self._running_prefix,
        ]
        return keys, [*args, token, claim_clock, self._def_prefix, *RECORD_FIELDS]

    def _send_claim_ahead(self, now: datetime, limit: int, owner: str, claim_ttl: float) -> None:
        """Send the next claim of a burst without waiting for its reply (see the class doc)."""
        token = new_claim_token(owner or None)
        keys, args = self._claim_arguments(now, limit, owner, claim_ttl, token)
        connection = self._send_script(self._acquire, keys, args)
        if connection is not None:
            with self._claim_ahead_lock:
                self._claim_ahead = _ClaimAhead(connection, now, limit, owner, token)

    def _send_script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Send ``script`` on a connection of its own and return that connection, whose reply
        :meth:`_read_reply` reads; None when it could not be sent (the caller goes on without)."""
        pool = self._client.connection_pool
        try:
            connection = pool.get_connection()
            try:
                connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
            except BaseException:
                pool.release(connection)
                raise
        except (redis.RedisError, OSError) as exc:
            logger.debug("not sent ahead, done the usual way: %r", exc)
            return None
        return connection

    def _read_reply(self, connection: Any) -> Any:
        """The reply of a script sent by :meth:`_send_script`; :data:`_NOT_RUN` when Redis had
        lost its scripts (after a restart) and ran nothing."""
        try:
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            return _NOT_RUN
        finally:
            self._client.connection_pool.release(connection)

    def _take_claim_ahead(self, now: datetime, limit: int, owner: str, what: str) -> tuple[Any, str] | None:
        """The reply of the claim sent ahead and its token, when it is the claim asked for
        now; otherwise its jobs are given back and None is returned."""
        with self._claim_ahead_lock:
            ahead, self._claim_ahead = self._claim_ahead, None
        if ahead is None:
            return None
        if not (ahead.limit == limit and ahead.owner == owner and ahead.now <= now):
            self._give_back(ahead)
            return None
        with self._errors(what):
            reply = self._read_reply(ahead.connection)
        if reply is _NOT_RUN:
            return None
        if owner and ahead.now < now and not self._holds_lease(owner, now):
            # The claim was fenced at its own time; this call is fenced at ``now``, as a claim
            # made now would be. A beat that lost its lease leaves the jobs claimed.
            lease = self.get_lease()
            # (With the server's clock the expiry is not comparable with ``now``: the release
            # of these jobs is fenced by Redis itself.)
            expired = not self._server_time and lease is not None and lease.expires_at <= now
            if lease is None or lease.owner != owner or expired:
                raise self._lease_lost(what)
        return reply, ahead.token

    def _holds_lease(self, owner: str, now: datetime) -> bool:
        """Whether ``owner`` holds the lease at ``now``, without a read (see
        :meth:`beatx.stores.redis_lease.RedisLease.holds`)."""
        return self._leader.holds(owner, now)

    def _give_back(self, ahead: _ClaimAhead) -> None:
        """Return the jobs of an unused claim ahead to the schedule, unchanged."""
        try:
            with self._errors("give back the jobs claimed ahead"):
                reply = self._read_reply(ahead.connection)
            if reply is _NOT_RUN or not reply:
                return
            releases = []
            for i in range(0, len(reply), 3):
                try:
                    job = self._decode(as_str(reply[i]), reply[i + 1], 0)
                except SerializationError:
                    continue  # quarantined when claimed again, after its claim deadline
                job.claim = ahead.token
                releases.append(JobRelease.unchanged(job))
            self.release_jobs(releases, owner=ahead.owner or None)
        except StoreError as exc:
            logger.warning("jobs claimed ahead stay claimed until their claim deadline: %s", exc)

    def _quarantine(self, job_id: str, error: str) -> None:
        """Take a job whose stored record cannot be read out of the schedule, as FAILED with
        the error, so it neither blocks the jobs claimed with it nor comes back every tick."""
        logger.error("job %r has a corrupt stored record and stops firing: %s", job_id, error)
        key = self._job_key(job_id)
        with self._errors(f"mark job {job_id!r} failed"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(key, mapping={"status": JobStatus.FAILED.value, "last_error": error})
            pipe.hdel(key, "next_run_time", "next_run_ts")
            pipe.zrem(self._claims_key, job_id)
            pipe.zrem(self._schedule_key, job_id)
            pipe.execute()

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        if not releases and owner is None:
            return
        keys = [self._lease_key, self._schedule_key, self._claims_key, self._changes_key]
        # The jobs of a burst mostly share their times: each instant is written out once.
        stamps: dict[datetime | None, tuple[str, str]] = {None: ("", "")}
        items = []
        sent_at = self._clock.now()
        sent_iso = utc(sent_at).isoformat() if self._run_history else ""
        for r in releases:
            nrt, last = r.next_run_time, r.last_run_time
            if nrt not in stamps:
                stamps[nrt] = (utc(nrt).isoformat(), ts(nrt))  # type: ignore[arg-type]
            if last not in stamps:
                stamps[last] = (utc(last).isoformat(), ts(last))  # type: ignore[arg-type]
            items.append(
                [
                    r.job_id,
                    r.claim or "",
                    *stamps[nrt],
                    r.status.value,
                    *stamps[last],
                    len(r.fired),
                    int(r.missed),
                    int(r.skipped),
                    r.error,
                    sum(len(message.lists) for message in r.messages),
                    self._ledger_entries(r, stamps, sent_at, sent_iso) if sent_iso else [],
                ]
            )
        args = [
            owner or "",
            "" if self._server_time else ts(sent_at),
            self._job_prefix,
            self._channel,
            json.dumps(items, separators=(",", ":"), ensure_ascii=False),
            str(self._db),
            RUNS_KEY.format(prefix=self._prefix, job_id=""),
            *self._ledger_args,
        ]
        for r in releases:
            for message in r.messages:
                for name in message.lists:
                    args += (str(message.db), name, message.payload)
        what = f"release {len(releases)} job(s)" + ("" if owner is None else f" for beat {owner!r}")
        if self._claim_ahead is not None:
            # A burst: Redis writes this batch back while the beat sends the next one.
            connection = self._send_script(self._release, keys, args)
            if connection is not None:
                with self._claim_ahead_lock:
                    self._releases_sent.append(_SentRelease(connection, what, keys, args))
                return
        self._finish_releases()
        with self._errors(what):
            self._release(keys=keys, args=args)

    @staticmethod
    def _ledger_entries(
        release: JobRelease, stamps: dict[datetime | None, tuple[str, str]], sent_at: datetime, sent_iso: str
    ) -> list[str]:
        """The run ledger entries of ``release``: one per fire sent, and its missed / skipped
        records."""
        entries: list[str] = []
        task_ids = release.task_ids
        for index, at in enumerate(release.fired):
            if at not in stamps:
                stamps[at] = (utc(at).isoformat(), ts(at))
            task_id = task_ids[index] if index < len(task_ids) else fire_task_id(release.job_id, at)
            entries.append(sent_entry(task_id, stamps[at][0], sent_iso))
        if release.missed or release.skipped or release.caught_up or release.coalesced:
            notes = summaries(
                release.job_id,
                claim=release.claim,
                at=sent_at,
                missed=release.missed,
                skipped=release.skipped,
                caught_up=release.caught_up,
                coalesced=release.coalesced,
            )
            entries += (entry(note.task_id, note.outcome, s=sent_iso, r=note.reason) for note in notes)
        return entries

    def _finish_releases(self, *, all_of_them: bool = True) -> None:
        """Read the replies of the releases sent during a burst, raising their errors. Unless
        ``all_of_them``, the latest stays in flight while Redis is still running it."""
        with self._claim_ahead_lock:
            sent, self._releases_sent = self._releases_sent, []
            if not all_of_them and sent and not sent[-1].connection.can_read(timeout=0):
                self._releases_sent.append(sent.pop())
        for index, release in enumerate(sent):
            try:
                with self._errors(release.what):
                    if self._read_reply(release.connection) is _NOT_RUN:
                        self._release(keys=release.keys, args=release.args)
            except BaseException:
                for later in sent[index + 1 :]:
                    later.connection.disconnect()
                    self._client.connection_pool.release(later.connection)
                raise

    def due_count(self, now: datetime) -> int:
        with self._errors("count due jobs"):
            return int(
                self._due_count(keys=[self._schedule_key, self._claims_key], args=[ts(now), self._job_prefix])
            )

    # -- run state -----------------------------------------------------------------------------

    def run_started(
        self, job_id: str, task_id: str, *, started_at: datetime, timeout: float, worker: str | None = None
    ) -> None:
        expires = ts(started_at + timedelta(seconds=timeout))
        keys = [self._running_key(job_id), self._running_all_key]
        args = [self._job_key(job_id), task_id, ts(started_at), expires, f"{job_id}\0{task_id}"]
        started = entry(task_id, RunOutcome.RUNNING, b=utc(started_at).isoformat(), w=worker)
        args += [self._runs_key(job_id), *self._ledger_args, started]
        with self._errors(f"record the start of run {task_id!r} of job {job_id!r}"):
            self._started(keys=keys, args=args)

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
        key = DELIVERED_KEY.format(prefix=self._prefix, task_id=task_id) + (f":{attempt}" if attempt else "")
        remember = int(max(timeout, DELIVERY_MEMORY))
        with self._errors(f"record the delivery of run {task_id!r} of job {job_id!r}"):
            if not self._client.set(key, "1", nx=True, ex=remember):
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
        if outcome is None:
            outcome = RunOutcome.FAILED if error is not None else RunOutcome.SUCCEEDED
        keys = [
            self._running_key(job_id),
            self._running_all_key,
            self._schedule_key,
            self._claims_key,
        ]
        args = [
            self._job_key(job_id),
            task_id,
            f"{job_id}\0{task_id}",
            utc(finished_at).isoformat(),
            "" if duration is None else repr(float(duration)),
            "2" if outcome is RunOutcome.REVOKED else "0" if error is None else "1",
            error or "",
            job_id,
            self._runs_key(job_id),
            *self._ledger_args,
            entry(task_id, outcome, f=utc(finished_at).isoformat(), d=duration, e=error, w=worker),
        ]
        with self._errors(f"record the end of run {task_id!r} of job {job_id!r}"):
            self._finished(keys=keys, args=args)

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
        if not self._run_history:
            return
        retried = entry(task_id, RunOutcome.RETRIED, e=error, a=retries, w=worker)
        with self._errors(f"record the retry of run {task_id!r} of job {job_id!r}"):
            self._retried(
                keys=[self._job_key(job_id), self._runs_key(job_id)], args=[*self._ledger_args, retried]
            )

    def record_change(self, change: JobChange) -> None:
        """Append ``change`` to the job's audit log (:data:`LUA_RECORD_CHANGE`). The "added"
        change of a job with no log yet is kept in the job's hash instead (field ``added``:
        when, the status, source and actor) when it is exactly what the stored definition
        says: the log, a key of its own, would cost more than the job. Any later change of the
        job, or its removal, moves it to the log first."""
        job_id = change.job_id
        what = f"record a change of job {job_id!r}"
        added, revision = self._added_in_hash(change, what)
        keys = [self._job_key(job_id), self._def_key(job_id), self._history_key(job_id)]
        with self._errors(what):
            self._record(keys=keys, args=[job_id, change.to_json(), DEFAULT_HISTORY, added, revision])

    def _added_in_hash(self, change: JobChange, what: str) -> tuple[str, str]:
        """The ``added`` field that stands for ``change`` and the revision it describes, or
        ``("", "")`` when the change is to go to the log as it is."""
        if change.action != "added":
            return "", ""
        with self._errors(what):
            pipe = self._client.pipeline(transaction=False)
            pipe.hmget(self._job_key(change.job_id), RECORD_FIELDS)
            pipe.get(self._def_key(change.job_id))
            values, definition = pipe.execute()
        if values[0] is not None or self._missing([*values, definition]):
            return "", ""  # an older beatx's record, or no job
        try:
            job = self._decode(change.job_id, [*values, definition], 0)
        except SerializationError:
            return "", ""
        added = json.dumps(
            [ts(change.at), job.status.value, change.source, change.actor],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        if len(added.encode()) > ADDED_IN_HASH_MAX:
            return "", ""
        try:
            kept = self._added_change(change.job_id, added, as_str(definition))
        except (SerializationError, ValueError, TypeError):
            return "", ""
        if kept.to_json() != change.to_json():
            return "", ""
        return added, str(job.revision)

    def _added_change(self, job_id: str, added: str, definition: str | None) -> JobChange:
        """The "added" change a kept ``added`` field (JSON ``[at, status, source, actor]``)
        stands for: what ``definition`` (compact JSON) and that status say."""
        at, status, source, actor = json.loads(added)
        seconds, _, micros = str(at).partition(".")
        changes: dict[str, list[Any]] = {}
        if definition is not None:
            record = [None, status, *([None] * (len(RECORD_FIELDS) - 2)), definition]
            changes = diff_jobs(None, self._decode(job_id, record, 0))
        return JobChange(
            job_id=job_id,
            at=EPOCH + timedelta(seconds=int(seconds), microseconds=int(micros or 0)),
            action="added",
            source=str(source),
            actor=None if actor is None else str(actor),
            changes=changes,
        )

    def _change_from(self, job_id: str, raw: Any) -> JobChange:
        """One entry of the audit log: a :class:`JobChange` as JSON, or an "added" change
        moved from the job's hash (``{"added": ..., "definition": ...}``)."""
        data = json.loads(as_str(raw))
        if "added" in data and "changes" not in data:
            return self._added_change(job_id, as_str(data["added"]), data.get("definition"))
        return JobChange.from_dict(data)

    def job_changes(self, job_id: str, *, limit: int = 20) -> list[JobChange]:
        if limit <= 0:
            return []
        with self._errors(f"read the changes of job {job_id!r}"):
            pipe = self._client.pipeline(transaction=False)
            pipe.lrange(self._history_key(job_id), -limit, -1)
            pipe.hget(self._job_key(job_id), "added")
            pipe.get(self._def_key(job_id))
            raw, added, definition = pipe.execute()
        try:
            changes = [self._change_from(job_id, item) for item in raw]
            if added is not None and len(changes) < limit:
                text = None if definition is None else as_str(definition)
                changes.insert(0, self._added_change(job_id, as_str(added), text))
        except (ValueError, KeyError, TypeError) as exc:
            raise SerializationError(f"job {job_id!r}: unreadable audit log entry: {exc}") from exc
        return changes[::-1]

    def job_runs(self, job_id: str, *, limit: int = 20) -> list[RunRecord]:
        if limit <= 0 or not self._run_history:
            return []
        with self._errors(f"read the runs of job {job_id!r}"):
            entries = self._client.lrange(self._runs_key(job_id), 0, -1)
        records = records_from_entries(job_id, entries)
        return newest_first(records, limit=limit, now=self._clock.now(), max_age=self._run_history_age)

    def job_runs_many(self, job_ids: Sequence[str], *, limit: int = 20) -> dict[str, list[RunRecord]]:
        """:meth:`job_runs` of several jobs in one round trip (the alert watch's read)."""
        if limit <= 0 or not self._run_history or not job_ids:
            return {job_id: [] for job_id in job_ids}
        with self._errors(f"read the runs of {len(job_ids)} job(s)"):
            pipe = self._client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.lrange(self._runs_key(job_id), 0, -1)
            replies = pipe.execute()
        now = self._clock.now()
        return {
            job_id: newest_first(
                records_from_entries(job_id, entries), limit=limit, now=now, max_age=self._run_history_age
            )
            for job_id, entries in zip(job_ids, replies, strict=True)
        }

    def running_count(self, now: datetime) -> int:
        with self._errors("count running jobs"):
            return int(self._client.zcount(self._running_all_key, f"({ts(now)}", "+inf"))

    # -- beatx's own small records ------------------------------------------------------------

    def read_meta(self, key: str) -> str | None:
        with self._errors(f"read {key!r}"):
            value = self._client.hget(self._meta_key, key)
        return None if value is None else as_str(value)

    def write_meta(self, key: str, value: str) -> None:
        with self._errors(f"write {key!r}"):
            self._client.hset(self._meta_key, key, value)

    # -- leadership: served by RedisLease ------------------------------------------------------

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        return self._leader.acquire_lease(owner, now=now, ttl=ttl)

    def release_lease(self, owner: str) -> None:
        self._leader.release_lease(owner)

    def get_lease(self) -> LeaseInfo | None:
        return self._leader.get_lease()

    def write_status(self, status: BeatStatus) -> None:
        self._leader.write_status(status)

    def read_status(self) -> BeatStatus | None:
        return self._leader.read_status()

    # -- changes: served by RedisChangeFeed ----------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a message on this store's ``changes`` channel (see
        :meth:`beatx.stores.redis_changes.RedisChangeFeed.wait_for_change`).

        Returns ``True`` at once if the ``changes`` counter moved since the previous call, so
        a change made between two waits is not lost. The first call (and the first after a
        connection error) subscribes and only sees changes from then on.
        """
        return self._feed.wait_for_change(timeout)

    def close(self) -> None:
        try:
            self._finish_releases()
        except StoreError as exc:
            logger.error("jobs stay claimed until their claim deadline: %s", exc)
        with self._claim_ahead_lock:
            ahead, self._claim_ahead = self._claim_ahead, None
        if ahead is not None:
            self._give_back(ahead)
        self._feed.close()
        self._shared.close()

    def claim_job(self, job_id: str, *, claim_ttl: float = 60.0) -> Job | None:
        """Claim one job for a fire sent outside the schedule (:data:`LUA_CLAIM_JOB`: the claim
        field and the claims set only), then read it as :meth:`get_job` does. A job whose
        record cannot be read is marked FAILED, as :meth:`acquire_due_jobs` marks it."""
        now = self._clock.now()
        token = new_claim_token(None)
        keys = [self._jobs_key, self._schedule_key, self._claims_key]
        args = [
            job_id,
            self._job_key(job_id),
            self._running_key(job_id),
            repr(float(claim_ttl)),
            token,
            "" if self._server_time else ts(now),
            ts(now),
        ]
        with self._errors(f"claim job {job_id!r}"):
            reply = self._client.register_script(LUA_CLAIM_JOB)(keys=keys, args=args)
        if reply == -1:
            raise JobLookupError(job_id)
        if reply == 0:
            return None
        try:
            job = self.get_job(job_id)
        except SerializationError as exc:
            self._quarantine(job_id, str(exc))
            raise
        if job is None:  # removed since the claim
            raise JobLookupError(job_id)
        job.running, job.claim = int(reply[1]), token
        return job
