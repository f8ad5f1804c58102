"""The leader-kill and leader-freeze chaos scenarios of ``tests/ha/test_chaos.py`` on the Django
store on PostgreSQL.

Same harness (:mod:`tests.ha.chaos`): three ``celery -A tests.ha.proj beat -S beatx`` processes,
one worker with the beatx hook and the duplicate guard (``beatx_dedupe = True``, the documented
setup), 50 jobs every second with the default policy, a 5 s lease, Redis as the broker and for
the worker's records; but ``beatx_store = "django://"`` on a PostgreSQL database of the test's
own (``beatx_chaos_<random>``: created, migrated with ``manage.py migrate``, dropped at the
end), configured in the subprocesses as ``tests/django/test_pg_soak.py`` does
(``DJANGO_SETTINGS_MODULE=tests.django.settings`` and ``BEATX_TEST_PG_DEFAULT``). This process
reads the lease and adds the jobs through a :class:`DjangoStore` on a connection alias of that
database.

Asserted: every strike landed on the lease holder; no fire missing; no fire run twice (the
batch a struck leader published before its write-back is sent again with the same task ids,
and the guard, which keeps its memory in the run records, drops the second delivery);
``pg_stat_database.deadlocks`` of the database unchanged; every beat alive at the stop but the
killed ones (each replaced at once).

About 80 s each; one at a time on a small machine::

    .venv/bin/pytest tests/django/test_chaos_django.py -m slow -s -p no:cacheprovider
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest
from django.db import connections

from django_beatx.store import DjangoStore
from tests.ha.chaos import (
    ChaosCluster,
    LeaderRun,
    check_harness,
    details,
    fmt_us,
    sigkill_leader_every_10s,
    sigstop_leader_past_its_lease,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_USER = os.environ.get("BEATX_PG_USER", "postgres")
#: Database creation and migration + the scenario (about 80 s) + teardown, with room to spare.
TIME_LIMIT = 360


def pg_deadlocks(name: str) -> tuple[int, int]:
    """``deadlocks`` and ``xact_rollback`` of database ``name`` (a fresh statistics snapshot)."""
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as c:
        row = c.execute(
            "SELECT deadlocks, xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    assert row is not None, f"no pg_stat_database row for {name}"
    return int(row[0]), int(row[1])


def _dump_runs(name: str, path: Path) -> None:
    """The database's run records, to a CSV file of the test (kept after the drop)."""
    import psycopg

    query = "COPY (SELECT * FROM django_beatx_jobrun ORDER BY id) TO STDOUT WITH CSV HEADER"
    try:
        with (
            psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name) as conn,
            conn.cursor() as cursor,
            cursor.copy(query) as copy_out,
            path.open("wb") as out,
        ):
            for block in copy_out:
                out.write(bytes(block))
    except Exception as exc:
        print(f"could not dump the run records: {exc!r}")


class LockProbe:
    """Polls ``pg_stat_activity`` of the database (every 0.25 s, in a thread) for backends
    waiting on a lock: the longest wait seen, and which statements waited on which (the
    blocker's state and statement). Diagnostics only: nothing is asserted on it."""

    QUERY = """
        SELECT w.pid, extract(epoch FROM now() - w.query_start), left(w.query, 90),
               b.pid, b.state, extract(epoch FROM now() - b.xact_start), left(b.query, 90)
        FROM pg_stat_activity w
        JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid) ON true
        JOIN pg_stat_activity b ON b.pid = blocker.pid
        WHERE w.datname = %s AND w.wait_event_type = 'Lock'
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.longest = 0.0
        self.samples = 0
        self.pairs: Counter[str] = Counter()
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="lock-probe", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _poll(self) -> None:
        import psycopg

        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
            ) as conn:
                while not self._stop.wait(0.25):
                    rows = conn.execute(self.QUERY, (self.name,)).fetchall()
                    if rows:
                        self.samples += 1
                    for _pid, waited, query, _bpid, bstate, bxact, bquery in rows:
                        self.longest = max(self.longest, float(waited or 0))
                        key = f"[{query!r}] waits on a backend {bstate} (xact {float(bxact or 0):.1f}s) [{bquery!r}]"
                        self.pairs[key] += 1
        except Exception as exc:
            self.error = repr(exc)

    def describe(self, limit: int = 6) -> str:
        lines = [f"lock waits: {self.samples} samples with a waiter, longest wait {self.longest:.1f}s"]
        lines += [f"  {n}x {pair}" for pair, n in self.pairs.most_common(limit)]
        if self.error:
            lines.append(f"  probe error: {self.error}")
        return "\n".join(lines)


@dataclass
class ChaosDatabase:
    name: str
    alias: str
    store: DjangoStore


@pytest.fixture
def chaos_db(postgres_available: None, django_db_blocker: object, tmp_path: Path) -> Iterator[ChaosDatabase]:
    """A PostgreSQL database of this test (created, migrated, dropped at the end, also when the
    test fails), with a connection alias in this process and a :class:`DjangoStore` on it."""
    import psycopg
    from psycopg import sql

    if "postgres" not in connections.settings:
        pytest.skip("no PostgreSQL alias in tests.django.settings")
    suffix = uuid.uuid4().hex[:10]
    name, alias = f"beatx_chaos_{suffix}", f"chaos_{suffix}"
    admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)
    created = False
    store: DjangoStore | None = None
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created = True
        migrate = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--database", "default", "--no-input", "-v", "0"],
            check=False,
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.django.settings",
                "BEATX_TEST_PG_DEFAULT": name,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}"
        config = copy.deepcopy(connections.settings["postgres"])
        config["NAME"] = name
        connections.settings[alias] = config
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            store = DjangoStore(using=alias)
            yield ChaosDatabase(name, alias, store)
    finally:
        if store is not None:
            try:
                store.close()
            except Exception as exc:
                print(f"could not close the store: {exc!r}")
        if alias in connections.settings:
            try:
                connections[alias].close()
                del connections[alias]
            except Exception as exc:
                print(f"could not close the connection {alias}: {exc!r}")
            del connections.settings[alias]
        if created:
            _dump_runs(name, tmp_path / "jobruns.csv")
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def django_cluster(
    chaos_db: ChaosDatabase, tmp_path: Path, redis_url: str, key_prefix: str
) -> Iterator[ChaosCluster]:
    """A chaos cluster on the ``django://`` store of ``chaos_db``, with the duplicate guard;
    its processes are stopped at the end (before the database is dropped)."""
    cluster = ChaosCluster(
        tmp_path,
        broker_url=redis_url,
        store_url="django://",
        record_url=redis_url,
        key_prefix=key_prefix,
        dedupe=True,
        store=chaos_db.store,
        extra_env={"DJANGO_SETTINGS_MODULE": "tests.django.settings", "BEATX_TEST_PG_DEFAULT": chaos_db.name},
    )
    try:
        yield cluster
    finally:
        cluster.stop_all()


def _run(cluster: ChaosCluster, chaos_db: ChaosDatabase, scenario: object) -> tuple[LeaderRun, int, int]:
    """Run a leader scenario; stop every process; return it with the deadlocks and rollbacks
    of the database during it."""
    deadlocks_before, rollbacks_before = pg_deadlocks(chaos_db.name)
    assert callable(scenario)
    with LockProbe(chaos_db.name) as probe:
        run: LeaderRun = scenario(cluster)
    print(probe.describe())
    run.figures["lock_wait_max_s"] = f"{probe.longest:.1f}"
    check_harness(cluster, run.drained)
    for process in reversed(cluster.processes):  # every backend exits: its statistics are flushed
        process.stop()
    time.sleep(1.5)
    deadlocks_after, rollbacks_after = pg_deadlocks(chaos_db.name)
    return run, deadlocks_after - deadlocks_before, rollbacks_after - rollbacks_before


def _report(cluster: ChaosCluster, run: LeaderRun, deadlocks: int, rollbacks: int) -> None:
    """Print the summary line."""
    deadlock_lines = sum(p.output().count("deadlock detected") for p in cluster.processes)
    run.report(
        cluster,
        store="django-postgres",
        deadlocks=f"+{deadlocks}",
        deadlock_log_lines=deadlock_lines,
        rollbacks=f"+{rollbacks}",
        strikes_at="[" + ",".join(fmt_us(round(s.at * 1e6)) for s in run.strikes) + "]",
    )


def _check(run: LeaderRun, deadlocks: int, *, killed: bool) -> None:
    m = run.m
    assert run.landed == run.planned, run.strikes_message()
    if not killed:
        assert all(run.alive), f"a beat died: alive at the stop {run.alive}"
    assert not m.duplicates, f"{len(m.duplicates)} fire(s) executed more than once\n{details(m)}"
    assert not m.missing, f"{len(m.missing)} of {m.expected} expected fires never executed\n{details(m)}"
    assert deadlocks == 0, f"{deadlocks} deadlock(s) in the database during the run"


@pytest.mark.timeout(TIME_LIMIT, method="signal")
# Strict again: the fires it lost were a failover gap held back by a run in flight, of which
# the beat sent only the newest after the wait (tests/engine/test_engine.py,
# test_a_failover_gap_held_back_by_a_run_in_flight_sends_every_late_fire_once_the_run_ends).
def test_sigkill_leader_every_10s_on_django_postgres(
    django_cluster: ChaosCluster, chaos_db: ChaosDatabase
) -> None:
    """``test_sigkill_leader_every_10s`` on the Django store: 6 SIGKILLs of the lease holder
    (the 1st, 3rd and 5th mid-batch), each killed beat replaced at once."""
    cluster = django_cluster
    run, deadlocks, rollbacks = _run(
        cluster, chaos_db, lambda c: sigkill_leader_every_10s(c, "sigkill-leader-django-pg")
    )
    _report(cluster, run, deadlocks, rollbacks)
    _check(run, deadlocks, killed=True)


@pytest.mark.timeout(TIME_LIMIT, method="signal")
def test_sigstop_leader_past_its_lease_on_django_postgres(
    django_cluster: ChaosCluster, chaos_db: ChaosDatabase
) -> None:
    """``test_sigstop_leader_past_its_lease`` on the Django store: 3 freezes of the lease holder
    for 8 s (the lease is 5 s), then SIGCONT."""
    cluster = django_cluster
    run, deadlocks, rollbacks = _run(
        cluster,
        chaos_db,
        lambda c: sigstop_leader_past_its_lease(c, "sigstop-leader-django-pg"),
    )
    _report(cluster, run, deadlocks, rollbacks)
    _check(run, deadlocks, killed=False)
