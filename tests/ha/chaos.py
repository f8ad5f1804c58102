"""The chaos harness: real ``celery -A tests.ha.proj beat -S beatx`` processes sharing one Redis
store, one real worker with the beatx worker hook (``beatx.celery.setup(app)``), private
``redis-server`` processes that a scenario kills, freezes or restarts, and the count of what the
worker executed per (job id, scheduled time).

What a scenario gets from here:

- :class:`ChaosCluster`: the environment of one run (broker, store, record list, queue, key
  prefix, ``beatx_lease_timeout``, ``beatx_dedupe``), its worker and beats, the leader as the
  lease in the store names it (:meth:`ChaosCluster.lease_holder`, never from a log), and
  :meth:`ChaosCluster.strike_leader`, which reads the lease, signals its holder and reads the
  lease again, so a strike counts as *landed* only if the signalled pid held the lease at that
  instant;
- :class:`RedisServer`: a private ``redis-server`` on a free loopback port, in a directory of
  the test, stopped by its pid;
- :func:`measure`: expected fire times (the 1 s grid of every job between two cutoffs), missing
  and duplicated (job, fire time) pairs, from the rows of the ``ha.record`` task.

Every process is started in its own session under ``setpriv --pdeathsig KILL`` when available
(it dies with the test process even if that is killed hard) and stopped at teardown: beats and worker with SIGCONT,
SIGTERM, then SIGKILL of their process group; private Redis servers with SIGCONT + SIGKILL.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import pytest
import redis

from beatx.stores.redis import RedisStore
from tests.e2e.conftest import CELERY, ROOT, parse_time, wait_for, worker_argv
from tests.ha.conftest import APP, BEAT_READY, WORKER_READY, HAProcess, origin_pid, owner_pid
from tests.ha.proj.app import beat_job_ids

#: The setup of every scenario: 3 beats, 50 jobs every second, a 5 s lease, 60 s of faults.
BEATS = 3
JOBS = 50
INTERVAL = 1.0
LEASE_TIMEOUT = 5.0
FAULT_PERIOD = 60.0
#: How long the run goes on after the last fault ended, before the beats are stopped.
SETTLE = 6.0
TASK = "ha.record"
#: The worker-side duplicate guard (``beatx_dedupe``), part of the documented HA setup
#: (docs/concepts/ha.md, docs/delivery.md). ``BEATX_CHAOS_DEDUPE=0`` runs without it.
DEDUPE = os.environ.get("BEATX_CHAOS_DEDUPE", "1") != "0"

_US = 1_000_000


def _die_with_parent() -> list[str]:
    """A command prefix that makes the child get SIGKILL when the test process dies
    (``setpriv --pdeathsig``, which execs the command: the pid stays the child's)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sleep_until(at: float) -> None:
    """Sleep until the wall clock reads ``at`` (to about a millisecond)."""
    while (delay := at - time.time()) > 0.003:
        time.sleep(min(delay - 0.002, 0.5))
    while time.time() < at:
        pass


def to_us(value: str | datetime | float) -> int:
    """A time as integer microseconds since the epoch."""
    if isinstance(value, str):
        value = parse_time(value)
    if isinstance(value, datetime):
        value = value.timestamp()
    return round(value * _US)


def fmt_us(us: int) -> str:
    return datetime.fromtimestamp(us / _US, UTC).strftime("%H:%M:%S.%f")[:-3]


# -- processes ------------------------------------------------------------------------------------


class ChaosProcess(HAProcess):
    """A ``celery -A tests.ha.proj ...`` subprocess that dies with the test process."""

    def spawn(self) -> ChaosProcess:
        handle = self.log.open("ab")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [*_die_with_parent(), CELERY, "-A", APP, *self.argv],
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return self


class WorkerSupervisor:
    """Starts a worker again when it exits, as the process supervisor docs/delivery.md asks for
    would: a Celery worker may exit when its Redis broker is killed under it (kombu's restore
    of unacknowledged messages fails). Used as a context manager around the scenario; the
    restarts are counted and reported, never hidden."""

    def __init__(self, worker: ChaosProcess, *, poll: float = 0.2) -> None:
        self.worker = worker
        self.poll = poll
        self.restarts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if not self.restarts:
            self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            if not self.worker.alive():
                self.restarts.append(time.time())
                self.worker.spawn().wait_for_log(WORKER_READY, 30, count=len(self.restarts) + 1)
        # A worker this thread started gets SIGKILL when the thread ends (setpriv's pdeathsig
        # follows the parent thread, not the process): the thread stays until that worker
        # exits, so it outlives the supervision and is counted and stopped as the first was.
        while self.restarts and self.worker.alive():
            time.sleep(self.poll)


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 and a free port, with its files in ``directory``.

    ``appendonly``: AOF with ``appendfsync always`` (a SIGKILL loses no acknowledged write);
    otherwise no persistence at all (``--save '' --appendonly no``: a restart starts empty).
    The port is kept across restarts.
    """

    def __init__(self, directory: Path, *, name: str, appendonly: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("redis-server is not installed; CI requires it")
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.name = name
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def logfile(self) -> Path:
        return self.dir / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _argv(self) -> list[str]:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes"]
        argv += ["--dir", str(self.dir), "--logfile", str(self.logfile), "--save", "", "--daemonize", "no"]
        if self.appendonly:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def persisted_files(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.name != self.logfile.name)

    def start(self, timeout: float = 10.0) -> float:
        """Start the server (on the same port as before, if it ran); return when it answers."""
        first = self.port == 0
        for _attempt in range(3 if first else 1):
            if first:
                self.port = free_port()
            offset = self.logfile.stat().st_size if self.logfile.exists() else 0
            self.proc = subprocess.Popen(
                [*_die_with_parent(), *self._argv()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.starts += 1
            self._log_offset = offset
            deadline = time.monotonic() + timeout
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
            try:
                while time.monotonic() < deadline and self.proc.poll() is None:
                    try:
                        if client.ping():
                            return time.time()
                    except redis.RedisError:
                        time.sleep(0.01)
            finally:
                client.close()
            self.stop()
        raise AssertionError(f"{self.name}: redis-server did not answer on port {self.port}:\n{self.log()}")

    def log(self, since_last_start: bool = False) -> str:
        if not self.logfile.exists():
            return ""
        text = self.logfile.read_text(errors="replace")
        return text[self._log_offset :] if since_last_start else text[-3000:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> float:
        """SIGKILL (and reap); returns the instant of the signal."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        at = time.time()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        return at

    def freeze(self) -> float:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        at = time.time()
        os.kill(self.proc.pid, signal.SIGSTOP)
        return at

    def thaw(self) -> float:
        assert self.proc is not None
        at = time.time()
        os.kill(self.proc.pid, signal.SIGCONT)
        return at

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for signum in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(proc.pid, signum)
            except ProcessLookupError:
                break
        proc.wait(5)


# -- strikes (signals to the leader) ----------------------------------------------------------------


@dataclass
class Strike:
    """One signal to the lease holder, as planned and as it landed."""

    kind: str
    number: int
    planned_phase: float
    at: float = 0.0
    owner: str = ""
    pid: int | None = None
    name: str = ""
    #: Whether a signal was sent (a strike may be sent and still not land on the holder).
    signalled: bool = False
    landed: bool = False
    why_not: str = ""
    #: The lease's expiry read just before / just after the signal (epoch seconds).
    expiry_before: float = 0.0
    expiry_after: float = 0.0
    takeover_at: float | None = None
    new_pid: int | None = None
    new_name: str = ""
    resumed_at: float | None = None
    first_fire_at: float | None = None

    @property
    def phase(self) -> float:
        return self.at % 1.0

    @property
    def takeover_s(self) -> float | None:
        return None if self.takeover_at is None else self.takeover_at - self.at

    def describe(self) -> str:
        takeover = "none" if self.takeover_s is None else f"{self.takeover_s:.2f}s"
        first = "none" if self.first_fire_at is None else f"{self.first_fire_at - self.at:.2f}s"
        text = (
            f"{self.kind} #{self.number}: {self.name or '?'} pid={self.pid} at +{self.phase:.3f}s of the second, "
            f"landed={self.landed}{'' if self.landed else ' (' + self.why_not + ')'}, lease to "
            f"{self.new_name or '?'} after {takeover}, its first executed fire after {first}"
        )
        if self.resumed_at is not None:
            text += f", resumed after {self.resumed_at - self.at:.2f}s"
        return text


# -- the cluster ------------------------------------------------------------------------------------


class ChaosCluster:
    """One run: broker, store and record list (three URLs, possibly three servers), a queue and
    key prefix of its own, its processes."""

    def __init__(
        self,
        logs: Path,
        *,
        broker_url: str,
        store_url: str,
        record_url: str,
        key_prefix: str,
        lease_timeout: float = LEASE_TIMEOUT,
        dedupe: bool = DEDUPE,
        beat_schedule_jobs: int = 0,
        interval: float = INTERVAL,
        store: Any = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """``store``: what this process reads the lease from and adds jobs to, for a store
        URL it cannot open itself (``django://`` names a database of the subprocesses'
        settings); a :class:`RedisStore` on ``store_url`` when omitted. ``extra_env``: added
        to the subprocesses' environment (the Django settings of a ``django://`` store)."""
        self.logs = logs
        self.key_prefix = key_prefix
        self.lease_timeout = lease_timeout
        self.dedupe = dedupe
        self.interval = interval
        self.queue = f"beatx-chaos-{uuid.uuid4().hex[:8]}"
        self.record_key = f"{key_prefix}records"
        self.broker_url, self.store_url, self.record_url = broker_url, store_url, record_url
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "BEATX_TEST_BROKER": broker_url,
            "BEATX_TEST_STORE": store_url,
            "BEATX_TEST_PREFIX": key_prefix,
            "BEATX_TEST_QUEUE": self.queue,
            "BEATX_TEST_RECORD_URL": record_url,
            "BEATX_TEST_RECORD_KEY": self.record_key,
            "BEATX_TEST_LEASE_TIMEOUT": repr(float(lease_timeout)),
            "BEATX_TEST_DEDUPE": "1" if dedupe else "0",
            "BEATX_TEST_BEAT_JOBS": str(beat_schedule_jobs),
            "BEATX_TEST_BEAT_INTERVAL": repr(float(interval)),
            **(extra_env or {}),
        }
        self.job_ids: list[str] = beat_job_ids(beat_schedule_jobs)
        self.records_client = redis.Redis.from_url(record_url, socket_timeout=5)
        self.broker_client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
        self.own_store = store is None
        self.store = (
            RedisStore(store_url, key_prefix=key_prefix, socket_timeout=2.0) if store is None else store
        )
        self.processes: list[ChaosProcess] = []
        self.beats: list[ChaosProcess] = []
        self.managers: list[Any] = []
        self._workers = 0

    # processes

    def worker(self, concurrency: int = 16) -> ChaosProcess:
        self._workers += 1
        name = f"worker-{self._workers}"
        process = ChaosProcess(name, worker_argv(name, concurrency), self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        process.spawn().wait_for_log(WORKER_READY, 30)
        return process

    def spawn_beat(self) -> ChaosProcess:
        name = f"beat-{len(self.beats) + 1}"
        argv = ["beat", "-S", "beatx", "--loglevel=INFO", f"--schedule={self.logs / 'unused-schedule'}"]
        process = ChaosProcess(name, argv, self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        self.beats.append(process)
        return process.spawn()

    def start_beats(self, count: int, timeout: float = 30.0) -> list[ChaosProcess]:
        """Start ``count`` beats one after the other, each until it has opened the store."""
        started = []
        for _ in range(count):
            started.append(self.spawn_beat())
            started[-1].wait_for_log(BEAT_READY, timeout)
        return started

    def live_beats(self) -> list[ChaosProcess]:
        return [b for b in self.beats if b.alive()]

    def by_pid(self, pid: int | None) -> ChaosProcess | None:
        return next((p for p in self.beats if p.proc is not None and p.proc.pid == pid), None)

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
        return wait_for(condition, timeout, what, self.processes, step)

    # jobs

    def add_jobs(self, count: int, *, lead: float = 2.0) -> list[str]:
        """``count`` jobs through the management API (``get_scheduler(app)``), every
        ``interval`` s on a grid of whole seconds from ``lead`` s ahead, with no policy option
        (the defaults: ``coalesce=True``, ``misfire_grace_time=None``, ``max_instances=1``)."""
        from beatx import IntervalTrigger
        from beatx.celery import get_scheduler
        from beatx.manager import JobManager
        from tests.ha.proj import make_app

        if self.own_store:
            manager = get_scheduler(make_app(self.env))
            self.managers.append(manager)
        else:  # the store given: the manager the app would build on it, the app's defaults
            manager = JobManager(self.store, timezone="UTC")
        start = datetime.fromtimestamp(math.floor(time.time()) + lead, UTC)
        ids = beat_job_ids(count)
        for job_id in ids:
            manager.add_job(TASK, IntervalTrigger(seconds=self.interval, start_date=start), id=job_id)
        self.job_ids = ids
        return ids

    # the lease

    def lease_holder(self) -> tuple[str, int, ChaosProcess, float] | None:
        """``(owner, pid, process, expiry)`` of the unexpired lease, if one of this run's live
        beats holds it (by the pid in the owner token)."""
        lease = self.store.get_lease()
        if lease is None:
            return None
        expiry = lease.expires_at.timestamp()
        pid = owner_pid(lease.owner)
        process = self.by_pid(pid)
        if pid is None or process is None or not process.alive() or expiry <= time.time():
            return None
        return lease.owner, pid, process, expiry

    def wait_for_leader(self, timeout: float) -> tuple[str, int, ChaosProcess, float]:
        result: tuple[str, int, ChaosProcess, float] = self.wait_for(
            self.lease_holder, timeout, "a live beat of this run holding the lease", step=0.02
        )
        return result

    def wait_takeover(self, old_owner: str, timeout: float) -> tuple[float, int, ChaosProcess] | None:
        """Poll the lease until a live beat other than ``old_owner`` holds it: ``(when, pid,
        process)``, or ``None`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                holder = self.lease_holder()
            except Exception:
                holder = None
            if holder is not None and holder[0] != old_owner:
                return time.time(), holder[1], holder[2]
            time.sleep(0.02)
        return None

    def strike_leader(self, kind: str, number: int, signum: int, phase: float, timeout: float) -> Strike:
        """Signal the lease holder ``phase`` s after the next whole second.

        The lease is read right before the signal and again right after it: the strike has
        *landed* if both reads name the same owner token, unexpired at the signal, and its pid
        is the process signalled.
        """
        strike = Strike(kind=kind, number=number, planned_phase=phase)
        try:
            self.wait_for_leader(timeout)
        except AssertionError as exc:
            strike.why_not = f"no leader within {timeout}s: {str(exc)[:200]}"
            return strike
        sleep_until(math.floor(time.time()) + 1 + phase)
        before = self.store.get_lease()
        if before is None:
            strike.why_not = "no lease at the strike"
            return strike
        strike.owner = before.owner
        strike.pid = owner_pid(before.owner)
        strike.expiry_before = before.expires_at.timestamp()
        process = self.by_pid(strike.pid)
        if process is None or not process.alive():
            strike.why_not = f"the lease owner {before.owner!r} is no live beat of this run"
            return strike
        strike.name = process.name
        strike.at = time.time()
        if strike.expiry_before <= strike.at:
            strike.why_not = "the lease had expired"
            return strike
        process.signal(signum)
        strike.signalled = True
        after = self.store.get_lease()
        if signum == signal.SIGKILL:
            assert process.proc is not None
            process.proc.wait(5)
        if after is None or after.owner != before.owner:
            strike.why_not = (
                f"the lease moved during the strike (to {None if after is None else after.owner!r})"
            )
            return strike
        strike.expiry_after = after.expires_at.timestamp()
        if strike.expiry_after <= strike.at:
            strike.why_not = "the lease was expired after the strike"
            return strike
        strike.landed = True
        return strike

    # what the worker did

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.records_client.lrange(self.record_key, 0, -1)]

    def deliveries(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.records_client.lrange(self.record_key + "deliveries", 0, -1)]

    def record_count(self) -> int:
        return int(self.records_client.llen(self.record_key))

    def queue_length(self) -> int:
        return int(self.broker_client.llen(self.queue))

    def wait_all_jobs_ran(self, timeout: float = 20.0) -> None:
        def all_ran() -> bool:
            ran = {row["job_id"] for row in self.records()}
            return all(job_id in ran for job_id in self.job_ids)

        self.wait_for(all_ran, timeout, f"one execution of each of the {len(self.job_ids)} jobs", step=0.2)

    def drain(self, timeout: float = 40.0, quiet: float = 2.0) -> bool:
        """Wait (bounded) until the broker queue is empty and no record arrived for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            try:
                backlog = self.queue_length()
            except redis.RedisError:
                backlog = -1
            count = self.record_count()
            if count != last or backlog:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
            time.sleep(0.1)
        return False

    def stop_beats(self) -> None:
        for beat in self.beats:
            beat.stop()

    def beat_log_stats(self) -> dict[str, int]:
        """Counts from the beats' logs, for the summary only (never to find the leader)."""
        stats: Counter[str] = Counter()
        for beat in self.beats:
            text = beat.output()
            stats["dispatched"] += text.count("fire dispatched")
            stats["skipped"] += sum(int(n) for n in re.findall(r"fires skipped job=\S+ count=(\d+)", text))
            stats["misfired"] += sum(int(n) for n in re.findall(r"fires missed job=\S+ count=(\d+)", text))
            stats["broker_errors"] += text.count("broker unavailable")
            stats["store_errors"] += text.count("store unavailable")
            stats["lease_acquired"] += text.count("leader lease acquired")
            stats["lease_lost"] += text.count("leader lease lost")
            stats["tracebacks"] += text.count("Traceback")
            stats["atomic_fire"] += text.count("atomic fire: broker and store share")
            stats["publish_then_write_back"] += text.count(
                "fires are published, then their jobs written back"
            )
        return dict(stats)

    def dispatches(self) -> list[tuple[str, int, float]]:
        """``(job id, scheduled time in µs, dispatch wall time)`` of every "fire dispatched"
        line of the beats (the time is ``scheduled_at + lateness``, as the engine logs it)."""
        pattern = re.compile(r"fire dispatched job=(\S+) scheduled_at=(\S+) lateness=(-?[0-9.]+)s")
        found = []
        for beat in self.beats:
            for job_id, scheduled, lateness in pattern.findall(beat.output()):
                at = to_us(scheduled)
                found.append((job_id, at, at / _US + float(lateness)))
        return found

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {process.name}: {exc!r}")
        for manager in self.managers:
            try:
                manager.store.close()
            except Exception as exc:
                print(f"could not close a manager's store: {exc!r}")
        for close in (self.store.close, self.records_client.close, self.broker_client.close):
            try:
                close()
            except Exception as exc:
                print(f"could not close a client: {exc!r}")


def fill_first_fires(strikes: Iterable[Strike], rows: Sequence[dict[str, Any]]) -> None:
    """Each strike's first fire executed after it that the new lease holder published."""
    by_pid: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        pid = origin_pid(row.get("origin"))
        if pid is not None:
            by_pid[pid].append(row["at"])
    for strike in strikes:
        if strike.new_pid is not None:
            after = [at for at in by_pid.get(strike.new_pid, []) if at > strike.at]
            strike.first_fire_at = min(after) if after else None


def woken_messages(
    strikes: Sequence[Strike], deliveries: Sequence[dict[str, Any]], stop_at: float
) -> list[int]:
    """Per freeze: the messages the frozen beat published that reached the worker after its
    SIGCONT, until it next took the lease (seen by a later strike) or the run stopped."""
    counts = []
    for n, strike in enumerate(strikes):
        if strike.resumed_at is None or strike.pid is None:
            counts.append(0)
            continue
        until = min(
            [s.takeover_at for s in strikes[n + 1 :] if s.new_pid == strike.pid and s.takeover_at] + [stop_at]
        )
        counts.append(
            sum(
                1
                for d in deliveries
                if origin_pid(d.get("origin")) == strike.pid and strike.resumed_at < d["at"] <= until
            )
        )
    return counts


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """What the worker executed against what the grid expects, in ``[start, end]`` (µs)."""

    start: int
    end: int
    jobs: int
    interval_us: int
    rows: int
    executions: int
    expected: int
    missing: list[tuple[str, int]]
    #: Expected pairs inside an excluded window (a documented outage) that did not run.
    missing_excluded: list[tuple[str, int]]
    duplicates: dict[tuple[str, int], int]
    duplicates_outside: dict[tuple[str, int], int]
    off_grid: list[tuple[str, int]]
    excluded: list[tuple[int, int]] = field(default_factory=list)

    @property
    def duplicate_runs(self) -> int:
        """Executions beyond the first of a (job, fire time) in the window."""
        return sum(n - 1 for n in self.duplicates.values())

    def missing_by_second(self, limit: int = 16) -> str:
        counts = Counter(at for _, at in self.missing)
        parts = [f"{fmt_us(at)}x{n}" for at, n in sorted(counts.items())]
        more = f" (+{len(parts) - limit} more seconds)" if len(parts) > limit else ""
        return ", ".join(parts[:limit]) + more

    def window(self) -> str:
        text = f"[{fmt_us(self.start)}, {fmt_us(self.end)}]"
        if self.excluded:
            text += " minus " + ", ".join(f"[{fmt_us(a)}, {fmt_us(b)}]" for a, b in self.excluded)
        return text


def measure(
    rows: Sequence[dict[str, Any]],
    job_ids: Sequence[str],
    *,
    interval: float,
    start: float,
    end: float,
    exclude: Sequence[tuple[float, float]] = (),
) -> Measurement:
    """Expected = every job's fire times on its grid (multiples of ``interval`` since the epoch)
    in ``[start, end]``; missing = expected and never executed (outside ``exclude``);
    duplicates = (job, fire time) in the window executed more than once."""
    step = round(interval * _US)
    lo, hi = to_us(start), to_us(end)
    first = -(-lo // step) * step
    grid = range(first, hi + 1, step)
    windows = [(to_us(a), to_us(b)) for a, b in exclude]
    counts: Counter[tuple[str, int]] = Counter(
        (str(row["job_id"]), to_us(row["scheduled_at"])) for row in rows if row.get("scheduled_at")
    )
    known = set(job_ids)
    executed = set(counts)
    missing, missing_excluded = [], []
    for job_id in job_ids:
        for at in grid:
            if (job_id, at) in executed:
                continue
            if any(a <= at <= b for a, b in windows):
                missing_excluded.append((job_id, at))
            else:
                missing.append((job_id, at))
    in_window = {key: n for key, n in counts.items() if lo <= key[1] <= hi}
    return Measurement(
        start=lo,
        end=hi,
        jobs=len(job_ids),
        interval_us=step,
        rows=len(rows),
        executions=sum(in_window.values()),
        expected=len(job_ids) * len(grid),
        missing=missing,
        missing_excluded=missing_excluded,
        duplicates={key: n for key, n in in_window.items() if n > 1},
        duplicates_outside={key: n for key, n in counts.items() if n > 1 and key not in in_window},
        off_grid=sorted(key for key in in_window if key[1] % step or key[0] not in known),
        excluded=windows,
    )


def delivered_twice(deliveries: Sequence[dict[str, Any]], start: float, end: float) -> int:
    """Messages of a fire in ``[start, end]`` that reached the worker more than once (what the
    duplicate guard dropped, or what ran twice without it)."""
    lo, hi = to_us(start), to_us(end)
    counts = Counter(
        d["task_id"] for d in deliveries if d.get("scheduled_at") and lo <= to_us(d["scheduled_at"]) <= hi
    )
    return sum(n - 1 for n in counts.values() if n > 1)


def missing_causes(
    m: Measurement, dispatches: Sequence[tuple[str, int, float]], deliveries: Sequence[dict[str, Any]]
) -> dict[str, int]:
    """Where each missing fire stopped: never sent by a beat (no "fire dispatched" line: not
    planned, skipped, coalesced or lost before the publish), sent but never delivered to the
    worker, or delivered and not run (dropped by the duplicate guard)."""
    sent = {(job_id, at) for job_id, at, _ in dispatches}
    delivered = {(str(d["job_id"]), to_us(d["scheduled_at"])) for d in deliveries if d.get("scheduled_at")}
    causes: Counter[str] = Counter()
    for key in m.missing:
        if key in delivered:
            causes["delivered_not_run"] += 1
        elif key in sent:
            causes["sent_not_delivered"] += 1
        else:
            causes["never_sent"] += 1
    return dict(causes)


def summary(scenario: str, m: Measurement, **figures: Any) -> str:
    """The one line quoted from a run."""
    parts = [
        f"CHAOS {scenario}:",
        *(f"{key}={value}" for key, value in figures.items()),
        f"window={m.window()}",
        f"expected={m.expected}",
        f"executions={m.executions}",
        f"missing={len(m.missing)}",
        f"duplicates={len(m.duplicates)}",
        f"duplicate_runs={m.duplicate_runs}",
    ]
    if m.excluded:
        parts.append(f"missing_in_excluded={len(m.missing_excluded)}")
    if m.duplicates_outside:
        parts.append(f"duplicates_outside_window={len(m.duplicates_outside)}")
    if m.off_grid:
        parts.append(f"off_grid={len(m.off_grid)}")
    return " ".join(parts)


def details(m: Measurement, limit: int = 12) -> str:
    """Examples of what went wrong, for an assertion message."""
    lines = []
    if m.missing:
        lines.append(f"missing by fire time (time x jobs): {m.missing_by_second()}")
    if m.duplicates:
        sample = sorted(m.duplicates.items(), key=lambda kv: kv[0][1])[:limit]
        lines.append("duplicates: " + ", ".join(f"{j}@{fmt_us(at)}x{n}" for (j, at), n in sample))
    if m.off_grid:
        lines.append("off grid: " + ", ".join(f"{j}@{fmt_us(at)}" for j, at in m.off_grid[:limit]))
    return "\n".join(lines)


def mid_batch_phase(rng: random.Random) -> float:
    """A moment just after the top of a second: the leader is sending the 50 fires due then
    (claimed a lookahead, 50 ms, earlier) or writing the jobs back."""
    return rng.uniform(0.001, 0.010)


def window_bounds(chaos_start: float, stop_at: float, interval: float = INTERVAL) -> tuple[float, float]:
    """The measured period: from the first fire after the faults began to the stop, one
    interval in from each end."""
    first = math.ceil(chaos_start / interval) * interval
    last = math.floor(stop_at / interval) * interval
    return first + interval, last - interval


# -- the leader scenarios (shared by the Redis and the Django store) -------------------------------


def start_cluster(cluster: ChaosCluster, *, add_jobs: bool, beats: int = BEATS, jobs: int = JOBS) -> None:
    """The worker, ``beats`` beats, the jobs (unless ``beat_schedule`` has them), one run of each."""
    cluster.worker(concurrency=16)
    cluster.start_beats(beats)
    if add_jobs:
        cluster.add_jobs(jobs)
    cluster.wait_for_leader(15)
    cluster.wait_all_jobs_ran(20)


def finish(cluster: ChaosCluster, stop_at: float) -> tuple[list[dict[str, Any]], bool, list[bool]]:
    """Run until ``stop_at``, note which beats live, stop them, let the worker drain."""
    sleep_until(stop_at)
    alive = [beat.alive() for beat in cluster.beats]
    cluster.stop_beats()
    drained = cluster.drain()
    return cluster.records(), drained, alive


def check_harness(cluster: ChaosCluster, drained: bool) -> None:
    assert cluster.processes[0].alive(), "the worker died: the counts are meaningless"
    assert drained, f"the worker did not drain the queue (length {cluster.queue_length()})"


def print_report(lines: list[str], m: Measurement) -> None:
    print()
    for line in lines:
        print(line)
    text = details(m)
    if text:
        print(text)


def strike_lines(strikes: list[Strike]) -> list[str]:
    return [strike.describe() for strike in strikes]


def takeovers(strikes: list[Strike]) -> str:
    return "[" + ",".join("-" if s.takeover_s is None else f"{s.takeover_s:.2f}" for s in strikes) + "]"


def first_fires(strikes: list[Strike]) -> str:
    return (
        "["
        + ",".join("-" if s.first_fire_at is None else f"{s.first_fire_at - s.at:.2f}" for s in strikes)
        + "]"
    )


@dataclass
class LeaderRun:
    """What a leader scenario did and measured; the caller asserts and may add figures."""

    scenario: str
    planned: int
    strikes: list[Strike]
    m: Measurement
    #: Per beat of ``cluster.beats``, whether it was alive when the run stopped.
    alive: list[bool]
    drained: bool
    figures: dict[str, Any]

    @property
    def landed(self) -> int:
        return sum(s.landed for s in self.strikes)

    def strikes_message(self) -> str:
        return f"{self.landed} of {self.planned} strikes landed on the lease holder:\n" + "\n".join(
            strike_lines(self.strikes)
        )

    def report(self, cluster: ChaosCluster, **more: Any) -> str:
        """Print the strikes, the beats' log counts and the summary line (returned)."""
        line = summary(self.scenario, self.m, **self.figures, **more)
        print_report([*strike_lines(self.strikes), f"beat logs: {cluster.beat_log_stats()}", line], self.m)
        return line


def sigkill_leader_every_10s(cluster: ChaosCluster, scenario: str = "sigkill-leader") -> LeaderRun:
    """SIGKILL the lease holder every 10 s (6 kills, the 1st, 3rd and 5th while the 50 fires of
    a second go out); each killed beat is replaced at once, so three stay up."""
    planned = 6
    start_cluster(cluster, add_jobs=True)
    rng = random.Random(20261122)
    chaos_start = time.time()
    fault_end = chaos_start
    strikes: list[Strike] = []
    for n in range(planned):
        sleep_until(chaos_start + 4 + 10 * n)
        phase = mid_batch_phase(rng) if n % 2 == 0 else rng.uniform(0.1, 0.9)
        strike = cluster.strike_leader("SIGKILL", n + 1, signal.SIGKILL, phase, timeout=LEASE_TIMEOUT + 5)
        strikes.append(strike)
        if not strike.signalled:
            continue
        cluster.spawn_beat()  # the killed beat restarted: three stay up
        took = cluster.wait_takeover(strike.owner, LEASE_TIMEOUT + 5)
        if took is not None:
            strike.takeover_at, strike.new_pid, new_leader = took
            strike.new_name = new_leader.name
        fault_end = max(fault_end, strike.takeover_at or strike.at + LEASE_TIMEOUT)
    stop_at = max(chaos_start + FAULT_PERIOD, fault_end) + SETTLE
    rows, drained, alive = finish(cluster, stop_at)
    fill_first_fires(strikes, rows)
    start, end = window_bounds(chaos_start, stop_at)
    m = measure(rows, cluster.job_ids, interval=INTERVAL, start=start, end=end)
    landed = sum(s.landed for s in strikes)
    figures = {
        "kills_landed": f"{landed}/{planned}",
        "mid_batch": sum(1 for s in strikes if s.landed and s.phase < 0.02),
        "beats_alive_at_stop": f"{sum(alive)} of {len(alive)} started",
        "takeover_s": takeovers(strikes),
        "first_fire_s": first_fires(strikes),
        "dedupe": cluster.dedupe,
        "delivered_twice": delivered_twice(cluster.deliveries(), start, end),
        "missing_causes": missing_causes(m, cluster.dispatches(), cluster.deliveries()),
    }
    return LeaderRun(scenario, planned, strikes, m, alive, drained, figures)


def sigstop_leader_past_its_lease(cluster: ChaosCluster, scenario: str = "sigstop-leader") -> LeaderRun:
    """SIGSTOP the lease holder for 8 s (the lease is 5 s) three times, each while the 50 fires
    of a second go out, then SIGCONT."""
    planned, frozen_for = 3, 8.0
    start_cluster(cluster, add_jobs=True)
    rng = random.Random(7)
    chaos_start = time.time()
    fault_end = chaos_start
    strikes: list[Strike] = []
    for n in range(planned):
        sleep_until(chaos_start + 4 + 20 * n)
        strike = cluster.strike_leader(
            "SIGSTOP", n + 1, signal.SIGSTOP, mid_batch_phase(rng), timeout=LEASE_TIMEOUT + 5
        )
        strikes.append(strike)
        if not strike.signalled:
            continue
        frozen = cluster.by_pid(strike.pid)
        assert frozen is not None
        took = cluster.wait_takeover(strike.owner, max(0.0, strike.at + frozen_for - time.time()))
        if took is not None:
            strike.takeover_at, strike.new_pid, new_leader = took
            strike.new_name = new_leader.name
        sleep_until(strike.at + frozen_for)
        frozen.signal(signal.SIGCONT)
        strike.resumed_at = time.time()
        fault_end = max(fault_end, strike.resumed_at)
    stop_at = max(chaos_start + FAULT_PERIOD, fault_end) + SETTLE
    rows, drained, alive = finish(cluster, stop_at)
    fill_first_fires(strikes, rows)
    deliveries = cluster.deliveries()
    start, end = window_bounds(chaos_start, stop_at)
    m = measure(rows, cluster.job_ids, interval=INTERVAL, start=start, end=end)
    landed = sum(s.landed for s in strikes)
    figures = {
        "freezes_landed": f"{landed}/{planned}",
        "frozen_s": frozen_for,
        "beats_alive_at_stop": f"{sum(alive)}/{len(alive)}",
        "takeover_s": takeovers(strikes),
        "first_fire_s": first_fires(strikes),
        "woken_beat_messages_after_sigcont": woken_messages(strikes, deliveries, stop_at),
        "dedupe": cluster.dedupe,
        "delivered_twice": delivered_twice(deliveries, start, end),
        "missing_causes": missing_causes(m, cluster.dispatches(), deliveries),
    }
    return LeaderRun(scenario, planned, strikes, m, alive, drained, figures)
