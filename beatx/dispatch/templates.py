"""Message templates: a Celery message built once, then filled in per fire.

Most of a task message (task name, routing, headers, properties) is the same for every fire of
every job that calls the same task with the same options. Building it through Celery and kombu
costs tens of microseconds, most of a fire's budget in a burst. A :class:`MessageTemplate` is
the serialised message built once by Celery's own code with placeholder strings where the
per-fire values go (task id, job id, scheduled time, delivery tag, expiry, and the job's
arguments: the encoded body and its display reprs), split at the placeholders; a fire's message
is the pieces joined with its values.

Everything here is pure: no broker, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = ["MessageTemplate", "Slot", "plain_key", "quote"]


class Slot:
    """Placeholder strings for the per-fire values of a template."""

    TASK_ID = "beatx-slot:task-id"
    JOB_ID = "beatx-slot:job-id"
    SCHEDULED_AT = "beatx-slot:scheduled-at"
    DELIVERY_TAG = "beatx-slot:delivery-tag"
    EXPIRES = "beatx-slot:expires"
    BODY = "beatx-slot:body"
    ARGSREPR = "beatx-slot:argsrepr"
    KWARGSREPR = "beatx-slot:kwargsrepr"

    ALL = (TASK_ID, JOB_ID, SCHEDULED_AT, DELIVERY_TAG, EXPIRES, BODY, ARGSREPR, KWARGSREPR)
    #: The text that marks any placeholder; a job whose own data holds it gets no template.
    MARK = "beatx-slot:"


_SLOT_PATTERN = re.compile('"(' + "|".join(re.escape(slot) for slot in Slot.ALL) + ')"')

#: A fire's values in the order of :data:`Slot.ALL`, each already a JSON string literal.
SlotValues = tuple[str, str, str, str, str, str, str, str]


def quote(text: str) -> str:
    """``text`` as a JSON string literal, ASCII-escaped as kombu's JSON writes it."""
    return encode_basestring_ascii(text)


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A serialised message split at its placeholders.

    ``pieces`` has one more entry than ``slots``; ``slots[i]`` is the index (in
    :data:`Slot.ALL`) of the value between ``pieces[i]`` and ``pieces[i + 1]``.
    """

    pieces: tuple[str, ...]
    slots: tuple[int, ...]
    #: The Redis lists the message is pushed to (one per bound queue).
    lists: tuple[str, ...]
    #: ``expires`` in seconds from the publish time, or None.
    expires: float | None = None
    #: The serializer of the body (its content type is in the template).
    serializer: str = "json"
    #: The third part of the task body (callbacks, errbacks, chain, chord), after the arguments.
    embed: Any = None
    #: The pieces as one ``str.format`` string, ``{n}`` for the value of ``Slot.ALL[n]``.
    pattern: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        escaped = [piece.replace("{", "{{").replace("}", "}}") for piece in self.pieces]
        pattern = escaped[0] + "".join(
            f"{{{slot}}}{piece}" for slot, piece in zip(self.slots, escaped[1:], strict=True)
        )
        object.__setattr__(self, "pattern", pattern)

    @classmethod
    def from_text(cls, text: str, lists: tuple[str, ...], **fields: Any) -> MessageTemplate:
        """Split the JSON text of a message built with the :class:`Slot` strings as values;
        ``fields`` are the other attributes."""
        parts = _SLOT_PATTERN.split(text)
        pieces = tuple(parts[0::2])
        slots = tuple(Slot.ALL.index(name) for name in parts[1::2])
        return cls(pieces=pieces, slots=slots, lists=lists, **fields)

    def render(self, values: SlotValues) -> str:
        """The message of one fire."""
        return self.pattern.format(*values)


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def plain_key(value: Any) -> str | None:
    """A cache key for ``value``: two values with the same key serialise to the same JSON.

    None when ``value`` holds anything but str/int/float/bool/None, lists, tuples and dicts
    with string keys (another object's ``repr`` need not say what it holds).
    """
    if not value:
        if isinstance(value, tuple | list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    if _is_plain(value):
        return repr(value)
    return None


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN_SCALARS):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(item) for item in value)
    if type(value) is dict:
        return all(isinstance(key, str) and _is_plain(item) for key, item in value.items())
    return False
