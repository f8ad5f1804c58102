"""The Celery project of the high-availability tests: ``celery -A tests.ha.proj worker|beat``.

Configured from the same environment variables as ``tests.e2e.proj`` (``BEATX_TEST_BROKER``,
``BEATX_TEST_STORE``, ``BEATX_TEST_PREFIX``, ``BEATX_TEST_QUEUE``, ``BEATX_TEST_RECORD_URL``,
``BEATX_TEST_RECORD_KEY``, ``BEATX_TEST_LEASE_TIMEOUT``, ``BEATX_TEST_DEDUPE``; and
``BEATX_TEST_BEAT_JOBS`` / ``BEATX_TEST_BEAT_INTERVAL`` for a ``beat_schedule``). Its one task,
``ha.record``, also records the message's ``origin`` header (the producer: ``gen<pid>@host``),
so a test can tell which beat process sent each fire.
"""

from __future__ import annotations

from tests.ha.proj.app import app, make_app

__all__ = ["app", "make_app"]
