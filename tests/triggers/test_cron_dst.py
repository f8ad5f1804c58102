"""Daylight saving, the Debian cron way.

A job whose minute or hour field starts with ``*`` is a *wildcard* job: it follows the wall
clock, never fires in a skipped time and fires in both passes of a repeated hour. Every other
job is *fixed-time*: a skipped time fires once at the instant of the jump, a repeated time
fires once, in the first pass. ``next_fire_time(after)`` depends on ``after`` alone.

Every case below lists the expected fire times as whole local ISO strings with their offsets,
and is also checked against the brute-force reference.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from beatx.triggers.cron import CronTrigger
from tests.triggers.cron_reference import reference_next


def local_fires(expression: str, zone: str, after: str, count: int) -> list[str]:
    tz = ZoneInfo(zone)
    trigger = CronTrigger(expression, zone)
    moment = datetime.fromisoformat(after)
    out: list[str] = []
    for _ in range(count):
        nxt = trigger.next_fire_time(moment)
        assert nxt is not None
        assert nxt.tzinfo is UTC
        assert nxt == reference_next(expression, tz, moment)
        out.append(nxt.astimezone(tz).isoformat())
        moment = nxt
    return out


def check(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert local_fires(expression, zone, after, len(expected)) == expected


# -- Europe/Paris -----------------------------------------------------------------------------
# 2026-03-29 01:00 UTC: 02:00 +01:00 -> 03:00 +02:00 (02:00-02:59 is skipped)
# 2026-10-25 01:00 UTC: 03:00 +02:00 -> 02:00 +01:00 (02:00-02:59 happens twice)

PARIS = "Europe/Paris"


def test_paris_it_fires_once_at_the_jump_for_a_fixed_time_job_in_a_skipped_hour() -> None:
    check(
        "30 2 * * *",
        PARIS,
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    )


def test_paris_several_skipped_times_collapse_into_one_fire_at_the_jump() -> None:
    check(
        "30,45 2 * * *",
        PARIS,
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-30T02:45:00+02:00"],
    )


def test_paris_a_skipped_time_and_the_jump_time_itself_fire_once() -> None:
    check(
        "0,30 2,3 * * *",
        PARIS,
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00"],
    )


def test_paris_a_wildcard_job_never_fires_in_a_skipped_hour() -> None:
    check(
        "*/30 2 * * *",
        PARIS,
        "2026-03-29T00:00:00+01:00",
        ["2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    )
    check(
        "0 * * * *",
        PARIS,
        "2026-03-29T00:30:00+01:00",
        ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
    )


def test_paris_a_fixed_time_job_fires_only_in_the_first_pass_of_a_repeated_hour() -> None:
    check(
        "30 2 * * *",
        PARIS,
        "2026-10-25T00:00:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    )


def test_paris_a_wildcard_job_fires_in_both_passes_of_a_repeated_hour() -> None:
    check(
        "*/30 2 * * *",
        PARIS,
        "2026-10-25T00:00:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-26T02:00:00+01:00",
        ],
    )
    check(
        "30 * * * *",
        PARIS,
        "2026-10-25T01:45:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"],
    )


def test_paris_after_inside_the_second_pass_depends_on_after_alone() -> None:
    # The first-pass 02:30 is already in the past: the next fire is tomorrow's.
    check("30 2 * * *", PARIS, "2026-10-25T02:10:00+01:00", ["2026-10-26T02:30:00+01:00"])
    # After the first-pass 02:45, the second pass does not fire again.
    check("45 2 * * *", PARIS, "2026-10-25T02:50:00+02:00", ["2026-10-26T02:45:00+01:00"])
    # A wildcard job still fires in the rest of the second pass.
    check("30 * * * *", PARIS, "2026-10-25T02:10:00+01:00", ["2026-10-25T02:30:00+01:00"])


# -- America/New_York -------------------------------------------------------------------------
# 2026-03-08 07:00 UTC: 02:00 -05:00 -> 03:00 -04:00 (02:00-02:59 is skipped)
# 2026-11-01 06:00 UTC: 02:00 -04:00 -> 01:00 -05:00 (01:00-01:59 happens twice)

NEW_YORK = "America/New_York"


def test_new_york_it_fires_once_at_the_jump_for_a_fixed_time_job_in_a_skipped_hour() -> None:
    check(
        "30 2 * * *",
        NEW_YORK,
        "2026-03-08T00:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    )


def test_new_york_a_wildcard_job_never_fires_in_a_skipped_hour() -> None:
    check("* 2 * * *", NEW_YORK, "2026-03-08T00:00:00-05:00", ["2026-03-09T02:00:00-04:00"])


def test_new_york_a_fixed_time_job_fires_only_in_the_first_pass_of_a_repeated_hour() -> None:
    check(
        "30 1 * * *",
        NEW_YORK,
        "2026-11-01T00:00:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    )


def test_new_york_a_wildcard_job_fires_in_both_passes_of_a_repeated_hour() -> None:
    check(
        "*/20 1 * * *",
        NEW_YORK,
        "2026-11-01T00:00:00-04:00",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:20:00-04:00",
            "2026-11-01T01:40:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:20:00-05:00",
            "2026-11-01T01:40:00-05:00",
            "2026-11-02T01:00:00-05:00",
        ],
    )


def test_new_york_after_inside_the_second_pass_depends_on_after_alone() -> None:
    check("30 1 * * *", NEW_YORK, "2026-11-01T01:10:00-05:00", ["2026-11-02T01:30:00-05:00"])


# -- Australia/Lord_Howe (30-minute shifts) ------------------------------------------------------
# 2026-04-04 15:00 UTC: 02:00 +11:00 -> 01:30 +10:30 (01:30-01:59 happens twice)
# 2026-10-03 15:30 UTC: 02:00 +10:30 -> 02:30 +11:00 (02:00-02:29 is skipped)

LORD_HOWE = "Australia/Lord_Howe"


def test_lord_howe_it_fires_once_at_the_jump_for_a_fixed_time_job_in_a_skipped_half_hour() -> None:
    check(
        "15 2 * * *",
        LORD_HOWE,
        "2026-10-04T00:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    )
    check(
        "0,15,45 2 * * *",
        LORD_HOWE,
        "2026-10-04T00:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00", "2026-10-05T02:00:00+11:00"],
    )


def test_lord_howe_a_wildcard_job_never_fires_in_a_skipped_half_hour() -> None:
    check(
        "*/15 2 * * *",
        LORD_HOWE,
        "2026-10-04T00:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00", "2026-10-05T02:00:00+11:00"],
    )


def test_lord_howe_a_fixed_time_job_fires_only_in_the_first_pass_of_a_repeated_half_hour() -> None:
    check(
        "45 1 * * *",
        LORD_HOWE,
        "2026-04-05T00:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    )


def test_lord_howe_a_wildcard_job_fires_in_both_passes_of_a_repeated_half_hour() -> None:
    check(
        "*/15 1 * * *",
        LORD_HOWE,
        "2026-04-05T00:00:00+11:00",
        [
            "2026-04-05T01:00:00+11:00",
            "2026-04-05T01:15:00+11:00",
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-06T01:00:00+10:30",
        ],
    )
    check(
        "45 * * * *",
        LORD_HOWE,
        "2026-04-05T01:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30", "2026-04-05T02:45:00+10:30"],
    )


def test_lord_howe_after_inside_the_second_pass_depends_on_after_alone() -> None:
    check("45 1 * * *", LORD_HOWE, "2026-04-05T01:35:00+10:30", ["2026-04-06T01:45:00+10:30"])
    check("45 * * * *", LORD_HOWE, "2026-04-05T01:35:00+10:30", ["2026-04-05T01:45:00+10:30"])


# -- Pacific/Chatham (UTC+12:45 / +13:45, transitions at 02:45 local standard time) ---------------
# 2026-04-04 14:00 UTC: 03:45 +13:45 -> 02:45 +12:45 (02:45-03:44 happens twice)
# 2026-09-26 14:00 UTC: 02:45 +12:45 -> 03:45 +13:45 (02:45-03:44 is skipped)

CHATHAM = "Pacific/Chatham"


def test_chatham_it_fires_once_at_the_jump_for_a_fixed_time_job_in_a_skipped_hour() -> None:
    check(
        "0 3 * * *",
        CHATHAM,
        "2026-09-27T00:00:00+12:45",
        ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"],
    )
    check(
        "30 2,3 * * *",
        CHATHAM,
        "2026-09-27T00:00:00+12:45",
        ["2026-09-27T02:30:00+12:45", "2026-09-27T03:45:00+13:45", "2026-09-28T02:30:00+13:45"],
    )


def test_chatham_a_wildcard_job_never_fires_in_a_skipped_hour() -> None:
    check("*/30 3 * * *", CHATHAM, "2026-09-27T00:00:00+12:45", ["2026-09-28T03:00:00+13:45"])
    check(
        "0 * * * *",
        CHATHAM,
        "2026-09-27T01:30:00+12:45",
        ["2026-09-27T02:00:00+12:45", "2026-09-27T04:00:00+13:45"],
    )


def test_chatham_a_fixed_time_job_fires_only_in_the_first_pass_of_a_repeated_hour() -> None:
    check(
        "0 3 * * *",
        CHATHAM,
        "2026-04-05T00:00:00+13:45",
        ["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"],
    )


def test_chatham_a_wildcard_job_fires_in_both_passes_of_a_repeated_hour() -> None:
    check(
        "0 * * * *",
        CHATHAM,
        "2026-04-05T02:30:00+13:45",
        ["2026-04-05T03:00:00+13:45", "2026-04-05T03:00:00+12:45", "2026-04-05T04:00:00+12:45"],
    )


def test_chatham_after_inside_the_second_pass_depends_on_after_alone() -> None:
    check("0 3 * * *", CHATHAM, "2026-04-05T02:50:00+12:45", ["2026-04-06T03:00:00+12:45"])


# -- midnight transitions (America/Sao_Paulo until 2019) ---------------------------------------
# 2018-11-04 03:00 UTC: 00:00 -03:00 -> 01:00 -02:00 (00:00-00:59 is skipped)
# 2019-02-17 02:00 UTC: 00:00 -02:00 -> 23:00 -03:00 on the 16th (23:00-23:59 happens twice)

SAO_PAULO = "America/Sao_Paulo"


def test_sao_paulo_a_skipped_midnight_fires_at_the_jump() -> None:
    check(
        "0 0 * * *",
        SAO_PAULO,
        "2018-11-03T12:00:00-03:00",
        ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"],
    )


def test_sao_paulo_a_repeated_hour_before_midnight() -> None:
    check(
        "30 23 * * *",
        SAO_PAULO,
        "2019-02-16T12:00:00-02:00",
        ["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"],
    )
    check(
        "30 23 * * *",
        SAO_PAULO,
        "2019-02-16T23:40:00-02:00",
        ["2019-02-17T23:30:00-03:00"],
    )
    check(
        "30 * * * *",
        SAO_PAULO,
        "2019-02-16T23:00:00-02:00",
        ["2019-02-16T23:30:00-02:00", "2019-02-16T23:30:00-03:00", "2019-02-17T00:30:00-03:00"],
    )


TRANSITIONS = [
    (PARIS, "2026-03-29T01:00:00+00:00"),
    (PARIS, "2026-10-25T01:00:00+00:00"),
    (NEW_YORK, "2026-03-08T07:00:00+00:00"),
    (NEW_YORK, "2026-11-01T06:00:00+00:00"),
    (LORD_HOWE, "2026-04-04T15:00:00+00:00"),
    (LORD_HOWE, "2026-10-03T15:30:00+00:00"),
    (CHATHAM, "2026-04-04T14:00:00+00:00"),
    (CHATHAM, "2026-09-26T14:00:00+00:00"),
]


@pytest.mark.parametrize(("zone", "instant"), TRANSITIONS, ids=[f"{z}-{i[:10]}" for z, i in TRANSITIONS])
def test_every_minute_follows_the_utc_clock_through_a_transition(zone: str, instant: str) -> None:
    # A wildcard job follows the wall clock: every UTC minute is one fire, none twice.
    trigger = CronTrigger("* * * * *", zone)
    moment = datetime.fromisoformat(instant) - timedelta(hours=3)
    for _ in range(6 * 60):
        nxt = trigger.next_fire_time(moment)
        assert nxt is not None
        assert nxt - moment == timedelta(minutes=1)
        moment = nxt
