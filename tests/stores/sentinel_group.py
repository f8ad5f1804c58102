"""A private Redis Sentinel group for the tests: a primary, a replica and three sentinels on
free loopback ports, in a temporary directory, each process started by the test and stopped by
its pid (SIGTERM, then SIGKILL).

``redis-server --sentinel`` runs a sentinel (the same binary as ``redis-sentinel``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

SERVICE = "beatx-test-primary"
#: How long a sentinel waits before it calls the primary down (ms): short, for the tests.
DOWN_AFTER_MS = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (redis.RedisError, OSError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


class SentinelGroup:
    """The processes of one group, and what the tests ask of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.sentinel_ports: list[int] = []

    # -- starting and stopping ----------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(argv, cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _server(self, name: str, *extra: str, port: int | None = None) -> int:
        port = free_port() if port is None else port
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        self._start(
            name,
            [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(directory),
                "--save", "",
                "--appendonly", "no",
                *extra,
            ],
        )  # fmt: skip
        self.ports[name] = port
        wait_until(lambda: redis.Redis(port=port).ping(), 10, f"{name} to answer")
        return port

    def start(self) -> SentinelGroup:
        primary = self._server("primary")
        self._server("replica", "--replicaof", "127.0.0.1", str(primary))
        wait_until(
            lambda: (
                redis.Redis(port=self.ports["replica"]).info("replication").get("master_link_status") == "up"
            ),
            10,
            "the replica to sync",
        )
        for n in range(3):
            port = free_port()
            conf = self.root / f"sentinel-{n}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self._start(f"sentinel-{n}", ["redis-server", str(conf), "--sentinel"])
            self.sentinel_ports.append(port)
        # Each sentinel must know the replica and the two other sentinels before a failover.
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, decode_responses=True)
            wait_until(
                lambda client=client: (
                    len(client.sentinel_slaves(SERVICE)) == 1 and len(client.sentinel_sentinels(SERVICE)) == 2
                ),
                20,
                f"sentinel on {port} to see the replica and the other sentinels",
            )
        return self

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)

    def restart_as_replica(self, name: str, primary: int) -> None:
        """Start ``name`` again, on its port, as a replica of ``primary`` (what Sentinel makes
        of a returning old primary), and wait until it is in sync."""
        port = self._server(name, "--replicaof", "127.0.0.1", str(primary), port=self.ports[name])
        wait_until(
            lambda: redis.Redis(port=port).info("replication").get("master_link_status") == "up",
            10,
            f"{name} to sync as a replica",
        )

    def pause(self, name: str) -> None:
        os.kill(self.processes[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.kill(self.processes[name].pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for name in list(self.processes):
            process = self.processes[name]
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # a paused process cannot die on SIGTERM
                self.stop(name)

    # -- what the tests ask -------------------------------------------------------------------

    def url(self, db: int = 0, **options: str) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}" + (f"?{query}" if query else "")

    def primary_port(self) -> int:
        """The port of the primary, as the first sentinel names it."""
        client = redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
        try:
            _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
        finally:
            client.close()
        return int(port)


def start_group(root: Path) -> SentinelGroup:
    """Start a group in ``root`` (skips, or fails under CI=true, without redis-server)."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    group = SentinelGroup(root)
    try:
        return group.start()
    except BaseException:
        group.stop_all()
        raise
