"""Jenkins-style ``H`` in cron fields: against the brute-force reference, and its spread."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beatx.errors import InvalidTriggerError
from beatx.jobs import Job, job_from_dict, job_to_dict
from beatx.triggers.cron import CronTrigger, validate_cron
from beatx.triggers.cron_hash import expand_hash
from tests.triggers.cron_reference import Fields, reference_expand_h, reference_next
from tests.triggers.test_cron_properties import ZONES, afters, cron_field

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@st.composite
def h_item(draw: st.DrawFn, low: int, high: int) -> str:
    kind = draw(st.sampled_from(["H", "range", "step", "range_step"]))
    if kind == "H":
        return "H"
    step = draw(st.integers(1, max(1, (high - low) // 2)))
    if kind == "step":
        return f"H/{step}"
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    return f"H({a}-{b})" if kind == "range" else f"H({a}-{b})/{step}"


@st.composite
def h_field(draw: st.DrawFn, low: int, high: int, h_high: int) -> str:
    if draw(st.booleans()):
        return draw(cron_field(low, high))
    items = draw(st.lists(h_item(low, h_high), min_size=1, max_size=2))
    if draw(st.booleans()):
        items.append(draw(cron_field(low, high)).replace("*", str(low)))
    return ",".join(items)


@st.composite
def h_expressions(draw: st.DrawFn) -> str:
    minute = draw(h_field(0, 59, 59))
    hour = draw(h_field(0, 23, 23))
    dom = draw(st.one_of(st.just("*"), st.just("H"), h_field(1, 28, 28)))
    month = draw(st.one_of(st.just("*"), st.just("*"), h_field(1, 12, 12)))
    dow = draw(st.one_of(st.just("*"), st.just("*"), h_field(0, 6, 6)))
    return f"{minute} {hour} {dom} {month} {dow}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), expression=h_expressions(), key=st.text(min_size=1, max_size=12))
def test_h_agrees_with_the_brute_force_reference(data: st.DataObject, expression: str, key: str) -> None:
    zone = data.draw(st.sampled_from(ZONES))
    written = reference_expand_h(expression, key)
    assert expand_hash(expression, key) == written
    try:
        trigger = CronTrigger(expression, zone, hash_key=key)
    except InvalidTriggerError as exc:
        assert "never fires" in str(exc), exc
        return
    fields = Fields(written)
    moment = data.draw(afters(zone))
    for _ in range(3):
        got = trigger.next_fire_time(moment)
        expected = reference_next(fields, ZoneInfo(zone), moment)
        if expected is None:
            assert got is None or got > moment + timedelta(days=366 * 5)
            return
        assert got == expected, (expression, key, written, zone, moment.isoformat())
        moment = got


@pytest.mark.parametrize(
    ("expression", "pattern"),
    [
        ("H * * * *", r"^\d+ \* \* \* \*$"),
        ("H(0-29)/10 * * * *", r"^\d-29/10 \* \* \* \*$"),
        ("H/15 H(1-5) * * *", r"^\d+-59/15 [1-5] \* \* \*$"),
        ("0 0 H H *", r"^0 0 \d+ \d+ \*$"),
        ("0 9 * * H", r"^0 9 \* \* [0-6]$"),
    ],
)
def test_h_writes_plain_cron(expression: str, pattern: str) -> None:
    import re

    for key in ("a", "b", "nightly-report"):
        assert re.match(pattern, expand_hash(expression, key)), expand_hash(expression, key)


def test_each_job_keeps_its_own_minute_and_a_thousand_jobs_spread_over_the_hour() -> None:
    minutes = Counter()
    for number in range(1200):
        job = Job(id=f"job-{number}", func="m:f", trigger=CronTrigger("H * * * *", "UTC"))
        fire = job.trigger.next_fire_time(T0)
        assert fire is not None
        minutes[fire.minute] += 1
        again = job_from_dict(job_to_dict(job))
        assert again.trigger.next_fire_time(T0) == fire
    assert len(minutes) == 60
    assert max(minutes.values()) < 3 * 1200 / 60


def test_the_job_binds_its_id_and_the_key_is_not_stored() -> None:
    trigger = CronTrigger("H H * * *", "UTC")
    job = Job(id="backup", func="m:f", trigger=trigger)
    assert isinstance(job.trigger, CronTrigger) and job.trigger.hash_key == "backup"
    assert "hash_key" not in job.trigger.to_dict()
    assert job.trigger.to_dict()["expression"] == "H H * * *"
    assert job.trigger.evaluated == expand_hash("H H * * *", "backup")
    assert "(H: H H * * *)" in job.trigger.describe()
    plain = CronTrigger("0 3 * * *")
    assert plain.for_job("x") is plain


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("H(30-10) * * * *", "minute field: 'H(30-10)': the range must lie within 0-59"),
        ("H(0-75) * * * *", "minute field: 'H(0-75)': the range must lie within 0-59"),
        ("H/0 * * * *", "minute field: 'H/0': step 0 is not allowed"),
        ("Hx * * * *", "minute field"),
        ("* H(x) * * *", "hour field: 'H(X)' is not H, H(a-b), H/n or H(a-b)/n"),
    ],
)
def test_a_bad_h_item_is_refused_by_name(expression: str, message: str) -> None:
    with pytest.raises(InvalidTriggerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_cron(expression)


def test_h_in_the_seconds_field() -> None:
    trigger = CronTrigger("H * * * * *", "UTC", seconds=True, hash_key="k")
    fire = trigger.next_fire_time(T0)
    assert fire is not None and fire - T0 < timedelta(minutes=1)
    assert trigger.evaluated.split()[0].isdigit()
