"""The Redis store's run ledger: one list per job, each entry a small JSON object.

Each write about a run (the beat's send, the worker's start, retry and end) appends one
entry to ``{prefix}runs:{job id}`` in the same Lua script as the state it goes with (the
write-back, ``run_started``, ``run_finished``), so the ledger and the job never disagree. The
list is cut to its last ``ENTRIES_PER_RUN × run_history`` entries (``RPUSH`` answers the
length; ``LTRIM`` only past it) and expires ``run_history_days`` after its last entry. Reading
folds the entries of one task id, oldest first, with :func:`beatx.ledger.merge`.

A list, not a stream: a new stream takes about 4.7 kB and ``XADD`` to it 7 µs, a new list a few
dozen bytes and ``RPUSH`` under 2 µs; a burst writes thousands of new ledgers at once.

Entry keys (absent: unknown): ``t`` task id, ``o`` outcome, ``n`` nominal time, ``s`` sent at,
``b`` started at, ``f`` finished at (ISO 8601), ``d`` duration (seconds), ``w`` worker, ``e``
error, ``r`` reason, ``a`` retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from beatx.errors import SerializationError
from beatx.ledger import RunOutcome, RunRecord, merge
from beatx.stores.redis_common import as_str, from_iso

__all__ = ["ENTRIES_PER_RUN", "RUNS_KEY", "entry", "records_from_entries", "sent_entry"]

#: List per job: its run ledger.
RUNS_KEY = "{prefix}runs:{job_id}"
#: Entries kept per run of ``run_history`` (sent, running, end; a retry adds two).
ENTRIES_PER_RUN = 3


def sent_entry(task_id: str, nominal_iso: str, sent_iso: str) -> str:
    """The entry of one fire the beat sent (the burst's hot path: no dict, no ``json.dumps``)."""
    return f'{{"t":{encode_basestring(task_id)},"o":"sent","n":"{nominal_iso}","s":"{sent_iso}"}}'


def entry(task_id: str, outcome: RunOutcome, **fields: str | float | None) -> str:
    """An entry with ``fields`` (the keys above; None and empty values left out)."""
    values: dict[str, Any] = {"t": task_id, "o": outcome.value}
    values.update((key, value) for key, value in fields.items() if value is not None and value != "")
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def _time(value: Any) -> datetime | None:
    return from_iso(str(value)) if value else None


def _record(job_id: str, raw: Any) -> RunRecord:
    try:
        fields = json.loads(as_str(raw))
        duration = fields.get("d")
        return RunRecord(
            job_id=job_id,
            task_id=str(fields["t"]),
            outcome=RunOutcome(fields["o"]),
            scheduled_at=_time(fields.get("n")),
            sent_at=_time(fields.get("s")),
            started_at=_time(fields.get("b")),
            finished_at=_time(fields.get("f")),
            duration=float(duration) if duration is not None else None,
            worker=fields.get("w") or None,
            error=fields.get("e") or None,
            reason=fields.get("r") or None,
            retries=int(fields.get("a") or 0),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise SerializationError(f"job {job_id!r}: unreadable run ledger entry {raw!r}: {exc}") from exc


def records_from_entries(job_id: str, entries: Iterable[Any]) -> list[RunRecord]:
    """The runs the list ``entries`` (oldest first) describes, one per task id, in the order
    each first appeared."""
    runs: dict[str, RunRecord] = {}
    for raw in entries:
        update = _record(job_id, raw)
        runs[update.task_id] = merge(runs.get(update.task_id), update)
    return list(runs.values())
