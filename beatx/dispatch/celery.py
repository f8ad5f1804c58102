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
import threading
import uuid
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from beatx.dispatch.base import lease_lost
from beatx.dispatch.templates import MessageTemplate, Slot, plain_key, quote
from beatx.jobs import Fire, Job

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["DEFAULT_RETRY_POLICY", "JOB_ID_HEADER", "SCHEDULED_AT_HEADER", "CeleryDispatcher"]

logger = logging.getLogger("beatx.celery")

JOB_ID_HEADER = "beatx_job_id"
SCHEDULED_AT_HEADER = "beatx_scheduled_at"

#: Messages per Redis pipeline on the fast path (the lease is checked before each), and so
#: the most a beat frozen while sending can still publish when it wakes.
PIPELINE_CHUNK = 100

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
#: about a second; the engine retries the fire later under the misfire rules.
DEFAULT_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


def _args_repr(args: tuple[Any, ...]) -> str:
    # Celery shows args as the list it sends, and no args as "()".
    return repr(list(args)) if args else "()"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def message_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The job options that go into the message: everything but beatx's own ``beatx_*`` keys."""
    return {key: value for key, value in options.items() if not key.startswith("beatx_")}


class CeleryDispatcher:
    """Publishes each fire as one Celery task message through one long-lived producer.

    The producer (and its broker connection) is acquired on the first dispatch and kept; it is
    dropped and acquired again after a connection error. A batch of fires is published in a
    loop on that producer, without a connection acquire per message.

    A broker outage never raises out of :meth:`dispatch`: the first connection error in a
    batch is returned for that fire and for every later fire of the batch (they are not
    attempted, so an outage costs one retry cycle per tick, not one per fire); the engine
    keeps those jobs due and tries again after its retry delay, under the misfire rules.

    On a Redis broker a batch takes a faster path: the same protocol-2 messages that
    ``send_task`` would write are pushed as pipelines of :data:`PIPELINE_CHUNK` messages, sent
    one after the other and confirmed (their replies read) at the end of the batch, instead of
    two round trips per message. The lease check then runs before each pipeline. A message is
    built once per task and options by ``app.amqp.as_task_v2`` and kombu's own channel helpers,
    with placeholders where the per-fire values go (a
    :class:`~beatx.dispatch.templates.MessageTemplate`), and each fire fills in its task id,
    job id, scheduled time, delivery tag, expiry and encoded arguments (kept per distinct
    arguments). Fires that need what only ``send_task`` does (an option outside
    :data:`TEMPLATE_OPTIONS`, a non-direct exchange, compression, receivers of the
    ``before/after_task_publish`` signals) and every other broker take the ``send_task`` path.

    :param app: the Celery app whose broker, routes and serializer settings are used.
    :param retry_policy: kombu's publish retry policy for one message (see
        :data:`DEFAULT_RETRY_POLICY`).
    :param retry: whether to retry a publish at all.
    :param pipeline: allow the Redis pipeline path (``False`` forces ``send_task``).
    """

    def __init__(
        self,
        app: Celery,
        *,
        retry: bool = True,
        retry_policy: Mapping[str, Any] | None = None,
        pipeline: bool = True,
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.retry = retry
        self.retry_policy = dict(DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._producer: Any = None
        self._routes: dict[Any, Any] = {}
        self._templates: dict[tuple[str, str], MessageTemplate | None] = {}
        self._arguments_cache: dict[tuple[str, str], tuple[str, str, str]] = {}
        # Delivery tags only need to be unique: a random prefix per dispatcher and a counter.
        self._tag_prefix = f"{uuid.uuid4()}."
        self._tags = itertools.count()
        self.sent = 0

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        from kombu.exceptions import OperationalError

        errors: tuple[type[BaseException], ...] = (OperationalError, OSError, ConnectionError)
        if self._connection is not None:
            errors += tuple(self._connection.connection_errors) + tuple(self._connection.channel_errors)
        return errors

    def _get_producer(self) -> Any:
        if self._producer is None:
            connection = self.app.connection_for_write()
            try:
                self._producer = self.app.amqp.Producer(connection, auto_declare=False)
            except BaseException:
                connection.release()
                raise
            self._connection = connection
        return self._producer

    def _drop_producer(self) -> None:
        producer, connection = self._producer, self._connection
        self._producer = self._connection = None
        # Routes and templates were resolved on that connection's channel (queue declarations).
        self._routes.clear()
        self._templates.clear()
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

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        """Publish one message per fire; see the class docstring for errors."""
        with self._lock:
            if self.pipeline and fires and self._pipeline_possible():
                return self._dispatch_pipelined(fires, guard)
            return self._dispatch_each(fires, guard)

    def _dispatch_each(
        self, fires: Sequence[Fire], guard: Callable[[], bool] | None
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for index, fire in enumerate(fires):
            if guard is not None and not guard():
                results.extend(lease_lost(len(fires) - index))
                return results
            try:
                producer = self._get_producer()
                self._send(producer, fire)
            except Exception as exc:
                if isinstance(exc, self._connection_errors()):
                    logger.error(
                        "broker unavailable, %d fire(s) not sent (job=%s scheduled_at=%s): %s",
                        len(fires) - index,
                        fire.job_id,
                        fire.scheduled_at.isoformat(),
                        exc,
                    )
                    self._drop_producer()
                    results.extend([exc] * (len(fires) - index))
                    return results
                logger.error(
                    "fire not sent job=%s scheduled_at=%s: %r",
                    fire.job_id,
                    fire.scheduled_at.isoformat(),
                    exc,
                )
                results.append(exc)
            else:
                self.sent += 1
                results.append(None)
        return results

    def _pipeline_possible(self) -> bool:
        from celery import signals

        if signals.before_task_publish.receivers or signals.after_task_publish.receivers:
            return False
        if self.app.conf.task_compression:
            return False
        try:
            producer = self._get_producer()
        except Exception:
            return False  # the send_task path reports the connection error per fire
        transport = producer.connection.transport
        return getattr(transport, "driver_type", None) == "redis"

    def _route(self, channel: Any, name: str, options: Mapping[str, Any], cache: dict[Any, Any]) -> Any:
        """``(exchange, routing key, queue names)`` as ``send_task_message`` resolves them, or
        ``None`` for a route only ``send_task`` handles (a non-direct exchange)."""
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
            if self.app.conf.task_create_missing_queues:
                from kombu.common import maybe_declare

                # What send_task does on its first publish to a queue: declare it and its
                # binding, so the lookup below finds it.
                maybe_declare(queue, channel)  # type: ignore[no-untyped-call]
            cache[key] = (exchange_name, routing_key, channel._lookup(exchange_name, routing_key))
        return cache[key]

    def _dispatch_pipelined(
        self, fires: Sequence[Fire], guard: Callable[[], bool] | None
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(fires)
        pending: list[int] = []
        #: Messages of the pending pipeline, by Redis list, in publish order.
        lists: dict[str, list[str]] = {}
        #: Pipelines sent whose replies are not read yet: (reply count, fire indices).
        unconfirmed: list[tuple[int, list[int]]] = []
        index = 0
        pool: Any = None
        connection: Any = None
        #: Expiry header values by ``expires`` seconds, from this batch's publish time.
        expiries: dict[float, str] = {}
        try:
            channel = self._get_producer().channel
            pool = channel.client.connection_pool
            connection = pool.get_connection()
            for index, fire in enumerate(fires):
                job = fire.job
                try:
                    template = self._template(channel, job)
                    if template is None:
                        results[index] = self._dispatch_each([fire], guard)[0]
                        continue
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
                    payload = template.render(
                        (task_id, quote(job.id), scheduled, tag, expires, body, argsrepr, kwargsrepr)
                    )
                    for key in template.lists:
                        lists.setdefault(key, []).append(payload)
                except Exception as exc:
                    if isinstance(exc, self._connection_errors()):
                        raise
                    logger.error("fire not sent job=%s scheduled_at=%s: %r", job.id, fire.scheduled_at, exc)
                    results[index] = exc
                    continue
                pending.append(index)
                if len(pending) >= PIPELINE_CHUNK:
                    if not self._send_pipeline(connection, lists, pending, unconfirmed, guard):
                        self._confirm(connection, unconfirmed)
                        results[pending[0] :] = lease_lost(len(fires) - pending[0])
                        return results
                    pending = []
            sent = self._send_pipeline(connection, lists, pending, unconfirmed, guard)
            self._confirm(connection, unconfirmed)
            if not sent:
                results[pending[0] :] = lease_lost(len(fires) - pending[0])
        except Exception as exc:
            if not isinstance(exc, self._connection_errors()):
                raise
            first = unconfirmed[0][1][0] if unconfirmed else pending[0] if pending else index
            logger.error("broker unavailable, %d fire(s) not sent: %s", len(fires) - first, exc)
            if connection is not None:
                connection.disconnect()  # replies may be left unread on it
            self._drop_producer()
            results[first:] = [exc] * (len(fires) - first)
        finally:
            if connection is not None:
                pool.release(connection)
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
        as JSON literals; cached for plain arguments (jobs often share them)."""
        args, kwargs = job.args, job.kwargs
        args_key, kwargs_key = plain_key(args), plain_key(kwargs)
        key = None if args_key is None or kwargs_key is None else (args_key, kwargs_key)
        if key is not None:
            cached = self._arguments_cache.get(key)
            if cached is not None:
                return cached
        body = (list(args), dict(kwargs), template.embed)
        if key is not None and template.serializer == "json":
            text: Any = json.dumps(body)  # what kombu's encoder writes for plain values, faster
        else:
            text = serialize(body, serializer=template.serializer)[2]  # type: ignore[no-untyped-call]
        if channel.body_encoding == "base64":
            encoded: Any = b64encode(text.encode() if isinstance(text, str) else text).decode()
        else:
            encoded = channel.encode_body(text, channel.body_encoding)[0]
        amqp = self.app.amqp
        values = (
            quote(encoded) if isinstance(encoded, str) else json_dumps(encoded),  # type: ignore[no-untyped-call]
            quote(_shortened(_args_repr(args), amqp.argsrepr_maxsize)),
            # A plain dict's cache key is its repr.
            quote(_shortened(kwargs_key or repr(kwargs), amqp.kwargsrepr_maxsize)),
        )
        if key is not None:
            if len(self._arguments_cache) >= TEMPLATE_CACHE_SIZE:
                self._arguments_cache.clear()
            self._arguments_cache[key] = values
        return values

    def _build_template(self, channel: Any, job: Job, name: str) -> MessageTemplate | None:
        """Build the message with Celery's ``as_task_v2`` and kombu's channel helpers, with
        :class:`Slot` strings for the per-fire values, as ``send_task`` would write it."""
        options = message_options(job.options)
        if set(options) - TEMPLATE_OPTIONS or Slot.MARK in repr((name, options)):
            return None
        expires = options.get("expires")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
            return None  # an absolute expiry (a datetime): send_task converts it
        route = self._route(channel, name, options, self._routes)
        if route is None:
            return None
        exchange, routing_key, queues = route
        serializer = self.app.conf.task_serializer
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
        )
        headers = {**message.headers, **(options.get("headers") or {})}
        headers[JOB_ID_HEADER] = Slot.JOB_ID
        headers[SCHEDULED_AT_HEADER] = Slot.SCHEDULED_AT
        if expires is not None:
            headers["expires"] = Slot.EXPIRES
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

    def _send_pipeline(
        self,
        connection: Any,
        lists: dict[str, list[str]],
        pending: list[int],
        unconfirmed: list[tuple[int, list[int]]],
        guard: Callable[[], bool] | None,
    ) -> bool:
        """Send one pipeline without waiting for its replies: one multi-value LPUSH per list,
        which keeps the publish order (consumers pop from the other end). Returns False,
        sending nothing, when the lease is gone."""
        if not pending:
            return True
        if guard is not None and not guard():
            return False
        commands = [("LPUSH", key, *payloads) for key, payloads in lists.items()]
        connection.send_packed_command(connection.pack_commands(commands))
        unconfirmed.append((len(commands), list(pending)))
        lists.clear()
        return True

    def _confirm(self, connection: Any, unconfirmed: list[tuple[int, list[int]]]) -> None:
        """Read the replies of the pipelines sent, oldest first (an error reply raises)."""
        while unconfirmed:
            count, indices = unconfirmed[0]
            for _ in range(count):
                connection.read_response()
            del unconfirmed[0]
            self.sent += len(indices)

    def _send(self, producer: Any, fire: Fire) -> None:
        job = fire.job
        options = message_options(job.options)
        headers = dict(options.pop("headers", None) or {})
        headers[JOB_ID_HEADER] = job.id
        headers[SCHEDULED_AT_HEADER] = fire.scheduled_at.isoformat()
        self.app.send_task(
            job.func_ref,
            args=list(job.args),
            kwargs=dict(job.kwargs),
            task_id=fire.task_id,
            producer=producer,
            headers=headers,
            retry=self.retry,
            retry_policy=self.retry_policy,
            **options,
        )

    def close(self) -> None:
        """Release the producer and its connection (a later dispatch acquires new ones)."""
        with self._lock:
            self._drop_producer()
