"""The ``beatx`` command on the Django store, in every form the docs give (``--store django://``
with and without ``DJANGO_SETTINGS_MODULE``, ``--app PROJ``), against a real Django project in a
temporary directory (its own SQLite file, migrated by ``manage.py migrate``): the command sets
Django up itself, and every failure is one ``error:`` line with exit code 3, never a traceback.
``beatx run --config`` finds the functions next to its YAML file, from any directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """\
from pathlib import Path

SECRET_KEY = "first-hour"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_beatx"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CELERY_BROKER_URL = "memory://"
CELERY_BEATX_STORE = "django://"
"""

CELERY_APP = """\
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhproj.settings")
app = Celery("fhproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
"""

MANAGE_PY = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhproj.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BEATX_STORE", "DJANGO_SETTINGS_MODULE")}
    env["PYTHONPATH"] = str(ROOT)  # beatx from the checkout; never the project's directory
    env.update(extra)
    return env


def _beatx(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beatx.cli", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 3, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Django project with django_beatx installed and migrated: ``manage.py`` and ``fhproj``."""
    root = tmp_path_factory.mktemp("django-cli")
    package = root / "fhproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS.format(db=str(root / "db.sqlite3")))
    (package / "celery.py").write_text(CELERY_APP)
    (root / "manage.py").write_text(MANAGE_PY)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    return root


def test_every_documented_form_reaches_the_same_django_store(project: Path) -> None:
    # In the project's directory without DJANGO_SETTINGS_MODULE: the settings manage.py names.
    added = _beatx(
        project,
        "--store",
        "django://",
        "jobs",
        "add",
        "fh-ping",
        "--func",
        "fhproj.ping",
        "--every",
        "60",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["id"] == "fh-ping"
    assert "Traceback" not in added.stderr

    with_env = _beatx(
        project, "--store", "django://", "jobs", "list", "--json", DJANGO_SETTINGS_MODULE="fhproj.settings"
    )
    assert with_env.returncode == 0, with_env.stderr
    assert [job["id"] for job in json.loads(with_env.stdout)] == ["fh-ping"]

    # --app: the Celery app's CELERY_BEATX_STORE is django://; no memory:// warning.
    by_app = _beatx(project, "--app", "fhproj", "jobs", "show", "fh-ping", "--json")
    assert by_app.returncode == 0, by_app.stderr
    assert json.loads(by_app.stdout)["func"] == "fhproj.ping"
    assert by_app.stderr == ""

    removed = _beatx(project, "--app", "fhproj", "jobs", "remove", "fh-ping")
    assert removed.returncode == 0, removed.stderr


def test_without_settings_the_error_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    result = _beatx(tmp_path, "--store", "django://", "jobs", "list")
    _one_error_line(result, "DJANGO_SETTINGS_MODULE", "manage.py")


def test_settings_that_do_not_import_are_one_line(tmp_path: Path) -> None:
    result = _beatx(
        tmp_path, "--store", "django://", "jobs", "list", DJANGO_SETTINGS_MODULE="no_such_project.settings"
    )
    _one_error_line(result, "'no_such_project.settings'", "No module named 'no_such_project'")


def test_settings_without_django_beatx_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bare_settings.py").write_text(
        'SECRET_KEY = "x"\nINSTALLED_APPS = ["django.contrib.contenttypes"]\nDATABASES = {}\n'
    )
    result = _beatx(tmp_path, "--store", "django://", "jobs", "list", DJANGO_SETTINGS_MODULE="bare_settings")
    _one_error_line(result, "'django_beatx' in INSTALLED_APPS")


def test_run_config_finds_the_functions_next_to_its_yaml(tmp_path: Path) -> None:
    config_dir = tmp_path / "deploy"
    config_dir.mkdir()
    out = tmp_path / "ran.txt"
    (config_dir / "fh_yaml_jobs.py").write_text(
        "def tick(path):\n    with open(path, 'a') as f:\n        f.write('tick\\n')\n"
    )
    config = config_dir / "beatx.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            scheduler:
              backend: memory
              jobs:
                - id: ticker
                  func: "fh_yaml_jobs:tick"
                  trigger: interval
                  seconds: 1
                  args: ["{out}"]
            """
        )
    )
    # Started from another directory, as a service manager would.
    proc = subprocess.Popen(
        [sys.executable, "-m", "beatx.cli", "run", "--config", str(config)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.exists(), "the job next to the YAML file never ran"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
