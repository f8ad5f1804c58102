"""A real ``celery beat -S beatx`` process on the Django store (the test's SQLite file), with
Redis as the broker: a change made in the admin reaches the running beat within a second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from beatx.triggers import IntervalTrigger
from django_beatx import conf

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.django_db(databases=["default"], transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def beat(redis_url: str, tmp_path: Path) -> Iterator[Any]:
    import redis

    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.django.settings",
        BEATX_TEST_SQLITE=str(settings.DATABASES["default"]["NAME"]),
        BEATX_TEST_BROKER=redis_url,
    )
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.django.celery_app",
                "beat",
                "-S",
                "beatx",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        client.close()
        print(log.read_text(errors="replace")[-4000:])


def test_pausing_in_the_admin_stops_a_running_beat_within_a_second(
    beat: Any, client: Client, admin_user: Any
) -> None:
    conf.get_manager().add_job("reports.send_digest", IntervalTrigger(seconds=0.25), id="fast")

    def sent() -> int:
        return int(beat.llen("celery"))

    wait_until(lambda: sent() >= 4, 30, "the beat to send the job's messages")
    client.force_login(admin_user)
    url = reverse("admin:django_beatx_job_changelist")
    response = client.post(url, {"action": "pause_jobs", "_selected_action": ["fast"]})
    assert response.status_code == 302
    time.sleep(1.0)
    after_pause = sent()
    time.sleep(1.5)
    assert sent() == after_pause, "the beat kept sending after the job was paused"

    client.post(url, {"action": "resume_jobs", "_selected_action": ["fast"]})
    wait_until(lambda: sent() > after_pause, 1.0, "the resumed job to fire again")
