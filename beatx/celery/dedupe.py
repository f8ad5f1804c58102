"""The worker-side duplicate-delivery guard (``beatx_dedupe = True``): a second delivery of the
same task id, marked by the ``task_prerun`` handler, is dropped before the task runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["install_dedupe_guard"]

_DUPLICATE_FLAG = "beatx_duplicate"


def _guard_before_start(original: Any) -> Any:
    def before_start(self: Any, task_id: str, args: Any, kwargs: Any) -> Any:
        if getattr(self.request, _DUPLICATE_FLAG, False):
            raise Ignore()
        if original is not None:
            return original(self, task_id, args, kwargs)
        return None

    before_start._beatx_guard = True  # type: ignore[attr-defined]
    return before_start


def install_dedupe_guard(app: Celery) -> int:
    """Make every registered task (its class) drop a delivery marked duplicate by the
    ``task_prerun`` handler: celery ignores exceptions raised by signal handlers, so the
    drop itself (``raise Ignore()``) happens in the task's ``before_start`` hook, which
    beatx wraps (chaining the class's own). Returns how many classes were wrapped."""
    from celery.app.task import Task

    wrapped = 0
    for name, task in list(app.tasks.items()):
        if name.startswith("celery."):
            continue
        cls = type(task)
        current = cls.__dict__.get("before_start")
        if current is not None and getattr(current, "_beatx_guard", False):
            continue
        inherited = getattr(cls, "before_start", None)
        original = None if inherited is Task.before_start else inherited
        cls.before_start = _guard_before_start(original)
        wrapped += 1
    return wrapped
