"""Message templates: a Celery message built once, then filled in per fire.

Most of a task message (task name, routing, headers, properties) is the same for every fire of
every job that calls the same task with the same options. Building it through Celery and kombu
costs tens of microseconds, most of a fire's budget in a burst. A :class:`MessageTemplate` is
the serialised message built once by Celery's own code with placeholder strings where the
per-fire values go (task id, job id, scheduled time, delivery tag, expiry, and the job's
arguments: the encoded body and its display reprs), turned into a ``str.format`` pattern; a
fire's message is that pattern filled with its values.

Everything here is pure: no broker, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    """A serialised message as one ``str.format`` pattern: ``{n}`` where the value of
    ``Slot.ALL[n]`` goes, the message's own braces doubled."""

    pattern: str
    #: The Redis lists the message is pushed to (one per bound queue).
    lists: tuple[str, ...]
    #: ``expires`` in seconds from the publish time, or None.
    expires: float | None = None
    #: The serializer of the body (its content type is in the template).
    serializer: str = "json"
    #: The third part of the task body (callbacks, errbacks, chain, chord), after the arguments.
    embed: Any = None

    @classmethod
    def from_text(cls, text: str, lists: tuple[str, ...], **fields: Any) -> MessageTemplate:
        """Split the JSON text of a message built with the :class:`Slot` strings as values;
        ``fields`` are the other attributes."""
        parts = _SLOT_PATTERN.split(text)
        pieces = [piece.replace("{", "{{").replace("}", "}}") for piece in parts[0::2]]
        pattern = pieces[0] + "".join(
            f"{{{Slot.ALL.index(name)}}}{piece}" for name, piece in zip(parts[1::2], pieces[1:], strict=True)
        )
        return cls(pattern, lists, **fields)

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
