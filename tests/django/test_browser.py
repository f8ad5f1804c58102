"""The admin in a real browser (headless Chromium): the errors, the preview and the actions a
person sees. Takes the screenshots the docs use (docs/img/admin-*.png): into the test's tmp
folder, or over the docs' own with BEATX_UPDATE_SCREENSHOTS=1 (``make screenshots``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from beatx.stores.base import BeatStatus
from beatx.triggers import IntervalTrigger
from django_beatx import conf
from django_beatx.models import Job

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
#: Set to 1 to write the screenshots over the tracked ones in docs/img (``make screenshots``).
UPDATE_SCREENSHOTS_ENV = "BEATX_UPDATE_SCREENSHOTS"


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/img when BEATX_UPDATE_SCREENSHOTS=1 asks to refresh the docs; else a folder of the
    test's own, so an ordinary run leaves the tracked PNGs alone."""
    if os.environ.get(UPDATE_SCREENSHOTS_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return DOCS_IMG
    return tmp_path / "screenshots"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = f"headless Chromium needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 900)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Any, str], None]:
    """``shot(driver, name)`` saves ``admin-<name>.png`` into :func:`screenshot_dir`."""
    directory = screenshot_dir(tmp_path)

    def save(driver: Any, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"admin-{name}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"

    return save


def test_screenshots_refresh_docs_img_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPDATE_SCREENSHOTS_ENV, raising=False)
    assert screenshot_dir(tmp_path) == tmp_path / "screenshots"
    monkeypatch.setenv(UPDATE_SCREENSHOTS_ENV, "0")
    assert screenshot_dir(tmp_path) == tmp_path / "screenshots"
    monkeypatch.setenv(UPDATE_SCREENSHOTS_ENV, "1")
    assert screenshot_dir(tmp_path) == DOCS_IMG
    assert DOCS_IMG.is_dir() and (DOCS_IMG / "admin-job-list.png").is_file()


def test_create_fix_preview_and_pause_a_cron_job(
    browser: Any, live_server: Any, admin_user: Any, shot: Callable[[Any, str], None]
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def wait_for(condition: Any, what: str) -> None:
        # An element read while the page reloads goes stale: read it again on the next poll.
        WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda driver: condition(), message=f"waiting for {what}"
        )

    def text_of(selector: str) -> str:
        elements = browser.find_elements(By.CSS_SELECTOR, selector)
        return " ".join(e.text for e in elements)

    def find(selector: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, selector)

    def type_into(selector: str, text: str) -> None:
        element = find(selector)
        element.clear()
        element.send_keys(text)

    # A beat that reports in, so the health panel shows what it shows in production.
    store = conf.get_store()
    now = datetime.now(UTC)
    store.acquire_lease("web-1:4242:1a2b3c4d", now=now, ttl=3600)
    store.write_status(
        BeatStatus(
            owner="web-1:4242:1a2b3c4d", leader_since=now, last_tick_at=now, due_backlog=0, jobs_fired=128
        )
    )

    browser.get(f"{live_server.url}/admin/login/?next=/admin/django_beatx/job/add/")
    type_into("#id_username", "admin")
    type_into("#id_password", "pw-admin-123")
    find("input[type=submit]").click()
    wait_for(lambda: "/admin/django_beatx/job/add/" in browser.current_url, "the add form")
    find("#toggle-nav-sidebar").click()  # more room for the form and the list

    # Only the cron fieldset of the three trigger kinds shows.
    assert find("fieldset.beatx-kind-cron").is_displayed()
    assert not find("fieldset.beatx-kind-interval").is_displayed()
    Select(find("#id_trigger_kind")).select_by_value("interval")
    assert (
        find("fieldset.beatx-kind-interval").is_displayed()
        and not find("fieldset.beatx-kind-cron").is_displayed()
    )
    Select(find("#id_trigger_kind")).select_by_value("cron")

    type_into("#id_id", "nightly-invoices")
    type_into("#id_name", "Nightly invoices")
    type_into("#id_task", "billing.tasks.invoice")
    type_into("#id_kwargs", '{"dry_run": false}')
    type_into("#id_cron_expression", "0 25 * * 1-5")
    type_into("#id_timezone", "Europe/Paris")
    shot(browser, "add-form")
    find("input[name=_continue]").click()

    wait_for(lambda: text_of(".field-cron_expression .errorlist"), "the cron error")
    error = find(".field-cron_expression .errorlist").text
    assert "hour" in error and "25" in error
    assert "hour" in find("#beatx-preview .beatx-preview-error").text
    shot(browser, "cron-error")

    type_into("#id_cron_expression", "0 3 * * 1-5")
    find("input[name=_continue]").click()
    wait_for(lambda: "/change/" in browser.current_url, "the change page")
    times = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#beatx-preview li")]
    assert len(times) == 5
    assert all(" 03:00:00 " in t and ("CET" in t or "CEST" in t) for t in times)
    assert "Monday through Friday" in find("#beatx-preview").text
    shot(browser, "preview")

    # Two more jobs, so the list shows the other kinds and a failure.
    manager = conf.get_manager()
    manager.add_job(
        "shop.tasks.sync_inventory",
        IntervalTrigger(minutes=10),
        id="sync-inventory",
        name="Sync inventory",
        kwargs={"warehouse": "lyon"},
    )
    manager.add_job(
        "shop.tasks.flaky_export", IntervalTrigger(seconds=30), id="flaky-export", name="Export orders"
    )
    store.run_finished(
        "flaky-export",
        "t-1",
        finished_at=now,
        duration=0.2,
        error="ConnectionError: partner API answered 503 Service Unavailable",
    )
    find("input[name=_save]").click()
    wait_for(lambda: browser.current_url.endswith("/admin/django_beatx/job/"), "the job list")
    assert "At 03:00, Monday through Friday (Europe/Paris)" in find("#result_list").text
    assert "web-1:4242:1a2b3c4d" in find("#beatx-health").text
    shot(browser, "job-list")

    find("input[name=_selected_action][value=nightly-invoices]").click()
    Select(find("select[name=action]")).select_by_value("pause_jobs")
    find("button[name=index]").click()
    wait_for(lambda: "1 job was paused." in text_of(".messagelist"), "the pause message")
    assert find(".beatx-status-paused").text == "Paused"
    shot(browser, "paused")
    assert Job.objects.get(pk="nightly-invoices").status == "paused"


def test_the_admin_refuses_what_is_wrong_and_records_what_is_done(
    browser: Any,
    live_server: Any,
    admin_user: Any,
    settings: Any,
    shot: Callable[[Any, str], None],
) -> None:
    """Issue 16, finding by finding, as a person sees it: errors beside the field, no HTTP
    500 anywhere, History entries, the preview of an edit before it is saved."""
    from zoneinfo import ZoneInfo

    from django.contrib.admin.models import LogEntry
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.django.celery_app import app  # registers reports.send_digest

    app.conf.broker_url = "memory://"
    # The test process holds many Celery apps (one per earlier test): name the project's.
    settings.BEATX = {"JOB_DEFAULTS": {"misfire_grace_time": 60}, "CELERY_APP": "tests.django.celery_app:app"}
    manager = conf.get_manager()

    def wait_for(condition: Any, what: str) -> None:
        WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda driver: condition(), message=f"waiting for {what}"
        )

    def find(selector: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, selector)

    def text_of(selector: str) -> str:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, selector))

    def type_into(selector: str, text: str) -> None:
        element = find(selector)
        element.clear()
        element.send_keys(text)

    def set_value(selector: str, text: str) -> None:
        # Very long values (2,000 nested brackets) are set directly, not typed key by key.
        browser.execute_script(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            find(selector),
            text,
        )

    def no_server_error() -> None:
        assert "Server Error" not in browser.title and "Server Error (500)" not in find("body").text

    def open_page(url: str) -> None:
        browser.get(f"{live_server.url}{url}")
        no_server_error()

    def submit(name: str = "_continue") -> None:
        page = find("html")
        find(f"input[name={name}]").click()
        WebDriverWait(browser, 10).until(staleness_of(page), message="waiting for the answer")
        wait_for(lambda: browser.execute_script("return document.readyState") == "complete", "the answer")
        no_server_error()

    def field_error(field: str) -> str:
        wait_for(lambda: text_of(f".field-{field} .errorlist"), f"the error beside {field}")
        return text_of(f".field-{field} .errorlist")

    open_page("/admin/login/?next=/admin/django_beatx/job/add/")
    type_into("#id_username", "admin")
    type_into("#id_password", "pw-admin-123")
    find("input[type=submit]").click()
    wait_for(lambda: "/admin/django_beatx/job/add/" in browser.current_url, "the add form")
    find("#toggle-nav-sidebar").click()

    # 1. The task list is Celery's registry; 7. the policy starts from the job defaults.
    options = [
        o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#id_task_list option")
    ]
    assert "reports.send_digest" in options
    assert find("#id_misfire_grace_time").get_attribute("value") == "60"

    # 11. A function of the server is no task; 6. nor is JSON 2,000 levels deep.
    type_into("#id_id", "new-york-once")
    type_into("#id_task", "os:system")
    set_value("#id_kwargs", '{"a":' * 2000 + "1" + "}" * 2000)
    submit()
    assert "not a Celery task name" in field_error("task")
    assert "2000 levels deep" in field_error("kwargs")

    # 2. An interval of a millisecond, with the reason; 6. a start at the end of the calendar.
    type_into("#id_task", "reports.send_digest")
    set_value("#id_kwargs", "{}")
    Select(find("#id_trigger_kind")).select_by_value("interval")
    type_into("#id_interval_seconds", "0.001")
    type_into("#id_start_date_0", "9999-12-31")
    type_into("#id_start_date_1", "23:59:59")
    submit()
    assert "At least 1 s" in field_error("interval_seconds")
    assert "from 1970 to 2999" in field_error("start_date")
    assert "MIN_INTERVAL_SECONDS" in text_of(".field-interval_seconds .help")
    find("#id_start_date_0").clear()
    find("#id_start_date_1").clear()

    # 3. A New York one-shot: the dates are labelled New York, and "Now" is now in New York.
    Select(find("#id_trigger_kind")).select_by_value("date")
    type_into("#id_timezone", "America/New_York")
    wait_for(lambda: "America/New_York" in text_of(".field-run_at .beatx-zone-name"), "the zone label")
    find(".field-run_at .beatx-now").click()
    typed = f"{find('#id_run_at_0').get_attribute('value')} {find('#id_run_at_1').get_attribute('value')}"
    now_in_new_york = datetime.now(ZoneInfo("America/New_York")).replace(tzinfo=None)
    assert abs(datetime.strptime(typed, "%Y-%m-%d %H:%M:%S") - now_in_new_york).total_seconds() < 120
    shot(browser, "zoned-now")

    # 4. ...which has passed by the time it is saved: refused unless "run once now" is ticked.
    type_into("#id_run_at_0", "2020-01-01")
    type_into("#id_run_at_1", "09:00:00")
    submit()
    assert "has passed" in field_error("run_at")
    shot(browser, "past-one-shot")
    find("#id_run_once_now").click()
    submit()
    wait_for(lambda: "/change/" in browser.current_url, "the change page")
    row = Job.objects.get(pk="new-york-once")
    assert row.run_at == datetime(2020, 1, 1, 14, 0, tzinfo=UTC) and row.misfire_grace_time == 60

    # 9. The preview of an unsaved edit, and what saving does to the next run.
    manager.add_job(
        "reports.send_digest",
        "cron",
        id="nightly",
        name="Nightly report",
        expression="0 3 * * *",
        timezone="Europe/Paris",
    )
    open_page("/admin/django_beatx/job/nightly/change/")
    before = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#beatx-preview li")]
    type_into("#id_cron_expression", "30 9 * * *")
    wait_for(lambda: "Saving moves the next run" in text_of("#beatx-preview"), "the live preview")
    after = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#beatx-preview li")]
    assert after != before and all(" 09:30:00 " in t for t in after)
    assert Job.objects.get(pk="nightly").cron_expression == "0 3 * * *"  # not saved yet
    browser.execute_script("document.getElementById('beatx-preview').scrollIntoView()")
    shot(browser, "live-preview")

    # 8. Pause from the job page with a note: in the list, and in the History.
    open_page("/admin/django_beatx/job/nightly/change/")
    type_into("#beatx-pause-note", "Partner API down until Monday")
    find("#beatx-pause").click()
    wait_for(lambda: "1 job was paused." in text_of(".messagelist"), "the pause message")
    find("#beatx-run-now").click()
    wait_for(
        lambda: "sent to the workers" in text_of(".messagelist"),
        "the run-now message: " + text_of(".messagelist"),
    )
    open_page("/admin/django_beatx/job/nightly/history/")
    assert "Paused. Note: Partner API down until Monday" in find("#content").text
    assert "Run now: sent to the workers" in find("#content").text
    shot(browser, "history")
    assert LogEntry.objects.filter(object_id="nightly").count() == 2

    # 5. A row written wrong by SQL: broken in the list, left out of the actions, repaired
    # in its form.
    manager.add_job(
        "reports.send_digest",
        "cron",
        id="sync",
        name="Sync inventory",
        expression="*/10 * * * *",
        timezone="Europe/Paris",
    )
    Job.objects.filter(pk="sync").update(timezone="Europe/Atlantis")
    open_page("/admin/django_beatx/job/")
    assert "Broken" in find(".beatx-status-broken").text
    assert "Partner API down until Monday" in find(".beatx-pause-note").text
    # 10. The list fits 1280 px, a paused job's next run is "-", times carry seconds and zone.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    assert find("#result_list tr:has(input[value=nightly]) td.field-next_run").text == "-"
    shot(browser, "broken")
    find("#action-toggle").click()
    Select(find("select[name=action]")).select_by_value("pause_jobs")
    find("button[name=index]").click()
    wait_for(lambda: "broken job was left out" in text_of(".messagelist"), "the left-out message")
    no_server_error()
    assert Job.objects.get(pk="sync").status == "active"
    open_page("/admin/django_beatx/job/sync/change/")
    assert "Europe/Atlantis" in find("#beatx-problem").text
    type_into("#id_timezone", "Europe/Paris")
    submit("_save")
    wait_for(lambda: "repaired" in text_of(".messagelist"), "the repair message")
    assert "Nothing was saved" not in text_of(".messagelist")
    assert Job.objects.get(pk="sync").timezone == "Europe/Paris"
