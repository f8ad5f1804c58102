from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class BeatxConfig(AppConfig):
    name = "django_beatx"
    label = "django_beatx"
    verbose_name = _("beatx scheduler")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_use_tz)


def check_use_tz(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """beatx keeps every time aware and in UTC; naive database datetimes would shift jobs."""
    from django.conf import settings

    if not settings.USE_TZ:
        return [
            checks.Error(
                "django_beatx needs USE_TZ = True: job times are stored as aware UTC datetimes.",
                hint="Set USE_TZ = True in your settings (the default since Django 5.0).",
                id="django_beatx.E001",
            )
        ]
    return []
