"""The admin form and its live preview with the RRULE, solar and extended cron triggers."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from beatx.triggers import CronTrigger, RRuleTrigger, SolarTrigger
from django_beatx import conf
from django_beatx.models import Job
from tests.django.test_admin import ADD, change_url, form_data
from tests.django.test_browser import browser, shot

__all__ = ["browser", "shot"]  # the headless Chromium fixtures

pytestmark = pytest.mark.django_db(databases=["default"])

PREVIEW = "admin:django_beatx_job_preview"
LAST_FRIDAY = "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1"


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def rrule_data(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "trigger_kind": "rrule",
        "cron_expression": "",
        "rrule": LAST_FRIDAY,
        "rrule_dtstart_0": "2026-01-02",
        "rrule_dtstart_1": "09:00:00",
        "rrule_exdates": "2026-12-25T09:00:00\n",
        "rrule_rdates": "",
        "timezone": "Europe/Paris",
    }
    values.update(overrides)
    return form_data(**values)


def solar_data(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "trigger_kind": "solar",
        "cron_expression": "",
        "solar_event": "sunset",
        "solar_latitude": "48.85",
        "solar_longitude": "2.35",
    }
    values.update(overrides)
    return form_data(**values)


def errors_of(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    return {name: [str(e) for e in errs] for name, errs in response.context["adminform"].form.errors.items()}


def stored(job_id: str = "nightly-invoices") -> Any:
    job = conf.get_store().get_job(job_id)
    assert job is not None
    return job


# -- saving each kind ----------------------------------------------------------------------------


def test_an_rrule_job_is_saved_from_the_form(admin: Client) -> None:
    response = admin.post(
        reverse(ADD), rrule_data(rrule_rdates="2026-12-24T09:00\n\n2026-12-31 08:00:00+00:00")
    )
    assert response.status_code == 302, errors_of(response)
    assert stored().trigger == RRuleTrigger(
        LAST_FRIDAY,
        dtstart="2026-01-02T09:00:00",
        timezone="Europe/Paris",
        exdates=["2026-12-25T09:00:00"],
        rdates=["2026-12-24T09:00:00", "2026-12-31T08:00:00+00:00"],
    )
    row = Job.objects.get(pk="nightly-invoices")
    assert row.start_date is None and row.end_date is None and row.cron_expression == ""


def test_an_empty_dtstart_means_when_saved(admin: Client) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = admin.post(reverse(ADD), rrule_data(rrule_dtstart_0="", rrule_dtstart_1="", rrule_exdates=""))
    assert response.status_code == 302, errors_of(response)
    trigger = stored().trigger
    assert trigger.dtstart is not None
    assert before - timedelta(seconds=1) <= trigger.dtstart <= datetime.now(UTC) + timedelta(seconds=1)


def test_a_solar_job_is_saved_without_timezone_or_window(admin: Client) -> None:
    response = admin.post(
        reverse(ADD), solar_data(timezone="Europe/Paris", start_date_0="2026-01-01", start_date_1="00:00:00")
    )
    assert response.status_code == 302, errors_of(response)
    job = stored()
    assert job.trigger == SolarTrigger("sunset", 48.85, 2.35)
    row = Job.objects.get(pk="nightly-invoices")
    assert (row.timezone, row.start_date, row.cron_expression) == ("", None, "")


@pytest.mark.parametrize(
    ("overrides", "trigger"),
    [
        (
            {"cron_expression": "0 9 L * *", "cron_extended": "on"},
            CronTrigger("0 9 L * *", "Europe/Paris", extended=True),
        ),
        (
            {"cron_expression": "30 0 3 * * *", "cron_seconds": "on"},
            CronTrigger("30 0 3 * * *", "Europe/Paris", seconds=True),
        ),
        (
            {"cron_expression": "0 0 9 ? * FRI#3", "cron_extended": "on", "cron_seconds": "on"},
            CronTrigger("0 0 9 ? * FRI#3", "Europe/Paris", extended=True, seconds=True),
        ),
    ],
)
def test_an_extended_or_seconds_cron_job_is_saved_with_its_boxes(
    admin: Client, overrides: dict[str, str], trigger: CronTrigger
) -> None:
    response = admin.post(reverse(ADD), form_data(**overrides))
    assert response.status_code == 302, errors_of(response)
    assert stored().trigger == trigger


def test_the_boxes_of_another_kind_are_cleared(admin: Client) -> None:
    response = admin.post(
        reverse(ADD), rrule_data(cron_extended="on", cron_seconds="on", solar_latitude="12")
    )
    assert response.status_code == 302, errors_of(response)
    row = Job.objects.get(pk="nightly-invoices")
    assert (row.cron_extended, row.cron_seconds, row.solar_latitude) == (False, False, None)


def test_a_bad_value_in_a_hidden_field_of_another_kind_does_not_block_the_save(admin: Client) -> None:
    response = admin.post(reverse(ADD), form_data(rrule_exdates="not a date", solar_latitude="north"))
    assert response.status_code == 302, errors_of(response)
    row = Job.objects.get(pk="nightly-invoices")
    assert (row.trigger_kind, row.rrule_exdates, row.solar_latitude) == ("cron", [], None)


# -- errors beside their field ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (rrule_data(rrule="FREQ=SOMETIMES"), "rrule", "invalid RRULE"),
        (rrule_data(rrule=""), "rrule", "needs its rule"),
        (rrule_data(rrule="FREQ=DAILY\nEXDATE:20260101"), "rrule", "EXDATE"),
        (rrule_data(rrule_exdates="2026-12-25T09:00:00\nChristmas"), "rrule_exdates", "Line 2: Christmas"),
        (rrule_data(rrule_rdates="3026-01-01T00:00:00"), "rrule_rdates", "1970 to 2999"),
        (rrule_data(rrule_dtstart_0="2026-02-30"), "rrule_dtstart", "valid date"),
        (rrule_data(rrule="FREQ=DAILY;COUNT=3", rrule_dtstart_0="2020-01-01"), "rrule", "never fires again"),
        (rrule_data(timezone="Mars/Olympus"), "timezone", "Unknown timezone"),
        (solar_data(solar_latitude="91"), "solar_latitude", "-90 to 90"),
        (solar_data(solar_longitude="-180.5"), "solar_longitude", "-180 to 180"),
        (solar_data(solar_latitude=""), "solar_latitude", "degrees"),
        (solar_data(solar_event=""), "solar_event", "event"),
        (solar_data(solar_event="moonrise"), "solar_event", "moonrise"),
        (form_data(cron_expression="0 9 L * *"), "cron_expression", "tick extended (cron_extended)"),
        (form_data(cron_expression="0 9 * * 5#3"), "cron_expression", "extended token"),
        (form_data(cron_expression="30 0 3 * * *"), "cron_expression", "tick seconds (cron_seconds)"),
        (form_data(cron_expression="0 3 * * *", cron_seconds="on"), "cron_expression", "6 fields"),
    ],
)
def test_each_refusal_is_beside_its_field(
    admin: Client, data: dict[str, Any], field: str, words: str
) -> None:
    response = admin.post(reverse(ADD), data)
    errors = errors_of(response)
    assert list(errors) == [field], errors
    assert words in " ".join(errors[field])
    assert not Job.objects.exists()
    assert 'class="beatx-preview-error"' in response.content.decode()


# -- the page -----------------------------------------------------------------------------------


def test_the_add_page_has_a_fieldset_and_help_for_each_kind(admin: Client) -> None:
    page = admin.get(reverse(ADD)).content.decode()
    for kind in ("cron", "interval", "date", "rrule", "solar"):
        assert f"beatx-kind-{kind}" in page
    assert 'name="cron_extended"' in page and 'name="cron_seconds"' in page
    assert 'id="beatx-extended-help"' in page and "<code>LW</code>" in page and "FRI#3" in page
    assert 'id="beatx-rrule-help"' in page and LAST_FRIDAY in page
    assert 'id="beatx-solar-help"' in page and "<code>dusk_nautical</code>" in page
    assert 'name="rrule_dtstart_0"' in page and 'name="rrule_exdates"' in page
    assert '<select name="solar_event"' in page and 'value="dawn_astronomical"' in page
    assert 'name="solar_latitude"' in page and 'max="90"' in page
    assert "beatx-window" in page and "unusedWindowFields" in page


def test_the_change_page_shows_an_rrule_job_as_saved_and_saving_it_unchanged_keeps_the_next_run(
    admin: Client,
) -> None:
    admin.post(reverse(ADD), rrule_data(rrule_rdates="2026-12-24T09:00:00"))
    row = Job.objects.get(pk="nightly-invoices")
    response = admin.get(change_url("nightly-invoices"))
    form = response.context["adminform"].form
    page = response.content.decode()
    assert 'value="2026-01-02"' in page and 'value="09:00:00"' in page  # in the job's zone
    assert "2026-12-25T09:00:00</textarea>" in page and "2026-12-24T09:00:00</textarea>" in page
    assert form["rrule"].value() == LAST_FRIDAY
    same = admin.post(
        reverse(PREVIEW), rrule_data(_beatx_object_id="nightly-invoices", rrule_rdates="2026-12-24T09:00:00")
    ).json()
    assert "Saving keeps the next run" in same["effect"], same
    response = admin.post(
        change_url("nightly-invoices"), rrule_data(rrule_rdates="2026-12-24T09:00:00", name="Renamed")
    )
    assert response.status_code == 302, errors_of(response)
    after = Job.objects.get(pk="nightly-invoices")
    assert (after.name, after.next_run_time, after.revision) == (
        "Renamed",
        row.next_run_time,
        row.revision + 1,
    )


def test_the_change_page_of_a_solar_job(admin: Client) -> None:
    conf.get_manager().add_job("reports.send_digest", SolarTrigger("sunrise", 60.17, 24.94), id="helsinki")
    response = admin.get(change_url("helsinki"))
    form = response.context["adminform"].form
    assert (form["solar_event"].value(), form["solar_latitude"].value()) == ("sunrise", 60.17)
    preview = response.context["beatx_preview"]
    assert len(preview["times"]) == 5 and "sunrise" in preview["description"]


# -- the live preview ---------------------------------------------------------------------------


def test_the_preview_of_an_extended_cron_shows_the_last_fridays(admin: Client) -> None:
    answer = admin.post(
        reverse(PREVIEW), form_data(cron_expression="0 9 * * 5L", cron_extended="on", timezone="UTC")
    ).json()
    assert not answer.get("error"), answer
    assert len(answer["times"]) == 5
    for text in answer["times"]:
        day = datetime.strptime(text.split()[1], "%Y-%m-%d")
        assert text.startswith("Fri ") and " 09:00:00 " in text
        assert (day + timedelta(days=7)).month != day.month  # the last Friday of its month
    assert "last Friday" in answer["description"]


def test_the_preview_of_a_seconds_cron(admin: Client) -> None:
    answer = admin.post(
        reverse(PREVIEW), form_data(cron_expression="30 0 3 * * *", cron_seconds="on", timezone="UTC")
    ).json()
    assert len(answer["times"]) == 5 and all(" 03:00:30 " in t for t in answer["times"]), answer


def test_the_preview_of_an_extended_token_without_the_box_is_its_error(admin: Client) -> None:
    answer = admin.post(reverse(PREVIEW), form_data(cron_expression="0 9 L * *")).json()
    assert "cron_extended" in answer["error"] and not answer.get("times")


def last_friday(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    return day - timedelta(days=(day.weekday() - calendar.FRIDAY) % 7)


def test_the_preview_of_an_rrule(admin: Client) -> None:
    future = datetime.now(UTC).year + 1
    january = last_friday(future, 1)
    answer = admin.post(
        reverse(PREVIEW),
        rrule_data(rrule_dtstart_0=f"{future}-01-01", rrule_exdates=f"{january.isoformat()}T09:00:00"),
    ).json()
    assert not answer.get("error"), answer
    assert answer["timezone"] == "Europe/Paris"
    assert len(answer["times"]) == 5 and all(
        t.startswith("Fri ") and " 09:00:00 " in t for t in answer["times"]
    )
    # January's is the exception: February's comes first.
    assert [t.split()[1] for t in answer["times"]] == [
        last_friday(future, m).isoformat() for m in range(2, 7)
    ]
    assert 'class="beatx-preview-trigger"' in answer["html"] and "RRULE" in answer["description"]


def test_the_preview_of_an_rrule_without_dtstart_starts_now(admin: Client) -> None:
    answer = admin.post(
        reverse(PREVIEW),
        rrule_data(rrule="FREQ=HOURLY", rrule_dtstart_0="", rrule_dtstart_1="", rrule_exdates=""),
    ).json()
    assert not answer.get("error"), answer
    first = datetime.strptime(" ".join(answer["times"][0].split()[1:3]), "%Y-%m-%d %H:%M:%S")
    assert len(answer["times"]) == 5
    assert first.minute == datetime.now(UTC).minute or first.minute == (datetime.now(UTC).minute + 59) % 60


def test_the_preview_of_a_bad_rrule_is_its_error(admin: Client) -> None:
    answer = admin.post(reverse(PREVIEW), rrule_data(rrule="FREQ=SOMETIMES")).json()
    assert "invalid RRULE" in answer["error"]


def test_the_preview_of_a_solar_job(admin: Client) -> None:
    answer = admin.post(reverse(PREVIEW), solar_data()).json()
    assert not answer.get("error"), answer
    assert answer["timezone"] == conf.timezone_name()
    assert len(answer["times"]) == 5
    assert "sunset" in answer["description"] and "48.85" in answer["description"]
    days = [datetime.strptime(t.split()[1], "%Y-%m-%d") for t in answer["times"]]
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(days))


def test_the_preview_of_a_latitude_of_91_is_its_error(admin: Client) -> None:
    answer = admin.post(reverse(PREVIEW), solar_data(solar_latitude="91")).json()
    assert "-90 to 90" in answer["error"] and not answer.get("times")


# -- in a real browser --------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(databases=["default"], transaction=True)
def test_the_form_shows_the_fields_of_each_new_kind_and_previews_them_live(
    browser: Any, live_server: Any, admin_user: Any, shot: Callable[[Any, str], None]
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def wait_for(condition: Any, what: str) -> None:
        WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda driver: condition(), message=f"waiting for {what}"
        )

    def find(selector: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, selector)

    def shown(selector: str) -> bool:
        return bool(find(selector).is_displayed())

    def type_into(selector: str, text: str) -> None:
        element = find(selector)
        element.clear()
        element.send_keys(text)

    def preview() -> str:
        return str(find("#beatx-preview").text)

    browser.get(f"{live_server.url}/admin/login/?next=/admin/django_beatx/job/add/")
    type_into("#id_username", "admin")
    type_into("#id_password", "pw-admin-123")
    find("input[type=submit]").click()
    wait_for(lambda: "/admin/django_beatx/job/add/" in browser.current_url, "the add form")
    find("#toggle-nav-sidebar").click()
    browser.set_window_size(1280, 1700)  # the preview and the trigger's fieldset in one screenshot
    type_into("#id_id", "lights")
    type_into("#id_task", "shop.tasks.lights")

    # Cron: the two boxes beside the expression; an extended token needs its box.
    assert shown("#id_cron_extended") and shown("#id_cron_seconds") and shown(".field-start_date")
    type_into("#id_cron_expression", "0 9 * * 5L")
    wait_for(lambda: "cron_extended" in preview(), "the preview's error")
    find("#id_cron_extended").click()
    wait_for(lambda: "last Friday" in preview(), "the preview of the last Fridays")
    find("#beatx-extended-help summary").click()
    browser.execute_script("document.getElementById('beatx-preview').scrollIntoView()")
    shot(browser, "extended-cron")

    # RRULE: its fieldset and the timezone, no start or end date.
    Select(find("#id_trigger_kind")).select_by_value("rrule")
    assert shown("fieldset.beatx-kind-rrule") and not shown("fieldset.beatx-kind-cron")
    assert shown(".field-timezone") and not shown(".field-start_date") and not shown(".field-end_date")
    type_into("#id_timezone", "Europe/Paris")
    type_into("#id_rrule", "FREQ=SOMETIMES")
    wait_for(lambda: "invalid RRULE" in preview(), "the preview's RRULE error")
    type_into("#id_rrule", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=8;BYMINUTE=0;BYSECOND=0")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#beatx-preview li")) == 5, "five Mondays")
    assert all(
        li.text.startswith("Mon ") for li in browser.find_elements(By.CSS_SELECTOR, "#beatx-preview li")
    )
    browser.execute_script("document.getElementById('beatx-preview').scrollIntoView()")
    shot(browser, "rrule-form")

    # Solar: no timezone and no window at all; a latitude of 91 is the preview's error.
    Select(find("#id_trigger_kind")).select_by_value("solar")
    assert shown("fieldset.beatx-kind-solar") and not shown("fieldset.beatx-kind-rrule")
    assert not shown("fieldset.beatx-window")
    Select(find("#id_solar_event")).select_by_value("sunset")
    type_into("#id_solar_longitude", "2.35")
    type_into("#id_solar_latitude", "91")
    wait_for(lambda: "-90 to 90" in preview(), "the latitude error")
    type_into("#id_solar_latitude", "48.85")
    wait_for(lambda: "at sunset at latitude 48.85" in preview(), "the sunset preview")
    browser.execute_script("document.getElementById('beatx-preview').scrollIntoView()")
    shot(browser, "solar-form")
    find("input[name=_continue]").click()
    wait_for(lambda: "/change/" in browser.current_url, "the change page")
    assert Job.objects.get(pk="lights").build_trigger() == SolarTrigger("sunset", 48.85, 2.35)
    assert shown("fieldset.beatx-kind-solar") and not shown("fieldset.beatx-window")
