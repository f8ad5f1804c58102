"""Delivering alerts (:mod:`beatx.alerts`) outside the process: a webhook, Sentry Crons.

:meth:`AlertDelivery.deliver` only queues: a daemon thread posts each alert, so a slow or
dead endpoint never holds the beat up. A post that fails (an error status, a refused
connection, the ``timeout``) is logged and dropped; a full queue (``max_queued``) drops the
newest alert, logged too.

The webhook receives ``POST <url>`` with ``Content-Type: application/json`` and the body of
:meth:`beatx.alerts.Alert.to_dict`::

    {"job_id": "nightly", "kind": "missed_heartbeat", "state": "raised",
     "at": "2026-12-01T03:10:00+00:00", "since": "2026-12-01T03:10:00+00:00",
     "details": {"expect_every": 600, "last_sent_at": "...", "silent_for": 612.4}}

With ``sentry=True`` each alert is also a Sentry Crons check-in of the monitor named by the
job id (``sentry_sdk.crons.capture_checkin``): ``error`` when raised, ``ok`` when resolved.
It needs ``pip install 'beatx[sentry]'`` and ``sentry_sdk.init(...)`` in the beat process.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from beatx.alerts import Alert, AlertState
from beatx.errors import ConfigurationError, MissingExtraError

__all__ = ["AlertDelivery", "sentry_checkin"]

logger = logging.getLogger("beatx.alerts")

_STOP = object()


def sentry_checkin() -> Callable[..., Any]:
    """``sentry_sdk.crons.capture_checkin``, imported now.

    :raises MissingExtraError: when sentry-sdk is not installed.
    """
    try:
        from sentry_sdk.crons import capture_checkin  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise MissingExtraError(
            "beatx_alert_sentry: Sentry Crons check-ins need sentry-sdk: pip install 'beatx[sentry]'"
        ) from exc
    return capture_checkin  # type: ignore[no-any-return,unused-ignore]


class AlertDelivery:
    """Sends alerts to a webhook and/or Sentry Crons from a background thread.

    :param webhook_url: where each alert is POSTed as JSON (``http://`` or ``https://``);
        None: no webhook.
    :param timeout: seconds one post may take.
    :param sentry: also check in to Sentry Crons (raises :class:`~beatx.MissingExtraError`
        now when sentry-sdk is missing).
    """

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        timeout: float = 5.0,
        sentry: bool = False,
        max_queued: int = 1000,
    ) -> None:
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"beatx_alert_webhook: expected an http:// or https:// URL, got {webhook_url!r}"
            )
        self.webhook_url = webhook_url
        self.timeout = timeout
        self._checkin = sentry_checkin() if sentry else None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Alerts posted (or checked in) without error, and those that failed: for tests and logs.
        self.delivered = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return self.webhook_url is not None or self._checkin is not None

    def deliver(self, alert: Alert) -> None:
        """Queue ``alert`` for sending; never blocks."""
        if not self.enabled:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="beatx-alerts", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.failed += 1
            logger.error(
                "alert dropped, %d already waiting: %s %s of job %s",
                self._queue.qsize(),
                alert.kind.value,
                alert.state.value,
                alert.job_id,
            )

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._send(item)

    def _send(self, alert: Alert) -> None:
        ok = True
        if self.webhook_url is not None:
            ok = self._post(alert) and ok
        if self._checkin is not None:
            try:
                self._checkin(
                    monitor_slug=alert.job_id,
                    status="error" if alert.state is AlertState.RAISED else "ok",
                )
            except Exception:
                ok = False
                logger.exception("Sentry check-in failed for job %s", alert.job_id)
        if ok:
            self.delivered += 1
        else:
            self.failed += 1

    def _post(self, alert: Alert) -> bool:
        assert self.webhook_url is not None
        body = json.dumps(alert.to_dict(), separators=(",", ":")).encode()
        request = urllib.request.Request(
            self.webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "beatx-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.warning(
                "alert webhook failed (%s %s of job %s): %s",
                alert.kind.value,
                alert.state.value,
                alert.job_id,
                exc,
            )
            return False
        return True
