"""Errors of a job a store cannot keep, named as the user would fix them.

A store refuses some values with the error of the library under it: ``TypeError`` (an argument
JSON cannot hold), ``UnicodeEncodeError`` (a lone surrogate), ``ValueError`` (a NUL character
on PostgreSQL), Django's ``IntegrityError`` / ``DataError`` (a row the database refuses, which
the Django store reports as a :class:`~beatx.StoreError`).
:func:`refused_job_values` turns them into one :class:`~beatx.InvalidJobError` naming the job
and, when it can tell, the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from beatx.errors import BeatxError, InvalidJobError, StoreError

if TYPE_CHECKING:
    from beatx.jobs import Job

__all__ = ["refused_job_values", "unstorable_field"]

#: The job fields holding user values a store has to encode.
VALUE_FIELDS = ("args", "kwargs", "options", "name")


def unstorable_field(job: Job) -> str | None:
    """The first of ``args``, ``kwargs``, ``options``, ``name`` that JSON in UTF-8 (what every
    store writes) cannot hold, or None."""
    for name in VALUE_FIELDS:
        value: Any = getattr(job, name, None)
        try:
            text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
            text.encode("utf-8")
        except (TypeError, ValueError, UnicodeError):
            return name
        if "\x00" in text or "\\u0000" in text:
            return name  # PostgreSQL's text and jsonb cannot hold U+0000
    return None


def _is_database_refusal(exc: BaseException | None) -> bool:
    """A Django database error saying the values were refused (not that the database is
    unreachable): ``IntegrityError`` (a constraint) or ``DataError`` (a value the column
    cannot hold)."""
    return (
        exc is not None
        and type(exc).__module__.startswith("django.db")
        and type(exc).__name__ in ("IntegrityError", "DataError")
    )


@contextmanager
def refused_job_values(job: Job) -> Iterator[None]:
    """Around a store write of ``job``: a value the store cannot keep raises
    :class:`~beatx.InvalidJobError` (also a ``ValueError``) naming the job and the field."""
    try:
        yield
    except StoreError as exc:
        # The Django store reports every database error as a StoreError; one that refused the
        # values is the job's fault, not the store's.
        if not _is_database_refusal(exc.__cause__):
            raise
        field = unstorable_field(job)
        what = f"its {field}" if field is not None else "it"
        raise InvalidJobError(f"job {job.id!r}: the database refused {what}: {exc.__cause__}") from exc
    except BeatxError:
        raise
    except (TypeError, ValueError, UnicodeError) as exc:
        field = unstorable_field(job)
        if field is None:
            raise
        raise InvalidJobError(
            f"job {job.id!r}: the store cannot keep its {field}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        if not _is_database_refusal(exc):
            raise
        raise InvalidJobError(
            f"job {job.id!r}: the database refused it: {type(exc).__name__}: {exc}"
        ) from exc
