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
