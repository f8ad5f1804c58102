"""Fire task ids: deterministic, and exactly the RFC 4122 uuid5 of (job id, scheduled time)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from beatx.jobs import fire_task_id

NAMESPACE = uuid.UUID("5b1e2c4e-0d1f-4c55-9a4e-6b6565617478")


@given(
    job_id=st.text(min_size=1, max_size=80),
    at=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
)
def test_a_fire_task_id_is_the_uuid5_of_the_job_id_and_the_scheduled_microsecond(
    job_id: str, at: datetime
) -> None:
    micros = round(at.timestamp() * 1_000_000)
    expected = uuid.uuid5(NAMESPACE, f"{job_id}\x00{micros}")
    task_id = fire_task_id(job_id, at)
    assert task_id == str(expected)
    assert uuid.UUID(task_id).version == 5


def test_the_same_fire_always_gets_the_same_id_and_another_fire_another() -> None:
    at = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert fire_task_id("job", at) == fire_task_id("job", at.astimezone(ZoneInfo("Europe/Paris")))
    assert fire_task_id("job", at) != fire_task_id("job", at + timedelta(microseconds=1))
    assert fire_task_id("job", at) != fire_task_id("job2", at)
