"""beatx for Django: job models, a database-backed store, and an admin to manage jobs.

Add ``"django_beatx"`` to ``INSTALLED_APPS``, run ``migrate``, and point the beat at the
database with ``CELERY_BEATX_STORE = "django://"``. See ``docs/django-admin.md``.
"""

from __future__ import annotations
