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
