"""The admin's alert rules: the form saves them, the scheduler reads them, the page shows them,
and a bad value is refused beside its field."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from django_beatx import conf
from django_beatx.models import Job
from tests.django.test_admin import ADD, form_data

pytestmark = pytest.mark.django_db(databases=["default"])


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_the_form_saves_the_alert_rules_and_the_scheduler_reads_them(admin: Client) -> None:
    page = admin.get(reverse(ADD)).content.decode()
    assert 'name="expect_every"' in page and 'name="alert_after_failures"' in page
    response = admin.post(
        reverse(ADD),
        form_data(expect_every="3900", max_lateness="", max_runtime="600", alert_after_failures="3"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = conf.get_manager().get_job("nightly-invoices")
    assert job is not None
    assert (job.expect_every, job.max_lateness, job.max_runtime, job.alert_after_failures) == (
        3900.0,
        None,
        600.0,
        3,
    )
    assert [j.id for j in conf.get_store().alerting_jobs()] == ["nightly-invoices"]


def test_a_bad_rule_is_refused_beside_its_field(admin: Client) -> None:
    page = admin.post(reverse(ADD), form_data(expect_every="0", alert_after_failures="0")).content.decode()
    assert page.count("Ensure this value is greater than or equal to") == 2
    assert not Job.objects.filter(pk="nightly-invoices").exists()
