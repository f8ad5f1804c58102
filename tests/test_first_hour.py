"""What a new user meets in the first hour: how to install from a checkout, a test suite that
leaves their Redis and RabbitMQ data alone, and a management API that says where jobs go."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import beatx
from beatx import JobManager
from beatx.stores.memory import MemoryStore
from tests.conftest import (
    REDIS_DB_MARKER,
    REDIS_DBS_ENV,
    REDIS_HOST,
    REDIS_PORT,
    NoRedisDatabase,
    claim_redis_db,
    delete_amqp_queue,
    redis_test_dbs,
    release_redis_db,
    require_service,
    take_redis_db,
)

ROOT = Path(__file__).resolve().parents[1]


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


# -- installing before beatx is on PyPI -----------------------------------------------------------


@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_the_install_from_a_checkout_or_a_wheel_is_spelled_out(page: str) -> None:
    text = read(page)
    assert 'pip install ".[redis]"' in text
    assert "pip wheel --no-deps . -w dist" in text
    # The wheel's file name, with the version this checkout builds (a glob would not do:
    # the shell reads `*.whl[redis]` as a pattern and pip gets it as it is).
    wheel = f"dist/beatx-{beatx.__version__}-py3-none-any.whl"
    assert f'pip install "{wheel}[redis]"' in text
    named = set(re.findall(r"dist/beatx-([0-9][^-\s]*)-py3-none-any\.whl", text))
    assert named == {beatx.__version__}, f"{page} names another version: {named}"


def test_the_changelog_has_an_unreleased_section_with_this_round() -> None:
    text = read("CHANGELOG.md")
    assert text.startswith("# Changelog")
    sections = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert sections and sections[0] == "Unreleased"
    unreleased = text.split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    for change in ("LICENSE", "BEATX_TEST_REDIS_DBS", "get_scheduler()", "py.typed"):
        assert change in unreleased, change


def test_the_license_is_mit_by_the_beatx_authors() -> None:
    text = read("LICENSE")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the beatx authors" in text
    assert 'license = "MIT"' in read("pyproject.toml")


# -- the test suite and the user's Redis ---------------------------------------------------------


def test_the_test_databases_come_from_an_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REDIS_DBS_ENV, raising=False)
    assert redis_test_dbs() == list(range(1, 16))
    monkeypatch.setenv(REDIS_DBS_ENV, "8-10, 3,9")
    assert redis_test_dbs() == [8, 9, 10, 3]
    assert redis_test_dbs("12") == [12]
    for bad in (",", "a-b", "5-2", "1,,2", "-3"):
        with pytest.raises(ValueError, match=REDIS_DBS_ENV):
            redis_test_dbs(bad)
    monkeypatch.setenv(REDIS_DBS_ENV, "")  # set but empty: the default
    assert redis_test_dbs() == list(range(1, 16))
    with pytest.raises(ValueError, match="database 0"):
        redis_test_dbs("0-3")
    assert "BEATX_TEST_REDIS_DBS" in read("README.md")


@pytest.fixture
def admin() -> Iterator[Any]:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    yield client
    client.close()


@pytest.mark.redis
def test_a_taken_database_is_marked_locked_and_emptied_after(admin: Any) -> None:
    taken = take_redis_db(admin, redis_test_dbs())
    try:
        assert taken.client.dbsize() == 1
        assert taken.client.get(REDIS_DB_MARKER) == taken.token.encode()
        assert admin.get(f"beatx-test-lock:{taken.db}") == taken.token.encode()
        assert taken.url == f"redis://{REDIS_HOST}:{REDIS_PORT}/{taken.db}"
        taken.client.set("beatx-test-written:key", "by the test")
    finally:
        release_redis_db(admin, taken)
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=taken.db)
    try:
        assert client.dbsize() == 0
        assert admin.get(f"beatx-test-lock:{taken.db}") != taken.token.encode()
    finally:
        client.close()


@pytest.mark.redis
def test_a_database_with_keys_the_tests_did_not_write_is_skipped_and_kept(admin: Any) -> None:
    # A database taken the usual way, made to look like one of the user's: no marker, a key.
    user = take_redis_db(admin, redis_test_dbs())
    user_key = f"app:{uuid.uuid4().hex}"
    user.client.delete(REDIS_DB_MARKER)
    user.client.set(user_key, "precious")
    try:
        assert claim_redis_db(user.client, user.token) == 1  # lock held: only the keys say no
        assert user.client.get(user_key) == b"precious"
        assert not user.client.exists(REDIS_DB_MARKER)

        admin.delete(f"beatx-test-lock:{user.db}")  # free, as a user's database is
        with pytest.raises(NoRedisDatabase, match=rf"{user.db}: (holds 1 key|in use)"):
            take_redis_db(admin, [user.db])
        other = take_redis_db(admin, [user.db, *redis_test_dbs()])
        try:
            assert other.db != user.db
        finally:
            release_redis_db(admin, other)
        assert user.client.get(user_key) == b"precious"
        assert user.client.dbsize() == 1
    finally:
        user.client.delete(user_key)  # the one key of this "user" database: the test wrote it
        user.client.close()


@pytest.mark.redis
def test_what_a_killed_run_left_is_emptied_by_the_next_one(admin: Any) -> None:
    taken = take_redis_db(admin, redis_test_dbs())
    try:
        taken.client.set("beatx-test-left:a", "1")
        taken.client.set("beatx-test-left:b", "2")
        # The run dies (no teardown); its lock expires. The lock is ours again here.
        assert claim_redis_db(taken.client, "next-run") == 0
        assert taken.client.dbsize() == 1
        assert taken.client.get(REDIS_DB_MARKER) == b"next-run"
    finally:
        release_redis_db(admin, taken)


# -- RabbitMQ --------------------------------------------------------------------------------------


@pytest.mark.rabbitmq
def test_delete_amqp_queue_removes_the_queue_and_its_exchange(rabbitmq_url: str) -> None:
    from amqp.exceptions import NotFound
    from kombu import Exchange, Queue
    from kombu.connection import Connection

    name = f"beatx-test-{uuid.uuid4().hex[:8]}"
    with Connection(rabbitmq_url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.channel()
        # What Celery declares for a task_default_queue: a durable queue and direct exchange.
        Queue(name, Exchange(name, "direct"), routing_key=name)(channel).declare()
        assert channel.queue_declare(name, passive=True).queue == name
        delete_amqp_queue(rabbitmq_url, name)
        with pytest.raises(NotFound):
            connection.channel().queue_declare(name, passive=True)
        with pytest.raises(NotFound):
            connection.channel().exchange_declare(name, "direct", passive=True)
    delete_amqp_queue(rabbitmq_url, name)  # deleting what is gone is fine


# -- get_scheduler() and the memory store ----------------------------------------------------------


def test_get_scheduler_without_a_store_warns_how_to_configure_one() -> None:
    from celery import Celery

    app = Celery("first-hour", broker="memory://", set_as_current=False)
    with pytest.warns(UserWarning, match=r"memory://") as record:
        manager = beatx.get_scheduler(app)
    assert isinstance(manager.store, MemoryStore)
    (warning,) = record
    message = str(warning.message)
    assert "'first-hour'" in message and "beatx_store" in message and "CELERY_BEATX_STORE" in message
    assert "redis://127.0.0.1:6379/0" in message
    assert warning.filename == __file__  # points at the caller's line
    assert repr(manager) == "JobManager(store=MemoryStore())"


def test_get_scheduler_on_a_configured_store_says_nothing_and_shows_it() -> None:
    from celery import Celery

    app = Celery("first-hour-redis", broker="memory://", set_as_current=False)
    app.conf.beatx_store = "redis://:secret@127.0.0.1:1/7"  # not reached: nothing is read
    app.conf.beatx_key_prefix = "shop:"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager = beatx.get_scheduler(app)
    assert repr(manager) == "JobManager(store=RedisStore('redis://:***@127.0.0.1:1/7', key_prefix='shop:'))"
    manager.store.close()


def test_a_fresh_process_without_the_app_imported_is_warned() -> None:
    """The first-hour case: ``get_scheduler()`` before the project's Celery app is imported."""
    code = "import beatx\nprint(repr(beatx.get_scheduler()))\n"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "JobManager(store=MemoryStore())"
    assert "UserWarning: beatx.get_job_manager(): the store of the Celery app 'default' is memory://" in (
        result.stderr
    )


def test_a_manager_shows_a_store_without_a_repr_by_its_class_name() -> None:
    class PlainStore(MemoryStore):
        pass

    assert repr(JobManager(PlainStore())) == "JobManager(store=PlainStore())"

    class NamedStore(MemoryStore):
        def __repr__(self) -> str:
            return "NamedStore('somewhere')"

    assert repr(JobManager(NamedStore())) == "JobManager(store=NamedStore('somewhere'))"


def test_the_cli_on_a_celery_app_without_a_store_warns(tmp_path: Path) -> None:
    (tmp_path / "first_hour_proj.py").write_text(
        'from celery import Celery\n\napp = Celery("first_hour_proj", broker="memory://")\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "beatx.cli", "--app", "first_hour_proj", "jobs", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert "warning: the memory:// store lives only as long as this command" in result.stderr


# -- what nothing used -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("beatx.cli", "_recent_runs"),
        ("beatx.triggers.base", "utc"),
        ("beatx.stores.redis", "RedisStore.from_url"),
        ("beatx.stores.redis_common", "_redact"),
        ("beatx.stores.redis_sentinel", "_redacted"),
    ],
)
def test_unused_helpers_are_gone(module: str, name: str) -> None:
    import importlib

    owner: object = importlib.import_module(module)
    *path, last = name.split(".")
    for attribute in path:
        owner = getattr(owner, attribute)
    assert not hasattr(owner, last)
    for path in [*(ROOT / "beatx").rglob("*.py"), *(ROOT / "django_beatx").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert f"from {module} import {name}" not in text, path


def test_bad_arguments_and_failed_sends_raise_beatx_errors() -> None:
    """Every error a user meets is a BeatxError naming what is wrong (still a ValueError where
    it was one)."""
    from datetime import datetime

    import beatx
    from beatx.beat import Beat
    from beatx.engine.engine import Engine
    from beatx.manager import JobManager
    from beatx.stores.memory import MemoryStore
    from beatx.testing import FakeClock, RecordingDispatcher
    from beatx.triggers import CronTrigger

    store = MemoryStore()
    cases = [
        (lambda: Beat(store, RecordingDispatcher(), lease_timeout=0), "lease_timeout"),
        (lambda: Engine(store, RecordingDispatcher(), lookahead=1.0), "wait_until"),
        (lambda: FakeClock().advance(-1), "forward"),
        (lambda: CronTrigger("* * * * *").next_fire_time(datetime(2026, 1, 1)), "timezone-aware"),
    ]
    for call, words in cases:
        with pytest.raises(beatx.BeatxError, match=words) as info:
            call()
        assert isinstance(info.value, ValueError)

    manager = JobManager(store, dispatcher=RecordingDispatcher(fail_jobs=["down"]))
    manager.add_job("t.job", "interval", seconds=60, id="down")
    with pytest.raises(beatx.TransientDispatchError, match="'down'"):
        manager.run_job_now("down")


def test_the_demo_table_shows_no_next_run_for_a_paused_job(capsys: pytest.CaptureFixture[str]) -> None:
    """A paused job keeps the next run time where it stopped; the demo's table shows "-"."""
    from beatx import IntervalTrigger, Scheduler, SchedulerConfig
    from beatx.demo import _table, heartbeat

    scheduler = Scheduler(SchedulerConfig(timezone="UTC"))
    scheduler.add_job(heartbeat, IntervalTrigger(seconds=2), id="paused-one")
    scheduler.add_job(heartbeat, IntervalTrigger(seconds=2), id="active-one")
    scheduler.pause_job("paused-one")
    _table(scheduler)
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["paused-one"].split()[-1] == "-"
    assert rows["active-one"].split()[-1] != "-"


@pytest.mark.redis
@pytest.mark.parametrize(
    ("fields", "field", "error"),
    [
        ({"args": [object()]}, "args", "TypeError"),
        ({"kwargs": {"text": "\ud800"}}, "kwargs", "UnicodeEncodeError"),
    ],
)
def test_values_a_store_cannot_keep_name_the_job_and_the_field(
    redis_url: str, key_prefix: str, fields: dict[str, Any], field: str, error: str
) -> None:
    from beatx.stores.redis import RedisStore
    from beatx.triggers import IntervalTrigger

    store = RedisStore(redis_url, key_prefix=key_prefix)
    manager = JobManager(store)
    try:
        with pytest.raises(
            beatx.InvalidJobError, match=rf"job 'unkeepable': the store cannot keep its {field}: {error}"
        ):
            manager.add_job("t.job", IntervalTrigger(seconds=60), id="unkeepable", **fields)
        assert manager.get_job("unkeepable") is None
        manager.add_job("t.job", IntervalTrigger(seconds=60), id="kept")
        with pytest.raises(beatx.InvalidJobError, match=rf"job 'kept': the store cannot keep its {field}"):
            manager.modify_job("kept", **fields)
        # The memory store keeps any object (in-process jobs may pass them): nothing raised.
        JobManager(MemoryStore()).add_job("t.job", IntervalTrigger(seconds=60), id="in-process", **fields)
    finally:
        store.close()


def test_a_type_error_that_is_not_about_values_is_not_renamed() -> None:
    from beatx.write_errors import refused_job_values

    job = beatx.Job(id="plain", func="t.job", trigger=beatx.IntervalTrigger(seconds=60))
    with pytest.raises(TypeError, match="a bug"), refused_job_values(job):
        raise TypeError("a bug")


# -- task names the app does not know ------------------------------------------------------------


def test_an_unregistered_task_name_is_warned_when_the_app_knows_its_tasks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from celery import Celery

    from beatx.celery import get_job_manager
    from beatx.triggers import IntervalTrigger

    app = Celery("first-hour-tasks", broker="memory://", set_as_current=False)
    app.conf.beatx_store = "memory://"

    @app.task(name="shop.tasks.known", shared=False)
    def known() -> None: ...

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the memory:// warning is not the point here
        manager = get_job_manager(app)
    caplog.set_level("WARNING", logger="beatx.celery")
    manager.add_job("shop.tasks.known", IntervalTrigger(seconds=60), id="fine")
    assert not caplog.records
    manager.add_job("shop.tasks.knwon", IntervalTrigger(seconds=60), id="typo")
    (record,) = caplog.records
    # (Shared tasks other tests defined are registered with every app: the count may be more.)
    assert re.fullmatch(
        r"task 'shop\.tasks\.knwon' is not registered with the Celery app 'first-hour-tasks' \(it "
        r"registers \d+ task\(s\)\): check the name, or that the workers import its module",
        record.getMessage(),
    ), record.getMessage()
    assert manager.get_job("typo") is not None  # a warning: workers may know it

    caplog.clear()
    from beatx.celery.manager_cache import unregistered_task_warning

    class AppWithoutProjectTasks:
        """An app that imported no task module (a script, a beat): only Celery's own tasks."""

        main = "no-project-tasks"
        tasks: ClassVar[dict[str, object]] = {"celery.backend_cleanup": object()}

        class loader:
            @staticmethod
            def import_default_modules() -> None:
                return None

    bare: Any = AppWithoutProjectTasks()
    assert unregistered_task_warning(bare, "shop.tasks.anything") is None  # nothing to compare with
    assert not caplog.records


@pytest.mark.redis
def test_the_cli_warns_about_an_unregistered_task(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    (tmp_path / "fh_tasks_proj.py").write_text(
        "from celery import Celery\n\n"
        f'app = Celery("fh_tasks_proj", broker="memory://")\n'
        f"app.conf.beatx_store = {redis_url!r}\n"
        f"app.conf.beatx_key_prefix = {key_prefix!r}\n\n"
        '@app.task(name="fh.tasks.ping")\ndef ping():\n    return "pong"\n'
    )

    def beatx_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "beatx.cli", "--app", "fh_tasks_proj", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        )

    fine = beatx_cli("jobs", "add", "fine", "--func", "fh.tasks.ping", "--every", "60")
    assert fine.returncode == 0 and fine.stderr == "", fine.stderr
    typo = beatx_cli("jobs", "add", "typo", "--func", "fh.tasks.pnig", "--every", "60")
    assert typo.returncode == 0, typo.stderr
    assert typo.stderr.strip() == (
        "warning: task 'fh.tasks.pnig' is not registered with the Celery app 'fh_tasks_proj' "
        "(it registers 1 task(s)): check the name, or that the workers import its module"
    )


def test_one_trigger_state_version_one_task_name_rule_one_redactor() -> None:
    from beatx.celery import BeatxSettings
    from beatx.task_names import DOTTED_TASK_NAME, looks_like_task_name
    from beatx.triggers.base import STATE_VERSION

    for path in (ROOT / "beatx" / "triggers").glob("*.py"):
        assert '"version": 1' not in path.read_text(encoding="utf-8"), path  # STATE_VERSION it is
    for trigger in (beatx.IntervalTrigger(seconds=5), beatx.DateTimeTrigger("2030-01-01T00:00:00+00:00")):
        assert trigger.to_dict()["version"] == STATE_VERSION
    django_forms = (ROOT / "django_beatx" / "forms.py").read_text(encoding="utf-8")
    assert "TASK_NAME = DOTTED_TASK_NAME" in django_forms
    assert DOTTED_TASK_NAME.pattern in (ROOT / "beatx" / "task_names.py").read_text(encoding="utf-8")
    assert looks_like_task_name("shop.tasks.send-report") and not looks_like_task_name("notdotted")
    for path in (ROOT / "beatx" / "celery").glob("*.py"):
        assert "re.compile" not in path.read_text(encoding="utf-8"), path
    settings = BeatxSettings(store="redis://user:secret@127.0.0.1:6379/0")
    assert settings.redacted_store() == "redis://user:***@127.0.0.1:6379/0"


@pytest.mark.redis
def test_run_now_with_the_broker_down_is_exit_code_3_in_one_line(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    """kombu's OperationalError from ``run_job_now`` is a TransientDispatchError: the CLI says so
    in one line and exits 3 (the store is reachable, the broker is not: port 1 on loopback)."""
    (tmp_path / "fh_down_proj.py").write_text(
        "from celery import Celery\n\n"
        'app = Celery("fh_down_proj", broker="amqp://guest:guest@127.0.0.1:1//")\n'
        f"app.conf.beatx_store = {redis_url!r}\n"
        f"app.conf.beatx_key_prefix = {key_prefix!r}\n"
    )

    def beatx_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "beatx.cli", "--app", "fh_down_proj", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        )

    added = beatx_cli("jobs", "add", "down", "--func", "fh.tasks.ping", "--every", "60")
    assert added.returncode == 0, added.stderr
    sent = beatx_cli("jobs", "run-now", "down")
    assert sent.returncode == 3, sent.stderr
    lines = sent.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broker" in lines[0], sent.stderr


@pytest.mark.redis
def test_the_cli_shows_no_next_run_for_a_paused_job(redis_url: str, key_prefix: str) -> None:
    def beatx_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "beatx.cli", "--store", redis_url, "--key-prefix", key_prefix, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        )

    assert beatx_cli("jobs", "add", "held", "--func", "t.job", "--every", "60", "--paused").returncode == 0
    assert beatx_cli("jobs", "add", "live", "--func", "t.job", "--every", "60").returncode == 0
    rows = {line.split()[0]: line.split() for line in beatx_cli("jobs", "list").stdout.splitlines()[1:]}
    # ID FUNC TRIGGER(3 words) STATUS NEXT RUN(3 words) ...: the paused one shows "-".
    assert rows["held"][5:7] == ["paused", "-"], rows["held"]
    assert rows["live"][5] == "active" and rows["live"][6] != "-", rows["live"]
    shown = beatx_cli("jobs", "show", "held").stdout
    assert any(line.split()[:3] == ["next", "run", "-"] for line in shown.splitlines()), shown
