"""The fire-path state machine of ``tests/engine/test_fire_path_model.py`` on the Django store,
on SQLite and on PostgreSQL: the same two beats, faults and invariants, against the ORM."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from beatx.stores.base import JobStore
from beatx.testing import FakeClock
from django_beatx import models as m
from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks
from tests.engine.test_fire_path_model import (
    MODEL_SETTINGS,
    FirePathMachine,
    assert_faults_landed,
    run_every_fault_once,
)


def machine_on(alias: str) -> type[FirePathMachine]:
    def make(clock: FakeClock) -> JobStore:
        return DjangoStore(clock=clock, using=alias)

    def close(store: JobStore) -> None:
        # Each example starts from empty tables (the test's transaction spans all of them).
        for model in (m.JobRun, m.Job, m.Lease, m.BeatState, m.MetaValue, m.ChangeCounter):
            model.objects.using(alias).all().delete()

    machine = type(f"DjangoFirePathMachine_{alias}", (FirePathMachine,), {})
    machine.make_store = staticmethod(make)  # type: ignore[assignment]
    machine.close_store = staticmethod(close)  # type: ignore[assignment]
    return machine


@pytest.mark.parametrize(
    "alias",
    [
        pytest.param("default", id="sqlite", marks=pytest.mark.django_db(databases=["default"])),
        pytest.param("postgres", id="postgres", marks=postgres_marks()),
    ],
)
def test_the_fire_path_on_the_django_store(alias: str, request: pytest.FixtureRequest) -> None:
    if alias == "postgres":
        request.getfixturevalue("postgres_available")
    machine = machine_on(alias)
    run_every_fault_once(machine)
    run_state_machine_as_test(
        machine, settings=settings(MODEL_SETTINGS, max_examples=max(MODEL_SETTINGS.max_examples // 8, 10))
    )
    assert_faults_landed(machine.__name__)
