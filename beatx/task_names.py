"""What a Celery task name looks like, in one place: the API, the CLI and the admin accept a
name that is not registered in this process when it has this shape (workers may register it)."""

from __future__ import annotations

import re

__all__ = ["DOTTED_TASK_NAME", "looks_like_task_name"]

#: Dotted parts (at least two), each starting with a letter or ``_``, then letters, digits,
#: ``_`` or ``-``: ``billing.tasks.invoice``, ``shop.tasks.send-report``.
DOTTED_TASK_NAME = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+$")


def looks_like_task_name(name: str) -> bool:
    return DOTTED_TASK_NAME.match(name) is not None
