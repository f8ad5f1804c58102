"""Every documented extra works from the built wheel in a fresh virtual environment (issue 20,
item 2: ``beatx[redis]`` once missed ``kombu[redis]``'s ``packaging``).

For each extra: a new venv (``python -m venv``), ``pip install "<wheel>[extra]"`` and an import
smoke test in it; for ``redis`` and ``celery`` a real ``celery -A app beat -S beatx`` runs for a
few seconds from that venv against Redis (broker and store) and RabbitMQ (broker), and its
messages are found in the broker.

The packages come from a wheelhouse, never from the network at test time: ``make wheelhouse``
(or ``BEATX_WHEELHOUSE=<dir>``) downloads them once; ``.ci/run`` does it before the slow suite.
Without a wheelhouse the tests skip (fail under ``CI=true``). A pip cache alone is not enough:
``pip install --no-index`` reads only ``--find-links`` folders, never the cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.test_packaging import Artefacts, artefacts  # noqa: F401  (the module-scoped fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("BEATX_WHEELHOUSE") or ROOT / ".wheelhouse")

#: What each documented extra must make importable and usable.
SMOKE = {
    "celery": "import beatx.celery, kombu.transport.pyamqp",
    "redis": "import beatx.celery, beatx.stores.redis, hiredis, kombu.transport.redis",
    "django": "import django, django_beatx, beatx.celery",
    "postgres": "import psycopg",
    "yaml": "import yaml, beatx; beatx.SchedulerConfig.from_mapping({'backend': 'memory'})",
    "cli": "import beatx.cli, rich, yaml",
    "metrics": "import beatx.metrics, prometheus_client",
    "rrule": "import beatx; beatx.RRuleTrigger('FREQ=DAILY')",
    "solar": "import beatx; beatx.SolarTrigger('sunset', 48.85, 2.35)",
    "calendars": "import holidays",
    "sentry": "from beatx.alert_delivery import sentry_checkin; sentry_checkin()",
}

BEAT_APP = """\
from celery import Celery

import beatx.celery

app = Celery("wheel_smoke", broker={broker!r})
app.conf.beatx_store = {store!r}
app.conf.beatx_key_prefix = {prefix!r}
app.conf.task_default_queue = {queue!r}
app.conf.beat_schedule = {{"tick": {{"task": "wheel_smoke.tick", "schedule": 1.0}}}}
beatx.celery.setup(app)
"""


def _wheelhouse_or_skip() -> Path:
    if WHEELHOUSE.is_dir() and any(WHEELHOUSE.glob("*.whl")):
        return WHEELHOUSE
    message = f"no wheelhouse at {WHEELHOUSE}: run `make wheelhouse` once (it downloads from PyPI)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _fresh_venv(tmp_path: Path, wheel: Path, extra: str) -> Path:
    """A new venv with ``wheel[extra]`` installed offline from the wheelhouse; its bin folder."""
    wheelhouse = _wheelhouse_or_skip()
    venv = tmp_path / f"venv-{extra}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            f"{wheel}[{extra}]" if extra else str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, f"pip install {wheel.name}[{extra}] failed:\n{install.stderr[-3000:]}"
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    return venv / "bin"


def _clean_env(extra_path: Path | None = None) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)  # the app module only; never the checkout
    return env


@pytest.mark.parametrize("extra", sorted(SMOKE))
def test_the_wheel_with_each_extra_works_in_a_fresh_venv(
    tmp_path: Path,
    artefacts: Artefacts,  # noqa: F811
    extra: str,
) -> None:
    bin_dir = _fresh_venv(tmp_path, artefacts.wheel, extra)
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", SMOKE[extra] + "\nimport beatx; print(beatx.__file__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / f"venv-{extra}") in result.stdout  # the wheel's beatx, not the checkout's


def test_the_demo_runs_from_the_wheel_alone(
    tmp_path: Path,
    artefacts: Artefacts,  # noqa: F811
) -> None:
    """``make demo`` installs beatx without extras: the demo needs nothing else, and its length
    does not depend on the wall clock (the one-shot at 4 s fires in a 5 s run)."""
    bin_dir = _fresh_venv(tmp_path, artefacts.wheel, "")
    result = subprocess.run(
        [str(bin_dir / "python"), "-m", "beatx.demo", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "fired   one-shot-report" in result.stdout, result.stdout


def _run_beat(bin_dir: Path, app_dir: Path, seconds: float) -> str:
    beat = subprocess.Popen(
        [str(bin_dir / "celery"), "-A", "wheel_smoke", "beat", "-S", "beatx", "-l", "info"],
        cwd=app_dir,
        env=_clean_env(app_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(seconds)
        assert beat.poll() is None, beat.communicate()[0]
        beat.send_signal(signal.SIGTERM)
        output, _ = beat.communicate(timeout=30)
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.communicate()
    assert "Traceback" not in output, output
    return output


def test_celery_beat_from_the_redis_extra_sends_to_redis(
    tmp_path: Path,
    artefacts: Artefacts,  # noqa: F811
    redis_url: str,
    key_prefix: str,
) -> None:
    import redis

    bin_dir = _fresh_venv(tmp_path, artefacts.wheel, "redis")
    queue = f"wheel-smoke-{uuid.uuid4().hex[:8]}"
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "wheel_smoke.py").write_text(
        BEAT_APP.format(broker=redis_url, store=redis_url, prefix=key_prefix, queue=queue)
    )
    output = _run_beat(bin_dir, app_dir, 4.0)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(queue) >= 2, output  # a fire per second reached the broker
    finally:
        client.delete(queue)
        client.close()


def test_celery_beat_from_the_celery_extra_sends_to_rabbitmq(
    tmp_path: Path,
    artefacts: Artefacts,  # noqa: F811
    rabbitmq_url: str,
) -> None:
    from kombu import Connection

    from tests.conftest import delete_amqp_queue

    bin_dir = _fresh_venv(tmp_path, artefacts.wheel, "celery")
    queue = f"wheel-smoke-{uuid.uuid4().hex[:8]}"
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "wheel_smoke.py").write_text(
        BEAT_APP.format(broker=rabbitmq_url, store="memory://", prefix="beatx:", queue=queue)
    )
    try:
        output = _run_beat(bin_dir, app_dir, 4.0)
        with Connection(rabbitmq_url) as connection:
            declared = connection.default_channel.queue_declare(queue, passive=True)
        assert declared.message_count >= 2, output
    finally:
        delete_amqp_queue(rabbitmq_url, queue)
    shutil.rmtree(app_dir)
