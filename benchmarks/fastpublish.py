"""PROTOTYPE, benchmark-side only: a batched publishing path for the Redis broker.

:class:`beatx.dispatch.celery.CeleryDispatcher` calls ``app.send_task`` once per fire, and
kombu's Redis transport then makes two round trips per message (``SMEMBERS`` of the exchange's
binding table, then ``LPUSH``). That caps a burst at ~1-2k fires/s on this machine.

:class:`PipelinedRedisDispatcher` produces the *same* Celery protocol-2 messages
(``app.amqp.as_task_v2``, the body serialised with the app's serializer, the envelope built by
kombu's own ``Channel.prepare_message`` / ``_inplace_augment_message``), resolves each
(exchange, routing key) to its queues once per batch, and sends a whole batch as one
non-transactional Redis pipeline of ``LPUSH`` commands. Workers need nothing new: the
messages are byte-for-byte what kombu would have written, apart from the delivery tag.

It is here to show the dispatcher's owner what the target needs; the real change belongs in
``beatx/dispatch/celery.py`` (see ``benchmarks/README.md``). Not supported: fanout/topic
exchanges, message compression, ``before/after_task_publish`` signals (fires that need them
fall back to the wrapped :class:`CeleryDispatcher`, one by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from beatx.dispatch.base import lease_lost
from beatx.dispatch.celery import JOB_ID_HEADER, SCHEDULED_AT_HEADER, CeleryDispatcher, message_options


class PipelinedRedisDispatcher:
    """Publishes a batch of fires as one Redis pipeline (see the module docstring)."""

    def __init__(self, app: Any, *, chunk: int = 2000) -> None:
        self.app = app
        self.chunk = chunk
        self.fallback = CeleryDispatcher(app)
        self._connection = app.connection_for_write()
        self._channel = self._connection.default_channel
        self.sent = 0

    def _route(self, name: str, options: dict[str, Any], cache: dict[Any, Any]) -> tuple[str, str, list[str]]:
        key = (name, options.get("queue"), options.get("routing_key"), options.get("exchange"))
        if key not in cache:
            route = self.app.amqp.router.route(dict(options), name, (), {})
            queue = route["queue"]
            exchange = route.get("exchange") or queue.exchange
            exchange_name = getattr(exchange, "name", exchange) or ""
            routing_key = route.get("routing_key") or queue.routing_key or queue.name
            if exchange_name and getattr(queue.exchange, "type", "direct") != "direct":
                raise LookupError("only direct exchanges are supported by the prototype")
            cache[key] = (exchange_name, routing_key, self._channel._lookup(exchange_name, routing_key))
        return cache[key]  # type: ignore[no-any-return]

    def dispatch(self, fires: Sequence[Any], *, guard: Any = None) -> list[BaseException | None]:
        """Publish the batch; ``guard`` (the lease check) is asked before each pipeline is sent."""
        channel = self._channel
        amqp = self.app.amqp
        serializer = self.app.conf.task_serializer
        routes: dict[Any, Any] = {}
        results: list[BaseException | None] = [None] * len(fires)
        if guard is not None and not guard():
            return lease_lost(len(fires))
        client = channel.client
        pending: list[int] = []
        pipe = client.pipeline(transaction=False)
        for index, fire in enumerate(fires):
            job = fire.job
            try:
                options = message_options(job.options)
                headers = dict(options.pop("headers", None) or {})
                headers[JOB_ID_HEADER] = job.id
                headers[SCHEDULED_AT_HEADER] = fire.scheduled_at.isoformat()
                name = job.func_ref
                exchange, routing_key, queues = self._route(name, options, routes)
                msg = amqp.as_task_v2(
                    fire.task_id, name, list(job.args), dict(job.kwargs), expires=options.get("expires")
                )
                msg_headers = {**msg.headers, **headers}
                content_type, encoding, body = serialize(msg.body, serializer=serializer)
                properties = dict(msg.properties)
                properties["delivery_mode"] = 2
                priority = options.get("priority") or 0
                message = channel.prepare_message(
                    body, priority, content_type, encoding, msg_headers, properties
                )
                channel._inplace_augment_message(message, exchange, routing_key)
                payload = json_dumps(message)
                for queue in queues:
                    pipe.lpush(channel._q_for_pri(queue, channel._get_message_priority(message)), payload)
                pending.append(index)
            except LookupError:
                results[index] = self.fallback.dispatch([fire])[0]
            except Exception as exc:
                results[index] = exc
            if len(pending) >= self.chunk:
                if guard is not None and not guard():
                    pipe.reset()
                    results[pending[0] :] = lease_lost(len(fires) - pending[0])
                    return results
                self._flush(pipe, pending, results)
                pending = []
        if pending and guard is not None and not guard():
            pipe.reset()
            results[pending[0] :] = lease_lost(len(fires) - pending[0])
            return results
        self._flush(pipe, pending, results)
        return results

    def _flush(self, pipe: Any, pending: list[int], results: list[BaseException | None]) -> None:
        if not pending:
            return
        try:
            pipe.execute()
        except Exception as exc:
            for index in pending:
                results[index] = exc
        else:
            self.sent += len(pending)
        finally:
            pipe.reset()

    def close(self) -> None:
        self.fallback.close()
        self._connection.release()
