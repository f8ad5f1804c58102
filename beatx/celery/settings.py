"""beatx's settings in a Celery app's configuration (``beatx_store`` ...): :class:`BeatxSettings`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beatx.errors import ConfigurationError, InvalidJobError
from beatx.jobs import JobDefaults
from beatx.ledger import DEFAULT_RUN_HISTORY, DEFAULT_RUN_HISTORY_DAYS
from beatx.redaction import redact_url
from beatx.settings_schema import SETTINGS
from beatx.triggers.base import timezone_name

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BeatxSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BeatxSettings:
    """beatx's settings, read from a Celery app's configuration.

    One field per ``beatx_*`` setting; their defaults, meanings and validators are defined once,
    in :data:`beatx.settings_schema.SETTINGS` (the configuration reference is generated from it).

    In a Django project configured with ``namespace="CELERY"`` the names are upper case with
    the namespace: ``CELERY_BEATX_STORE``. Unknown ``beatx_*`` keys and malformed values raise
    :class:`~beatx.ConfigurationError` naming the key.
    """

    store: str = "memory://"
    key_prefix: str = "beatx:"
    timezone: str = "UTC"
    job_defaults: JobDefaults = field(default_factory=JobDefaults)
    max_concurrent_jobs: int | None = None
    lease_timeout: float = 30.0
    run_timeout: float = 3600.0
    dedupe: bool = False
    metrics_port: int | None = None
    lookahead: float = 0.05
    atomic_fire: bool = True
    log_each_fire: bool = False
    run_history: int = DEFAULT_RUN_HISTORY
    run_history_days: float = DEFAULT_RUN_HISTORY_DAYS
    alert_interval: float = 10.0
    alert_webhook: str | None = None
    alert_sentry: bool = False

    def __post_init__(self) -> None:
        # One validator per setting, shared with SchedulerConfig and Django's BEATX.
        for setting in SETTINGS:
            if setting.celery and setting.check is not None and hasattr(self, setting.name):
                value = setting.check(f"beatx_{setting.name}", getattr(self, setting.name))
                object.__setattr__(self, setting.name, value)
        if self.dedupe and self.store.partition("://")[0].lower() not in (
            "redis",
            "rediss",
            "unix",
            "redis+sentinel",
            "redis+cluster",
            "django",
        ):
            raise ConfigurationError(
                "beatx_dedupe: the duplicate-delivery guard needs a store the workers share (Redis or "
                f"Django), beatx_store is {self.store!r}"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_app(cls, app: Celery, **overrides: Any) -> BeatxSettings:
        """Read the ``beatx_*`` settings of ``app`` (``overrides`` win, by field name).

        :raises ConfigurationError: naming an unknown ``beatx_*`` key or a malformed value.
        """
        conf = app.conf
        known = cls.field_names()
        values: dict[str, Any] = {}
        unknown: list[str] = []
        for key in list(conf.keys()):
            if not isinstance(key, str):
                continue
            name = key.lower()
            if name.startswith("celery_beatx_"):
                name = name[len("celery_") :]
            if not name.startswith("beatx_"):
                continue
            short = name[len("beatx_") :]
            if short not in known:
                unknown.append(key)
                continue
            value = conf.get(key)
            values[short] = value
        if unknown:
            raise ConfigurationError(
                f"unknown beatx setting(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join('beatx_' + name for name in known)}"
            )
        bad = sorted(set(overrides) - set(known))
        if bad:
            raise ConfigurationError(
                f"unknown beatx setting override(s) {', '.join(bad)}; expected {', '.join(known)}"
            )
        values.update(overrides)
        values = {k: v for k, v in values.items() if v is not None or k == "max_concurrent_jobs"}
        if "timezone" not in values:
            tz = conf.get("timezone")
            values["timezone"] = (
                timezone_name(tz) if tz is not None and not isinstance(tz, str) else tz or "UTC"
            )
        try:
            return cls(**values)
        except InvalidJobError as exc:
            raise ConfigurationError(f"beatx_job_defaults: {exc}") from exc

    def store_options(self) -> dict[str, Any]:
        """The options ``open_store`` passes to the store this URL names: the run ledger's size
        for the memory and Redis stores (the Django store keeps runs until they are pruned)."""
        scheme = self.store.partition("://")[0].lower()
        if scheme in ("memory", "redis", "rediss", "unix", "redis+sentinel", "redis+cluster"):
            return {"run_history": self.run_history, "run_history_days": float(self.run_history_days)}
        return {}

    def redacted_store(self) -> str:
        return redact_url(self.store)
