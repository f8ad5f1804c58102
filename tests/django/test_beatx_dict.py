"""Django's ``BEATX`` dict reads the Celery side when a key is unset (nothing to keep equal), and
validates with the same checks as the Celery settings (beatx.settings_schema)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from beatx import JobDefaults
from django_beatx import conf


def test_the_timezone_falls_back_to_the_celery_beatx_timezone(settings: Any) -> None:
    settings.BEATX = {}
    settings.CELERY_BEATX_TIMEZONE = "Asia/Tokyo"
    settings.CELERY_TIMEZONE = "Europe/Paris"
    assert conf.timezone_name() == "Asia/Tokyo"
    del settings.CELERY_BEATX_TIMEZONE
    assert conf.timezone_name() == "Europe/Paris"
    settings.BEATX = {"TIMEZONE": "America/Lima"}
    assert conf.timezone_name() == "America/Lima"


@pytest.mark.parametrize(
    ("beatx", "message"),
    [
        ({"TIMEZONE": "Mars/Base"}, "BEATX\\[\"TIMEZONE\"\\]: unknown timezone 'Mars/Base'"),
        (
            {"JOB_DEFAULTS": {"max_instance": 2}},
            "BEATX\\[\"JOB_DEFAULTS\"\\]: unknown key\\(s\\) 'max_instance'",
        ),
        ({"JOB_DEFAULTS": "fast"}, 'BEATX\\["JOB_DEFAULTS"\\]: expected a dict of misfire_grace_time'),
    ],
)
def test_a_bad_value_names_the_key(settings: Any, beatx: dict[str, Any], message: str) -> None:
    settings.BEATX = beatx
    with pytest.raises(ImproperlyConfigured, match=message):
        conf.timezone_name() if "TIMEZONE" in beatx else conf.job_defaults()


def test_job_defaults_from_the_dict(settings: Any) -> None:
    settings.BEATX = {"JOB_DEFAULTS": {"misfire_grace_time": 30, "max_instances": 2}}
    assert conf.job_defaults() == JobDefaults(misfire_grace_time=30, max_instances=2)


@pytest.mark.parametrize(
    ("key", "value", "read", "message"),
    [
        ("MIN_INTERVAL_SECONDS", 0, "min_interval_seconds", "expected a number of seconds > 0, got 0"),
        ("MIN_INTERVAL_SECONDS", True, "min_interval_seconds", "expected a number of seconds > 0, got True"),
        (
            "ALLOWED_CALLABLE_MODULES",
            "proj.jobs",
            "allowed_callable_modules",
            "expected a list of module names",
        ),
        ("ALLOWED_CALLABLE_MODULES", ["proj", " "], "allowed_callable_modules", "a module name is empty"),
        ("JSON_MAX_DEPTH", 0, "json_limits", "expected a positive integer, got 0"),
        ("JSON_MAX_BYTES", "64k", "json_limits", "expected a positive integer, got '64k'"),
        ("RUN_HISTORY_LIMIT", -1, "run_history_limit", "expected a positive integer, got -1"),
        ("DATABASE", "", "store_database", "expected a database alias, got ''"),
        ("CELERY_APP", 3, "celery_app", 'expected "module:attribute" or None, got 3'),
    ],
)
def test_every_django_only_key_is_checked_by_the_schema(
    settings: Any, key: str, value: Any, read: str, message: str
) -> None:
    """One validator: ``BEATX`` keys are checked by ``beatx.settings_schema``, as the
    Celery settings and ``SchedulerConfig`` are (the message names the key as written)."""
    from beatx.errors import ConfigurationError
    from beatx.settings_schema import django_setting

    known = django_setting(key)
    assert known is not None and known.check is not None
    settings.BEATX = {key: value}
    with pytest.raises((ImproperlyConfigured, ConfigurationError), match=f'BEATX\\["{key}"\\]: {message}'):
        getattr(conf, read)()
