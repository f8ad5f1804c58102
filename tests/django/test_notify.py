"""An edit reaches a waiting beat through LISTEN/NOTIFY on PostgreSQL, in milliseconds."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks
from tests.stores.contract import make_job

pytestmark = postgres_marks(transaction=True)


def test_an_edit_wakes_a_waiting_beat_without_polling(postgres_available: None) -> None:
    beat_side = DjangoStore(using="postgres", poll_interval=10.0)  # polling alone would take 10 s
    admin_side = DjangoStore(using="postgres")
    assert beat_side.wait_for_change(0.0) is False  # listening from here on
    woken: list[float] = []

    def wait() -> None:
        try:
            if beat_side.wait_for_change(5.0):
                woken.append(time.monotonic())
        finally:
            connections.close_all()  # this thread's own Django connection

    latencies = []
    try:
        for n in range(5):
            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.2)  # the beat is waiting
            edited_at = time.monotonic()
            admin_side.add_job(make_job(f"edit-{n}"))
            waiter.join(5)
            assert len(woken) == n + 1, "the waiting beat was not woken"
            latencies.append(woken[-1] - edited_at)
    finally:
        beat_side.close()
    print(f"edit -> waiting beat: {', '.join(f'{x * 1000:.1f} ms' for x in latencies)}")
    assert max(latencies) < 1.0  # polling alone would take up to 10 s; the figure is printed


def test_a_change_made_between_two_waits_is_not_lost(postgres_available: None) -> None:
    beat_side = DjangoStore(using="postgres", poll_interval=10.0)
    try:
        assert beat_side.wait_for_change(0.0) is False
        DjangoStore(using="postgres").add_job(make_job("between"))
        started = time.monotonic()
        assert beat_side.wait_for_change(5.0) is True
        assert time.monotonic() - started < 1.0
        assert beat_side.wait_for_change(0.2) is False
    finally:
        beat_side.close()


@pytest.mark.parametrize("_", [None])
def test_a_broken_listen_connection_is_opened_again(postgres_available: None, _: None) -> None:
    beat_side = DjangoStore(using="postgres", poll_interval=10.0)
    try:
        assert beat_side.wait_for_change(0.0) is False
        beat_side._listener._connection.close()  # the server dropped it
        DjangoStore(using="postgres").add_job(make_job("after-drop"))
        assert beat_side.wait_for_change(2.0) is True  # the counter still tells
        DjangoStore(using="postgres").add_job(make_job("after-reconnect"))
        started = time.monotonic()
        assert beat_side.wait_for_change(5.0) is True
        assert time.monotonic() - started < 1.0
    finally:
        beat_side.close()
