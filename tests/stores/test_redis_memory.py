"""Redis bytes per job: a beatx job (alone, and with its "added" audit entry, as
``JobManager.add_job`` stores it) costs no more than a RedBeat entry, measured in the same test
on a private ``redis-server`` (the code of ``python -m benchmarks --only redis-memory``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from benchmarks.redis_memory import beatx_alone, beatx_managed, free_port, job_id, redbeat

N = 5_000


@pytest.fixture
def private_port(tmp_path: Path) -> Iterator[int]:
    """A ``redis-server`` of the test's own (no persistence), stopped by its pid at the end."""
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is not installed"
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]
        + ["--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        client.close()
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


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
