"""The benchmark regression guard.

It never compares absolute seconds (CI machines are noisy and shared): every check is a ratio,
either against a peer measured in the same process / run, or against complexity (the cost at
a large job count over the cost at a small one). The cheap checks run in the default suite;
the heavier ones, which start child processes and load up to 100,000 jobs, are ``slow``.

The full comparison is ``python -m benchmarks`` (docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from benchmarks import report
from benchmarks.cron import EXPRESSIONS, _starts

# -- helpers ----------------------------------------------------------------------------------


def best_of(call: Callable[[], object], *, rounds: int = 7, number: int = 200) -> float:
    """The best per-call time over ``rounds`` rounds of ``number`` calls (min filters noise)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return best


@pytest.fixture
def bench_env(redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Point the benchmark children at the test's own Redis database (store and broker)."""
    db = int(redis_url.rsplit("/", 1)[1])
    monkeypatch.setenv("BEATX_BENCH_STORE_DB", str(db))
    monkeypatch.setenv("BEATX_BENCH_BROKER_DB", str(db))
    monkeypatch.setenv("BEATX_BENCH_TMP", str(tmp_path))
    yield db


def child(target: str, timeout: float = 300, **kwargs: Any) -> dict[str, Any]:
    from benchmarks.common import flush, run_child, store_db

    flush(store_db())
    result = run_child(target, timeout, **kwargs)
    assert result.ok, f"{target}({kwargs}) failed: {result.error}"
    return result.value


def load_and(target: str, load: str, n: int, timeout: float = 300, runs: int = 1) -> dict[str, Any]:
    """Load ``n`` jobs, then measure ``runs`` times in fresh children; each ``*_s`` timing is
    the best of the runs (a timing on a shared 2-core host is noisy; the best is the cost)."""
    from benchmarks.common import flush, run_child, store_db

    flush(store_db())
    loaded = run_child(load, timeout, n=n)
    assert loaded.ok, f"{load}(n={n}) failed: {loaded.error}"
    best: dict[str, Any] = {}
    for _ in range(runs):
        measured = run_child(target, timeout, n=n)
        assert measured.ok, f"{target}(n={n}) failed: {measured.error}"
        for key, value in measured.value.items():
            if key.endswith("_s") and key in best:
                best[key] = min(best[key], value)
            else:
                best.setdefault(key, value)
    return best


# -- cheap: default suite --------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_cron_next_fire_is_several_times_cheaper_than_cronsim(zone: str) -> None:
    """Same expressions, same starting instants: beatx must stay well ahead of cronsim, the
    fastest pure-Python peer (in the benchmark run: about 10-20× ahead)."""
    cronsim = pytest.importorskip("cronsim")
    from zoneinfo import ZoneInfo

    from beatx.triggers import CronTrigger

    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    starts = _starts(tz)
    ratios = []
    for expr in EXPRESSIONS[:8]:
        trigger = CronTrigger(expr, timezone=tz)
        ours = best_of(lambda t=trigger: [t.next_fire_time(a) for a in starts], number=20)
        theirs = best_of(lambda e=expr: [next(cronsim.CronSim(e, a)) for a in starts], number=20)
        ratios.append(ours / theirs)
    assert statistics.median(ratios) <= 0.5, f"beatx / cronsim per-call cost ratios: {ratios}"


def test_cron_answers_agree_with_cronsim_in_utc() -> None:
    """The speed comparison is only fair if both compute the same thing."""
    cronsim = pytest.importorskip("cronsim")
    from beatx.triggers import CronTrigger

    for expr in EXPRESSIONS:
        trigger = CronTrigger(expr, timezone="UTC")
        for after in _starts(UTC):
            assert trigger.next_fire_time(after) == next(cronsim.CronSim(expr, after)), (expr, after)


def test_report_ratios_and_targets_from_a_results_dict() -> None:
    assert report.ratio(0.001, [0.1, 0.02]) == "×0.05"
    assert report.ratio(20_000, [1_000, 500], higher_is_better=True) == "×20"
    assert report.ratio(None, [1.0]) == "–"
    results = {
        "scale": {
            "beatx": {
                "1000": {"idle_tick_s": 1e-4, "rss_mb": 40, "startup_s": 0.05},
                "1000000": {"idle_tick_s": 1.5e-4, "rss_mb": 45, "startup_s": 0.2},
            }
        },
        "cron": {"beatx/utc": {"median_us": 1.0}, "beatx/dst": {"median_us": 12.0}},
    }
    status = {name: met for name, _, met in report.targets(results)}
    assert status["idle tick <= 1 ms at every size"] is True
    assert status["idle tick flat 1,000 → 1,000,000 (≤ 2×)"] is True
    assert status["cron next-fire median <= 5 µs in UTC"] is True
    assert status["cron next-fire median <= 10 µs in a daylight-saving zone"] is False
    assert "MISSED" in report.render(results)


@pytest.mark.redis
def test_idle_engine_tick_does_not_grow_with_the_job_count(redis_url: str, key_prefix: str) -> None:
    """Idle tick at 10,000 stored jobs vs 100: the same cost (a sorted-set lookup), within 3×."""
    from beatx.engine.engine import Engine
    from beatx.jobs import Job
    from beatx.stores.redis import RedisStore
    from beatx.triggers import IntervalTrigger

    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    first = now + timedelta(hours=1)
    trigger = IntervalTrigger(hours=1, start_date=first)

    def jobs(a: int, b: int) -> Iterator[Job]:
        for i in range(a, b):
            yield Job(
                id=f"j{i}",
                func="benchmarks.tasks.noop",
                trigger=trigger,
                next_run_time=first + timedelta(seconds=i),
            )

    store = RedisStore(redis_url, key_prefix=key_prefix)

    class NoDispatch:
        def dispatch(self, fires: Any) -> list[None]:
            raise AssertionError("nothing is due")

    engine = Engine(store, NoDispatch())
    try:
        store.add_jobs(jobs(0, 100))
        small = best_of(lambda: engine.tick(now), number=50)
        store.add_jobs(jobs(100, 10_000))
        large = best_of(lambda: engine.tick(now), number=50)
    finally:
        store.close()
    assert large / small <= 3.0, f"idle tick {small * 1e6:.0f} µs at 100 jobs, {large * 1e6:.0f} µs at 10,000"


# -- slow: child processes, up to 100,000 jobs --------------------------------------------------


@pytest.mark.slow
@pytest.mark.redis
def test_beat_start_up_idle_tick_and_memory_are_flat_from_1k_to_100k(bench_env: int) -> None:
    small = load_and("benchmarks.beatx_side:scale", "benchmarks.beatx_side:load", 1_000, runs=3)
    large = load_and("benchmarks.beatx_side:scale", "benchmarks.beatx_side:load", 100_000, runs=3)
    assert large["stored"] == 100_000
    assert large["idle_tick_s"] / small["idle_tick_s"] <= 2.5, (small, large)
    assert large["startup_s"] / small["startup_s"] <= 3.0, (small, large)
    # Memory: the beat keeps no copy of the jobs (100x the jobs, at most +15 MiB).
    assert large["rss_mb"] - small["rss_mb"] <= 15, (small, large)


@pytest.mark.slow
@pytest.mark.redis
def test_idle_tick_beats_celery_beat_by_a_wide_margin_at_10k_jobs(bench_env: int) -> None:
    """celery beat compares its whole schedule on every tick; beatx asks Redis what is due."""
    ours = load_and("benchmarks.beatx_side:scale", "benchmarks.beatx_side:load", 10_000)
    theirs = child("benchmarks.peer_celerybeat:scale", n=10_000)
    # At least five times: the ratio measured 9 to 12 on a machine three times slower than the
    # one it was first measured on (the per-statement floor weighs more there).
    assert ours["idle_tick_s"] * 5 <= theirs["idle_tick_s"], (ours, theirs)


@pytest.mark.slow
@pytest.mark.redis
def test_burst_publishes_far_faster_than_celery_beat(bench_env: int) -> None:
    """Fires per second, end to end through the real CeleryDispatcher to the Redis broker, vs
    celery beat sending 100 due jobs out of 10,000 (one per O(n) tick)."""
    ours = child("benchmarks.beatx_side:burst", n_due=2_000, n_total=10_000, dispatcher="celery")
    theirs = child("benchmarks.peer_celerybeat:burst", n_due=100, n_total=10_000, time_cap=60)
    assert ours["complete"] and ours["queued"] == 2_000, ours
    assert theirs["complete"], theirs
    assert ours["fires_per_s"] >= 10 * theirs["fires_per_s"], (ours, theirs)


@pytest.mark.slow
@pytest.mark.redis
def test_every_expected_fire_is_sent_where_redbeat_drops_some(bench_env: int) -> None:
    """200 jobs in the same phase every second: beatx sends every fire (fixed grid, no drift)."""
    ours = child("benchmarks.beatx_side:lateness", n=200, every=1.0, duration=5.0, same_phase=True)
    assert ours["fires"] == ours["expected"], ours


@pytest.mark.slow
@pytest.mark.redis
def test_a_runtime_edit_is_seen_without_reloading_the_other_jobs(bench_env: int) -> None:
    ours = child("benchmarks.beatx_side:edit", n=10_000)
    assert ours["seen"], ours
    assert ours["claimed_after_edit"] == 1, ours
    # Woken by the change, not by its timer: a small fraction of the beat's 60 s max sleep.
    assert ours["edit_to_fire_ms"] <= 2_000, ours
