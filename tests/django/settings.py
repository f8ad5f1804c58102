"""Django settings for the django_beatx tests: SQLite as ``default``, PostgreSQL as ``postgres``.

The PostgreSQL alias exists only when the server answers (tests marked ``postgres`` skip, or
fail under CI=true, through ``tests.conftest.require_service``). Test database names carry a
random suffix so concurrent runs never share one; the SQLite test database is a file, so a
beat subprocess can open it (``BEATX_TEST_SQLITE`` names it for that subprocess), and
``BEATX_TEST_PG_DEFAULT`` makes a subprocess's ``default`` the PostgreSQL test database.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid

SECRET_KEY = "beatx-tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_beatx",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_RUN = os.environ.get("BEATX_TEST_RUN") or uuid.uuid4().hex[:10]
os.environ["BEATX_TEST_RUN"] = _RUN
_SQLITE_FILE = os.environ.get("BEATX_TEST_SQLITE") or os.path.join(
    tempfile.gettempdir(), f"beatx-django-test-{_RUN}.sqlite3"
)

DATABASES: dict[str, dict[str, object]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _SQLITE_FILE,
        # IMMEDIATE: a transaction takes the write lock when it starts, so a beat and the
        # admin writing the same file wait for each other instead of failing.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        "TEST": {"NAME": _SQLITE_FILE},
    },
}


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


if _postgres_up():
    DATABASES["postgres"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "USER": os.environ.get("BEATX_PG_USER", "postgres"),
        "NAME": "test",
        # No dependency on "default": a run that selects only PostgreSQL tests sets up this
        # database alone (Django would otherwise report a circular dependency).
        "TEST": {"NAME": f"test_beatx_dj_{_RUN}", "DEPENDENCIES": []},
    }

# A beat or worker subprocess of a PostgreSQL test (tests/django/test_pg_soak.py): its
# "default" database, and so its django:// store, is that test's PostgreSQL database.
if os.environ.get("BEATX_TEST_PG_DEFAULT"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "USER": os.environ.get("BEATX_PG_USER", "postgres"),
        "NAME": os.environ["BEATX_TEST_PG_DEFAULT"],
    }

# A beat or worker subprocess of a test of BEATX["DATABASE"] (tests/django/test_database_setting.py):
# "postgres" is that test's PostgreSQL database, and BEATX["DATABASE"] names the alias.
if os.environ.get("BEATX_TEST_PG_NAME") and "postgres" in DATABASES:
    DATABASES["postgres"]["NAME"] = os.environ["BEATX_TEST_PG_NAME"]
if os.environ.get("BEATX_TEST_DATABASE"):
    BEATX = {"DATABASE": os.environ["BEATX_TEST_DATABASE"]}

CELERY_BROKER_URL = os.environ.get("BEATX_TEST_BROKER", "memory://")
CELERY_BEATX_STORE = "django://"
CELERY_TASK_ALWAYS_EAGER = False
