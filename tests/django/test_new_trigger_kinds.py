"""The Django store and model with the RRULE, solar and extended cron triggers: every kind
round-trips through ``DjangoStore`` on SQLite and PostgreSQL, the model names the field that
is wrong, and the database refuses a row of a kind without its fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from beatx.testing import FakeClock
from beatx.triggers import CronTrigger, IntervalTrigger, RRuleTrigger, SolarTrigger, Trigger
from django_beatx.models import SOLAR_EVENT_CHOICES, Job, TriggerKind
from django_beatx.store import DEFINITION_FIELDS, DjangoStore, definition_values
from tests.django.conftest import postgres_marks
from tests.stores.contract import T0, make_job

TRIGGERS: dict[str, Trigger] = {
    "cron-extended": CronTrigger("0 9 L * *", "Europe/Paris", extended=True),
    "cron-seconds": CronTrigger("30 0 3 * * *", "Europe/Paris", seconds=True),
    "cron-both": CronTrigger("15 0 9 ? * FRI#3", "America/New_York", extended=True, seconds=True),
    "cron-plain": CronTrigger("0 3 * * 1-5", "Europe/Paris"),
    "rrule": RRuleTrigger(
        "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1",
        dtstart="2026-01-02T09:00:00",
        timezone="Europe/Paris",
        exdates=["2026-12-25T09:00:00"],
        rdates=["2026-12-24T09:00:00", "2026-12-31T08:00:00+00:00"],
    ),
    "rrule-count": RRuleTrigger(
        "FREQ=DAILY;COUNT=5", dtstart="2026-03-02T07:30:00", timezone="America/New_York"
    ),
    "rrule-until": RRuleTrigger(
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261231T235959Z", dtstart="2026-03-02T18:00:00", timezone="UTC"
    ),
    "rrule-no-dtstart": RRuleTrigger("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", timezone="Europe/Paris"),
    "solar": SolarTrigger("sunset", 48.85, 2.35),
    "solar-south": SolarTrigger("dawn_astronomical", -33.8688, 151.2093),
}


@pytest.fixture(
    params=[
        pytest.param("default", id="sqlite", marks=pytest.mark.django_db(databases=["default"])),
        pytest.param("postgres", id="postgres", marks=postgres_marks()),
    ]
)
def store(request: pytest.FixtureRequest, clock: FakeClock) -> DjangoStore:
    if request.param == "postgres":
        request.getfixturevalue("postgres_available")
    return DjangoStore(clock=clock, using=request.param)


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TRIGGERS))
def test_each_trigger_kind_reads_back_equal(store: DjangoStore, name: str) -> None:
    trigger = TRIGGERS[name]
    store.add_job(make_job("a", trigger=trigger, next_run_time=T0))
    job = store.get_job("a")
    assert job is not None
    assert job.trigger == trigger
    assert job.trigger.to_dict() == trigger.to_dict()
    if not isinstance(trigger, RRuleTrigger) or trigger.dtstart is not None:
        assert job.trigger.next_fire_time(T0) == trigger.next_fire_time(T0)
    (due,) = store.acquire_due_jobs(T0, limit=10)
    assert due.trigger == trigger


def test_an_extended_cron_is_stored_with_its_flags_not_as_a_plain_expression(store: DjangoStore) -> None:
    store.add_job(make_job("a", trigger=TRIGGERS["cron-both"]))
    row = Job.objects.using(store.using).get(pk="a")
    assert (row.trigger_kind, row.cron_extended, row.cron_seconds) == ("cron", True, True)
    store.add_job(make_job("b", trigger=TRIGGERS["cron-plain"]))
    row = Job.objects.using(store.using).get(pk="b")
    assert (row.cron_extended, row.cron_seconds) == (False, False)
    assert "extended" not in store.get_job("b").trigger.to_dict()  # type: ignore[union-attr]


def test_the_rrule_and_solar_columns_hold_the_trigger(store: DjangoStore) -> None:
    store.add_job(make_job("r", trigger=TRIGGERS["rrule"]))
    store.add_job(make_job("s", trigger=TRIGGERS["solar"]))
    rrule = Job.objects.using(store.using).get(pk="r")
    assert rrule.trigger_kind == TriggerKind.RRULE and rrule.rrule == "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1"
    assert rrule.rrule_dtstart == datetime(2026, 1, 2, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    assert rrule.timezone == "Europe/Paris"
    assert rrule.rrule_exdates == ["2026-12-25T09:00:00"]
    assert rrule.rrule_rdates == ["2026-12-24T09:00:00", "2026-12-31T08:00:00+00:00"]
    solar = Job.objects.using(store.using).get(pk="s")
    assert (solar.trigger_kind, solar.solar_event, solar.solar_latitude, solar.solar_longitude) == (
        "solar",
        "sunset",
        48.85,
        2.35,
    )
    assert solar.timezone == "" and solar.cron_expression == ""


@pytest.mark.parametrize(
    ("before", "after"), [("rrule", "solar"), ("solar", "cron-both"), ("cron-both", "rrule")]
)
def test_a_new_trigger_of_another_kind_replaces_every_column_of_the_old_one(
    store: DjangoStore, before: str, after: str
) -> None:
    store.add_job(make_job("a", trigger=TRIGGERS[before]))
    job = store.get_job("a")
    assert job is not None
    store.update_job(replace(job, trigger=TRIGGERS[after]), reschedule=True)
    stored = store.get_job("a")
    assert stored is not None and stored.trigger == TRIGGERS[after]
    row = Job.objects.using(store.using).get(pk="a")
    fresh = Job(id="a")
    fresh.set_trigger(TRIGGERS[after])
    for field in DEFINITION_FIELDS:
        if field.startswith(("cron_", "rrule", "solar_", "interval_", "run_at")):
            assert getattr(row, field) == getattr(fresh, field), field


def test_the_definition_fields_name_every_trigger_column() -> None:
    values = definition_values(make_job("a", trigger=TRIGGERS["rrule"]))
    for name in (
        "cron_extended",
        "cron_seconds",
        "rrule",
        "rrule_dtstart",
        "rrule_exdates",
        "rrule_rdates",
        "solar_event",
        "solar_latitude",
        "solar_longitude",
    ):
        assert name in values
    assert values["rrule_exdates"] == ["2026-12-25T09:00:00"]


def test_the_solar_events_are_celerys() -> None:
    assert [name for name, _label in SOLAR_EVENT_CHOICES] == [
        "dawn_astronomical",
        "dawn_nautical",
        "dawn_civil",
        "sunrise",
        "solar_noon",
        "sunset",
        "dusk_civil",
        "dusk_nautical",
        "dusk_astronomical",
    ]


# -- model validation ----------------------------------------------------------------------------


def row(**fields: Any) -> Job:
    values: dict[str, Any] = {"id": "a", "task": "reports.send_digest"}
    values.update(fields)
    return Job(**values)


def errors_of(job: Job) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        job.full_clean()
    return {
        name: [str(message) for message in messages] for name, messages in caught.value.message_dict.items()
    }


@pytest.mark.django_db(databases=["default"])
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"trigger_kind": "rrule"}, "rrule", "needs its rule"),
        ({"trigger_kind": "rrule", "rrule": "FREQ=SOMETIMES"}, "rrule", "invalid RRULE"),
        (
            {"trigger_kind": "rrule", "rrule": "FREQ=DAILY;DTSTART=20260101"},
            "rrule",
            "DTSTART is not a rule part",
        ),
        (
            {"trigger_kind": "rrule", "rrule": "FREQ=DAILY", "rrule_exdates": ["soon"]},
            "rrule_exdates",
            "'soon'",
        ),
        (
            {"trigger_kind": "rrule", "rrule": "FREQ=DAILY", "rrule_rdates": "2026-01-01"},
            "rrule_rdates",
            "JSON list",
        ),
        (
            {
                "trigger_kind": "rrule",
                "rrule": "FREQ=DAILY;COUNT=2",
                "rrule_dtstart": datetime(2020, 1, 1, tzinfo=UTC),
            },
            "rrule",
            "never fires again",
        ),
        ({"trigger_kind": "solar", "solar_latitude": 48.85, "solar_longitude": 2.35}, "solar_event", "event"),
        (
            {"trigger_kind": "solar", "solar_event": "sunset", "solar_latitude": 91, "solar_longitude": 2.35},
            "solar_latitude",
            "-90 to 90",
        ),
        (
            {
                "trigger_kind": "solar",
                "solar_event": "sunset",
                "solar_latitude": 48.85,
                "solar_longitude": -200,
            },
            "solar_longitude",
            "-180 to 180",
        ),
        (
            {"trigger_kind": "solar", "solar_event": "sunset", "solar_longitude": 2.35},
            "solar_latitude",
            "degrees",
        ),
        (
            {"trigger_kind": "solar", "solar_event": "noonish", "solar_latitude": 0, "solar_longitude": 0},
            "solar_event",
            "noonish",
        ),
        ({"cron_expression": "0 9 L * *"}, "cron_expression", "tick extended (cron_extended)"),
        ({"cron_expression": "0 9 * * 5#3"}, "cron_expression", "cron_extended"),
        ({"cron_expression": "30 0 9 * * *"}, "cron_expression", "tick seconds (cron_seconds)"),
        ({"cron_expression": "0 9 * * *", "cron_seconds": True}, "cron_expression", "6 fields"),
    ],
)
def test_the_model_names_the_field_that_is_wrong(fields: dict[str, Any], field: str, words: str) -> None:
    errors = errors_of(row(**fields))
    assert list(errors) == [field], errors
    assert words in " ".join(errors[field])


@pytest.mark.django_db(databases=["default"])
@pytest.mark.parametrize(
    "fields",
    [
        {"cron_expression": "0 9 L * *", "cron_extended": True},
        {"cron_expression": "30 0 9 * * *", "cron_seconds": True, "timezone": "Europe/Paris"},
        {"trigger_kind": "rrule", "rrule": "FREQ=DAILY", "timezone": "Europe/Paris"},
        {
            "trigger_kind": "rrule",
            "rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
            "rrule_dtstart": datetime.now(UTC),
            "rrule_exdates": ["2099-01-01T09:00:00"],
            "rrule_rdates": ["2099-01-01T10:00:00+00:00"],
        },
        {"trigger_kind": "solar", "solar_event": "solar_noon", "solar_latitude": -90, "solar_longitude": 180},
    ],
)
def test_the_model_accepts_each_new_kind(fields: dict[str, Any]) -> None:
    job = row(**fields)
    job.full_clean()
    assert job.build_trigger().kind == job.trigger_kind


@pytest.mark.django_db(databases=["default"])
def test_a_solar_trigger_fires_at_sunset_in_paris() -> None:
    trigger = row(
        trigger_kind="solar", solar_event="sunset", solar_latitude=48.85, solar_longitude=2.35
    ).build_trigger()
    fire = trigger.next_fire_time(datetime(2026, 6, 21, 12, tzinfo=UTC))
    assert fire is not None and timedelta(hours=19, minutes=50) < fire - datetime(
        2026, 6, 21, tzinfo=UTC
    ) < timedelta(hours=20, minutes=5)  # about 21:58 CEST


# -- the database's own checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"trigger_kind": "rrule", "rrule": ""},
        {"trigger_kind": "solar", "solar_event": "", "solar_latitude": 1, "solar_longitude": 1},
        {"trigger_kind": "solar", "solar_event": "sunset", "solar_latitude": None, "solar_longitude": 1},
        {"trigger_kind": "solar", "solar_event": "sunset", "solar_latitude": 91, "solar_longitude": 1},
        {"trigger_kind": "solar", "solar_event": "sunset", "solar_latitude": 1, "solar_longitude": 180.5},
        {"trigger_kind": "lunar"},
    ],
)
def test_the_database_refuses_a_row_without_the_fields_of_its_kind(
    store: DjangoStore, fields: dict[str, Any]
) -> None:
    with pytest.raises(IntegrityError), transaction.atomic(using=store.using):
        Job.objects.using(store.using).create(id="a", task="reports.send_digest", **fields)


def test_the_database_takes_a_row_of_each_new_kind(store: DjangoStore) -> None:
    jobs = Job.objects.using(store.using)
    jobs.create(id="r", task="t.t", trigger_kind="rrule", rrule="FREQ=DAILY")
    jobs.create(
        id="s",
        task="t.t",
        trigger_kind="solar",
        solar_event="sunset",
        solar_latitude=-90,
        solar_longitude=180,
    )
    jobs.create(id="c", task="t.t", cron_expression="0 9 L * *", cron_extended=True)
    assert jobs.count() == 3
    # A plain interval job is untouched by the new columns' defaults.
    store.add_job(make_job("i", trigger=IntervalTrigger(seconds=10, start_date=T0)))
    interval = jobs.get(pk="i")
    assert (interval.rrule, interval.rrule_exdates, interval.solar_event, interval.cron_extended) == (
        "",
        [],
        "",
        False,
    )
