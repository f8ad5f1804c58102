"""A throwaway Django settings module for the PostgreSQL benchmarks (``--only pg``,
:mod:`benchmarks.pg_explain`): django-celery-beat and beatx's Django store in one database,
the benchmark's own (``BEATX_BENCH_PG_DB``, created and dropped by the run)."""

from __future__ import annotations

import os

SECRET_KEY = "beatx-benchmarks-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_celery_beat",
    "django_beatx",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("BEATX_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": int(os.environ.get("BEATX_BENCH_PG_PORT", "5432")),
        "USER": os.environ.get("BEATX_BENCH_PG_USER", "postgres"),
        "NAME": os.environ.get("BEATX_BENCH_PG_DB", "beatx_bench_unset"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DJANGO_CELERY_BEAT_TZ_AWARE = True
