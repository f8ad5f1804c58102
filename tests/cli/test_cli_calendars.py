"""``beatx calendars`` and ``beatx cron --exclude``, run as subprocesses against Redis."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.cli.test_cli import Beatx, beatx, error_line  # noqa: F401  (the fixture)

pytestmark = pytest.mark.redis


def test_calendars_are_added_listed_used_and_removed(beatx: Beatx) -> None:  # noqa: F811
    added = beatx("calendars", "add", "we", "--weekday", "sat", "--weekday", "sun", "--window", "* 0-5 * * *")
    assert added.returncode == 0, added.stderr
    again = beatx("calendars", "add", "we", "--weekday", "sat")
    assert again.returncode == 2 and "exists" in error_line(again)
    job = beatx(
        "jobs", "add", "pay", "--func", "x.y", "--cron", "0 9 1 * *", "--tz", "Europe/Paris",
        "--exclude", "we", "--on-excluded", "next_business_day", "--json",
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    missing = beatx("jobs", "add", "other", "--func", "x.y", "--every", "60", "--exclude", "nope")
    assert missing.returncode == 1 and "no exclusion calendar named 'nope'" in error_line(missing)
    listed = json.loads(beatx("calendars", "list", "--json").stdout)
    assert [(c["name"], c["weekdays"], c["windows"], c["used_by"]) for c in listed] == [
        ("we", ["sat", "sun"], ["* 0-5 * * *"], ["pay"])
    ]
    shown = beatx("calendars", "show", "we")
    assert shown.returncode == 0 and "pay" in shown.stdout
    in_use = beatx("calendars", "remove", "we")
    assert in_use.returncode == 1 and "used by 1 job(s) ('pay')" in error_line(in_use)
    assert beatx("jobs", "remove", "pay").returncode == 0
    assert beatx("calendars", "remove", "we").returncode == 0
    gone = beatx("calendars", "show", "we")
    assert gone.returncode == 1


def test_cron_preview_strikes_out_excluded_times_with_the_reason(beatx: Beatx) -> None:  # noqa: F811
    assert beatx("calendars", "add", "we", "--weekday", "sat", "--weekday", "sun").returncode == 0
    result = beatx(
        "cron", "0 9 * * *", "--tz", "Europe/Paris", "-n", "7", "--exclude", "we",
        "--on-excluded", "next_business_day", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    fires = data["fires"]
    excluded = [f for f in fires if f["excluded"]]
    assert len(fires) >= 7 and len(excluded) >= 2
    for fire in fires:
        day = datetime.fromisoformat(fire["at"]).weekday()
        if day >= 5:
            assert fire["excluded"] == f"we: {'Saturday' if day == 5 else 'Sunday'}"
            moved = datetime.fromisoformat(fire["moved_to"])
            assert moved.weekday() == 0 and moved.hour == 7 or moved.hour == 8  # 09:00 Paris, in UTC
        else:
            assert fire["excluded"] is None
    human = beatx("cron", "0 9 * * *", "--tz", "Europe/Paris", "-n", "7", "--exclude", "we")
    assert human.returncode == 0, human.stderr
    assert "excluded: we: Saturday" in human.stdout and "excluded: we: Sunday" in human.stdout
    unknown = beatx("cron", "0 9 * * *", "--exclude", "nope")
    assert unknown.returncode == 1 and "nope" in error_line(unknown)
