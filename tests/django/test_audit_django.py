"""The audit log through the admin: its writes are recorded as made through ``admin`` by the
logged-in user, and a job's page shows its changes (``JobManager.job_history``), those made
elsewhere too."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from beatx.triggers import IntervalTrigger
from django_beatx import conf
from tests.django.test_admin import change_url, form_data

pytestmark = pytest.mark.django_db(databases=["default"])


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_admin_changes_are_recorded_and_shown_with_the_others(admin: Client) -> None:
    api = conf.get_manager()
    api.add_job(
        "billing.tasks.invoice", IntervalTrigger(minutes=5), id="nightly-invoices", actor="deploy-bot"
    )
    admin.post(change_url("nightly-invoices"), form_data(name="Renamed in the admin"))
    changelist = reverse("admin:django_beatx_job_changelist")
    response = admin.post(
        changelist, {"action": "pause_jobs", "_selected_action": ["nightly-invoices"], "pause_note": "audit"}
    )
    assert response.status_code == 302

    history = api.job_history("nightly-invoices")
    assert [(c.action, c.source, c.actor) for c in history][:3] == [
        ("paused", "admin", "admin"),
        ("changed", "admin", "admin"),
        ("added", "api", "deploy-bot"),
    ]
    assert history[1].changes["name"] == ["nightly-invoices", "Renamed in the admin"]
    assert history[0].changes == {"status": ["active", "paused"], "pause_note": [None, "audit"]}

    page = admin.get(change_url("nightly-invoices")).content.decode()
    changes = page[page.index('id="beatx-changes"') :]
    assert "deploy-bot" in changes and "Renamed in the admin" in changes and "paused" in changes

    admin.post(reverse("admin:django_beatx_job_delete", args=["nightly-invoices"]), {"post": "yes"})
    assert api.get_job("nightly-invoices") is None
    assert (api.job_history("nightly-invoices")[0].action, api.job_history("nightly-invoices")[0].actor) == (
        "removed",
        "admin",
    )
