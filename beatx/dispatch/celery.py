"""Sends fires to Celery workers as ordinary task messages.

Each fire becomes ONE task message with the job's routing options, ``task_id`` = the fire's
deterministic id (:attr:`beatx.Fire.task_id`) and two extra headers, ``beatx_job_id`` and
``beatx_scheduled_at`` (ISO 8601, UTC), that the worker-side signal handlers of
:func:`beatx.celery.setup` use to record run state. Any worker with the task registered runs
it; workers need nothing from beatx to execute it.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
import uuid
from base64 import b64encode
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from kombu.exceptions import SerializationError as KombuSerializationError
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from beatx.dispatch.amqp import AmqpTemplate, ConfirmedChannel, Unconfirmed
from beatx.dispatch.base import is_transient, lease_lost
from beatx.dispatch.signals import Published, PublishSignals
from beatx.dispatch.templates import MessageTemplate, Slot, plain_key, quote
from beatx.errors import ConfigurationError, PermanentDispatchError, TransientDispatchError
from beatx.jobs import Fire, Job

if TYPE_CHECKING:
    from celery import Celery

    from beatx.stores.base import QueuedMessage

__all__ = [
    "DEFAULT_PUBLISH_TIMEOUT",
    "DEFAULT_RETRY_POLICY",
    "JOB_ID_HEADER",
    "SCHEDULED_AT_HEADER",
    "CeleryDispatcher",
]

logger = logging.getLogger("beatx.celery")

JOB_ID_HEADER = "beatx_job_id"
SCHEDULED_AT_HEADER = "beatx_scheduled_at"

#: Messages per Redis pipeline on the fast path (the lease is checked before each), and so
#: the most a beat frozen while sending can still publish when it wakes.
PIPELINE_CHUNK = 100

#: Messages per socket write on the AMQP path (the lease is checked before each), and so the
#: most a beat frozen while sending can still publish when it wakes.
CONFIRM_BATCH = 100

#: Job options the Redis pipeline path writes into a message itself; a job with any other
#: option (``eta``, ``countdown``, ``link``, ``serializer``...) takes the ``send_task`` path.
TEMPLATE_OPTIONS = frozenset(
    {"queue", "routing_key", "exchange", "priority", "headers", "expires", "ignore_result"}
    | {"time_limit", "soft_time_limit", "shadow"}
)
#: Message templates kept (one per task and options), and encoded arguments kept (one per
#: distinct arguments); each cache starts over when full.
TEMPLATE_CACHE_SIZE = 4096

_MISSING = object()

#: kombu's publish retry policy for one message: short, so a broker outage costs a tick
#: about a second; the engine retries the fire later under the misfire rules. Retries also
#: stop at the dispatcher's ``publish_timeout``.
DEFAULT_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

#: Default of ``CeleryDispatcher(publish_timeout=...)``: seconds one ``dispatch()`` call may
#: wait on the broker.
DEFAULT_PUBLISH_TIMEOUT = 5.0

#: Transport options that bound one wait on the broker, by kombu transport driver type.
_SOCKET_TIMEOUT_OPTIONS = {
    "redis": ("socket_timeout", "socket_connect_timeout"),
    "amqp": ("read_timeout", "write_timeout"),
}

#: How a failed publish is handled: the broker failed (the rest of the batch is not tried),
#: the broker refused this message with an error reply (only this fire failed, retried
#: later), or the fire itself can never be sent.
_Kind = Literal["broker", "refused", "poison"]


_E = TypeVar("_E", bound=BaseException)
_T = TypeVar("_T")


class _PublishTimeout(Exception):
    """kombu's retry loop reached the dispatch deadline (raised from its errback)."""


def _args_repr(args: tuple[Any, ...]) -> str:
    # Celery shows args as the list it sends, and no args as "()".
    return repr(list(args)) if args else "()"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _at_most(value: Any, limit: float) -> float:
    """``value`` (a timeout setting, None for none) capped at ``limit``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return limit
    return min(float(value), limit)


def _redis_reply(error: BaseException) -> BaseException | None:
    """The Redis error reply (WRONGTYPE, OOM, READONLY...) that ``error`` is or was raised
    from (kombu re-raises it as its own OperationalError), or None."""
    try:
        from redis.exceptions import ResponseError
    except ImportError:  # pragma: no cover - redis-py is not installed: not a Redis broker
        return None
    current: BaseException | None = error
    for _ in range(4):
        if current is None:
            return None
        if isinstance(current, ResponseError):
            return current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def _with_cause(error: _E, cause: BaseException) -> _E:
    error.__cause__ = cause
    return error


def message_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The job options that go into the message: everything but beatx's own ``beatx_*`` keys."""
    return {key: value for key, value in options.items() if not key.startswith("beatx_")}


class CeleryDispatcher:
    """Publishes each fire as one Celery task message through one long-lived producer.

    The producer (and its broker connection) is acquired on the first dispatch and kept; it is
    dropped and acquired again after a connection error. A batch of fires is published in a
    loop on that producer, without a connection acquire per message.

    :meth:`dispatch` never raises for a fire or for the broker; each fire's entry is None when
    it was handed to the broker, or one of (see :func:`beatx.dispatch.base.is_transient`):

    - :class:`~beatx.TransientDispatchError`, the broker failed: a connection error, a
      timeout, or ``publish_timeout`` spent. It is returned for that fire and every later fire
      of the batch (they are not attempted, so an outage costs one retry cycle per tick, not
      one per fire), logged once per batch with the number of fires it affects, and the
      producer is dropped so that the next dispatch connects again. The engine keeps those
      jobs due and tries again later, under the misfire rules.
    - :class:`~beatx.TransientDispatchError`, the broker answered this fire's message with an
      error reply (Redis: WRONGTYPE on its queue's list, OOM, READONLY): only the fires of
      that message failed; logged once per batch.
    - :class:`~beatx.PermanentDispatchError`, the fire can never be sent as it is (its
      arguments or options cannot be encoded, ``send_task`` refuses an option): the rest of
      the batch goes on, on the same producer; logged once per fire. The engine marks the
      job FAILED.
    - :class:`~beatx.LeaseLostError` for the fires left when ``guard`` said the lease is gone.

    Each error names the job (for a permanent one, its task and what is wrong) and has the
    original exception as its ``__cause__``.

    ``publish_timeout`` bounds how long one call waits on the broker, so that a broker that
    accepts connections but stops answering (frozen, a dead peer behind NAT) cannot hold the
    beat past its leader lease: every connect, write and read on the broker connection times
    out after at most ``publish_timeout`` (Redis ``socket_timeout`` and
    ``socket_connect_timeout``, py-amqp ``read_timeout``/``write_timeout`` and the
    connection timeout, each capped at it), kombu stops retrying a publish and no message is
    written once ``publish_timeout`` has passed since the call began, and the fires not
    handed over by then are :class:`~beatx.TransientDispatchError`. A broker that stops
    answering thus costs one call about ``publish_timeout`` (at worst about twice that, if it
    stops just as the time runs out).

    On a Redis broker a batch takes a faster path: the same protocol-2 messages that
    ``send_task`` would write are pushed as pipelines of :data:`PIPELINE_CHUNK` messages, sent
    one after the other and confirmed (their replies read) at the end of the batch, instead of
    two round trips per message. The lease check then runs before each pipeline. A message is
    built once per task and options by ``app.amqp.as_task_v2`` and kombu's own channel helpers,
    with placeholders where the per-fire values go (a
    :class:`~beatx.dispatch.templates.MessageTemplate`), and each fire fills in its task id,
    job id, scheduled time, delivery tag, expiry and encoded arguments (kept per distinct
    arguments). Fires that need what only ``send_task`` does (an option outside
    :data:`TEMPLATE_OPTIONS`, a non-direct exchange, compression) take the ``send_task`` path;
    so does every broker but Redis and RabbitMQ through py-amqp. On RabbitMQ the template path
    publishes batches on a channel in publisher-confirm mode (:mod:`beatx.dispatch.amqp`) and
    counts a fire as sent only once the broker confirmed it. Receivers of Celery's
    ``before/after_task_publish`` signals keep the template paths: each fire is announced as
    ``send_task`` announces it (:mod:`beatx.dispatch.signals`), its message built from the
    headers the receivers leave.

    Every reply of every pipeline written is read, so a fire is reported failed only when the
    LPUSH that carried it got an error reply (each LPUSH carries one queue's messages of one
    pipeline; a fire pushed to several queues fails if any of them refused it). When the
    connection fails instead (or after another broker failure in the batch), the replies not
    read yet are unknown: their fires are reported as :class:`~beatx.TransientDispatchError`
    although they **may have reached the broker**; sending them again is safe because a fire
    keeps its task id, and the worker-side duplicate guard drops the repeat.

    :param app: the Celery app whose broker, routes and serializer settings are used.
    :param retry_policy: kombu's publish retry policy for one message (see
        :data:`DEFAULT_RETRY_POLICY`).
    :param retry: whether to retry a publish at all.
    :param pipeline: allow the Redis pipeline path (``False`` forces ``send_task``).
    :param publish_timeout: the most seconds one :meth:`dispatch` call waits on the broker
        (default :data:`DEFAULT_PUBLISH_TIMEOUT`); keep it well below the leader lease.
    """

    def __init__(
        self,
        app: Celery,
        *,
        retry: bool = True,
        retry_policy: Mapping[str, Any] | None = None,
        pipeline: bool = True,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
    ) -> None:
        if (
            isinstance(publish_timeout, bool)
            or not isinstance(publish_timeout, int | float)
            or not math.isfinite(publish_timeout)
            or publish_timeout <= 0
        ):
            raise ConfigurationError(f"publish_timeout must be > 0 seconds, got {publish_timeout!r}")
        self.app = app
        self.pipeline = pipeline
        self.retry = retry
        self.retry_policy = dict(DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy)
        self.publish_timeout = float(publish_timeout)
        self._signals = PublishSignals(self.retry_policy)
        #: The monotonic time the dispatch() call under way must be done waiting by.
        self._deadline: float | None = None
        self._lock = threading.Lock()
        self._connection: Any = None
        self._producer: Any = None
        self._routes: dict[Any, Any] = {}
        self._templates: dict[tuple[str, str], MessageTemplate | None] = {}
        self._arguments_cache: dict[tuple[str, str], tuple[str, str, str]] = {}
        #: The AMQP path: its confirm-mode channel, templates and encoded arguments.
        self._confirmed: ConfirmedChannel | None = None
        self._amqp_templates: dict[tuple[str, str], AmqpTemplate | None] = {}
        self._amqp_arguments_cache: dict[tuple[str, str], tuple[bytes, str, str]] = {}
        # Delivery tags only need to be unique: a random prefix per dispatcher and a counter.
        self._tag_prefix = f"{uuid.uuid4()}."
        self._tags = itertools.count()
        self.sent = 0

    # -- the producer ---------------------------------------------------------------------

    def _get_producer(self) -> Any:
        if self._producer is None:
            connection = self._new_connection()
            try:
                self._producer = self.app.amqp.Producer(connection, auto_declare=False)
            except BaseException:
                connection.release()
                raise
            self._connection = connection
        return self._producer

    def _new_connection(self) -> Any:
        """A broker connection (not connected yet: kombu connects on first use) whose waits
        are bounded by ``publish_timeout``: the app's settings, with each timeout capped."""
        connection = self.app.connection_for_write()
        limit = self.publish_timeout
        # kombu's connection timeout is also the time it spends retrying to connect.
        connection.connect_timeout = _at_most(connection.connect_timeout, limit)
        options = dict(connection.transport_options or {})
        driver = getattr(connection.get_transport_cls(), "driver_type", None)
        keys = _SOCKET_TIMEOUT_OPTIONS.get(driver or "", ())
        for key in (*keys, *(("connect_retries_timeout",) if "connect_retries_timeout" in options else ())):
            options[key] = _at_most(options.get(key), limit)
        # kombu sleeps between connection attempts (2 s, then 4 s...) whatever the timeout:
        # its errback stops the attempts at the deadline of the dispatch() under way.
        user_errback = options.get("errback")

        def stop_at_deadline(exc: BaseException, interval: float) -> None:
            if self._deadline is not None:
                self._stop_at(self._deadline, exc, interval)
            if user_errback is not None:
                user_errback(exc, interval)

        options["errback"] = stop_at_deadline
        connection.transport_options = options
        return connection

    def _stop_at(self, deadline: float, exc: BaseException, interval: float | None) -> None:
        """Give up (raise) when kombu's next attempt, after sleeping ``interval``, would
        start after ``deadline``."""
        if time.monotonic() + (interval or 0) >= deadline:
            raise _PublishTimeout(f"retries stopped at publish_timeout={self.publish_timeout:g}s") from exc

    def _drop_producer(self) -> None:
        producer, connection = self._producer, self._connection
        self._producer = self._connection = None
        # Routes and templates were resolved on that connection's channel (queue declarations).
        self._routes.clear()
        self._templates.clear()
        self._confirmed = None  # its channel goes with the connection
        self._amqp_templates.clear()
        if producer is not None:
            try:
                producer.release()
            except Exception as exc:
                logger.debug("ignoring an error while releasing the producer: %r", exc)
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:
                logger.debug("ignoring an error while releasing the connection: %r", exc)

    # -- telling failures apart -------------------------------------------------------------

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        from kombu.exceptions import OperationalError

        errors: tuple[type[BaseException], ...] = (OperationalError, OSError, ConnectionError)
        if self._connection is not None:
            errors += tuple(self._connection.connection_errors) + tuple(self._connection.channel_errors)
        return errors

    def _kind(self, error: BaseException) -> _Kind:
        if _redis_reply(error) is not None:
            return "refused"
        if self._amqp_encoding_error(error):
            return "poison"
        if isinstance(error, (_PublishTimeout, *self._connection_errors())) or is_transient(error):
            return "broker"
        return "poison"

    def _amqp_encoding_error(self, error: BaseException) -> bool:
        """py-amqp raises its FrameSyntaxError (a "connection error") for a header value it
        cannot encode, before writing anything: the connection is still up then."""
        try:
            from amqp.exceptions import FrameSyntaxError  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - py-amqp is not installed
            return False
        if not isinstance(error, FrameSyntaxError) or self._connection is None:
            return False
        try:
            return bool(self._connection.connected)
        except Exception:
            return False

    def _poison(self, fire: Fire, error: BaseException) -> PermanentDispatchError:
        job = fire.job
        if isinstance(error, KombuSerializationError):
            what = f"its arguments cannot be serialised ({self.app.conf.task_serializer})"
        else:
            what = "its options cannot be encoded into a message or are refused by send_task"
        logger.error(
            "fire can never be sent as it is job=%s task=%s scheduled_at=%s: %s: %s: %s",
            job.id,
            job.func_ref,
            fire.scheduled_at.isoformat(),
            what,
            type(error).__name__,
            error,
        )
        permanent = PermanentDispatchError(
            f"the fire of job {job.id!r} (task {job.func_ref!r}) can never be sent as it is: "
            f"{what}: {type(error).__name__}: {error}"
        )
        permanent.__cause__ = error
        return permanent

    def _broker_failed(
        self,
        fires: Sequence[Fire],
        results: list[BaseException | None],
        unsent: Collection[int],
        error: BaseException,
        maybe_sent: Collection[int] = (),
    ) -> None:
        """The broker failed: ``unsent`` fires were not attempted, ``maybe_sent`` ones were
        written but not confirmed. Logs once, and drops the producer."""
        cause = error.__cause__ if isinstance(error, _PublishTimeout) and error.__cause__ else error
        reason = "the broker is unavailable or not answering"
        if isinstance(error, _PublishTimeout):
            reason += f" (retries stopped at publish_timeout={self.publish_timeout:g}s)"
        detail = f"{reason}: {type(cause).__name__}: {cause}"
        not_sent = _with_cause(TransientDispatchError(f"fire not sent: {detail}"), cause)
        unconfirmed = _with_cause(
            TransientDispatchError(
                f"fire not confirmed, it may have reached the broker: {detail} (a repeat has the "
                "same task id and is dropped by the worker-side duplicate guard)"
            ),
            cause,
        )
        for index in unsent:
            results[index] = not_sent
        for index in maybe_sent:
            results[index] = unconfirmed
        affected = sorted({*unsent, *maybe_sent})
        if affected:
            first = fires[affected[0]]
            logger.error(
                "%s, %d fire(s) not sent (%d of them may have reached it), first job=%s "
                "scheduled_at=%s: %s: %s",
                reason,
                len(affected),
                len(maybe_sent),
                first.job_id,
                first.scheduled_at.isoformat(),
                type(cause).__name__,
                cause,
            )
        self._drop_producer()

    def _timed_out(
        self, fires: Sequence[Fire], results: list[BaseException | None], unsent: Sequence[int]
    ) -> None:
        """``publish_timeout`` passed before these fires were written. Logs once."""
        if not unsent:
            return
        cause = TimeoutError(f"publish_timeout={self.publish_timeout:g}s passed in this dispatch")
        error = _with_cause(TransientDispatchError(f"fire not sent: {cause}"), cause)
        for index in unsent:
            results[index] = error
        first = fires[unsent[0]]
        logger.error(
            "publish_timeout=%gs passed, %d fire(s) not sent, first job=%s scheduled_at=%s",
            self.publish_timeout,
            len(unsent),
            first.job_id,
            first.scheduled_at.isoformat(),
        )

    @staticmethod
    def _log_refused(fires: Sequence[Fire], results: list[BaseException | None], refused: list[int]) -> None:
        if refused:
            first = results[refused[0]]
            logger.error(
                "the broker refused %d fire(s) with an error reply, first job=%s: %s",
                len(refused),
                fires[refused[0]].job_id,
                first.__cause__ if first is not None else None,
            )

    @staticmethod
    def _refused(error: BaseException, where: str = "") -> TransientDispatchError:
        reply = _redis_reply(error) or error
        return _with_cause(
            TransientDispatchError(f"the broker refused the fire's message{where}: {reply}"), error
        )

    # -- dispatching ----------------------------------------------------------------------

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        """Publish one message per fire; see the class docstring for what comes back."""
        with self._lock:
            if not fires:
                return []
            deadline = self._deadline = time.monotonic() + self.publish_timeout
            try:
                try:
                    producer = self._get_producer()  # kombu connects lazily: no I/O here
                except Exception as exc:
                    results: list[BaseException | None] = [None] * len(fires)
                    self._broker_failed(fires, results, range(len(fires)), exc)
                    return results
                path = self._fast_path(producer) if self.pipeline else None
                if path == "redis":
                    return self._dispatch_pipelined(producer, fires, guard, deadline)
                if path == "amqp":
                    return self._dispatch_confirmed(producer, fires, guard, deadline)
                return self._dispatch_each(producer, fires, guard, deadline)
            finally:
                self._deadline = None

    def revoke(self, task_ids: Sequence[str], *, terminate: bool) -> None:
        """Broadcast Celery's ``revoke`` of ``task_ids`` to the workers (with ``terminate``:
        SIGTERM to a run already executing). Workers keep revokes in memory only (across a
        restart only with ``--statedb``); a worker that starts later does not know them."""
        if task_ids:
            self.app.control.revoke(list(task_ids), terminate=terminate)

    def _retry_policy(self, deadline: float) -> dict[str, Any]:
        """The retry policy with an errback that stops kombu's retries at ``deadline``."""
        policy = dict(self.retry_policy)
        errback = policy.get("errback")

        def stop_at_deadline(exc: BaseException, interval: float) -> None:
            self._stop_at(deadline, exc, interval)
            if errback is not None:
                errback(exc, interval)

        policy["errback"] = stop_at_deadline
        return policy

    def _dispatch_each(
        self, producer: Any, fires: Sequence[Fire], guard: Callable[[], bool] | None, deadline: float
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(fires)
        policy = self._retry_policy(deadline)
        refused: list[int] = []
        for index, fire in enumerate(fires):
            if guard is not None and not guard():
                results[index:] = lease_lost(len(fires) - index)
                break
            if time.monotonic() >= deadline:
                self._timed_out(fires, results, range(index, len(fires)))
                break
            try:
                self._send(producer, fire, policy, deadline)
            except Exception as exc:
                kind = self._kind(exc)
                if kind == "broker":
                    self._broker_failed(fires, results, range(index, len(fires)), exc)
                    break
                if kind == "refused":
                    results[index] = self._refused(exc)
                    refused.append(index)
                else:
                    results[index] = self._poison(fire, exc)
            else:
                self.sent += 1
        self._log_refused(fires, results, refused)
        return results

    def _pipeline_possible(self, producer: Any) -> bool:
        return self._fast_path(producer) == "redis"

    def _fast_path(self, producer: Any) -> Literal["redis", "amqp"] | None:
        """The template path for this broker: Redis pipelines, AMQP batches with publisher
        confirms (py-amqp), or None (``send_task``)."""
        if self.app.conf.task_compression:
            return None
        transport = producer.connection.transport  # the transport object: no I/O
        driver = getattr(transport, "driver_type", None)
        if driver == "redis":
            return "redis"
        if driver == "amqp" and type(transport).__module__ == "kombu.transport.pyamqp":
            return "amqp"
        return None

    def _route(
        self,
        channel: Any,
        name: str,
        options: Mapping[str, Any],
        cache: dict[Any, Any],
        *,
        amqp: bool = False,
    ) -> Any:
        """``(exchange, routing key, queue names)`` as ``send_task_message`` resolves them, or
        ``None`` for a route only ``send_task`` handles (a non-direct exchange). With ``amqp``,
        the queue (declared, as ``send_task`` declares it) instead of the names."""
        key = (name, options.get("queue"), options.get("routing_key"), options.get("exchange"))
        if key not in cache:
            route = self.app.amqp.router.route(dict(options), name, (), {})
            queue = route["queue"]
            exchange = route.get("exchange")
            routing_key = route.get("routing_key")
            exchange_type = getattr(queue.exchange, "type", None) or "direct"
            if exchange_type != "direct":
                cache[key] = None
                return None
            if not exchange or not routing_key:
                exchange, routing_key = "", queue.name  # celery's anonymous-exchange rule
            exchange_name = getattr(exchange, "name", exchange) or ""
            if amqp or self.app.conf.task_create_missing_queues:
                from kombu.common import maybe_declare

                # What send_task does on its first publish to a queue: declare it and its
                # binding, so the lookup below finds it.
                maybe_declare(queue, channel)  # type: ignore[no-untyped-call]
            cache[key] = (
                exchange_name,
                routing_key,
                queue if amqp else channel._lookup(exchange_name, routing_key),
            )
        return cache[key]

    def _dispatch_pipelined(
        self, producer: Any, fires: Sequence[Fire], guard: Callable[[], bool] | None, deadline: float
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(fires)
        try:
            channel = producer.channel  # connects on first use
            pool = channel.client.connection_pool
            connection = pool.get_connection()
        except Exception as exc:
            self._broker_failed(fires, results, range(len(fires)), exc)
            return results
        #: The pipeline being built: its messages and their fires' indices, by Redis list.
        lists: dict[str, tuple[list[str], list[int]]] = {}
        #: Fires built into the pipeline being built (not written yet).
        pending: list[int] = []
        #: LPUSHes written whose replies are not read yet, in order: (list, fire indices).
        unconfirmed: deque[tuple[str, list[int]]] = deque()
        #: Fires written in pipelines.
        pushed: list[int] = []
        refused: list[int] = []
        policy: dict[str, Any] | None = None
        #: Expiry header values by ``expires`` seconds, from this batch's publish time.
        expiries: dict[float, str] = {}
        #: With publish signal receivers: what ``after_task_publish`` gets, by fire.
        announce = self._signals.active
        published: dict[int, Published] = {}
        #: Why the batch stopped early: the lease is gone, the deadline passed, or the broker
        #: failed (``failure``); and the first fire not handled by then.
        stopped: Literal["lease", "timeout", "failed"] | None = None
        failure: BaseException | None = None
        stop = len(fires)

        def flush() -> Literal["lease", "timeout", "failed"] | None:
            """Write the pipeline built so far (without waiting for its replies): one
            multi-value LPUSH per list, which keeps the publish order (consumers pop from the
            other end). Returns why it was not written, or not completely."""
            nonlocal failure
            if not pending:
                return None
            if guard is not None and not guard():
                return "lease"
            if time.monotonic() >= deadline:
                return "timeout"
            commands = []
            for key, (payloads, carried) in lists.items():
                commands.append(("LPUSH", key, *payloads))
                unconfirmed.append((key, carried))  # before writing: a failed write is unknown
            lists.clear()
            pushed.extend(pending)
            pending.clear()
            try:
                connection.send_packed_command(connection.pack_commands(commands))
            except Exception as exc:
                failure = exc
                return "failed"
            return None

        def failed(index: int, fire: Fire, exc: Exception) -> bool:
            """Record the failure of one fire; True when it is the broker's (stop the batch)."""
            nonlocal failure
            kind = self._kind(exc)
            if kind == "broker":
                failure = exc
                return True
            if kind == "refused":
                results[index] = self._refused(exc)
                refused.append(index)
            else:
                results[index] = self._poison(fire, exc)
            return False

        try:
            for index, fire in enumerate(fires):
                if time.monotonic() >= deadline:
                    stopped, stop = "timeout", index
                    break
                try:
                    template = self._template(channel, fire.job)
                    if template is not None:
                        payload = self._payload(channel, fire, template, expiries)
                        if announce:
                            payload, published[index] = self._announced(fire, template, payload)
                except Exception as exc:
                    if failed(index, fire, exc):
                        stopped, stop = "failed", index
                        break
                    continue
                if template is None:  # this fire takes the send_task path, now
                    if guard is not None and not guard():
                        stopped, stop = "lease", index
                        break
                    if policy is None:
                        policy = self._retry_policy(deadline)
                    try:
                        self._send(producer, fire, policy, deadline)
                    except Exception as exc:
                        if failed(index, fire, exc):
                            stopped, stop = "failed", index
                            break
                        continue
                    self.sent += 1
                    continue
                for key in template.lists:
                    payloads, carried = lists.setdefault(key, ([], []))
                    payloads.append(payload)
                    carried.append(index)
                pending.append(index)
                if len(pending) >= PIPELINE_CHUNK:
                    stopped = flush()
                    if stopped is not None:
                        stop = index + 1
                        break
            else:
                stopped = flush()
            if stopped != "failed":
                try:
                    self._confirm(connection, unconfirmed, results, refused)
                except Exception as exc:  # the connection failed while reading the replies
                    failure = exc
        finally:
            if failure is not None or unconfirmed:
                connection.disconnect()  # replies may be left unread on it
            pool.release(connection)
        unsent = [*pending, *range(stop, len(fires))]
        if stopped == "lease":
            for index, error in zip(unsent, lease_lost(len(unsent)), strict=True):
                results[index] = error
        elif stopped == "timeout":
            self._timed_out(fires, results, unsent)
        if failure is not None:
            maybe_sent = sorted({index for _, carried in unconfirmed for index in carried})
            self._broker_failed(fires, results, unsent if stopped == "failed" else [], failure, maybe_sent)
        self.sent += sum(1 for index in pushed if results[index] is None)
        if published:
            self._signals.after([published[i] for i in pushed if results[i] is None and i in published])
        self._log_refused(fires, results, refused)
        return results

    def _announced(self, fire: Fire, template: MessageTemplate, payload: str) -> tuple[str, Published]:
        """Send ``before_task_publish`` for a fire of the Redis path with its message's
        headers and properties, and rebuild the message from them (a receiver may add
        headers); returns it, and what ``after_task_publish`` will get."""
        job = fire.job
        envelope = json.loads(payload)
        headers, properties = envelope["headers"], envelope["properties"]
        info = properties.get("delivery_info") or {}
        exchange, routing_key = info.get("exchange") or "", info.get("routing_key") or ""
        body = (list(job.args), dict(job.kwargs), template.embed)
        self._signals.before(job.func_ref, body, headers, properties, exchange, routing_key, [])
        text: str = json_dumps(envelope)  # type: ignore[no-untyped-call]
        return text, Published(job.func_ref, body, headers, exchange, routing_key)

    # -- AMQP: batches with publisher confirms ------------------------------------------------

    def _confirmed_channel(self, producer: Any) -> ConfirmedChannel:
        """The confirm-mode channel of the AMQP path, opened on the producer's connection on
        first use (kept until the producer is dropped)."""
        if self._confirmed is None:
            producer.channel  # noqa: B018 - connects, with retries bounded by the deadline
            self._confirmed = ConfirmedChannel(producer.connection.channel())
        return self._confirmed

    def _dispatch_confirmed(
        self, producer: Any, fires: Sequence[Fire], guard: Callable[[], bool] | None, deadline: float
    ) -> list[BaseException | None]:
        """The AMQP path: messages from templates, written :data:`CONFIRM_BATCH` at a time
        (the lease checked before each write), each counted as sent only once the broker
        confirmed it (``basic.ack``) and did not return it as unroutable; then every
        confirm is awaited, up to the deadline."""
        results: list[BaseException | None] = [None] * len(fires)
        try:
            confirmed = self._confirmed_channel(producer)  # connects on first use
            confirmed.reset()
        except Exception as exc:
            self._broker_failed(fires, results, range(len(fires)), exc)
            return results
        channel = confirmed.channel
        refused: list[int] = []
        policy: dict[str, Any] | None = None
        expiries: dict[float, str] = {}
        stopped: Literal["lease", "timeout", "failed"] | None = None
        failure: BaseException | None = None
        stop = len(fires)
        unsent: list[int] = []
        framed = 0
        #: With publish signal receivers: what ``after_task_publish`` gets, by fire.
        announce = self._signals.active
        published: dict[int, Published] = {}

        def write() -> Literal["lease", "timeout", "failed"] | None:
            """Write the messages framed so far (unless the lease is gone or the time is up:
            then they are dropped unwritten), and read the confirms already in."""
            nonlocal failure, framed
            if not framed:
                return None
            framed = 0
            if guard is not None and not guard():
                unsent.extend(confirmed.discard())
                return "lease"
            if time.monotonic() >= deadline:
                unsent.extend(confirmed.discard())
                return "timeout"
            try:
                confirmed.flush()
                confirmed.poll()
            except Exception as exc:
                failure = exc
                return "failed"
            return None

        for index, fire in enumerate(fires):
            if time.monotonic() >= deadline:
                stopped, stop = "timeout", index
                break
            try:
                template = self._amqp_template(channel, fire.job)
                if template is not None:
                    message, announced = self._amqp_message(fire, template, expiries, announce)
                    if announced is not None:
                        published[index] = announced
            except Exception as exc:
                if self._kind(exc) == "broker":
                    failure, stopped, stop = exc, "failed", index
                    break
                results[index] = self._poison(fire, exc)
                continue
            if template is None:  # this fire takes the send_task path, now
                stopped = write()
                if stopped is not None:
                    stop = index
                    break
                if guard is not None and not guard():
                    stopped, stop = "lease", index
                    break
                if policy is None:
                    policy = self._retry_policy(deadline)
                try:
                    self._send(producer, fire, policy, deadline)
                except Exception as exc:
                    kind = self._kind(exc)
                    if kind == "broker":
                        failure, stopped, stop = exc, "failed", index
                        break
                    if kind == "refused":
                        results[index] = self._refused(exc)
                        refused.append(index)
                    else:
                        results[index] = self._poison(fire, exc)
                    continue
                self.sent += 1
                continue
            try:
                confirmed.add(index, fire.task_id, template, message)
            except Exception as exc:  # nothing of it was framed
                if self._kind(exc) == "broker":
                    failure, stopped, stop = exc, "failed", index
                    break
                results[index] = self._poison(fire, exc)
                continue
            framed += 1
            if framed >= CONFIRM_BATCH:
                stopped = write()
                if stopped is not None:
                    stop = index + 1
                    break
        else:
            stopped = write()
        if framed:  # the loop stopped with messages framed and not written: never sent
            unsent.extend(confirmed.discard())
        if stopped != "failed":
            try:
                confirmed.wait(max(deadline - time.monotonic(), 0.0))
            except Unconfirmed as exc:
                failure = _PublishTimeout(
                    f"publish_timeout={self.publish_timeout:g}s passed waiting for the broker's confirms"
                )
                failure.__cause__ = exc
            except Exception as exc:  # the connection failed while reading the confirms
                failure = exc
        returned = False
        taken: list[Published] = []
        for index, reason in confirmed.settled.items():
            if reason is None:
                self.sent += 1
                if index in published:
                    taken.append(published[index])
                continue
            returned = returned or "returned" in reason
            results[index] = _with_cause(
                TransientDispatchError(f"the broker did not take the fire's message: {reason}"),
                RuntimeError(reason),
            )
            refused.append(index)
        not_written = [*unsent, *range(stop, len(fires))]
        if stopped == "lease":
            for index, error in zip(not_written, lease_lost(len(not_written)), strict=True):
                results[index] = error
        elif stopped == "timeout":
            self._timed_out(fires, results, not_written)
        if failure is not None:
            maybe_sent = confirmed.unconfirmed
            self._broker_failed(
                fires, results, not_written if stopped == "failed" else [], failure, maybe_sent
            )
        elif returned:
            # A queue was deleted: declare it again (on a new connection) before the retry.
            self._drop_producer()
        confirmed.reset()
        self._signals.after(taken)
        self._log_refused(fires, results, sorted(refused))
        return results

    def _amqp_template(self, channel: Any, job: Job) -> AmqpTemplate | None:
        """The AMQP template of ``job``'s fires (cached per task and options, like
        :meth:`_template`); None for a job only ``send_task`` can send."""
        name = job.func_ref
        options_key = plain_key(job.options)
        if options_key is None:
            return self._build_amqp_template(channel, job, name)
        key = (name, options_key)
        template = self._amqp_templates.get(key, _MISSING)
        if template is _MISSING:
            if len(self._amqp_templates) >= TEMPLATE_CACHE_SIZE:
                self._amqp_templates.clear()
            template = self._amqp_templates[key] = self._build_amqp_template(channel, job, name)
        return template  # type: ignore[return-value]

    def _build_amqp_template(self, channel: Any, job: Job, name: str) -> AmqpTemplate | None:
        """The message ``send_task`` would publish for ``job`` on this channel (its queue
        declared as ``send_task`` declares it), as an :class:`AmqpTemplate`."""
        options = self._template_options(job, name)
        if options is None:
            return None
        route = self._route(channel, name, options, self._routes, amqp=True)
        if route is None:
            return None
        exchange, routing_key, queue = route
        # send_task's reply_to: the app's id of the calling thread (the beat's).
        message, headers = self._task_message(name, options, reply_to=self.app.thread_oid)
        serializer = self.app.conf.task_serializer
        content_type, encoding, _ = serialize(message.body, serializer=serializer)  # type: ignore[no-untyped-call]
        from kombu.entity import maybe_delivery_mode

        properties = dict(message.properties)
        delivery_mode = (
            getattr(queue.exchange, "delivery_mode", None) or self.app.conf.task_default_delivery_mode
        )
        properties["delivery_mode"] = maybe_delivery_mode(delivery_mode)  # type: ignore[no-untyped-call]
        expires = options.get("expires")
        if expires is not None:
            properties["expiration"] = str(int(max(expires, 0) * 1000))
        envelope = channel.prepare_message(
            b"", options.get("priority") or 0, content_type, encoding, headers, properties
        )
        return AmqpTemplate.from_message(
            envelope,
            exchange=exchange,
            routing_key=routing_key,
            expires=None if expires is None else float(expires),
            serializer=serializer,
            embed=message.body[2],
        )

    def _amqp_message(
        self, fire: Fire, template: AmqpTemplate, expiries: dict[float, str], announce: bool = False
    ) -> tuple[Any, Published | None]:
        """The ``amqp.Message`` of ``fire``; ``expiries`` keeps the expiry header values of
        one batch by ``expires`` seconds, from the batch's publish time. With ``announce``,
        ``before_task_publish`` is sent first (its receivers may add headers), and what
        ``after_task_publish`` will get comes back with the message."""
        job = fire.job
        expires = ""
        if template.expires is not None:
            if template.expires not in expiries:
                expiries[template.expires] = (
                    self.app.now() + timedelta(seconds=template.expires)
                ).isoformat()
            expires = expiries[template.expires]
        body, argsrepr, kwargsrepr = self._amqp_arguments(job, template)
        task_id = fire.task_id
        values = (task_id, job.id, fire.scheduled_at.isoformat(), "", expires, "", argsrepr, kwargsrepr)
        headers, properties = template.fields(values)
        if not announce:
            return template.message(body, headers, properties), None
        arguments = (list(job.args), dict(job.kwargs), template.embed)
        exchange, routing_key = template.exchange, template.routing_key
        self._signals.before(job.func_ref, arguments, headers, properties, exchange, routing_key, [])
        published = Published(job.func_ref, arguments, headers, exchange, routing_key)
        return template.message(body, headers, properties), published

    def _amqp_arguments(self, job: Job, template: AmqpTemplate) -> tuple[bytes, str, str]:
        """The encoded body and the ``argsrepr``/``kwargsrepr`` headers of ``job``'s message
        (:meth:`_encoded_arguments`)."""
        encoding = template.properties.get("content_encoding") or "utf-8"

        def finish(text: Any, argsrepr: str, kwargsrepr: str) -> tuple[bytes, str, str]:
            return (text.encode(encoding) if isinstance(text, str) else text), argsrepr, kwargsrepr

        return self._encoded_arguments(
            job, template.serializer, template.embed, self._amqp_arguments_cache, finish
        )

    def _encoded_arguments(
        self,
        job: Job,
        serializer: str,
        embed: Any,
        cache: dict[Any, _T],
        finish: Callable[[Any, str, str], _T],
    ) -> _T:
        """``finish(serialized body, argsrepr, kwargsrepr)`` for ``job``'s arguments, cached in
        ``cache`` for plain arguments (jobs often share them): the part of a message both the
        Redis and the AMQP paths build the same way."""
        args, kwargs = job.args, job.kwargs
        args_key, kwargs_key = plain_key(args), plain_key(kwargs)
        key = None if args_key is None or kwargs_key is None else (args_key, kwargs_key)
        if key is not None:
            cached = cache.get(key)
            if cached is not None:
                return cached
        body = (list(args), dict(kwargs), embed)
        if key is not None and serializer == "json":
            text: Any = json.dumps(body)  # what kombu's encoder writes for plain values, faster
        else:
            text = serialize(body, serializer=serializer)[2]  # type: ignore[no-untyped-call]
        amqp = self.app.amqp
        values = finish(
            text,
            _shortened(_args_repr(args), amqp.argsrepr_maxsize),
            # A plain dict's cache key is its repr.
            _shortened(kwargs_key or repr(kwargs), amqp.kwargsrepr_maxsize),
        )
        if key is not None:
            if len(cache) >= TEMPLATE_CACHE_SIZE:
                cache.clear()
            cache[key] = values
        return values

    def _payload(
        self, channel: Any, fire: Fire, template: MessageTemplate, expiries: dict[float, str]
    ) -> str:
        """The message of ``fire`` from its job's template; ``expiries`` keeps the expiry
        header values of one batch by ``expires`` seconds, from the batch's publish time."""
        job = fire.job
        expires = ""
        if template.expires is not None:
            if template.expires not in expiries:
                at = self.app.now() + timedelta(seconds=template.expires)
                expiries[template.expires] = quote(at.isoformat())
            expires = expiries[template.expires]
        task_id = '"' + fire.task_id + '"'
        tag = '"' + self._tag_prefix + str(next(self._tags)) + '"'
        scheduled = '"' + fire.scheduled_at.isoformat() + '"'
        body, argsrepr, kwargsrepr = self._arguments(channel, job, template)
        return template.render((task_id, quote(job.id), scheduled, tag, expires, body, argsrepr, kwargsrepr))

    # -- messages for the store to push (the atomic fire) ------------------------------------

    def broker_server(self) -> str | None:
        """The broker's Redis server (:func:`beatx.stores.redis_common.redis_server`) when
        :meth:`render` can build messages for a store to push, else None: another broker, the
        template path off (``pipeline=False``, publish signal receivers, compression).
        Connects to the broker on first use.

        :raises TransientDispatchError: the broker cannot be reached now."""
        with self._lock:
            try:
                producer = self._get_producer()
                # after_task_publish cannot be sent from the store's write-back script.
                if not (self.pipeline and self._pipeline_possible(producer)) or self._signals.active:
                    return None
                kwargs = producer.channel.client.connection_pool.connection_kwargs
            except Exception as exc:
                self._drop_producer()
                raise TransientDispatchError(
                    f"the broker cannot be reached: {type(exc).__name__}: {exc}"
                ) from exc
        from beatx.stores.redis_common import redis_server

        if "host" not in kwargs and "path" not in kwargs:
            return None  # a pool that finds its server itself (Sentinel): no fixed server
        return redis_server(kwargs)

    def render(self, fires: Sequence[Fire]) -> list[QueuedMessage | BaseException | None]:
        """Each fire's message, built as the Redis path builds it but not sent, for a store to
        push in the same step as the fire's write-back (:attr:`JobRelease.messages`). One
        entry per fire: the :class:`QueuedMessage`; None for a fire only ``send_task`` can
        send (it is dispatched as usual); or the error that stopped it, as :meth:`dispatch`
        reports it (:class:`PermanentDispatchError` for a fire that can never be sent,
        :class:`TransientDispatchError` for it and the rest when the broker failed)."""
        from beatx.stores.base import QueuedMessage

        with self._lock:
            results: list[QueuedMessage | BaseException | None] = [None] * len(fires)
            if self._signals.active:  # receivers connected since: dispatch() announces each fire
                return results
            errors: list[BaseException | None] = [None] * len(fires)
            try:
                channel = self._get_producer().channel
                db = int(channel.client.connection_pool.connection_kwargs.get("db") or 0)
            except Exception as exc:
                self._broker_failed(fires, errors, range(len(fires)), exc)
                return list(errors)
            expiries: dict[float, str] = {}
            for index, fire in enumerate(fires):
                try:
                    template = self._template(channel, fire.job)
                    if template is not None:
                        results[index] = QueuedMessage(
                            db, template.lists, self._payload(channel, fire, template, expiries)
                        )
                except Exception as exc:
                    if self._kind(exc) == "broker":
                        self._broker_failed(fires, errors, range(index, len(fires)), exc)
                        return [*results[:index], *errors[index:]]
                    results[index] = self._poison(fire, exc)
            return results

    def _template(self, channel: Any, job: Job) -> MessageTemplate | None:
        """The message template of ``job``'s fires, from the cache when another job with the
        same task and options built it; None for a job the template path does not handle (it
        takes the ``send_task`` path)."""
        name = job.func_ref
        options_key = plain_key(job.options)
        if options_key is None:
            return self._build_template(channel, job, name)  # not cacheable: built per fire
        key = (name, options_key)
        template = self._templates.get(key, _MISSING)
        if template is _MISSING:
            if len(self._templates) >= TEMPLATE_CACHE_SIZE:
                self._templates.clear()
            template = self._templates[key] = self._build_template(channel, job, name)
        return template  # type: ignore[return-value]

    def _arguments(self, channel: Any, job: Job, template: MessageTemplate) -> tuple[str, str, str]:
        """The encoded body and the ``argsrepr``/``kwargsrepr`` headers of ``job``'s message,
        as JSON literals (:meth:`_encoded_arguments`)."""

        def finish(text: Any, argsrepr: str, kwargsrepr: str) -> tuple[str, str, str]:
            if channel.body_encoding == "base64":
                encoded: Any = b64encode(text.encode() if isinstance(text, str) else text).decode()
            else:
                encoded = channel.encode_body(text, channel.body_encoding)[0]
            literal = quote(encoded) if isinstance(encoded, str) else json_dumps(encoded)  # type: ignore[no-untyped-call]
            return literal, quote(argsrepr), quote(kwargsrepr)

        return self._encoded_arguments(
            job, template.serializer, template.embed, self._arguments_cache, finish
        )

    def _build_template(self, channel: Any, job: Job, name: str) -> MessageTemplate | None:
        """Build the message with Celery's ``as_task_v2`` and kombu's channel helpers, with
        :class:`Slot` strings for the per-fire values, as ``send_task`` would write it."""
        options = self._template_options(job, name)
        if options is None:
            return None
        expires = options.get("expires")
        route = self._route(channel, name, options, self._routes)
        if route is None:
            return None
        exchange, routing_key, queues = route
        serializer = self.app.conf.task_serializer
        message, headers = self._task_message(name, options)
        content_type, encoding, body = serialize(message.body, serializer=serializer)  # type: ignore[no-untyped-call]
        properties = dict(message.properties)
        properties["delivery_mode"] = 2
        if expires is not None:
            properties["expiration"] = str(int(max(expires, 0) * 1000))
        envelope = channel.prepare_message(
            body, options.get("priority") or 0, content_type, encoding, headers, properties
        )
        channel._inplace_augment_message(envelope, exchange, routing_key)
        envelope["body"] = Slot.BODY
        envelope["properties"]["delivery_tag"] = Slot.DELIVERY_TAG
        priority = channel._get_message_priority(envelope)
        lists = tuple(channel._q_for_pri(queue, priority) for queue in queues)
        return MessageTemplate.from_text(
            json_dumps(envelope),  # type: ignore[no-untyped-call]
            lists,
            expires=None if expires is None else float(expires),
            serializer=serializer,
            embed=message.body[2],
        )

    @staticmethod
    def _template_options(job: Job, name: str) -> dict[str, Any] | None:
        """The message options of ``job`` when a template can carry them, else None."""
        options = message_options(job.options)
        if set(options) - TEMPLATE_OPTIONS or Slot.MARK in repr((name, options)):
            return None
        expires = options.get("expires")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
            return None  # an absolute expiry (a datetime): send_task converts it
        return options

    def _task_message(self, name: str, options: Mapping[str, Any], reply_to: str | None = None) -> Any:
        """Celery's task message (``as_task_v2``) with :class:`Slot` strings for the
        per-fire values, and its headers as ``send_task`` merges them (the job's own, then
        beatx's)."""
        message = self.app.amqp.as_task_v2(
            Slot.TASK_ID,
            name,
            [],
            {},
            ignore_result=options.get("ignore_result"),
            time_limit=options.get("time_limit"),
            soft_time_limit=options.get("soft_time_limit"),
            shadow=options.get("shadow"),
            argsrepr=Slot.ARGSREPR,
            kwargsrepr=Slot.KWARGSREPR,
            reply_to=reply_to,
        )
        headers = {**message.headers, **(options.get("headers") or {})}
        headers[JOB_ID_HEADER] = Slot.JOB_ID
        headers[SCHEDULED_AT_HEADER] = Slot.SCHEDULED_AT
        if options.get("expires") is not None:
            headers["expires"] = Slot.EXPIRES
        return message, headers

    def _confirm(
        self,
        connection: Any,
        unconfirmed: deque[tuple[str, list[int]]],
        results: list[BaseException | None],
        refused: list[int],
    ) -> None:
        """Read every reply of the LPUSHes written, oldest first. An error reply (WRONGTYPE,
        OOM, READONLY) fails the fires of that LPUSH only; a connection error or timeout
        raises, leaving the LPUSHes not read yet in ``unconfirmed``."""
        from redis.exceptions import ResponseError

        while unconfirmed:
            key, carried = unconfirmed[0]
            try:
                connection.read_response()
            except ResponseError as exc:  # the whole reply was read: the connection is fine
                error = self._refused(exc, f" (Redis list {key!r})")
                for index in carried:
                    results[index] = error
                refused.extend(carried)
            unconfirmed.popleft()

    def _send(self, producer: Any, fire: Fire, retry_policy: Mapping[str, Any], deadline: float) -> None:
        job = fire.job
        options = message_options(job.options)
        headers = dict(options.pop("headers", None) or {})
        headers[JOB_ID_HEADER] = job.id
        headers[SCHEDULED_AT_HEADER] = fire.scheduled_at.isoformat()
        # The producer's own publish timeouts (py-amqp: the socket write, and the wait for a
        # publisher confirm); the job's options win.
        remaining = max(deadline - time.monotonic(), 0.001)
        options = {"timeout": remaining, "confirm_timeout": remaining, **options}
        self.app.send_task(
            job.func_ref,
            args=list(job.args),
            kwargs=dict(job.kwargs),
            task_id=fire.task_id,
            producer=producer,
            headers=headers,
            retry=self.retry,
            retry_policy=retry_policy,
            **options,
        )

    def close(self) -> None:
        """Release the producer and its connection (a later dispatch acquires new ones)."""
        with self._lock:
            self._drop_producer()
