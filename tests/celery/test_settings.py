"""BeatxSettings.from_app: defaults, the Django namespace, errors naming the key."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from celery import Celery

from beatx import ConfigurationError, JobDefaults
from beatx.celery import BeatxSettings, setup


def make_app(**conf: Any) -> Celery:
    app = Celery("settings-test", broker="memory://", set_as_current=False)
    app.conf.update(conf)
    return app


def test_defaults() -> None:
    settings = BeatxSettings.from_app(make_app())
    assert settings == BeatxSettings()
    assert settings.store == "memory://" and settings.key_prefix == "beatx:" and settings.timezone == "UTC"
    assert settings.lease_timeout == 30 and settings.run_timeout == 3600 and settings.dedupe is False
    assert settings.job_defaults == JobDefaults()


def test_values_and_app_timezone() -> None:
    app = make_app(
        timezone="Europe/Paris",
        beatx_store="redis://127.0.0.1:6379/3",
        beatx_key_prefix="p:",
        beatx_job_defaults={"misfire_grace_time": 30, "max_instances": 2},
        beatx_max_concurrent_jobs=5,
        beatx_lease_timeout=10,
        beatx_run_timeout=60.5,
        beatx_dedupe=True,
    )
    settings = BeatxSettings.from_app(app)
    assert settings.timezone == "Europe/Paris"
    assert settings.job_defaults == JobDefaults(misfire_grace_time=30, max_instances=2)
    assert (settings.max_concurrent_jobs, settings.lease_timeout, settings.run_timeout) == (5, 10, 60.5)
    assert settings.dedupe and settings.key_prefix == "p:"
    assert BeatxSettings.from_app(make_app(timezone="Asia/Tokyo", beatx_timezone="UTC")).timezone == "UTC"


def test_django_namespace() -> None:
    class Config:
        CELERY_BEATX_STORE = "redis://127.0.0.1:6379/4"
        CELERY_BEATX_LEASE_TIMEOUT = 12
        CELERY_TIMEZONE = "America/New_York"

    app = Celery("ns-test", set_as_current=False)
    app.config_from_object(Config, namespace="CELERY")
    settings = BeatxSettings.from_app(app)
    assert settings.store == "redis://127.0.0.1:6379/4"
    assert settings.lease_timeout == 12
    assert settings.timezone == "America/New_York"


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigurationError, match="beatx_stor\\b"):
        BeatxSettings.from_app(make_app(beatx_stor="memory://"))

    class Config:
        CELERY_BEATX_LEASE = 3

    app = Celery("ns-bad", set_as_current=False)
    app.config_from_object(Config, namespace="CELERY")
    with pytest.raises(ConfigurationError, match="CELERY_BEATX_LEASE"):
        BeatxSettings.from_app(app)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("beatx_store", "localhost:6379"),
        ("beatx_key_prefix", ""),
        ("beatx_timezone", "Mars/Olympus"),
        ("beatx_job_defaults", {"max_instances": 0}),
        ("beatx_job_defaults", {"bogus": 1}),
        ("beatx_job_defaults", "fast"),
        ("beatx_max_concurrent_jobs", 0),
        ("beatx_max_concurrent_jobs", 2.5),
        ("beatx_lease_timeout", -1),
        ("beatx_lease_timeout", "30"),
        ("beatx_run_timeout", True),
        ("beatx_dedupe", "yes"),
        ("beatx_dedupe", True),  # with the default memory:// store
        ("beatx_metrics_port", 0),
        ("beatx_metrics_port", "9100"),
        ("beatx_lookahead", -0.01),
        ("beatx_lookahead", 5),
        ("beatx_lookahead", "0.05"),
    ],
)
def test_malformed_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        BeatxSettings.from_app(make_app(**{key: value}))


def test_overrides() -> None:
    settings = BeatxSettings.from_app(make_app(beatx_key_prefix="a:"), key_prefix="b:")
    assert settings.key_prefix == "b:"
    with pytest.raises(ConfigurationError, match="nope"):
        BeatxSettings.from_app(make_app(), nope=1)


def test_setup_sets_the_beat_scheduler_unless_set() -> None:
    app = make_app()
    setup(app)
    assert app.conf.beat_scheduler == "beatx"
    other = make_app(beat_scheduler="myproj.sched:Custom")
    setup(other)
    with pytest.warns(UserWarning, match=r"beat_scheduler = 'myproj.sched:Custom'.*not beatx"):
        kept = other.conf.beat_scheduler  # configures the app: setup() checks then
    assert kept == "myproj.sched:Custom"
    for name in ("beatx", "beatx.celery:BeatxScheduler"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            named = make_app(beat_scheduler=name)
            setup(named)
            assert named.conf.beat_scheduler == name
    lazy = Celery("lazy", set_as_current=False)
    setup(lazy)
    lazy.config_from_object({"broker_url": "memory://"})
    assert lazy.conf.beat_scheduler == "beatx"


def test_a_beat_with_a_metrics_port_serves_moving_counters() -> None:
    import socket
    import time
    import urllib.request

    from beatx.celery import BeatxScheduler

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(beatx_metrics_port=port)
    scheduler = BeatxScheduler(app, lazy=True)
    scheduler.setup_schedule()
    assert scheduler.manager is not None and scheduler.beat is not None
    scheduler.manager.add_job("tests.tasks.noop", "interval", seconds=0.2, id="fast")
    scheduler.dispatcher = None  # no broker here: count fires through a recording dispatcher
    from beatx.testing import RecordingDispatcher

    scheduler.beat.engine.dispatcher = RecordingDispatcher()

    def fired() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("beatx_fires_dispatched_total{")
        )

    try:
        scheduler.beat.run_once()
        first = fired()
        deadline = time.monotonic() + 5
        while fired() <= first and time.monotonic() < deadline:
            time.sleep(0.05)
            scheduler.beat.run_once()
        assert fired() > first >= 1
    finally:
        scheduler.close()
        scheduler.close()
