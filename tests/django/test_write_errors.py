"""A job the database refuses is the job's fault: the management API says which job and which
field (``InvalidJobError``, exit code 2 in the CLI), not that the store is unreachable."""

from __future__ import annotations

import pytest

from beatx.errors import InvalidJobError, StoreError
from beatx.manager import JobManager
from beatx.triggers import IntervalTrigger
from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks

pytestmark = pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks())])


@pytest.fixture
def manager(postgres_available: None, _pg: None) -> JobManager:
    return JobManager(DjangoStore(using="postgres"))


def test_a_nul_character_postgresql_cannot_hold_names_the_job_and_field(manager: JobManager) -> None:
    with pytest.raises(InvalidJobError, match=r"job 'nul': the database refused its kwargs") as info:
        manager.add_job(
            "tests.sample_tasks:record", IntervalTrigger(seconds=5), id="nul", kwargs={"a": "x\x00y"}
        )
    assert isinstance(info.value.__cause__, StoreError)  # what the store raised, kept as the cause
    assert manager.get_job("nul") is None


def test_a_value_too_long_for_its_column_names_the_job(manager: JobManager) -> None:
    with pytest.raises(InvalidJobError, match=r"job 'long': the database refused it: .*too long"):
        manager.add_job("tests.sample_tasks:record", IntervalTrigger(seconds=5), id="long", name="n" * 5000)
