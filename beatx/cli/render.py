"""Rendering the ``beatx`` command's answers: rich tables, JSON, times in a zone."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from typing import TYPE_CHECKING, Any

import click

from beatx.jobs import Job

if TYPE_CHECKING:
    from rich.console import Console

    from beatx.stores.base import JobStore


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _key_value_table() -> Any:
    """A borderless two-column table: bold keys, folded values."""
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(_jsonable(value), indent=2, ensure_ascii=False))


def _console() -> Console:
    from rich.console import Console

    # Pipes and files get a wide console, so tables are not squeezed to 80 columns.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(width=width, highlight=False, soft_wrap=False)


def _when(value: datetime | None, tz: tzinfo) -> str:
    if value is None:
        return "-"
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value)


def _job_summary(job: Job) -> dict[str, Any]:
    return job.describe()


def _job_detail(job: Job) -> dict[str, Any]:
    detail = job.describe()
    detail.update(
        {
            "trigger_state": job.trigger.to_dict(),
            "args": list(job.args),
            "kwargs": job.kwargs,
            "options": job.options,
            "last_finished_at": job.last_finished_at,
            "last_duration": job.last_duration,
            "revision": job.revision,
        }
    )
    return detail


_SORTS: dict[str, Callable[[Job], Any]] = {
    # Jobs without a next run (paused, completed) sort last.
    "next_run": lambda job: (
        job.next_run_time is None,
        job.next_run_time or datetime.min.replace(tzinfo=UTC),
        job.id,
    ),
    "id": lambda job: job.id,
    "name": lambda job: (job.name, job.id),
}


def _count_by_status(store: JobStore) -> dict[str, int]:
    return {status.value: n for status, n in store.count_jobs_by_status().items()}
