"""Change notification for the Django store on PostgreSQL: ``LISTEN`` / ``NOTIFY``.

Every change to a job bumps the change counter and, on PostgreSQL, sends
``NOTIFY beatx_changes`` in the same transaction, so it is delivered when that transaction
commits. A beat listens on one connection of its own (autocommit, outside Django's connection
handling), opened on first use and opened again after an error; an edit in the admin then
reaches the waiting beat in milliseconds instead of a polling interval.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections

__all__ = ["CHANNEL", "ChangeListener", "notify_sql"]

logger = logging.getLogger("django_beatx.store")

#: The PostgreSQL notification channel (per database: NOTIFY never crosses databases).
CHANNEL = "beatx_changes"


def notify_sql() -> str:
    """The statement that announces a change (delivered at commit)."""
    return f"NOTIFY {CHANNEL}"


class ChangeListener:
    """One ``LISTEN`` connection to the database of a Django alias."""

    def __init__(self, using: str) -> None:
        self.using = using
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg

        params = dict(connections[self.using].get_connection_params())
        params.pop("cursor_factory", None)
        params.pop("context", None)
        connection = psycopg.connect(**params, autocommit=True)
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def listening(self) -> bool:
        """Make sure the connection listens; returns whether it does (False: it could not
        connect; the caller polls instead)."""
        if self._connection is not None and not self._connection.closed:
            return True
        try:
            self._connection = self._connect()
        except Exception as exc:
            logger.warning("cannot LISTEN for changes, polling instead: %s", exc)
            self._connection = None
            return False
        return True

    def wait(self, timeout: float) -> bool:
        """Block until a notification arrives or ``timeout`` seconds pass; returns whether
        one arrived. Every notification already queued is consumed."""
        if not self.listening():
            return False
        try:
            seen = False
            for _ in self._connection.notifies(timeout=max(timeout, 0.0), stop_after=1):
                seen = True
            if seen:  # one wake-up covers what is already queued
                for _ in self._connection.notifies(timeout=0.0):
                    pass
            return seen
        except Exception as exc:
            logger.warning("the LISTEN connection failed, it is opened again: %s", exc)
            self.close()
            return False

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:
                logger.debug("ignoring an error while closing the LISTEN connection: %r", exc)
