"""The Celery app of the PostgreSQL soak test (``tests/django/test_pg_soak.py``): the beat
(``celery -A tests.django.hooked_app beat -S beatx``) and a worker with the beatx hook
(``beatx.celery.setup``), both on the test's PostgreSQL database through ``django://``.

Only those subprocesses import it. Each of them logs every failing SQL statement (``SQL
ERROR ...``), so an error the store caught and retried still shows up, and the task appends
its task id to ``BEATX_TEST_EXECUTIONS``, one line per execution.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from celery import Celery
from django.conf import settings
from django.db import DatabaseError
from django.db.backends.signals import connection_created

import beatx.celery

if not settings.configured:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")

logger = logging.getLogger("tests.django.hooked_app")

app = Celery("beatx_django_soak")
app.config_from_object("django.conf:settings", namespace="CELERY")
beatx.celery.setup(app)


def _log_errors(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        logger.error("SQL ERROR %s: %s [%s]", type(exc).__name__, exc, sql[:200])
        raise


def _watch(sender: Any, connection: Any, **_: Any) -> None:
    if _log_errors not in connection.execute_wrappers:
        connection.execute_wrappers.append(_log_errors)


connection_created.connect(_watch, weak=False, dispatch_uid="tests.django.hooked_app.watch")


@app.task(name="tests.record_fire", bind=True)
def record_fire(self: Any, *args: object, **kwargs: object) -> None:
    """Append this execution's task id to the executions file (one ``write``, so lines from
    concurrent worker processes never mix)."""
    fd = os.open(os.environ["BEATX_TEST_EXECUTIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{self.request.id}\n".encode())
    finally:
        os.close(fd)
