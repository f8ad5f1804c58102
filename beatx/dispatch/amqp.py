"""Publishing to an AMQP broker (RabbitMQ, through py-amqp) at full speed, with publisher
confirms.

:class:`beatx.dispatch.celery.CeleryDispatcher` takes this path on an ``amqp://`` broker.
Two parts, both over py-amqp's own message and frame code:

- :class:`AmqpTemplate`: a task message built once per task and options by Celery's
  ``as_task_v2`` and kombu's ``prepare_message`` (as ``send_task`` builds it), with
  placeholders (:class:`~beatx.dispatch.templates.Slot`) where the per-fire values go; a
  fire's message is a copy with its values put in.
- :class:`ConfirmedChannel`: a channel in confirm mode that writes messages in batches (one
  socket write per batch, each message framed by py-amqp) with the ``mandatory`` flag, and
  matches the broker's ``basic.ack``, ``basic.nack`` and ``basic.return`` to the messages
  written. A message counts as sent only once the broker acknowledged it and did not return it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from amqp import Message, spec  # type: ignore[import-untyped]
from amqp.method_framing import frame_writer  # type: ignore[import-untyped]
from amqp.serialization import dumps as pack_arguments  # type: ignore[import-untyped]

from beatx.dispatch.templates import Slot

__all__ = ["AmqpTemplate", "ConfirmedChannel", "Unconfirmed"]

#: Where each :class:`Slot` value goes in a fire's values tuple (the order of ``Slot.ALL``).
_SLOT_INDEX = {slot: index for index, slot in enumerate(Slot.ALL)}
#: A fire's values in the order of :data:`Slot.ALL` (the delivery tag and the body unused).
AmqpValues = tuple[str, str, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class AmqpTemplate:
    """A task message as ``send_task`` would publish it, with :class:`Slot` strings where the
    per-fire values go, and where it is published."""

    exchange: str
    routing_key: str
    #: The packed arguments of the ``basic.publish`` method (``mandatory`` set).
    publish_arguments: bytes
    #: The message properties but the headers (``correlation_id`` holds a slot).
    properties: Mapping[str, Any]
    #: The message headers (``application_headers``), some values slots.
    headers: Mapping[str, Any]
    #: The headers that hold a slot, and the slot's index in a fire's values.
    header_slots: tuple[tuple[str, int], ...]
    #: The properties that hold a slot, and the slot's index.
    property_slots: tuple[tuple[str, int], ...]
    #: ``expires`` in seconds from the publish time, or None.
    expires: float | None
    #: The body serializer, and the third part of the body after the arguments.
    serializer: str
    embed: Any

    @classmethod
    def from_message(
        cls,
        message: Any,
        *,
        exchange: str,
        routing_key: str,
        expires: float | None,
        serializer: str,
        embed: Any,
    ) -> AmqpTemplate:
        """The template of an ``amqp.Message`` built with :class:`Slot` strings as values."""
        properties = dict(message.properties)
        headers = dict(properties.pop("application_headers", None) or {})
        return cls(
            exchange=exchange,
            routing_key=routing_key,
            publish_arguments=pack_arguments("Bssbb", (0, exchange, routing_key, True, False)),
            properties=properties,
            headers=headers,
            header_slots=_slots(headers),
            property_slots=_slots(properties),
            expires=expires,
            serializer=serializer,
            embed=embed,
        )

    def fields(self, values: AmqpValues) -> tuple[dict[str, Any], dict[str, Any]]:
        """The headers and the other properties of one fire's message: ``values`` in the
        order of :data:`Slot.ALL`."""
        headers = dict(self.headers)
        for key, index in self.header_slots:
            headers[key] = values[index]
        properties = dict(self.properties)
        for key, index in self.property_slots:
            properties[key] = values[index]
        return headers, properties

    @staticmethod
    def message(body: bytes, headers: Mapping[str, Any], properties: Mapping[str, Any]) -> Any:
        """The ``amqp.Message`` of one fire, from its :meth:`fields`."""
        return Message(body, application_headers=headers, **properties)


def _slots(values: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple(
        (key, _SLOT_INDEX[value])
        for key, value in values.items()
        if isinstance(value, str) and value in _SLOT_INDEX
    )


class Unconfirmed(Exception):
    """Messages were written but the broker did not confirm them all in time."""


class _Frames:
    """Collects the frames py-amqp's frame writer produces, for one socket write."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, view: Any) -> None:
        self.chunks.append(bytes(view))  # the writer reuses its buffer: copy


class ConfirmedChannel:
    """A py-amqp channel in confirm mode that publishes in batches.

    :meth:`add` frames a message (without writing it); :meth:`flush` writes every framed
    message in one socket write; :meth:`poll` reads the confirms already received, and
    :meth:`wait` waits for the rest. Each message carries a key (the caller's fire index) and
    its task id (its ``correlation_id``, which a ``basic.return`` gives back). :attr:`settled`
    holds, by key, None for a message the broker acknowledged, or the reason it did not take
    it (a ``basic.nack``, or a ``basic.return`` of the unroutable message).

    :param channel: a new py-amqp channel (kombu's ``pyamqp`` channel is one), used only here.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.connection = channel.connection
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._frames = _Frames()
        self._write_frame: Callable[..., None] = frame_writer(self.connection, self._frames)
        #: The broker numbers the messages of a confirm-mode channel from 1.
        self._last_tag = 0
        #: Tags framed since the last flush (not written yet).
        self._framed = 0
        #: Tags written and not settled, oldest first (settled ones are skipped lazily).
        self._tags: deque[int] = deque()
        self._key_of: dict[int, int] = {}
        self._key_of_task: dict[str, int] = {}
        self._returned: dict[int, str] = {}
        self.settled: dict[int, str | None] = {}

    @property
    def unconfirmed(self) -> list[int]:
        """The keys of messages written (or framed) and not settled yet, in order."""
        return [self._key_of[tag] for tag in self._tags if tag in self._key_of]

    def add(self, key: int, task_id: str, template: AmqpTemplate, message: Any) -> None:
        """Frame ``message`` (published as ``template`` says) for the next :meth:`flush`."""
        self._write_frame(1, self.channel.channel_id, spec.Basic.Publish, template.publish_arguments, message)
        self._last_tag += 1
        self._tags.append(self._last_tag)
        self._key_of[self._last_tag] = key
        self._key_of_task[task_id] = key
        self._framed += 1

    def flush(self) -> None:
        """Write the messages framed since the last flush, in one socket write."""
        chunks = self._frames.chunks
        self._framed = 0
        if chunks:
            data = b"".join(chunks)
            chunks.clear()
            self.connection.transport.write(data)

    def discard(self) -> list[int]:
        """Drop the messages framed since the last flush (the broker never sees them);
        returns their keys, in order."""
        keys: list[int] = []
        for _ in range(self._framed):
            tag = self._tags.pop()
            keys.append(self._key_of.pop(tag))
        self._last_tag -= self._framed
        self._framed = 0
        self._frames.chunks.clear()
        keys.reverse()
        return keys

    def poll(self) -> None:
        """Handle the confirms (and returns) already received, without waiting."""
        try:
            while self._key_of:
                self.connection.drain_events(timeout=0)
        except TimeoutError:
            pass

    def wait(self, timeout: float) -> None:
        """Wait until every message written is settled.

        :raises Unconfirmed: ``timeout`` seconds passed first (:attr:`unconfirmed` says which).
        """
        deadline = time.monotonic() + timeout
        while self._key_of:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unconfirmed(f"{len(self._key_of)} message(s) not confirmed within {timeout:g}s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue

    def reset(self) -> None:
        """Forget the outcomes read (after a batch); the channel stays in confirm mode."""
        self.settled = {}
        self._key_of_task.clear()
        self._returned.clear()

    # -- the broker's answers ------------------------------------------------------------

    def _settle(self, tag: int, multiple: bool, reason: str | None) -> None:
        if multiple:
            while self._tags and self._tags[0] <= tag:
                self._settle_one(self._tags.popleft(), reason)
        else:
            self._settle_one(tag, reason)
            while self._tags and self._tags[0] not in self._key_of:
                self._tags.popleft()

    def _settle_one(self, tag: int, reason: str | None) -> None:
        key = self._key_of.pop(tag, None)
        if key is not None:
            returned = self._returned.pop(key, None)
            self.settled[key] = returned if returned is not None else reason

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, None)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, "the broker refused the message (basic.nack)")

    def _on_return(self, error: Exception, exchange: str, routing_key: str, message: Any) -> None:
        # RabbitMQ returns an unroutable mandatory message before it acknowledges it.
        task_id = message.properties.get("correlation_id")
        key = self._key_of_task.get(task_id) if isinstance(task_id, str) else None
        if key is not None:
            self._returned[key] = (
                f"the broker returned the message as unroutable (exchange {exchange!r}, "
                f"routing key {routing_key!r}): {error}"
            )
