"""A throwaway Django settings module for the SQLite benchmarks (django-celery-beat and
beatx's Django store). The database file lives in the run's temporary directory."""

from __future__ import annotations

import os

SECRET_KEY = "beatx-benchmarks-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
_DIR = os.environ.get("BEATX_BENCH_TMP") or "/tmp/beatx-bench"
os.makedirs(_DIR, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_celery_beat",
    "django_beatx",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_DIR, "bench.sqlite3"),
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DJANGO_CELERY_BEAT_TZ_AWARE = True
