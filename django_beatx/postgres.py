"""The beat's two burst statements on PostgreSQL, one statement each whatever the batch size.

A burst writes back a thousand jobs and records a thousand sent fires per tick. Read as model
objects and written with Django's ``bulk_update`` (a ``CASE WHEN`` per field per row), that
cost more than the fires themselves. Here each is one statement whose rows travel as one JSON
parameter, turned back into typed rows by the server (``json_to_recordset``): the Python side
builds plain lists, and the write-back's rules are SQL conditions over the locked rows.

- :func:`claim` (:func:`claim_statement`): the due jobs locked and claimed in one ``UPDATE ... RETURNING``.
- :func:`first_values`: several one-value queries in one round trip (the idle tick's).
- :func:`running_counts`: runs in flight per job, the ids as one array parameter.
- :func:`lock_jobs` and :func:`write_back`: the rules of :meth:`django_beatx.store.DjangoStore.release_jobs` (a
  write-back applies only under its own claim, or after a management write dropped the claim;
  a retried write-back that landed already is ignored).
- :func:`record_dispatches`: sent fires merged into the run history by task id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
import psycopg.types.json
from django.db import connections, models
from django.db.models.base import ModelState
from psycopg.pq import Format

from beatx.jobs import JobStatus
from beatx.ledger import RunRecord
from beatx.stores.base import JobRelease
from django_beatx import models as m
from django_beatx.querysets import IN_FLIGHT

__all__ = [
    "claim",
    "first_values",
    "lock_jobs",
    "record_dispatches",
    "running_counts",
    "write_back",
    "write_back_rounds",
]

#: ``(field, SQL type)`` of each write-back row, in :func:`_release_row`'s order.
_RELEASE_COLUMNS = (
    ("id", "text"),
    ("claim", "text"),
    ("fired", "integer"),
    ("missed", "integer"),
    ("skipped", "integer"),
    ("last_run_time", "timestamptz"),
    ("error", "text"),
    ("next_run_time", "timestamptz"),
    ("status", "text"),
)
#: The run record columns a dispatch writes; the others take their model default. ``outcome``
#: and ``reason`` are given only by the write-back's missed / skipped records (the fires'
#: rows leave them out: NULL, the default).
_DISPATCH_COLUMNS = (
    ("job_id", "text"),
    ("task_id", "text"),
    ("scheduled_at", "timestamptz"),
    ("outcome", "text"),
    ("reason", "text"),
)


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_iso, separators=(",", ":"))


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _recordset(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {sql_type}" for name, sql_type in columns)


def _column(model: type[models.Model], name: str, qn: Any) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return str(qn(field.column))


def _release_row(release: JobRelease) -> dict[str, Any]:
    # The status a write-back may set (the others are the engine's view, not a change).
    ends = release.status is JobStatus.COMPLETED or (
        release.status is JobStatus.FAILED and release.error is not None
    )
    return {
        "id": release.job_id,
        "claim": release.claim,
        "fired": len(release.fired),
        "missed": release.missed,
        "skipped": release.skipped,
        "last_run_time": release.last_run_time,
        "error": release.error,
        "next_run_time": release.next_run_time,
        "status": release.status.value if ends else None,
    }


def claim_statement(jobs: Any, due: Any, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """The ``UPDATE ... RETURNING`` of :func:`claim`, and its parameters. The rows are found
    by primary key (``= ANY(ARRAY(<due ids>))``): as ``IN (<due ids>)`` the planner joins the
    due ids to a scan of the whole table."""
    qn = connections[jobs.db].ops.quote_name
    ids_sql, ids_params = due.values("pk").query.get_compiler(using=jobs.db).as_sql()
    assignments = ", ".join(f"{_column(m.Job, name, qn)} = %s" for name in values)
    returned = ", ".join(f"j.{qn(str(f.column))}" for f in m.Job._meta.concrete_fields)
    sql = (
        f"UPDATE {qn(m.Job._meta.db_table)} AS j SET {assignments} "
        f"WHERE j.{_column(m.Job, 'id', qn)} = ANY(ARRAY({ids_sql})) RETURNING {returned}"
    )
    return sql, [*values.values(), *ids_params]


def claim(jobs: Any, due: Any, values: dict[str, Any]) -> list[m.Job]:
    """Claim the rows ``due`` selects (a job queryset, ordered, sliced and locked ``SKIP
    LOCKED``) by setting ``values`` (the claim's columns) in one statement; returns the claimed
    rows, as they are after the claim, in ``due``'s order of next run time and id."""
    sql, params = claim_statement(jobs, due, values)
    with connections[jobs.db].cursor() as cursor:
        _native_loaders(cursor.cursor)
        cursor.execute(sql, params)
        found = cursor.fetchall()
    attnames = [f.attname for f in m.Job._meta.concrete_fields]
    rows = [_loaded_row(jobs.db, attnames, values) for values in found]
    rows.sort(key=lambda row: (row.next_run_time, row.pk))
    return rows


def _loaded_row(db: str, attnames: list[str], values: Sequence[Any]) -> m.Job:
    """The row a claim returned, as ``Model.from_db`` makes it but without ``Model.__init__``
    (its per-field descriptor checks and the pre/post-init signals, which django_beatx does
    not use): every column's value set as its attribute, the instance marked as loaded from
    ``db``. ``Model.__init__`` was a fifth of a burst's claim."""
    row = m.Job.__new__(m.Job)
    state = ModelState()
    state.adding = False
    state.db = db
    row.__dict__.update(zip(attnames, values, strict=True))
    row._state = state
    return row


def _native_loaders(cursor: Any) -> None:
    """Let ``cursor`` (psycopg's) read timestamps and JSON with psycopg's own loaders (the
    compiled ones where psycopg has them) instead of Django's Python subclass: rows it reads
    hold the model's Python values already, for ``Model.from_db`` (django_beatx requires
    ``USE_TZ``: both read aware UTC times). Django's loader parses each timestamp in Python:
    it was a third of a burst's claim."""
    oid = psycopg.adapters.types["timestamptz"].oid
    cursor.adapters.register_loader(oid, psycopg.adapters.get_loader(oid, Format.TEXT))
    psycopg.types.json.set_json_loads(_json_loads, cursor)


#: JSON values most job columns hold (no arguments, no options, no calendars), made without
#: parsing: a fresh object each time, as a parse would give.
_EMPTY_JSON: dict[bytes, Callable[[], Any]] = {b"{}": dict, b"[]": list}


def _json_loads(data: bytes | str) -> Any:
    """``json.loads`` for the job columns a claim reads: an empty object or list without
    parsing, anything else parsed from ``str`` (given ``bytes``, ``json.loads`` first works out
    their encoding). About a third of a burst's claim was its seven JSON columns per row."""
    if isinstance(data, bytes):
        make = _EMPTY_JSON.get(data)
        if make is not None:
            return make()
        data = data.decode()
    return json.loads(data)


def first_values(using: str, *queries: Any) -> list[Any]:
    """The value each of ``queries`` (querysets of one column, sliced to one row) selects, or
    None where it selects no row, in one ``SELECT (...), (...)``."""
    parts, params = [], []
    for query in queries:
        sql, query_params = query.query.get_compiler(using=using).as_sql()
        parts.append(f"({sql})")
        params.extend(query_params)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}", params)
        row = cursor.fetchone()
    return list(row) if row is not None else [None] * len(queries)


def running_counts(cursor: Any, qn: Any, job_ids: list[str], now: datetime) -> dict[str, int]:
    """How many runs of each of ``job_ids`` a worker started and has not finished (running,
    or retried and not started again yet), whose in-flight record has not expired at ``now``
    (jobs with none are left out)."""
    run = m.JobRun._meta
    cursor.execute(
        f"SELECT {_column(m.JobRun, 'job', qn)}, count(*) FROM {qn(run.db_table)} "
        f"WHERE {_column(m.JobRun, 'outcome', qn)} = ANY(%s) AND {_column(m.JobRun, 'expires_at', qn)} > %s "
        f"AND {_column(m.JobRun, 'job', qn)} = ANY(%s) GROUP BY 1",
        [list(IN_FLIGHT), now, job_ids],
    )
    return {job_id: int(count) for job_id, count in cursor.fetchall()}


def lock_jobs(cursor: Any, qn: Any, job_ids: list[str]) -> None:
    """Lock the rows of ``job_ids`` ``FOR NO KEY UPDATE`` in id order (the store's one lock
    order; a run record's key check never waits for it)."""
    pk = _column(m.Job, "id", qn)
    cursor.execute(
        f"SELECT {pk} FROM {qn(m.Job._meta.db_table)} WHERE {pk} = ANY(%s) ORDER BY {pk} FOR NO KEY UPDATE",
        [job_ids],
    )


def write_back_rounds(releases: Sequence[JobRelease]) -> list[list[JobRelease]]:
    """``releases`` in rounds that name each job once (an ``UPDATE ... FROM`` applies one
    source row per target row): a job's k-th release goes to round k, so its releases apply in
    order. Almost always one round."""
    rounds: list[list[JobRelease]] = []
    seen: dict[str, int] = {}
    for release in releases:
        index = seen.get(release.job_id, 0)
        seen[release.job_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(release)
    return rounds


def write_back(cursor: Any, qn: Any, releases: Sequence[JobRelease], *, updated_at: datetime) -> int:
    """Apply ``releases`` (each job named once, its row locked by the caller) in one
    ``UPDATE``; returns how many jobs it changed.

    Per job, as :meth:`~django_beatx.store.DjangoStore.release_jobs` describes: nothing when
    another claim holds the job or this claim was written back already; else the counters,
    the last run time (the later one) and the error; and, if the claim is still the job's,
    the next run time and an ending status, with the claim cleared. Every right-hand side
    reads the row as it was before the statement.
    """
    job = qn(m.Job._meta.db_table)

    def col(name: str) -> str:
        return _column(m.Job, name, qn)

    token, still_ours = col("claim_token"), f"j.{col('claim_token')} <> ''"
    sets = {
        "total_run_count": f"j.{col('total_run_count')} + v.fired",
        "misfire_count": f"j.{col('misfire_count')} + v.missed",
        "skip_count": f"j.{col('skip_count')} + v.skipped",
        "last_run_time": f"GREATEST(j.{col('last_run_time')}, v.last_run_time)",
        "last_error": f"COALESCE(v.error, j.{col('last_error')})",
        "released_claim": f"COALESCE(v.claim, j.{col('released_claim')})",
        "next_run_time": f"CASE WHEN {still_ours} THEN v.next_run_time ELSE j.{col('next_run_time')} END",
        "status": f"CASE WHEN {still_ours} AND v.status IS NOT NULL THEN v.status ELSE j.{col('status')} END",
        "claimed_by": f"CASE WHEN {still_ours} THEN '' ELSE j.{col('claimed_by')} END",
        "claimed_until": f"CASE WHEN {still_ours} THEN NULL ELSE j.{col('claimed_until')} END",
        "claim_token": "''",
        "updated_at": "%s",
    }
    assignments = ", ".join(f"{col(name)} = {value}" for name, value in sets.items())
    cursor.execute(
        f"UPDATE {job} AS j SET {assignments} "
        f"FROM json_to_recordset(%s::json) AS v({_recordset(_RELEASE_COLUMNS)}) "
        f"WHERE j.{col('id')} = v.id AND (j.{token} = '' OR j.{token} = v.claim) "
        f"AND (v.claim IS NULL OR j.{col('released_claim')} <> v.claim)",
        [updated_at, _json([_release_row(release) for release in releases])],
    )
    return int(max(cursor.rowcount, 0))


def record_dispatches(
    cursor: Any,
    connection: Any,
    fires: Sequence[tuple[str, str, datetime]],
    *,
    dispatched_at: datetime,
    notes: Sequence[RunRecord] = (),
) -> None:
    """Add sent fires, ``(job id, task id, scheduled at)`` each, and the write-back's missed /
    skipped records (``notes``, with their outcome and reason) to the run history in one
    ``INSERT``, merged by task id into the records a worker made first (their times are kept
    where set; a record that exists keeps its outcome). Fires of jobs that do not exist (any
    more) are left out. Rows are inserted in task-id order, so two writers of overlapping runs
    take their index entries in one order."""
    qn = connection.ops.quote_name
    meta = m.JobRun._meta
    run, job = qn(meta.db_table), qn(m.Job._meta.db_table)
    given = {name for name, _ in _DISPATCH_COLUMNS} | {"dispatched_at"}
    defaults = {"outcome": m.JobRun.Outcome.DISPATCHED.value, "reason": ""}
    template = m.JobRun()
    others = [
        f
        for f in meta.local_concrete_fields
        if f is not meta.auto_field and f.name not in given and f.attname not in given
    ]
    columns = [_column(m.JobRun, "job", qn), _column(m.JobRun, "task_id", qn)]
    columns += [_column(m.JobRun, "scheduled_at", qn), _column(m.JobRun, "dispatched_at", qn)]
    columns += [_column(m.JobRun, name, qn) for name in defaults]
    columns += [qn(f.column) for f in others]
    values = ["v.job_id", "v.task_id", "v.scheduled_at", "%s::timestamptz"]
    values += [f"COALESCE(v.{name}, %s)" for name in defaults]
    values += [f"%s::{f.db_type(connection)}" for f in others]
    params: list[Any] = [dispatched_at, *defaults.values()]
    params += [f.get_db_prep_save(f.pre_save(template, True), connection) for f in others]
    rows: list[dict[str, Any]] = [
        {"job_id": job_id, "task_id": task_id, "scheduled_at": at} for job_id, task_id, at in fires
    ]
    rows += [
        {
            "job_id": note.job_id,
            "task_id": note.task_id,
            "outcome": note.outcome.value,
            "reason": note.reason or "",
        }
        for note in notes
    ]
    params.append(_json(sorted(rows, key=lambda row: row["task_id"])))
    keep = [_column(m.JobRun, "scheduled_at", qn), _column(m.JobRun, "dispatched_at", qn)]
    cursor.execute(
        f"INSERT INTO {run} AS r ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} "
        f"FROM json_to_recordset(%s::json) AS v({_recordset(_DISPATCH_COLUMNS)}) "
        f"WHERE EXISTS (SELECT 1 FROM {job} AS j WHERE j.{_column(m.Job, 'id', qn)} = v.job_id) "
        f"ORDER BY v.task_id "
        f"ON CONFLICT ({_column(m.JobRun, 'task_id', qn)}) DO UPDATE SET "
        + ", ".join(f"{c} = COALESCE(r.{c}, EXCLUDED.{c})" for c in keep),
        params,
    )
