"""Redis bytes per job: a beatx job (alone, and with its "added" audit entry, as
``JobManager.add_job`` stores it) costs no more than a RedBeat entry, measured in the same test
on a private ``redis-server`` (the code of ``python -m benchmarks --only redis-memory``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from benchmarks.redis_memory import beatx_alone, beatx_managed, job_id, private_redis, redbeat

N = 5_000


@pytest.fixture
def private_port(tmp_path: Path) -> Iterator[int]:
    """A ``redis-server`` of the test's own (no persistence), stopped by its pid at the end."""
    with private_redis(tmp_path) as port:
        yield port


def test_a_beatx_job_costs_redis_no_more_than_a_redbeat_entry(private_port: int) -> None:
    alone = beatx_alone(private_port, N) / N
    managed = beatx_managed(private_port, N) / N
    peer = redbeat(private_port, N) / N
    print(f"bytes per job: beatx {alone:.0f}, with its audit entry {managed:.0f}, RedBeat {peer:.0f}")
    assert 0 < alone <= peer
    assert 0 < managed <= peer
    # Both beatx job hashes are small hashes (databases 1 and 2: see benchmarks.redis_memory).
    for db in (1, 2):
        client = redis.Redis(port=private_port, db=db, decode_responses=True)
        try:
            assert client.object("encoding", f"beatx:job:{job_id(N - 1)}") == "listpack"
            assert client.exists(f"beatx:def:{job_id(N - 1)}") == 1
        finally:
            client.close()
    managed_hash = redis.Redis(port=private_port, db=2, decode_responses=True)
    try:
        assert managed_hash.hexists(f"beatx:job:{job_id(0)}", "added")
    finally:
        managed_hash.close()
