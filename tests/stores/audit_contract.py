"""The audit log's contract (:meth:`beatx.stores.base.JobStorage.record_change` and
:meth:`~beatx.stores.base.JobStorage.job_changes`), kept by every store: mixed into
:class:`tests.stores.contract.StoreContract`."""

from __future__ import annotations

from datetime import timedelta

from beatx.audit import JobChange
from beatx.stores.base import JobStore
from beatx.testing import FakeClock
from tests.stores.ledger_contract import make_job


class AuditLogContract:
    def test_changes_read_back_newest_first_and_outlive_the_job(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("a"))
        first = JobChange(
            job_id="a",
            at=clock.now(),
            action="added",
            source="api",
            actor="alice",
            changes={"name": [None, "Nightly"], "kwargs": [None, {"dry_run": False, "to": ["é"]}]},
        )
        second = JobChange(
            job_id="a",
            at=clock.now() + timedelta(seconds=5),
            action="paused",
            source="cli",
            changes={"status": ["active", "paused"]},
        )
        store.record_change(first)
        store.record_change(second)
        store.record_change(JobChange(job_id="b", at=clock.now(), action="added", source="api"))
        assert store.job_changes("a") == [second, first]
        assert store.job_changes("a", limit=1) == [second]
        assert store.remove_job("a")
        assert store.job_changes("a") == [second, first]
        assert store.job_changes("missing") == []
