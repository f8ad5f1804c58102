"""Redis Cluster: a burst of fires due at once, shared by 1, 2 and 3 sharded beats.

The ``cluster`` scenario (:func:`scenario`) starts a private 3-master Redis Cluster (three
``redis-server --cluster-enabled yes`` on free loopback ports in the run's temp dir, joined by
``redis-cli --cluster create``, stopped by pid at the end), then for each beat count:

- ``n_due`` jobs (8 shards) due at one instant a few seconds ahead, loaded in the parent;
- that many child processes, each a :class:`~beatx.sharded_beat.ShardedBeat` with the real
  ``CeleryDispatcher`` publishing to the Redis broker (the broker db), its default lookahead;
  they share the shards (each leads its fair share) before the instant comes;
- time from the instant until the last message is in the broker (``LLEN``, polled by the
  parent every 5 ms), and what each beat fired.

The beats publish, then write back (the atomic fire is off on a cluster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    LOOKAHEAD,
    QUEUE,
    RESULT_MARK,
    ROOT,
    TASK,
    broker_db,
    queue_length,
    redis_client,
    tmp_dir,
)

Log = Callable[[str], None]

SHARDS = 8
LEASE = 6.0


def beat(
    url: str, prefix: str, burst_at: float, n_due: int, stop_at: float, stop_file: str
) -> dict[str, Any]:
    """One sharded beat (a child) until ``stop_at`` (epoch seconds) or ``stop_file`` exists:
    what it led at the burst, what it fired, its CPU time from the burst."""
    from beatx.sharded_beat import ShardedBeat
    from beatx.stores.redis_cluster import ClusterStore
    from benchmarks.beatx_side import _dispatcher

    store = ClusterStore(url, key_prefix=prefix)
    sharded = ShardedBeat(store, _dispatcher(), lease_timeout=LEASE, lookahead=LOOKAHEAD)
    led_at_burst: list[int] | None = None
    cpu_at_burst = 0.0
    try:
        while time.time() < stop_at and not os.path.exists(stop_file):
            seconds = sharded.run_once()
            if led_at_burst is None and time.time() >= burst_at - 0.3:
                led_at_burst = sorted(sharded.led)
                cpu_at_burst = time.process_time()
            if sharded.totals["fired"] >= n_due:
                break
            sharded.wait(min(seconds, 0.2))
    finally:
        sharded.close()
        store.close()
    return {
        "led_at_burst": led_at_burst,
        "fired": sharded.totals["fired"],
        "cpu_s": time.process_time() - cpu_at_burst,
    }


def _spawn(kwargs: dict[str, Any]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    argv = [sys.executable, "-m", "benchmarks.child", "benchmarks.cluster:beat", json.dumps(kwargs)]
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"error": "timeout"}
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    return {"error": " | ".join((err or out).strip().splitlines()[-4:])}


def _load(url: str, prefix: str, n_due: int, at: datetime) -> None:
    from beatx.jobs import Job
    from beatx.stores.redis_cluster import ClusterStore
    from beatx.triggers import IntervalTrigger

    store = ClusterStore(url, key_prefix=prefix, shards=SHARDS)
    trigger = IntervalTrigger(seconds=3600, start_date=at)
    try:
        store.add_jobs(
            Job(id=f"job-{n:07d}", func=TASK, trigger=trigger, kwargs={"n": n}, next_run_time=at)
            for n in range(n_due)
        )
    finally:
        store.close()


def _servers_cpu(ports: list[int]) -> float:
    """CPU seconds (user + system) the cluster's servers have used so far."""
    import redis

    total = 0.0
    for port in ports:
        client = redis.Redis(port=port)
        try:
            info = client.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        finally:
            client.close()
    return total


def one_run(url: str, ports: list[int], beats: int, n_due: int, time_cap: float, log: Log) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    broker = redis_client(broker_db())
    broker.delete(QUEUE)
    # The beats start now and share the shards (a joining beat gets its share within about a
    # renewal interval, LEASE / 3, per step); the burst comes once they have.
    settle = 4.0 + 3.0 * beats
    at = datetime.fromtimestamp(time.time() + settle, UTC).replace(microsecond=0) + timedelta(seconds=1)
    _load(url, prefix, n_due, at)
    burst_at = at.timestamp()
    stop_at = burst_at + time_cap
    stop_file = Path(tmp_dir()) / f"stop-{prefix.rstrip(':')}"
    options = {
        "url": url,
        "prefix": prefix,
        "burst_at": burst_at,
        "n_due": n_due,
        "stop_at": stop_at,
        "stop_file": str(stop_file),
    }
    procs = [_spawn(options)]
    for _ in range(beats - 1):
        time.sleep(LEASE / 3 + 0.5)
        procs.append(_spawn(options))
    while time.time() < burst_at - 0.5:
        time.sleep(0.005)
    servers_before = _servers_cpu(ports)
    while time.time() < burst_at:
        time.sleep(0.005)
    last = 0
    seconds = None
    while time.time() < stop_at:
        last = queue_length(broker)
        if last >= n_due:
            seconds = time.time() - burst_at
            break
        time.sleep(0.005)
    servers_cpu = _servers_cpu(ports) - servers_before
    stop_file.touch()
    results = [_result(proc, 30) for proc in procs]
    stop_file.unlink()
    broker.delete(QUEUE)
    broker.close()
    out = {
        "beats": beats,
        "n_due": n_due,
        "queued": last,
        "seconds": seconds,
        "fires_per_s": n_due / seconds if seconds else None,
        # CPU the three cluster masters used for the burst (they serve nothing else).
        "servers_cpu_s": servers_cpu,
        "per_beat": results,
    }
    log(f"  {beats} beat(s): {json.dumps({k: v for k, v in out.items() if k != 'per_beat'})}")
    return out


def scenario(
    log: Log,
    *,
    n_due: int = 10_000,
    beat_counts: tuple[int, ...] = (1, 2, 3),
    time_cap: float = 60.0,
    repeats: int = 3,
) -> dict[str, Any]:
    """Start a private cluster, run ``repeats`` bursts per beat count (the median run is
    reported, with every run's rate), stop the cluster."""
    from tests.stores.cluster_group import ClusterGroup

    root = Path(tmp_dir()) / f"cluster-{os.getpid()}"
    root.mkdir(parents=True, exist_ok=True)
    group = ClusterGroup(root)
    try:
        group.start()
    except Exception as exc:
        group.stop_all()
        log(f"  Redis Cluster unavailable: {exc}")
        return {"error": f"Redis Cluster unavailable: {exc}"}
    try:
        url = group.url()
        out: dict[str, Any] = {"shards": SHARDS, "nproc": os.cpu_count()}
        for beats in beat_counts:
            runs = [one_run(url, group.ports, beats, n_due, time_cap, log) for _ in range(repeats)]
            rates = sorted(run["fires_per_s"] or 0.0 for run in runs)
            median = sorted(runs, key=lambda run: run["fires_per_s"] or 0.0)[len(runs) // 2]
            out[str(beats)] = {**median, "rates": rates}
        return out
    finally:
        group.stop_all()


def report_table(res: dict[str, Any]) -> str:
    """The scenario's Markdown table (:func:`benchmarks.report.render`)."""
    from benchmarks.report import table

    if "error" in res:
        return f"not run: {res['error']}"
    rows = []
    for key in sorted(k for k in res if k.isdigit()):
        run = res[key]
        per_beat = run.get("per_beat") or []
        split = " / ".join(str(len(b.get("led_at_burst") or [])) for b in per_beat)
        fired = " / ".join(str(b.get("fired", b.get("error", "?"))) for b in per_beat)
        cpu = " / ".join(f"{b['cpu_s']:.2f}" for b in per_beat if "cpu_s" in b)
        seconds = run.get("seconds")
        rows.append(
            [
                key,
                split,
                fired,
                "-" if seconds is None else f"{seconds:.3f}",
                "-" if not run.get("fires_per_s") else f"{run['fires_per_s']:,.0f}",
                ", ".join(f"{rate:,.0f}" for rate in run.get("rates", [])),
                cpu,
                f"{run.get('servers_cpu_s', 0.0):.2f}",
            ]
        )
    head = [
        "beats",
        "shards led",
        "fired",
        "s to last message",
        "fires/s (median run)",
        "every run",
        "CPU s per beat",
        "CPU s of the 3 masters",
    ]
    return f"{res.get('shards')} shards on 3 masters, {res.get('nproc')} cores\n\n" + table(head, rows)
