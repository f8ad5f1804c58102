"""Shared fixtures: a fake clock, and the real services (Redis, RabbitMQ, PostgreSQL).

Service fixtures skip a test when the server is down, except under CI=true, where a missing
server fails the test: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


# -- Redis databases ---------------------------------------------------------------------------
#
# A test that needs Redis gets a database of its own from the range BEATX_TEST_REDIS_DBS names
# ("1-15" by default; e.g. "8-15" or "3,5,9-11"). A database is taken only while it is empty
# (DBSIZE 0): one that holds keys the tests did not write is skipped, never emptied. Taken, it
# is marked (the key REDIS_DB_MARKER) and locked (``beatx-test-lock:N`` in database 0, SET NX
# with a TTL: parallel runs and the benchmarks, which take the same locks, never share one), and
# emptied again at the end: everything in it was written by the test. A run killed before its
# teardown leaves the marker with its keys; once the lock has expired, a later run empties
# such a database and takes it.

REDIS_DBS_ENV = "BEATX_TEST_REDIS_DBS"
REDIS_DBS_DEFAULT = "1-15"
#: Set in a database while the tests hold it (outside every ``beatx-test-<hex>:`` key prefix).
REDIS_DB_MARKER = "beatx-test-db"
REDIS_LOCK_TTL = 900

# Atomic: an empty database is marked at once; else say whether only the tests' keys are in it.
_TAKE_SCRIPT = """
local size = redis.call('DBSIZE')
if size == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  return 'empty'
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'leftover'
end
return size
"""


class NoRedisDatabase(Exception):
    """No database of the range could be taken (each one's reason is in the message)."""


def redis_test_dbs(spec: str | None = None) -> list[int]:
    """The databases ``spec`` (default: $BEATX_TEST_REDIS_DBS, else "1-15") names, in order."""
    text = spec if spec is not None else os.environ.get(REDIS_DBS_ENV, "") or REDIS_DBS_DEFAULT
    dbs: list[int] = []
    try:
        for part in text.replace(" ", "").split(","):
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
            if low > high:
                raise ValueError(part)
            dbs.extend(db for db in range(low, high + 1) if db not in dbs)
    except ValueError:
        raise ValueError(
            f"{REDIS_DBS_ENV}={text!r}: expected database numbers like 1-15 or 3,5,9-11"
        ) from None
    if 0 in dbs:
        raise ValueError(f"{REDIS_DBS_ENV}={text!r}: database 0 holds the tests' locks, name 1 and up")
    return dbs


@dataclass
class RedisTestDb:
    db: int
    token: str
    client: Any  # redis.Redis on ``db``

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.db}"


def claim_redis_db(client: Any, token: str) -> int:
    """Mark ``client``'s database as the tests' if it is empty, or if it holds only what a
    killed test run left there (emptied first: call this with the database's lock held, so no
    live run owns it); else change nothing. 0 when claimed, else the number of keys in it."""
    state = client.eval(_TAKE_SCRIPT, 1, REDIS_DB_MARKER, token)
    if state == b"leftover":
        client.flushdb()
        client.set(REDIS_DB_MARKER, token)
        return 0
    return 0 if state == b"empty" else int(state)


def take_redis_db(admin: Any, dbs: list[int]) -> RedisTestDb:
    """Lock and claim (:func:`claim_redis_db`) the first database of ``dbs`` that is free;
    :class:`NoRedisDatabase` if there is none. ``admin`` is a client on database 0."""
    import redis

    token = uuid.uuid4().hex
    reasons: list[str] = []
    for db in dbs:
        if not admin.set(f"beatx-test-lock:{db}", token, nx=True, ex=REDIS_LOCK_TTL):
            reasons.append(f"{db}: in use by another test run")
            continue
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        try:
            foreign = claim_redis_db(client, token)
            if foreign == 0:
                return RedisTestDb(db, token, client)
            reasons.append(f"{db}: holds {foreign} key(s) the tests did not write")
        except redis.ResponseError as exc:  # e.g. beyond the server's `databases` setting
            reasons.append(f"{db}: {exc}")
        client.close()
        _unlock(admin, db, token)
    raise NoRedisDatabase(
        f"no Redis database free for the test in {REDIS_DBS_ENV}={','.join(map(str, dbs))} "
        f"({'; '.join(reasons)}); set {REDIS_DBS_ENV} to databases the tests may use"
    )


def release_redis_db(admin: Any, taken: RedisTestDb) -> None:
    """Empty a database taken by :func:`take_redis_db` (it was empty when taken: every key in
    it is the test's) and unlock it."""
    try:
        taken.client.flushdb()
    finally:
        taken.client.close()
        _unlock(admin, taken.db, taken.token)


def _unlock(admin: Any, db: int, token: str) -> None:
    lock = f"beatx-test-lock:{db}"
    if admin.get(lock) == token.encode():
        admin.delete(lock)


def _a_redis_database() -> Iterator[str]:
    """The URL of an empty database of the test Redis server, taken for the test and emptied
    after it (see above)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        try:
            taken = take_redis_db(admin, redis_test_dbs())
        except NoRedisDatabase as exc:
            pytest.fail(str(exc))
        try:
            yield taken.url
        finally:
            release_redis_db(admin, taken)
    finally:
        admin.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a database of its own, holding only the tests' marker key when handed
    out, emptied after the test (see above)."""
    yield from _a_redis_database()


@pytest.fixture
def other_redis_url(redis_url: str) -> Iterator[str]:
    """A second database of the same Redis server, empty like :func:`redis_url`'s (a broker
    beside a store, say)."""
    yield from _a_redis_database()


@pytest.fixture
def key_prefix() -> str:
    return f"beatx-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def rabbitmq_url() -> str:
    """The RabbitMQ broker. A test that declares a queue on it deletes it again with
    :func:`delete_amqp_queue` (Celery's queues and exchanges are durable: they outlive the test)."""
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"


def delete_amqp_queue(url: str, name: str) -> None:
    """Delete the queue ``name`` and the direct exchange of the same name that Celery declares
    for a ``task_default_queue``, then check that both are gone."""
    from amqp.exceptions import NotFound
    from kombu.connection import Connection

    with Connection(url) as connection:
        channel = connection.channel()
        channel.queue_delete(name)
        channel.exchange_delete(name)
        left = []
        for kind, declare in (
            ("queue", lambda ch: ch.queue_declare(name, passive=True)),
            ("exchange", lambda ch: ch.exchange_declare(name, "direct", passive=True)),
        ):
            try:
                declare(connection.channel())  # a passive declare of nothing closes its channel
            except NotFound:
                continue
            left.append(kind)
        assert not left, f"RabbitMQ still has the {' and '.join(left)} {name!r}"


@pytest.fixture
def postgres_available() -> None:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
