"""What logging costs a real ``celery beat -S beatx`` in a burst.

``python -m benchmarks.logging_cost [N] [REPEATS]`` (default 10,000 jobs, 3 repeats) starts a
private ``redis-server`` on a free port (store on db 0, broker on db 1), stores N jobs due in
the same second, then runs ``celery -A <app> beat -S beatx --logfile=...`` in three ways,
interleaved: ``-l info`` (one line per group of fires sent), ``-l info`` with
``beatx_log_each_fire = True`` (a line per fire) and ``-l warning``. Per run: the beat's CPU
time (``utime + stime`` from ``/proc``) from just before the due second until the queue holds
N messages, the wall time from the due second to then, and the lines logged. Prints the
medians and the spread (min–max).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from benchmarks.common import ROOT

QUEUE = "logging-cost"
APP = f'''
import os
from celery import Celery
import beatx.celery

url = os.environ["LOGGING_COST_URL"]
app = Celery("logging_cost_app", broker=url + "/1")
app.conf.update(
    timezone="UTC",
    task_default_queue="{QUEUE}",
    beatx_store=url + "/0",
    beatx_key_prefix="logging-cost:",
    beatx_log_each_fire=os.environ.get("LOGGING_COST_EACH") == "1",
)
beatx.celery.setup(app)
'''
MODES = {"info": ("info", False), "info, beatx_log_each_fire": ("info", True), "warning": ("warning", False)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _store_jobs(url: str, n: int, due: datetime) -> None:
    from beatx.jobs import Job
    from beatx.stores.redis import RedisStore
    from beatx.triggers import IntervalTrigger

    store = RedisStore(url + "/0", key_prefix="logging-cost:")
    trigger = IntervalTrigger(hours=1, start_date=due)
    store.add_jobs(
        Job(id=f"j{i:07d}", func="logging_cost_app.noop", trigger=trigger, next_run_time=due)
        for i in range(n)
    )
    store.close()


def _one(url: str, port: int, tmp: Path, n: int, mode: str, run: int) -> tuple[float, float, int]:
    level, each = MODES[mode]
    client = redis.Redis(port=port)
    client.flushall()
    client.close()
    broker = redis.Redis(port=port, db=1)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
    _store_jobs(url, n, due)
    logfile = tmp / f"beat-{mode.split(',')[0]}-{int(each)}-{run}.log"
    env = {
        **os.environ,
        "LOGGING_COST_URL": url,
        "LOGGING_COST_EACH": "1" if each else "0",
        "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT)]),
    }
    argv = [sys.executable, "-m", "celery", "-A", "logging_cost_app", "beat", "-S", "beatx", "-l", level]
    argv += [f"--logfile={logfile}", f"--schedule={tmp / 'unused-schedule'}"]
    beat = subprocess.Popen(argv, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.time() < due.timestamp() - 0.3:
            time.sleep(0.05)
        before = _cpu_seconds(beat.pid)
        while broker.llen(QUEUE) < n and time.time() < due.timestamp() + 120:
            time.sleep(0.002)
        wall = time.time() - due.timestamp()
        cpu = _cpu_seconds(beat.pid) - before
    finally:
        beat.send_signal(signal.SIGTERM)
        beat.wait(30)
        broker.close()
    with open(logfile, "rb") as f:
        lines = sum(1 for _ in f)
    return cpu, wall, lines


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10_000
    repeats = int(argv[1]) if len(argv) > 1 else 3
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="beatx-logging-cost-"))
    (tmp / "logging_cost_app.py").write_text(APP)
    port = _free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    results: dict[str, list[tuple[float, float, int]]] = {mode: [] for mode in MODES}
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        for run in range(repeats):
            for mode in MODES:
                results[mode].append(_one(url, port, tmp, n, mode, run))
                cpu, wall, lines = results[mode][-1]
                print(
                    f"  {mode} run {run + 1}: beat CPU {cpu:.2f} s, wall {wall:.2f} s, {lines} lines",
                    file=sys.stderr,
                )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"celery beat -S beatx, {n:,} jobs due at once, {repeats} runs each: median (min–max)")
    for mode, runs in results.items():
        cpu = [r[0] for r in runs]
        wall = [r[1] for r in runs]
        print(
            f"-l {mode}: beat CPU {statistics.median(cpu):.2f} s ({min(cpu):.2f}–{max(cpu):.2f}), "
            f"due → last message {statistics.median(wall):.2f} s ({min(wall):.2f}–{max(wall):.2f}), "
            f"{runs[0][2]:,} log lines"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
