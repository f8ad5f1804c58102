"""``python -m benchmarks [--quick|--full] [--only NAME ...] [--json out.json]``.

Runs beatx and the three peers (celery beat's default scheduler, django-celery-beat on
SQLite, RedBeat) side by side on the same Redis, and prints the tables. The ``pg`` scenario
runs beatx's Django store and django-celery-beat on one PostgreSQL database of its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import ENV_TMP, BenchDatabases, redis_client
from benchmarks.report import render
from benchmarks.suite import FULL, QUICK, SCENARIOS, run


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    client = redis_client(0)
    try:
        redis_version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    import celery
    import django
    import kombu
    import redis

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram": mem,
        "python": platform.python_version(),
        "redis_server": redis_version,
        "redis_py": redis.__version__,
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "django": django.__version__,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, a few minutes (the default)")
    mode.add_argument(
        "--full", action="store_true", help="up to 100k jobs per peer and 1M for beatx (~25 min)"
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario (repeatable)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="runs of each start-up, burst and lateness measurement, reported as median (min–max) "
        "(default: 1 with --quick, 3 with --full)",
    )
    args = parser.parse_args(argv)
    plan = FULL if args.full else QUICK
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repeat must be at least 1")
        plan = dataclasses.replace(plan, repeat=args.repeat)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    tmp = tempfile.mkdtemp(prefix="beatx-bench-")
    os.environ[ENV_TMP] = tmp
    started = time.perf_counter()
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        with BenchDatabases() as dbs:
            log(f"beatx benchmarks ({plan.name}) on Redis databases {dbs.dbs}, temp dir {tmp}")
            info = machine()
            results = run(plan, args.only, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    meta = {
        "command": command.strip(),
        "mode": plan.name,
        "repeat": plan.repeat,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "machine": info,
    }
    results["meta"] = meta
    runs = f", {plan.repeat} runs per measurement: medians (min–max)" if plan.repeat > 1 else ""
    print(f"## beatx benchmarks ({plan.name}{runs}, {elapsed:.0f} s)\n")
    print(
        f"Machine: {info['nproc']} cores, {info['cpu']}, {info['ram']} RAM; Python {info['python']}; "
        f"Redis {info['redis_server']}; celery {info['celery']}, kombu {info['kombu']}, Django {info['django']}; "
        f"load average at start {info['loadavg'][0]:.2f}\n"
    )
    print(render(results))
    print(
        "\nRatios are beatx ÷ the best peer in this run: ×0.01 means beatx costs 1% of the best peer "
        "(for fires/s, how many times the best peer's rate beatx reaches)."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
