"""A private 3-master Redis Cluster for the tests: three ``redis-server --cluster-enabled yes``
on free loopback ports in a temporary directory, joined by ``redis-cli --cluster create``
(no replicas), each process started by the test and stopped by its pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from tests.stores.sentinel_group import wait_until

__all__ = ["ClusterGroup", "start_cluster"]


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too; both at most 65535."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterGroup:
    """The masters of one cluster, and what the tests ask of it."""

    def __init__(
        self, root: Path, masters: int = 3, replicas: int = 0, options: tuple[str, ...] = ()
    ) -> None:
        self.root = root
        #: More ``redis-server`` arguments for every node.
        self.options = options
        self.masters = masters
        self.replicas = replicas
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def start(self) -> ClusterGroup:
        for n in range(self.masters * (1 + self.replicas)):
            port = cluster_port()
            directory = self.root / f"node-{n}"
            directory.mkdir(exist_ok=True)
            log = (self.root / f"node-{n}.log").open("wb")
            argv = [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(directory),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--save", "",
                "--appendonly", "no",
                *self.options,
            ]  # fmt: skip
            self.processes.append(subprocess.Popen(argv, cwd=directory, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            self.ports.append(port)
        for port in self.ports:
            wait_until(lambda port=port: redis.Redis(port=port).ping(), 10, f"cluster node {port} to answer")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in self.ports:
            wait_until(
                lambda port=port: (
                    redis.Redis(port=port, decode_responses=True).cluster("info").get("cluster_state") == "ok"
                ),
                20,
                f"cluster node {port} to report the cluster ok",
            )
        if self.replicas:
            for port in self.ports:

                def synced(port: int = port) -> bool:
                    info = redis.Redis(port=port, decode_responses=True).info("replication")
                    return info.get("role") == "master" or info.get("master_link_status") == "up"

                wait_until(synced, 20, f"cluster node {port} to sync with its master")
        return self

    def url(self, **options: object) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"redis+cluster://{hosts}/" + (f"?{query}" if query else "")

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        for port in self.ports:
            if self.processes[self.ports.index(port)].poll() is not None:
                continue
            client = redis.Redis(port=port, decode_responses=True)
            try:
                slot = int(client.cluster("keyslot", key))
                for start, end, master, *_ in client.cluster("slots"):
                    if int(start) <= slot <= int(end):
                        return int(master[1])
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise AssertionError(f"no live node names the master of {key!r}")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        process = self.processes[self.ports.index(port)]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(5)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(5)


def start_cluster(root: Path, *, replicas: int = 0, options: tuple[str, ...] = ()) -> ClusterGroup:
    """Start a cluster in ``root``, 3 masters with ``replicas`` replicas each (skips, or fails
    under CI=true, without redis-server)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "redis-server and redis-cli are not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    group = ClusterGroup(root, replicas=replicas, options=options)
    try:
        return group.start()
    except BaseException:
        group.stop_all()
        raise
