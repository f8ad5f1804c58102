"""End to end: the overlap policies with real ``celery worker`` and ``celery beat -S beatx``
subprocesses (Redis broker and store). A slow task (2.5 s) fires every second on a worker of
its own (one slot); what the worker recorded (the run ledger, by task id, and the task's own
record of each start) shows each policy's effect."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pytest

from beatx import IntervalTrigger, JobStatus
from beatx.celery import get_scheduler
from beatx.jobs import fire_task_id
from beatx.ledger import RunOutcome, RunRecord
from tests.e2e.conftest import CeleryCluster, CeleryProcess, parse_time, worker_argv

SLEEP = 2.5


def _worker(cluster: CeleryCluster, queue: str, pool: str) -> CeleryProcess:
    """A worker of one slot on ``queue`` (``pool``: threads, or prefork to terminate runs)."""
    name = f"worker-{queue.rsplit('-', 1)[-1]}"
    argv = [arg for arg in worker_argv(name, 1) if not arg.startswith("--pool")]
    process = CeleryProcess(
        name, [*argv, f"--pool={pool}", "-Q", queue], cluster.env, cluster.logs / f"{name}.log"
    )
    cluster.processes.append(process)
    return process.start("ready.")


def _runs(manager: Any, job_id: str) -> list[RunRecord]:
    return [run for run in manager.job_runs(job_id, limit=50) if run.scheduled_at is not None]


@pytest.mark.slow
@pytest.mark.redis
def test_buffer_one_cancel_other_and_terminate_other_on_a_real_worker(cluster: CeleryCluster) -> None:
    base = f"beatx-overlap-{uuid.uuid4().hex[:6]}"
    policies = {"buffer_one": "threads", "cancel_other": "threads", "terminate_other": "prefork"}
    for policy, pool in policies.items():
        _worker(cluster, f"{base}-{policy}", pool)
    _worker(cluster, f"{base}-failing", "threads")
    cluster.beat()
    manager = get_scheduler(cluster.app())
    for policy in policies:
        manager.add_job(
            "e2e.record",
            IntervalTrigger(seconds=1),
            id=policy,
            args=[policy],
            kwargs={"sleep": SLEEP},
            options={"queue": f"{base}-{policy}"},
            overlap=policy,
        )
    # pause_after_failures, through the worker hooks: a task that always fails.
    manager.add_job(
        "e2e.record",
        IntervalTrigger(seconds=1),
        id="failing",
        args=["failing"],
        kwargs={"fail": True},
        options={"queue": f"{base}-failing"},
        pause_after_failures=3,
    )
    time.sleep(9)
    for policy in policies:
        manager.pause_job(policy)
    time.sleep(SLEEP + 1)  # the last runs end (and their ends are recorded)

    # buffer_one: runs never overlap; each starts as soon as the one before it ended, with
    # the nominal time (and task id) of the newest fire due then; the older ones were skipped.
    rows = sorted(cluster.records("buffer_one"), key=lambda row: row["at"])
    assert len(rows) >= 3, rows
    for row in rows:
        scheduled = parse_time(row["scheduled_at"])
        assert row["task_id"] == fire_task_id("buffer_one", scheduled)
        assert 0 <= row["at"] - scheduled.timestamp() < 1.6, row
    for before, after in itertools.pairwise(rows):
        gap = after["at"] - before["at"]
        assert SLEEP - 0.1 <= gap < SLEEP + 0.8, (before, after)  # waited for the end, then went
    buffered = manager.get_job("buffer_one")
    assert buffered is not None and buffered.skip_count >= 2
    ended = {run.task_id: run for run in _runs(manager, "buffer_one")}
    assert all(ended[row["task_id"]].outcome is RunOutcome.SUCCEEDED for row in rows[:-1])

    # cancel_other: every fire goes on time; the fires queued behind the running one were
    # revoked (the worker dropped them: recorded REVOKED, never started), the running one
    # was left to finish (a revoke without terminate does not stop a started task).
    runs = _runs(manager, "cancel_other")
    revoked = [run for run in runs if run.outcome is RunOutcome.REVOKED]
    succeeded = [run for run in runs if run.outcome is RunOutcome.SUCCEEDED]
    assert len(revoked) >= 2 and len(succeeded) >= 2, runs
    started = {row["task_id"] for row in cluster.records("cancel_other")}
    assert not started & {run.task_id for run in revoked}
    assert all(run.started_at is None for run in revoked)
    cancel = manager.get_job("cancel_other")
    assert cancel is not None and cancel.skip_count == 0 and cancel.total_run_count >= 7

    # terminate_other: each run is killed when the next fire comes (Celery's revoke with
    # terminate: SIGTERM to the pool process), about a second into its 2.5 s; fires that came
    # while the pool replaced its process were revoked before they started.
    runs = _runs(manager, "terminate_other")
    log = next(p for p in cluster.processes if p.name == "worker-terminate_other").output()
    cut = [
        run
        for run in runs
        if run.started_at is not None
        and run.finished_at is not None
        and (run.finished_at - run.started_at).total_seconds() < SLEEP - 0.5
    ]
    assert len(cut) >= 2, runs
    for run in cut:
        assert f"Terminating {run.task_id}" in log
        assert run.task_id == fire_task_id("terminate_other", run.scheduled_at)  # type: ignore[arg-type]
    started = {row["task_id"] for row in cluster.records("terminate_other")}
    assert {run.task_id for run in cut} <= started

    # pause_after_failures=3: the worker paused the job after its third failure in a row.
    failing = manager.get_job("failing")
    assert failing is not None and failing.status is JobStatus.PAUSED, failing
    assert failing.paused_by == "beatx" and failing.pause_note is not None
    assert "3 failed runs in a row" in failing.pause_note and "ValueError: boom failing" in failing.pause_note
    # Nothing ran after the pause (a fire sent while the third failure was being recorded
    # may have run too: the pause is written a few milliseconds after the run ends).
    assert len(cluster.records("failing")) in (3, 4)
