"""Jenkins-style ``H`` in cron fields: a value hashed from a key (the job id), so thousands
of jobs written ``H * * * *`` spread over the hour without anyone choosing minutes by hand.

:func:`expand_hash` rewrites every ``H`` item of an expression into plain cron text; the
trigger then parses and evaluates that text like any other expression. The rule:

=================== ===========================================================================
item                becomes
=================== ===========================================================================
``H``               ``low + h % (high - low + 1)``: one value of the field's H range
``H(a-b)``          ``a + h % (b - a + 1)``: one value of ``a-b``
``H/n``             ``s-high/n`` with ``s = low + h % n``: every n, from a hashed start
``H(a-b)/n``        ``s-b/n`` with ``s = a + h % min(n, b - a + 1)``
=================== ===========================================================================

The H range of a field is its range, except day-of-month (1-28, a day every month has) and
day-of-week (0-6). ``h`` is the first 8 bytes, big-endian, of the SHA-256 of
``"<key>\\0<field name>\\0<item index>"`` (the item's position in its comma list), so each
field and each item gets its own value, and the same key always gets the same ones.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from beatx.errors import InvalidTriggerError

__all__ = ["HASH_RANGES", "expand_hash", "has_hash"]


class _HashField(NamedTuple):
    name: str
    low: int
    high: int
    #: The field's full range, which ``H(a-b)`` may name.
    limit: int


#: The fields of a five-field expression in order, with the range ``H`` picks from.
HASH_RANGES = (
    _HashField("minute", 0, 59, 59),
    _HashField("hour", 0, 23, 23),
    _HashField("day-of-month", 1, 28, 31),
    _HashField("month", 1, 12, 12),
    _HashField("day-of-week", 0, 6, 6),
)
_SECOND = _HashField("second", 0, 59, 59)
_ITEM = re.compile(r"^H(?:\((\d{1,2})-(\d{1,2})\))?(?:/(\d{1,2}))?$")


def has_hash(expression: str) -> bool:
    """Whether any item of the expression is an ``H`` item."""
    return any(_is_hash(item) for field in expression.split() for item in field.split(","))


def _is_hash(item: str) -> bool:
    # No cron name (JAN..DEC, SUN..SAT) starts with H, so an item starting with it is one.
    return item[:1] in ("H", "h") and (len(item) == 1 or item[1] in "(/")


def hash_value(key: str, field: str, index: int) -> int:
    """The number an ``H`` item is hashed from."""
    digest = hashlib.sha256(f"{key}\x00{field}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def expand_hash(expression: str, key: str, *, seconds: bool = False) -> str:
    """``expression`` with each ``H`` item replaced as the module says, hashed from ``key``.

    An expression without ``H`` comes back as it is.

    :raises InvalidTriggerError: naming the expression and the field of a bad ``H`` item.
    """
    if not has_hash(expression):
        return expression
    parts = expression.split()
    fields = ((_SECOND,) if seconds else ()) + HASH_RANGES
    if len(parts) != len(fields):
        return expression  # the parser names the wrong field count
    expanded = []
    for text, field in zip(parts, fields, strict=True):
        items = []
        for index, item in enumerate(text.split(",")):
            if not _is_hash(item):
                items.append(item)
                continue
            try:
                items.append(_expand_item(item.upper(), field, hash_value(key, field.name, index)))
            except ValueError as exc:
                raise InvalidTriggerError(
                    f"invalid cron expression {expression!r}: {field.name} field: {exc}"
                ) from None
        expanded.append(",".join(items))
    return " ".join(expanded)


def _expand_item(item: str, field: _HashField, h: int) -> str:
    match = _ITEM.match(item)
    if match is None:
        raise ValueError(f"{item!r} is not H, H(a-b), H/n or H(a-b)/n")
    first_text, last_text, step_text = match.groups()
    low, high = field.low, field.high
    if first_text is not None:
        low, high = int(first_text), int(last_text)
        if not (field.low <= low <= high <= field.limit):
            raise ValueError(f"{item!r}: the range must lie within {field.low}-{field.limit}, low to high")
    if step_text is None:
        return str(low + h % (high - low + 1))
    step = int(step_text)
    if step < 1:
        raise ValueError(f"{item!r}: step 0 is not allowed")
    start = low + h % min(step, high - low + 1)
    return f"{start}-{high}/{step}"
