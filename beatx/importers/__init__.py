"""Bringing schedules of other schedulers into beatx: the shared writing and reporting
(:mod:`beatx.importers.common`) and RedBeat's Redis keys (:mod:`beatx.importers.redbeat`).
django-celery-beat's rows are read by ``manage.py beatx_import --from-django-celery-beat``."""

from __future__ import annotations
