"""``python -m benchmarks.pg_explain [--rows N] [--due N] [--repeat N]``: the query plans of
the Django store's hot queries on PostgreSQL, at a million jobs by default.

Creates a database of its own (``beatx_bench_<random>``, dropped at the end), migrates it,
loads ``--rows`` hourly interval jobs with ``COPY`` (one in a hundred paused, a hundred claimed),
then captures the SQL the store really sends (``CaptureQueriesContext``) for:

- ``DjangoStore.next_run_time()``: the earliest next run of an unclaimed schedulable job, and
  the earliest claim deadline (two queries);
- ``acquire_due_jobs``: the due query (``... ORDER BY next_run_time, id LIMIT ... FOR NO KEY
  UPDATE SKIP LOCKED``);
- ``due_count`` and ``count_jobs_by_status``;

in two states, idle (nothing due) and a burst (``--due`` jobs due), and prints
``EXPLAIN (ANALYZE, BUFFERS)`` of each, with every index of the migrations and again without
the partial index ``beatx_job_next_idx`` (dropped in a transaction that is rolled back), and
a summary of the median execution times. Every statement runs in a transaction that is
rolled back, so claims and row locks are never kept.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.pg import BenchPostgres, beatx_rows, setup

NEW_INDEX = "beatx_job_next_idx"
_EXEC = re.compile(r"Execution Time: ([0-9.]+) ms")


def capture(call: Any) -> list[str]:
    """The SQL statements ``call()`` sends (rolled back), as the database received them."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        call()
        transaction.set_rollback(True)
    return [q["sql"] for q in queries.captured_queries]


def pick(statements: list[str], *needles: str) -> str:
    for sql in statements:
        if all(n in sql for n in needles):
            return sql
    raise LookupError(f"no statement with {needles!r} among {len(statements)}")


def explain(sql: str, *, without: str | None, repeat: int) -> tuple[str, float]:
    """The plan of the last of ``repeat`` runs and the median execution time (ms)."""
    from django.db import connection, transaction

    times: list[float] = []
    plan = ""
    for _ in range(repeat):
        with transaction.atomic(), connection.cursor() as cursor:
            if without:
                cursor.execute(f"DROP INDEX {without}")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
        match = _EXEC.search(plan)
        times.append(float(match.group(1)) if match else float("nan"))
    return plan, statistics.median(times)


def hot_queries(limit: int) -> dict[str, str]:
    from django_beatx.store import DjangoStore

    store = DjangoStore()
    now = datetime.now(UTC)
    nrt = capture(store.next_run_time)
    acquire = capture(lambda: store.acquire_due_jobs(now, limit=limit))
    return {
        "next_run_time() 1: earliest next run": pick(nrt, 'AS "next_run_time"'),
        "next_run_time() 2: earliest claim deadline": pick(nrt, 'AS "claimed_until"'),
        "acquire_due_jobs: due rows, FOR NO KEY UPDATE SKIP LOCKED": pick(acquire, "SKIP LOCKED"),
        "due_count": pick(capture(lambda: store.due_count(now)), "COUNT(*)"),
        "count_jobs_by_status": pick(capture(store.count_jobs_by_status), "GROUP BY"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_explain", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs loaded (default 1,000,000)")
    parser.add_argument("--due", type=int, default=10_000, help="jobs due in the burst state (10,000)")
    parser.add_argument("--limit", type=int, default=1000, help="claim limit (the engine's batch size)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per plan (the median time is kept)")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with BenchPostgres() as database:
        setup(database.name)
        from django.core.management import call_command
        from django.db import connection

        from django_beatx import models as m

        log(f"database {database.name}: migrating, loading {args.rows:,} jobs")
        call_command("migrate", verbosity=0, interactive=False)
        started = time.perf_counter()
        loaded = beatx_rows(args.rows)
        with connection.cursor() as cursor:
            # One job in a hundred paused, a hundred held by a claim (a beat's window).
            cursor.execute("UPDATE django_beatx_job SET status = 'paused' WHERE id LIKE %s", ["%00"])
            cursor.execute(
                "UPDATE django_beatx_job SET claimed_until = %s, claim_token = 'x' WHERE id LIKE %s",
                [datetime.now(UTC) + timedelta(minutes=1), "job-00001%"],
            )
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0]
            cursor.execute("VACUUM ANALYZE django_beatx_job")
        log(f"loaded in {time.perf_counter() - started:.1f}s (COPY {loaded['load_s']:.1f}s)")
        print(f"# EXPLAIN of the Django store's hot queries, {args.rows:,} jobs\n\n{version}\n")
        summary: list[tuple[str, str, float, float]] = []
        for state in ("idle", "burst"):
            if state == "burst":
                due_at = datetime.now(UTC) - timedelta(seconds=1)
                n = m.Job.objects.filter(id__lt=f"job-{args.due:07d}").update(next_run_time=due_at)
                with connection.cursor() as cursor:
                    cursor.execute("VACUUM ANALYZE django_beatx_job")
                print(f"## burst: {n:,} jobs due (claims hold {args.limit:,} at a time)\n")
            else:
                print("## idle: nothing due\n")
            for name, sql in hot_queries(args.limit).items():
                print(f"### {name} ({state})\n\n```sql\n{sql}\n```\n")
                with_ms = without_ms = float("nan")
                for without in (None, NEW_INDEX):
                    plan, ms = explain(sql, without=without, repeat=args.repeat)
                    label = f"without {without}" if without else "with the migrations' indexes"
                    print(f"{label} (median {ms:.3f} ms over {args.repeat}):\n\n```\n{plan}\n```\n")
                    if without:
                        without_ms = ms
                    else:
                        with_ms = ms
                summary.append((state, name, with_ms, without_ms))
        print("## Summary (median execution time, ms)\n")
        print(f"| state | query | with {NEW_INDEX} | without it |\n|---|---|---|---|")
        for state, name, with_ms, without_ms in summary:
            print(f"| {state} | {name} | {with_ms:.3f} | {without_ms:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
