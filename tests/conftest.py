"""Shared fixtures: a fake clock, and the real services (Redis, RabbitMQ, PostgreSQL).

Service fixtures skip a test when the server is down, except under CI=true, where a missing
server fails the test: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from beatx.testing import FakeClock

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI=true) when a server is not listening."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI requires it (see .ci/run)")
    pytest.skip(message)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a database no other test uses right now; emptied before and after."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    # Databases 1-15 are handed out through a lock key so parallel runs never share one.
    db = None
    token = uuid.uuid4().hex
    for candidate in range(1, 16):
        if admin.set(f"beatx-test-lock:{candidate}", token, nx=True, ex=900):
            db = candidate
            break
    if db is None:
        pytest.fail("no free Redis database for the test (all of 1-15 are locked)")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    finally:
        client.flushdb()
        client.close()
        if admin.get(f"beatx-test-lock:{db}") == token.encode():
            admin.delete(f"beatx-test-lock:{db}")
        admin.close()


@pytest.fixture
def key_prefix() -> str:
    return f"beatx-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def rabbitmq_url() -> str:
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"


@pytest.fixture
def postgres_available() -> None:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
