"""A small Celery project the e2e tests run as ``celery -A tests.e2e.proj worker|beat``.

Configured from the environment: ``BEATX_TEST_BROKER`` (broker URL), ``BEATX_TEST_STORE``
(beatx store URL), ``BEATX_TEST_PREFIX`` (beatx key prefix), ``BEATX_TEST_QUEUE`` (queue name,
unique per test), ``BEATX_TEST_RECORD_URL`` / ``BEATX_TEST_RECORD_KEY`` (the Redis list the
tasks append to) and ``BEATX_TEST_BEAT_SCHEDULE=1`` (adds one ``beat_schedule`` entry).
"""

from __future__ import annotations

from tests.e2e.proj.app import app, make_app

__all__ = ["app", "make_app"]
