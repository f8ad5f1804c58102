"""The scenarios: which children run, with which sizes, in which order.

Each scenario returns plain dicts (JSON-ready). Every child runs in a fresh process with the
two benchmark databases flushed before it starts, so no scheduler sees another one's keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import broker_db, flush, run_child, store_db
from benchmarks.repeats import aggregate

SCHEDULERS = ("celery beat", "django-celery-beat", "RedBeat", "beatx")
PEERS = SCHEDULERS[:3]
ADAPTER = {
    "celery beat": "benchmarks.peer_celerybeat",
    "django-celery-beat": "benchmarks.peer_django",
    "RedBeat": "benchmarks.peer_redbeat",
    "beatx": "benchmarks.beatx_side",
}


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run (``--quick`` or ``--full``)."""

    name: str
    peer_sizes: tuple[int, ...]
    beatx_sizes: tuple[int, ...]
    bursts: tuple[tuple[int, int], ...]  # (due, total) for the peers
    beatx_bursts: tuple[int, ...]
    burst_cap: float
    same_phase_s: float
    random_phase_s: float
    random_phase_jobs: int
    random_phase_peers: bool
    edit_jobs: int
    cron_rounds: int
    publish_msgs: int
    smoke_sample: int
    pg_peer_sizes: tuple[int, ...]  # django-celery-beat on PostgreSQL
    pg_beatx_sizes: tuple[int, ...]  # beatx's Django store on PostgreSQL
    pg_burst_due: int
    pg_burst_cap: float
    timeouts: dict[str, float] = field(default_factory=dict)
    #: RabbitMQ (the ``amqp`` scenario): burst size, repeats of raw + beatx, their time cap,
    #: and the cap of the peers' and the send_task path's run at the same size.
    amqp_due: int = 10_000
    amqp_repeats: int = 3
    amqp_cap: float = 60.0
    amqp_peer_cap: float = 20.0
    #: Runs of each start-up, burst and lateness child (``--repeat N``): the tables print the
    #: median and the spread (min–max) of the runs.
    repeat: int = 1
    #: The peers' burst at beatx's size (every job due at once), capped: celery beat and
    #: django-celery-beat take minutes for 10,000; their rate so far is what is compared.
    equal_burst_cap: float = 20.0
    #: Redis Cluster (the ``cluster`` scenario): burst size, shared by 1, 2 and 3 beats.
    cluster_due: int = 10_000
    #: Jobs stored each way by the ``redis-memory`` scenario.
    memory_jobs: int = 10_000


QUICK = Plan(
    name="quick",
    peer_sizes=(1_000, 10_000),
    beatx_sizes=(1_000, 10_000, 100_000),
    bursts=((100, 10_000),),
    beatx_bursts=(10_000,),
    burst_cap=60.0,
    same_phase_s=6.0,
    random_phase_s=20.0,
    random_phase_jobs=10_000,
    random_phase_peers=False,
    edit_jobs=10_000,
    cron_rounds=15,
    publish_msgs=3_000,
    smoke_sample=200,
    pg_peer_sizes=(10_000,),
    pg_beatx_sizes=(10_000,),
    pg_burst_due=10_000,
    pg_burst_cap=30.0,
)
FULL = Plan(
    name="full",
    peer_sizes=(1_000, 10_000, 100_000),
    beatx_sizes=(1_000, 10_000, 100_000, 1_000_000),
    bursts=((100, 10_000), (1_000, 100_000)),
    beatx_bursts=(10_000, 100_000),
    burst_cap=90.0,
    same_phase_s=20.0,
    random_phase_s=30.0,
    random_phase_jobs=10_000,
    random_phase_peers=True,
    edit_jobs=10_000,
    cron_rounds=40,
    publish_msgs=20_000,
    smoke_sample=500,
    pg_peer_sizes=(10_000, 100_000),
    pg_beatx_sizes=(10_000, 100_000, 1_000_000),
    pg_burst_due=10_000,
    pg_burst_cap=60.0,
    amqp_repeats=5,
    amqp_peer_cap=40.0,
    repeat=3,
    equal_burst_cap=40.0,
)

Log = Callable[[str], None]


def child(log: Log, target: str, timeout: float, *, repeat: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Flush the benchmark databases, run one child (``repeat`` times, each in a fresh process
    on flushed databases), log one line per run, return its result (the runs' medians and
    spread: :func:`benchmarks.repeats.aggregate`)."""
    runs = []
    for n in range(repeat):
        flush(store_db(), broker_db())
        result = run_child(target, timeout, **kwargs)
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        run = f" run {n + 1}/{repeat}" if repeat > 1 else ""
        if not result.ok:
            log(f"  {target}({args}){run} FAILED: {result.error}")
            runs.append({"error": result.error})
            break
        log(f"  {target}({args}){run} {result.seconds:.1f}s")
        runs.append(result.value)
    return aggregate(runs)


def _load_timeout(scheduler: str, n: int) -> float:
    rate = {"celery beat": 5_000, "django-celery-beat": 2_000, "RedBeat": 1_500, "beatx": 10_000}[scheduler]
    return 60 + n / rate * 3


def scale(plan: Plan, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {s: {} for s in SCHEDULERS}
    child(log, "benchmarks.peer_django:migrate", 120)
    for scheduler in SCHEDULERS:
        sizes = plan.beatx_sizes if scheduler == "beatx" else plan.peer_sizes
        module = ADAPTER[scheduler]
        for n in sizes:
            timeout = _load_timeout(scheduler, n)
            if scheduler == "celery beat":  # its jobs are configuration: built in the child
                value = child(log, f"{module}:scale", timeout, repeat=plan.repeat, n=n)
            else:
                value = _load_then(log, f"{module}:load", f"{module}:scale", timeout, n, plan.repeat)
            out[scheduler][str(n)] = value
    return out


def _load_then(log: Log, load: str, measure: str, timeout: float, n: int, repeat: int = 1) -> dict[str, Any]:
    """Load in one child, measure in a fresh one, ``repeat`` times on the same jobs (the
    databases are flushed only before the load; a measuring child leaves them as it found
    them: nothing is due)."""
    flush(store_db(), broker_db())
    loaded = run_child(load, timeout, n=n)
    if not loaded.ok:
        log(f"  {load}(n={n}) FAILED: {loaded.error}")
        return {"error": loaded.error}
    runs = []
    for _ in range(repeat):
        measured = run_child(measure, timeout, n=n)
        if not measured.ok:
            log(f"  {measure}(n={n}) FAILED: {measured.error}")
            return {"error": measured.error, **loaded.value}
        log(f"  {load} + {measure}(n={n}) {loaded.seconds + measured.seconds:.1f}s")
        runs.append({**loaded.value, **measured.value})
    return aggregate(runs)


def burst(plan: Plan, log: Log) -> dict[str, Any]:
    """Every scheduler at the same sizes (``peers``: ``"due/total"`` -> scheduler -> result,
    beatx with its default path): the peers' own size (100 due of 10,000) and beatx's (all
    10,000 due, the peers capped at ``equal_burst_cap``); then beatx's three paths at its
    sizes (``beatx``)."""
    out: dict[str, Any] = {"peers": {}, "beatx": {}}
    child(log, "benchmarks.peer_django:migrate", 120)
    sizes = [*plan.bursts, *((n, n) for n in plan.beatx_bursts)]
    for due, total in sizes:
        for scheduler in SCHEDULERS:
            if scheduler == "beatx":
                cap = 2 * plan.burst_cap
            else:
                cap = plan.burst_cap if (due, total) in plan.bursts else plan.equal_burst_cap
            timeout = cap + _load_timeout(scheduler, total) + 30
            target = f"{ADAPTER[scheduler]}:burst"
            extra = {"dispatcher": "celery"} if scheduler == "beatx" else {}
            value = child(
                log, target, timeout, repeat=plan.repeat, n_due=due, n_total=total, time_cap=cap, **extra
            )
            out["peers"].setdefault(f"{due}/{total}", {})[scheduler] = value
    for n in plan.beatx_bursts:
        # "info": the default path with logging on at INFO (``celery beat -l info``), one line
        # per group of fires; "info_each": and a line per fire (``beatx_log_each_fire``).
        for dispatcher in ("celery", "info", "info_each", "publish", "send_task"):
            if dispatcher == "celery":  # the default path: measured above, beside the peers
                out["beatx"].setdefault(str(n), {})[dispatcher] = out["peers"][f"{n}/{n}"]["beatx"]
                continue
            timeout = 2 * plan.burst_cap + _load_timeout("beatx", n)
            kind: dict[str, Any] = {"dispatcher": dispatcher}
            if dispatcher.startswith("info"):
                kind = {"dispatcher": "celery", "log_info": True, "log_each_fire": dispatcher == "info_each"}
            value = child(
                log,
                "benchmarks.beatx_side:burst",
                timeout,
                repeat=plan.repeat,
                n_due=n,
                n_total=n,
                time_cap=2 * plan.burst_cap,
                **kind,
            )
            out["beatx"].setdefault(str(n), {})[dispatcher] = value
    return out


SEND_TASK_PATH = "beatx, send_task path"


def lateness(plan: Plan, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {"same_phase": {}, "random_phase": {}}
    child(log, "benchmarks.peer_django:migrate", 120)
    cases = (
        ("same_phase", SCHEDULERS, 200, 1.0, plan.same_phase_s, True),
        (
            "random_phase",
            SCHEDULERS if plan.random_phase_peers else ("beatx",),
            plan.random_phase_jobs,
            10.0,
            plan.random_phase_s,
            False,
        ),
    )
    for key, schedulers, n, every, duration, same_phase in cases:
        kwargs = {"n": n, "every": every, "duration": duration, "same_phase": same_phase}
        timeout = duration + 120 + n * 0.005
        for scheduler in schedulers:
            out[key][scheduler] = child(
                log, f"{ADAPTER[scheduler]}:lateness", timeout, repeat=plan.repeat, **kwargs
            )
        out[key][SEND_TASK_PATH] = child(
            log,
            "benchmarks.beatx_side:lateness",
            timeout,
            repeat=plan.repeat,
            dispatcher="send_task",
            **kwargs,
        )
    return out


def edit(plan: Plan, log: Log) -> dict[str, Any]:
    child(log, "benchmarks.peer_django:migrate", 120)
    n = plan.edit_jobs
    return {
        "beatx (Redis)": child(log, "benchmarks.beatx_side:edit", 120, n=n),
        "beatx (Django store)": child(log, "benchmarks.peer_django:beatx_edit", 180, n=n),
        "django-celery-beat": child(log, "benchmarks.peer_django:edit", 180, n=n),
        "RedBeat": child(log, "benchmarks.peer_redbeat:edit", 180, n=n),
    }


def cron(plan: Plan, log: Log) -> dict[str, Any]:
    return child(log, "benchmarks.cron:measure", 600, rounds=plan.cron_rounds)


def recurrence(plan: Plan, log: Log) -> dict[str, Any]:
    return child(log, "benchmarks.recurrence:measure", 600, rounds=plan.cron_rounds)


def publish(plan: Plan, log: Log) -> dict[str, Any]:
    return {
        "throughput": child(log, "benchmarks.publish:throughput", 300, n=plan.publish_msgs),
        "worker": child(log, "benchmarks.publish:worker_smoke", 120, sample=plan.smoke_sample),
    }


PG_SCHEDULERS = ("django-celery-beat", "beatx")


def pg(plan: Plan, log: Log) -> dict[str, Any]:
    """beatx's Django store and django-celery-beat on one PostgreSQL database of the run's
    own (created here, dropped at the end): per size, load (``COPY``), then start-up, idle
    tick, tick after one edit and VmRSS in a fresh child, then a burst in another."""
    from benchmarks.pg import BenchPostgres, server_version

    out: dict[str, Any] = {s: {} for s in PG_SCHEDULERS}
    try:
        database = BenchPostgres().__enter__()
    except Exception as exc:  # no server: the other scenarios still run
        log(f"  PostgreSQL unavailable: {exc}")
        return {"error": f"PostgreSQL unavailable: {exc}"}
    try:
        db = database.name
        out["server"] = server_version()
        log(f"  database {db} (PostgreSQL {out['server']})")
        migrated = child(log, "benchmarks.pg:migrate", 180, db=db)
        if "error" in migrated:
            return {**out, "error": migrated["error"]}
        for scheduler, sizes in (("django-celery-beat", plan.pg_peer_sizes), ("beatx", plan.pg_beatx_sizes)):
            for n in sizes:
                out[scheduler][str(n)] = _pg_size(log, plan, scheduler, db, n)
    finally:
        database.__exit__(None, None, None)
    return out


def _pg_size(log: Log, plan: Plan, scheduler: str, db: str, n: int) -> dict[str, Any]:
    side = "beatx" if scheduler == "beatx" else "django"
    loaded = child(log, f"benchmarks.pg:load_{side}", 180 + n * 4e-4, db=db, n=n)
    if "error" in loaded:
        return loaded
    measured = child(
        log, f"benchmarks.pg:scale_{side}", 120 + n * (4e-4 if side == "django" else 1e-4), db=db, n=n
    )
    due = min(plan.pg_burst_due, n)
    burst = child(
        log,
        f"benchmarks.pg:burst_{side}",
        plan.pg_burst_cap + 120 + n * (4e-4 if side == "django" else 1e-4),
        db=db,
        n_due=due,
        n_total=n,
        time_cap=plan.pg_burst_cap,
    )
    return {**measured, "load": loaded, "burst": burst}


def amqp(plan: Plan, log: Log) -> dict[str, Any]:
    """A burst on RabbitMQ, every fire confirmed, beside the raw no-confirm py-amqp ceiling,
    celery beat and RedBeat (see :mod:`benchmarks.amqp`)."""
    from benchmarks.amqp import scenario

    return scenario(
        child,
        log,
        n_due=plan.amqp_due,
        repeats=plan.amqp_repeats,
        time_cap=plan.amqp_cap,
        peer_cap=plan.amqp_peer_cap,
        peers={name: ADAPTER[name] for name in ("celery beat", "RedBeat")},
    )


def cluster(plan: Plan, log: Log) -> dict[str, Any]:
    """A 10k burst on a private 3-master Redis Cluster, shared by 1, 2 and 3 sharded beats
    (see :mod:`benchmarks.cluster`)."""
    from benchmarks.cluster import scenario

    return scenario(log, n_due=plan.cluster_due)


def redis_memory(plan: Plan, log: Log) -> dict[str, Any]:
    """Redis bytes per job of beatx (alone, and with its audit entry) and of RedBeat, on a
    private ``redis-server`` (see :mod:`benchmarks.redis_memory`)."""
    from benchmarks.common import tmp_dir
    from benchmarks.redis_memory import scenario

    return scenario(child, log, n=plan.memory_jobs, directory=tmp_dir() / "redis-memory")


SCENARIOS: dict[str, Callable[[Plan, Log], dict[str, Any]]] = {
    "cron": cron,
    "recurrence": recurrence,
    "publish": publish,
    "scale": scale,
    "edit": edit,
    "burst": burst,
    "lateness": lateness,
    "pg": pg,
    "amqp": amqp,
    "cluster": cluster,
    "redis-memory": redis_memory,
}


def run(plan: Plan, only: list[str] | None, log: Log) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, scenario in SCENARIOS.items():
        if only and name not in only:
            continue
        log(f"[{name}]")
        started = time.perf_counter()
        results[name] = scenario(plan, log)
        log(f"[{name}] {time.perf_counter() - started:.0f}s")
    return results
