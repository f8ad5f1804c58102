"""The ``beatx`` command, run as a subprocess against a real Redis store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

Beatx = Callable[..., subprocess.CompletedProcess[str]]


def run_beatx(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beatx.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or _env(),
        timeout=timeout,
    )


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BEATX_STORE"}
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@pytest.fixture
def beatx(redis_url: str, key_prefix: str) -> Beatx:
    """``beatx --store <test redis db> --key-prefix <test prefix> ...``."""

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run_beatx("--store", redis_url, "--key-prefix", key_prefix, *args)

    return call


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- jobs ------------------------------------------------------------------------------------


@pytest.mark.redis
def test_job_lifecycle_add_list_show_pause_resume_remove(beatx: Beatx) -> None:
    added = beatx(
        "jobs", "add", "nightly", "--func", "billing.tasks.invoice", "--cron", "0 3 * * *",
        "--tz", "Europe/Paris", "--kwargs", '{"dry_run": false}', "--queue", "billing",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "nightly" in added.stdout
    assert (
        beatx("jobs", "add", "poll", "--func", "app.poll", "--every", "90", "--args", "[1, 2]").returncode
        == 0
    )
    at = beatx(
        "jobs", "add", "once", "--func", "app.remind", "--at", "2099-12-25T10:30:00", "--max-instances", "2"
    )
    assert at.returncode == 0, at.stderr

    listed = beatx("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {"nightly", "poll", "once"}
    assert [row["id"] for row in rows] == ["poll", "nightly", "once"]  # sorted by next run
    assert by_id["nightly"]["trigger"] == "At 03:00 (Europe/Paris)"
    assert by_id["once"]["next_run_time"] == "2099-12-25T10:30:00+00:00"
    assert by_id["once"]["max_instances"] == 2
    assert datetime.fromisoformat(by_id["poll"]["next_run_time"]).tzinfo is not None
    by_name = json.loads(beatx("jobs", "list", "--json", "--sort", "id").stdout)
    assert [row["id"] for row in by_name] == ["nightly", "once", "poll"]

    table = beatx("jobs", "list")
    assert table.returncode == 0, table.stderr
    assert "nightly" in table.stdout and "At 03:00 (Europe/Paris)" in table.stdout

    shown = beatx("jobs", "show", "nightly", "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["func"] == "billing.tasks.invoice"
    assert detail["kwargs"] == {"dry_run": False}
    assert detail["options"] == {"queue": "billing"}
    assert detail["status"] == "active"
    assert {"last_run_time", "last_finished_at", "last_duration", "last_error"} <= set(detail)
    human = beatx("jobs", "show", "poll")
    assert human.returncode == 0 and "last duration" in human.stdout and "[1, 2]" in human.stdout

    paused = beatx("jobs", "pause", "nightly")
    assert paused.returncode == 0, paused.stderr
    only_paused = json.loads(beatx("jobs", "list", "--status", "paused", "--json").stdout)
    assert [row["id"] for row in only_paused] == ["nightly"]
    assert json.loads(beatx("jobs", "list", "--status", "active", "--json").stdout)[0]["id"] == "poll"

    resumed = beatx("jobs", "resume", "nightly")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(beatx("jobs", "list", "--status", "paused", "--json").stdout) == []
    again = beatx("jobs", "resume", "nightly")
    assert again.returncode == 1
    assert "not paused" in error_line(again)

    assert beatx("jobs", "remove", "nightly").returncode == 0
    missing = beatx("jobs", "show", "nightly")
    assert missing.returncode == 1
    assert error_line(missing) == "error: No job with the id 'nightly' was found"
    for command in ("pause", "resume", "remove"):
        refused = beatx("jobs", command, "nightly")
        assert refused.returncode == 1, command
        assert "nightly" in error_line(refused)


@pytest.mark.redis
def test_adding_a_taken_id_is_refused_unless_replace(beatx: Beatx) -> None:
    assert beatx("jobs", "add", "j", "--func", "a.b", "--every", "5").returncode == 0
    taken = beatx("jobs", "add", "j", "--func", "a.c", "--every", "5")
    assert taken.returncode == 1
    assert "already exists" in error_line(taken) and "--replace" in error_line(taken)
    replaced = beatx("jobs", "add", "j", "--func", "a.c", "--every", "5", "--replace", "--json")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["func"] == "a.c"


@pytest.mark.redis
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 25 * * *"], "hour field"),
        (["--cron", "30-10 * * * *"], "minute field"),
        (["--cron", "* * * *"], "expected 5 fields"),
        (["--every", "0"], "interval must be greater than 0"),
        (["--at", "next tuesday"], "is not a date"),
        (["--every", "5", "--args", "{not json"], "--args"),
        (["--every", "5", "--args", '{"a": 1}'], "JSON array"),
        (["--every", "5", "--kwargs", "[1]"], "JSON object"),
        (["--every", "5", "--cron", "* * * * *"], "exactly one of --cron, --every and --at"),
        ([], "exactly one of --cron, --every and --at"),
        (["--cron", "* * * * *", "--tz", "Mars/Olympus"], "unknown timezone"),
    ],
    ids=["hour-range", "reversed-range", "field-count", "zero-interval", "bad-date", "bad-json",
         "args-not-list", "kwargs-not-object", "two-triggers", "no-trigger", "bad-tz"],
)  # fmt: skip
def test_bad_input_exits_2_with_one_error_line(beatx: Beatx, args: list[str], message: str) -> None:
    result = beatx("jobs", "add", "bad", "--func", "a.b", *args)
    assert result.returncode == 2, result.stderr
    assert message in error_line(result)
    assert json.loads(beatx("jobs", "list", "--json").stdout) == []


@pytest.mark.redis
def test_run_now_without_a_dispatcher_is_refused(beatx: Beatx) -> None:
    assert beatx("jobs", "add", "j", "--func", "a.b", "--every", "5").returncode == 0
    result = beatx("jobs", "run-now", "j")
    assert result.returncode == 1
    assert "--app" in error_line(result)


def test_unreachable_store_exits_3() -> None:
    result = run_beatx("--store", "redis://127.0.0.1:1/0", "jobs", "list")
    assert result.returncode == 3
    line = error_line(result)
    assert "redis://127.0.0.1:1/0" in line and "Connection refused" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--store", "ftp://x", "jobs", "list"], 3, "unknown store URL"),
        (["--config", "/nonexistent/beatx.yaml", "jobs", "list"], 3, "cannot read the file"),
        (["jobs", "list"], 2, "no store"),
        (["--store", "memory://", "--config", "x.yaml", "jobs", "list"], 2, "give one of"),
        (["jobs", "frobnicate"], 2, "No such command"),
    ],
    ids=["bad-scheme", "missing-config", "no-store", "two-stores", "unknown-command"],
)
def test_configuration_and_usage_errors(args: list[str], code: int, message: str) -> None:
    result = run_beatx(*args)
    assert result.returncode == code, result.stderr
    assert message in error_line(result)


@pytest.mark.redis
def test_store_comes_from_beatx_store_env(redis_url: str, key_prefix: str) -> None:
    env = _env() | {"BEATX_STORE": redis_url}
    added = run_beatx(
        "--key-prefix", key_prefix, "jobs", "add", "j", "--func", "a.b", "--every", "5", env=env
    )
    assert added.returncode == 0, added.stderr
    listed = run_beatx("--store", redis_url, "--key-prefix", key_prefix, "jobs", "list", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == ["j"]


# -- cron ------------------------------------------------------------------------------------


def test_cron_explains_and_lists_fire_times_in_the_zone() -> None:
    result = run_beatx("cron", "*/15 9-17 * * MON-FRI", "--tz", "Europe/Paris", "-n", "3", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["expression"] == "*/15 9-17 * * MON-FRI"
    assert data["timezone"] == "Europe/Paris"
    assert "15 minutes" in data["description"] and "Monday through Friday" in data["description"]
    times = [datetime.fromisoformat(t) for t in data["next"]]
    assert len(times) == 3
    assert all(t.utcoffset() is not None for t in times)
    for t in times:
        assert t.weekday() < 5 and 9 <= t.hour <= 17 and t.minute % 15 == 0
    assert times == sorted(times) and (times[1] - times[0]).total_seconds() == 900
    human = run_beatx("cron", "0 3 * * *", "--tz", "Europe/Paris", "-n", "2")
    assert human.returncode == 0, human.stderr
    assert "At 03:00" in human.stdout and ("+01:00" in human.stdout or "+02:00" in human.stdout)


@pytest.mark.parametrize(
    ("expr", "field"),
    [("0 25 * * *", "hour field"), ("61 * * * *", "minute field"), ("* * 0 * *", "day-of-month field"),
     ("* * * FOO *", "month field"), ("* * * * 8", "day-of-week field"), ("*/0 * * * *", "step 0")],
    ids=["hour", "minute", "dom", "month-name", "dow", "step-zero"],
)  # fmt: skip
def test_cron_names_the_bad_field_and_exits_2(expr: str, field: str) -> None:
    result = run_beatx("cron", expr)
    assert result.returncode == 2
    assert field in error_line(result)


# -- status ----------------------------------------------------------------------------------


@pytest.mark.redis
def test_status_of_a_store_without_a_beat(beatx: Beatx) -> None:
    beatx("jobs", "add", "a", "--func", "x.y", "--every", "60")
    beatx("jobs", "add", "b", "--func", "x.y", "--every", "60", "--paused")
    result = beatx("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["leader"] is None and status["last_tick_at"] is None
    assert status["jobs"]["active"] == 1 and status["jobs"]["paused"] == 1 and status["jobs_total"] == 2
    assert {
        "leader_since",
        "lease_expires_at",
        "due_backlog",
        "jobs_fired",
        "jobs_missed",
        "jobs_skipped",
    } <= set(status)
    assert beatx("status").returncode == 0


# -- run -------------------------------------------------------------------------------------

JOBS_MODULE = """
import time

def work(path):
    with open(path, "a") as f:
        f.write("start\\n")
    time.sleep(0.6)
    with open(path, "a") as f:
        f.write("end\\n")
"""


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.redis
def test_run_fires_jobs_reports_status_and_stops_gracefully_on_sigterm(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    (tmp_path / "cli_test_jobs.py").write_text(JOBS_MODULE)
    out = tmp_path / "runs.txt"
    config = tmp_path / "beatx.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            scheduler:
              backend: redis
              url: {redis_url}
              key_prefix: "{key_prefix}"
              jobs:
                - id: writer
                  func: "cli_test_jobs:work"
                  trigger: interval
                  seconds: 1
                  args: ["{out}"]
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "beatx.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: out.exists() and out.read_text().count("end") >= 1, 15, "a first run")
        status = json.loads(run_beatx("--config", str(config), "status", "--json").stdout)
        assert status["leader"] is not None and status["lease_valid"] is True
        # SIGTERM while a run is in flight: it must finish before the process exits.
        _wait_for(lambda: out.read_text().count("start") > out.read_text().count("end"), 5, "a run in flight")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    lines = out.read_text().split()
    assert lines.count("start") >= 2 and lines.count("start") == lines.count("end"), lines
    assert lines[-1] == "end"
    # At INFO (the default level), one summary line per group of fires sent, not one per fire.
    assert re.search(r"fires dispatched count=1 jobs=1 ids=writer lateness=-?[0-9.]+s\.\.-?[0-9.]+s", stderr)
    assert "fire dispatched job=writer" not in stderr
    assert "received SIGTERM" in stderr
    after = json.loads(run_beatx("--config", str(config), "status", "--json").stdout)
    assert after["leader"] is None  # the lease was released on shutdown
    shown = json.loads(run_beatx("--config", str(config), "jobs", "show", "writer", "--json").stdout)
    assert shown["total_run_count"] >= 2 and shown["last_finished_at"] is not None


def test_run_with_a_broken_config_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "beatx.yaml"
    config.write_text(
        "scheduler:\n  jobs:\n    - id: x\n      func: 'no_such_module_xyz:f'\n      trigger: interval\n      seconds: 1\n"
    )
    result = run_beatx("run", "--config", str(config))
    assert result.returncode == 3
    assert "no_such_module_xyz" in error_line(result)


def test_help_lists_exit_codes() -> None:
    result = run_beatx("--help")
    assert result.returncode == 0
    assert "Exit codes" in result.stdout
    for command in ("cron", "jobs", "run", "status"):
        assert command in result.stdout


# -- --app -----------------------------------------------------------------------------------

CELERY_APP = """
from celery import Celery

app = Celery("cli_test_proj", broker="memory://")
app.conf.beatx_store = {store!r}
app.conf.beatx_key_prefix = {prefix!r}


@app.task(name="cli_test_proj.add")
def add(x, y):
    return x + y
"""


@pytest.mark.redis
def test_app_reads_the_celery_settings_and_run_now_publishes(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    (tmp_path / "cli_test_proj.py").write_text(CELERY_APP.format(store=redis_url, prefix=key_prefix))
    env = _env(tmp_path)
    added = run_beatx(
        "--app", "cli_test_proj", "jobs", "add", "sum", "--func", "cli_test_proj.add", "--every", "3600",
        "--args", "[1, 2]", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    # The job is in the store the app's settings name.
    listed = run_beatx("--store", redis_url, "--key-prefix", key_prefix, "jobs", "list", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == ["sum"]
    sent = run_beatx("--app", "cli_test_proj", "jobs", "run-now", "sum", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "task id" in sent.stdout
    missing = run_beatx("--app", "cli_test_proj", "jobs", "run-now", "nope", env=env)
    assert missing.returncode == 1


def test_an_app_that_cannot_be_loaded_exits_3() -> None:
    result = run_beatx("--app", "no_such_project_xyz", "jobs", "list")
    assert result.returncode == 3
    assert "cannot load the Celery app 'no_such_project_xyz'" in error_line(result)
