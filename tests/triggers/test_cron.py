"""CronTrigger: parsing, the day-of-month / day-of-week rule, aliases, errors, dates, state."""

from __future__ import annotations

import statistics
import timeit
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from beatx.errors import InvalidTriggerError, SerializationError
from beatx.triggers.cron import CronTrigger, describe_cron, validate_cron

PARIS = ZoneInfo("Europe/Paris")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def fires(expression: str, after: str, count: int = 4, tz: str | None = None) -> list[str]:
    """The next ``count`` fire times after ``after``, as UTC ISO strings."""
    trigger = CronTrigger(expression, tz)
    moment = utc(after)
    out: list[str] = []
    for _ in range(count):
        nxt = trigger.next_fire_time(moment)
        assert nxt is not None
        out.append(nxt.isoformat())
        moment = nxt
    return out


# -- parsing and matching ---------------------------------------------------------------------

MATCH_CASES = [
    ("every_minute", "* * * * *", "2026-03-04T10:00:30+00:00", ["10:01", "10:02", "10:03"]),
    ("list", "0,20,40 * * * *", "2026-03-04T10:00:00+00:00", ["10:20", "10:40", "11:00"]),
    ("range", "10-12 * * * *", "2026-03-04T10:11:00+00:00", ["10:12", "11:10", "11:11"]),
    ("step_star", "*/20 * * * *", "2026-03-04T10:05:00+00:00", ["10:20", "10:40", "11:00"]),
    ("step_range", "10-50/20 * * * *", "2026-03-04T10:05:00+00:00", ["10:10", "10:30", "10:50"]),
    ("step_from", "45/5 * * * *", "2026-03-04T10:40:00+00:00", ["10:45", "10:50", "10:55"]),
    ("hours_list", "0 6,18 * * *", "2026-03-04T07:00:00+00:00", ["18:00", "06:00", "18:00"]),
    ("mixed_list", "0 1-2,22/1 * * *", "2026-03-04T21:00:00+00:00", ["22:00", "23:00", "01:00"]),
]


@pytest.mark.parametrize(
    ("expression", "after", "expected"), [case[1:] for case in MATCH_CASES], ids=[c[0] for c in MATCH_CASES]
)
def test_it_fires_at_the_matching_minutes(expression: str, after: str, expected: list[str]) -> None:
    got = [value[11:16] for value in fires(expression, after, count=len(expected))]
    assert got == expected


def test_the_fire_time_is_strictly_after_and_is_utc() -> None:
    trigger = CronTrigger("0 3 * * *")
    exact = utc("2026-03-04T03:00:00+00:00")
    result = trigger.next_fire_time(exact)
    assert result == utc("2026-03-05T03:00:00+00:00")
    assert result is not None and result.tzinfo is UTC
    assert trigger.next_fire_time(exact - timedelta(microseconds=1)) == exact


def test_after_may_be_in_any_timezone() -> None:
    trigger = CronTrigger("0 3 * * *", "Europe/Paris")
    after = datetime(2026, 3, 4, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 04:00 Paris
    assert trigger.next_fire_time(after) == utc("2026-03-05T03:00:00+01:00")


def test_a_naive_after_raises_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronTrigger("* * * * *").next_fire_time(datetime(2026, 1, 1))


NAME_CASES = [
    ("month_names", "0 0 1 jan,Jul *", "0 0 1 1,7 *"),
    ("month_name_range", "0 0 1 MAR-MAY *", "0 0 1 3-5 *"),
    ("dow_names", "0 9 * * mon,WED,fri", "0 9 * * 1,3,5"),
    ("dow_name_range", "0 9 * * MON-FRI", "0 9 * * 1-5"),
    ("dow_name_range_step", "0 9 * * MON-FRI/2", "0 9 * * 1,3,5"),
    ("seven_is_sunday", "0 9 * * 7", "0 9 * * 0"),
    ("range_to_seven", "0 9 * * 5-7", "0 9 * * 0,5,6"),
    ("sun_name", "0 9 * * SUN", "0 9 * * 0"),
    ("dow_start_step_runs_to_seven", "0 9 * * 1/2", "0 9 * * 0,1,3,5"),
    ("dow_star_step", "0 9 * * */3", "0 9 * * 0,3,6"),
    ("month_start_step", "0 0 1 10/2 *", "0 0 1 10,12 *"),
]


@pytest.mark.parametrize(
    ("expression", "equivalent"), [case[1:] for case in NAME_CASES], ids=[c[0] for c in NAME_CASES]
)
def test_names_and_seven_mean_the_same_as_numbers(expression: str, equivalent: str) -> None:
    assert fires(expression, "2026-01-01T00:00:00+00:00", 12) == fires(
        equivalent, "2026-01-01T00:00:00+00:00", 12
    )


def test_sunday_can_be_written_zero_or_seven() -> None:
    # 2026-03-08 is a Sunday.
    assert fires("0 9 * * 7", "2026-03-04T00:00:00+00:00", 1) == ["2026-03-08T09:00:00+00:00"]
    assert fires("0 9 * * 0", "2026-03-04T00:00:00+00:00", 1) == ["2026-03-08T09:00:00+00:00"]


DAY_RULE_CASES = [
    # 2026-03: Sunday the 1st; Mondays are 2, 9, 16, ...
    ("both_restricted_is_or", "0 0 13 * MON", ["2026-03-02", "2026-03-09", "2026-03-13", "2026-03-16"]),
    ("dom_star_step_is_and", "0 0 */2 * MON", ["2026-03-09", "2026-03-23", "2026-04-13", "2026-04-27"]),
    ("dow_star_step_is_and", "0 0 2-9 * */3", ["2026-03-04", "2026-03-07", "2026-03-08", "2026-04-04"]),
    ("dow_star_is_dom_only", "0 0 13 * *", ["2026-03-13", "2026-04-13", "2026-05-13", "2026-06-13"]),
    ("dom_star_is_dow_only", "0 0 * * MON", ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"]),
]


@pytest.mark.parametrize(
    ("expression", "expected"), [case[1:] for case in DAY_RULE_CASES], ids=[c[0] for c in DAY_RULE_CASES]
)
def test_day_of_month_and_day_of_week_combine_with_or_unless_one_starts_with_a_star(
    expression: str, expected: list[str]
) -> None:
    assert [value[:10] for value in fires(expression, "2026-03-01T00:00:00+00:00", 4)] == expected


def test_february_29th_fires_only_in_leap_years() -> None:
    assert fires("0 0 29 2 *", "2026-01-01T00:00:00+00:00", 3) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
        "2036-02-29T00:00:00+00:00",
    ]
    assert fires("0 0 29 2 *", "2096-03-01T00:00:00+00:00", 1) == ["2104-02-29T00:00:00+00:00"]


def test_the_31st_skips_short_months() -> None:
    assert [v[:10] for v in fires("0 0 31 * *", "2026-01-01T00:00:00+00:00", 3)] == [
        "2026-01-31",
        "2026-03-31",
        "2026-05-31",
    ]


ALIAS_CASES = [
    ("@every_minute", "* * * * *"),
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@DAILY", "0 0 * * *"),
]


@pytest.mark.parametrize(("alias", "equivalent"), ALIAS_CASES, ids=[c[0] for c in ALIAS_CASES])
def test_aliases_mean_their_five_field_form(alias: str, equivalent: str) -> None:
    assert fires(alias, "2026-01-01T00:30:00+00:00", 5) == fires(equivalent, "2026-01-01T00:30:00+00:00", 5)


def test_the_expression_is_kept_stripped_as_given() -> None:
    assert CronTrigger("  @Daily ").expression == "@Daily"
    assert CronTrigger(" 0  3 * * * ").expression == "0  3 * * *"


# -- errors -------------------------------------------------------------------------------------

ERROR_CASES = [
    ("reversed_range", "30-10 * * * *", "minute field: range 30-10 is reversed"),
    ("minute_out_of_range", "60 * * * *", "minute field: value 60 is out of range 0-59"),
    ("hour_out_of_range", "0 24 * * *", "hour field: value 24 is out of range 0-23"),
    ("dom_zero", "0 0 0 * *", "day-of-month field: value 0 is out of range 1-31"),
    ("dom_32", "0 0 32 * *", "day-of-month field: value 32 is out of range 1-31"),
    ("month_13", "0 0 1 13 *", "month field: value 13 is out of range 1-12"),
    ("dow_8", "0 0 * * 8", "day-of-week field: value 8 is out of range 0-7"),
    ("step_zero", "*/0 * * * *", "minute field: step 0"),
    ("step_not_number", "*/x * * * *", "minute field: step 'x'"),
    ("empty_step", "0 */ * * *", "hour field: step ''"),
    ("unknown_month_name", "0 0 1 FOO *", "month field: unknown name 'FOO'"),
    ("unknown_dow_name", "0 0 * * MOO", "day-of-week field: unknown name 'MOO'"),
    ("month_name_in_dow", "0 0 * * JAN", "day-of-week field: unknown name 'JAN'"),
    ("name_in_minute", "MON * * * *", "minute field: 'MON' is not a number"),
    ("empty_item", "1,,2 * * * *", "minute field: empty item"),
    ("trailing_comma", "0 1, * * *", "hour field: empty item"),
    ("garbage", "0 0 1 * %", "day-of-week field: '%' is not a number"),
    ("negative", "0 -1 * * *", "hour field: missing value"),
    ("reversed_names", "0 0 * * FRI-MON", "day-of-week field: range FRI-MON is reversed"),
    ("too_few_fields", "* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("too_many_fields", "0 * * * * *", "expected 5 fields"),
    ("empty", "   ", "got 0"),
    ("unknown_alias", "@reboot", "unknown alias '@reboot'"),
    ("never_feb_31", "0 0 31 2 *", "never fires"),
    ("never_feb_30", "0 0 30 2 *", "never fires"),
    ("never_30_31_feb", "0 0 30,31 2 *", "never fires"),
    ("never_31_in_short_months", "0 0 31 4,6,9,11 *", "never fires"),
]


@pytest.mark.parametrize(
    ("expression", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_a_bad_expression_raises_an_error_naming_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(InvalidTriggerError) as caught:
        CronTrigger(expression)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"invalid cron expression {expression.strip()!r}: ")
    with pytest.raises(InvalidTriggerError) as caught_again:
        validate_cron(expression)
    assert str(caught_again.value) == str(caught.value)


def test_the_reversed_range_message_reads_in_full() -> None:
    with pytest.raises(InvalidTriggerError) as caught:
        CronTrigger("30-10 * * * *")
    assert (
        str(caught.value) == "invalid cron expression '30-10 * * * *': minute field: range 30-10 is reversed"
    )


@pytest.mark.parametrize(
    "expression",
    ["0 0 31 2 MON", "0 0 30 2 1-5", "0 0 * 2 *", "0 0 29 2 */2", "0 0 31 1,2 *"],
    ids=["or_rule_feb_31", "or_rule_feb_30", "dom_star", "feb_29_and_dow_step", "one_month_has_31"],
)
def test_an_expression_that_can_fire_is_accepted(expression: str) -> None:
    validate_cron(expression)
    assert CronTrigger(expression).next_fire_time(utc("2026-01-01T00:00:00+00:00")) is not None


def test_a_non_string_expression_is_rejected() -> None:
    with pytest.raises(InvalidTriggerError, match="must be a string"):
        CronTrigger(5)  # type: ignore[arg-type]


def test_an_unknown_timezone_is_rejected() -> None:
    with pytest.raises(InvalidTriggerError, match="unknown timezone 'Mars/Olympus'"):
        CronTrigger("0 3 * * *", "Mars/Olympus")


# -- start and end dates ----------------------------------------------------------------------


def test_it_never_fires_before_start_date() -> None:
    trigger = CronTrigger("0 3 * * *", start_date="2026-06-01T03:00:00+00:00")
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00+00:00")) == utc("2026-06-01T03:00:00+00:00")
    assert trigger.next_fire_time(utc("2026-06-01T03:00:00+00:00")) == utc("2026-06-02T03:00:00+00:00")


def test_a_start_date_with_microseconds_excludes_the_second_it_falls_in() -> None:
    trigger = CronTrigger("0 3 * * *", start_date=datetime(2026, 6, 1, 3, 0, 0, 1, tzinfo=UTC))
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00+00:00")) == utc("2026-06-02T03:00:00+00:00")


def test_it_returns_none_after_end_date_which_is_inclusive() -> None:
    trigger = CronTrigger("0 3 * * *", end_date="2026-06-02T03:00:00+00:00")
    assert trigger.next_fire_time(utc("2026-06-01T12:00:00+00:00")) == utc("2026-06-02T03:00:00+00:00")
    assert trigger.next_fire_time(utc("2026-06-02T03:00:00+00:00")) is None


def test_naive_dates_mean_the_trigger_timezone() -> None:
    trigger = CronTrigger("0 * * * *", "Europe/Paris", start_date="2026-06-01T10:00:00")
    assert trigger.start_date == datetime(2026, 6, 1, 10, 0, tzinfo=PARIS)
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00+00:00")) == utc("2026-06-01T08:00:00+00:00")
    assert CronTrigger("0 3 * * *", start_date=datetime(2026, 6, 1)).start_date == datetime(
        2026, 6, 1, tzinfo=UTC
    )


def test_end_before_start_is_rejected() -> None:
    with pytest.raises(InvalidTriggerError, match="before start_date"):
        CronTrigger("0 3 * * *", start_date="2026-06-02", end_date="2026-06-01")


def test_a_bad_date_string_is_rejected() -> None:
    with pytest.raises(InvalidTriggerError, match="start_date 'soon' is not a date"):
        CronTrigger("0 3 * * *", start_date="soon")


def test_it_returns_none_past_the_last_representable_year() -> None:
    trigger = CronTrigger("0 0 1 1 *")
    assert trigger.next_fire_time(datetime(9999, 6, 1, tzinfo=UTC)) is None


# -- resolve, state, equality -------------------------------------------------------------------


def test_resolve_fills_in_a_missing_timezone() -> None:
    trigger = CronTrigger("0 3 * * *", start_date="2026-06-01T00:00:00")
    resolved = trigger.resolve(now=utc("2026-01-01T00:00:00+00:00"), timezone=PARIS)
    assert resolved.timezone is PARIS
    assert resolved.start_date == datetime(2026, 6, 1, tzinfo=PARIS)
    assert resolved.next_fire_time(utc("2026-07-01T00:00:00+00:00")) == utc("2026-07-01T03:00:00+02:00")
    assert trigger.timezone is None  # the original is unchanged


def test_resolve_keeps_a_timezone_that_was_given() -> None:
    trigger = CronTrigger("0 3 * * *", "America/New_York")
    assert trigger.resolve(now=utc("2026-01-01T00:00:00+00:00"), timezone=PARIS) is trigger


def test_without_a_timezone_it_computes_in_utc() -> None:
    assert CronTrigger("0 3 * * *").next_fire_time(utc("2026-07-01T00:00:00+00:00")) == utc(
        "2026-07-01T03:00:00+00:00"
    )


@pytest.mark.parametrize(
    "trigger",
    [
        CronTrigger("0 3 * * *"),
        CronTrigger("*/5 9-17 * * MON-FRI", "Europe/Paris"),
        CronTrigger("@daily", "UTC", start_date="2026-01-01T00:00:00", end_date="2027-01-01T00:00:00+02:00"),
        CronTrigger("0 0 1 * *", start_date=datetime(2026, 1, 1, tzinfo=UTC)),
    ],
    ids=["plain", "zone", "dates", "aware_start"],
)
def test_to_dict_round_trips(trigger: CronTrigger) -> None:
    data = trigger.to_dict()
    assert data["kind"] == "cron" and data["version"] == 1
    assert set(data) == {"kind", "version", "expression", "timezone", "start_date", "end_date"}
    again = CronTrigger.from_dict(data)
    assert again == trigger
    assert again.to_dict() == data
    after = utc("2026-05-05T05:05:00+00:00")
    assert again.next_fire_time(after) == trigger.next_fire_time(after)


def test_to_dict_spells_the_fields() -> None:
    trigger = CronTrigger("0 3 * * *", "Europe/Paris", start_date="2026-01-01T00:00:00+01:00")
    assert trigger.to_dict() == {
        "kind": "cron",
        "version": 1,
        "expression": "0 3 * * *",
        "timezone": "Europe/Paris",
        "start_date": "2026-01-01T00:00:00+01:00",
        "end_date": None,
    }


def test_from_dict_rejects_another_kind_or_a_newer_version() -> None:
    with pytest.raises(SerializationError):
        CronTrigger.from_dict({"kind": "interval", "version": 1, "expression": "* * * * *"})
    with pytest.raises(SerializationError, match="upgrade beatx"):
        CronTrigger.from_dict({"kind": "cron", "version": 2, "expression": "* * * * *"})


def test_equality_and_hash_follow_the_fields() -> None:
    a = CronTrigger("0 3 * * *", "Europe/Paris")
    b = CronTrigger("0 3 * * *", PARIS)
    assert a == b and hash(a) == hash(b)
    assert a != CronTrigger("0 3 * * *", "Europe/London")
    assert a != CronTrigger("0 4 * * *", "Europe/Paris")
    assert a != CronTrigger("0 3 * * *")
    assert a != CronTrigger("0 3 * * *", "Europe/Paris", end_date="2030-01-01")
    assert CronTrigger("0 3 * * *", "UTC") == CronTrigger("0 3 * * *", ZoneInfo("UTC"))
    assert a != "0 3 * * *"
    assert len({a, b}) == 1


def test_repr_shows_the_expression_and_timezone() -> None:
    assert (
        repr(CronTrigger("0 3 * * *", "Europe/Paris")) == "CronTrigger('0 3 * * *', timezone='Europe/Paris')"
    )
    assert repr(CronTrigger("0 3 * * *")) == "CronTrigger('0 3 * * *')"


# -- describe -------------------------------------------------------------------------------------

DESCRIBE_CASES = [
    ("* * * * *", "Every minute"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("5 * * * *", "At minute 5 past every hour"),
    ("0 3 * * *", "At 03:00"),
    ("0 3 * * 1-5", "At 03:00, Monday through Friday"),
    ("0 0 1 * *", "At 00:00 on day 1 of the month"),
    ("*/15 9-17 * * MON-FRI", "Every 15 minutes, between 09:00 and 17:59, Monday through Friday"),
    ("0 */6 * * *", "At minute 0 past every 6th hour"),
    ("30 2,14 * * *", "At 02:30 and 14:30"),
    ("0 0 29 2 *", "At 00:00 on day 29 of the month, only in February"),
    ("5 4 * * SUN", "At 04:05, only on Sunday"),
    ("0 0 1 * MON", "At 00:00 on day 1 of the month, or on Monday"),
    ("0 9 * * 1,3,5", "At 09:00, only on Monday, Wednesday and Friday"),
    ("@hourly", "At minute 0 past every hour"),
]


@pytest.mark.parametrize(("expression", "text"), DESCRIBE_CASES, ids=[c[0] for c in DESCRIBE_CASES])
def test_describe_reads_the_expression_in_plain_english(expression: str, text: str) -> None:
    assert describe_cron(expression) == text
    assert CronTrigger(expression).describe() == text


def test_describe_names_the_timezone_when_set() -> None:
    assert (
        CronTrigger("0 3 * * 1-5", "Europe/Paris").describe()
        == "At 03:00, Monday through Friday (Europe/Paris)"
    )
    assert CronTrigger("*/15 * * * *", "UTC").describe() == "Every 15 minutes (UTC)"


def test_describe_cron_rejects_a_bad_expression() -> None:
    with pytest.raises(InvalidTriggerError, match="hour field"):
        describe_cron("0 25 * * *")


# -- speed ----------------------------------------------------------------------------------------

BENCH_EXPRESSIONS = [
    "*/5 * * * *",
    "0 3 * * *",
    "0 9 * * 1-5",
    "30 2 * * *",
    "0 0 1 * *",
    "*/15 9-17 * * MON-FRI",
    "0 0 29 2 *",
    "5 4 * * SUN",
    "0 */6 * * *",
    "* * * * *",
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_next_fire_time_is_fast(zone: str) -> None:
    # A loose guard only; the real figures (about 1-2 µs) are measured by a benchmark.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    afters = [start + timedelta(days=day, seconds=day * 3607) for day in range(0, 365, 37)]
    triggers = [CronTrigger(expression, zone) for expression in BENCH_EXPRESSIONS]
    costs = [
        min(timeit.repeat(lambda t=trigger, a=after: t.next_fire_time(a), number=50, repeat=3)) / 50
        for trigger in triggers
        for after in afters
    ]
    assert statistics.median(costs) < 50e-6


def test_it_returns_none_at_the_end_of_time_in_any_zone() -> None:
    after = datetime(9999, 12, 31, 20, 0, tzinfo=UTC)
    assert CronTrigger("0 0 * * *", "Pacific/Kiritimati").next_fire_time(after) is None
    assert CronTrigger("0 0 * * *", "America/New_York").next_fire_time(after) is None


def test_a_fixed_offset_timezone_works() -> None:
    trigger = CronTrigger("0 3 * * *", timezone(timedelta(hours=5, minutes=30)))
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00+00:00")) == utc("2026-01-02T03:00:00+05:30")
