"""The shop's periodic work, as ordinary Celery tasks (beatx schedules them; workers run them)."""

from __future__ import annotations

import logging
import random
import time

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task
def send_digest(audience: str = "customers", *, limit: int = 20) -> str:
    """E-mail the daily digest of new products (pretend)."""
    time.sleep(0.2)
    logger.info("digest sent to %s (%d products)", audience, limit)
    return f"digest:{audience}:{limit}"


@shared_task
def cleanup_sessions(older_than_days: int = 14) -> int:
    """Delete expired sessions."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    logger.info("removed %d expired sessions (older than %d days)", deleted, older_than_days)
    return deleted


@shared_task
def sync_inventory(warehouse: str = "main", *, full: bool = False) -> int:
    """Pull stock levels from the warehouse system (pretend)."""
    items = random.randint(50, 500)
    time.sleep(0.3)
    logger.info("synced %d items from %s warehouse (full=%s)", items, warehouse, full)
    return items


@shared_task
def flaky_export(failure_rate: float = 0.5) -> str:
    """Export orders to a partner that fails now and then: its job turns FAILED, then ACTIVE
    again on the next success, and the admin shows the last error."""
    if random.random() < failure_rate:
        raise ConnectionError("partner API answered 503 Service Unavailable")
    logger.info("orders exported")
    return "exported"


@shared_task
def heartbeat() -> str:
    """A job that lives in code (CELERY_BEAT_SCHEDULE), imported by the beat at start."""
    logger.info("heartbeat")
    return "ok"
