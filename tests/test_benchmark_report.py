"""The benchmark report's fairness rules, on results dicts (no child process, no server):
repeated runs fold into medians with their spread, and a burst ratio only compares beatx with
peers measured at the same size."""

from __future__ import annotations

from typing import Any

from benchmarks import report
from benchmarks.repeats import aggregate, with_spread


def _burst(rate: float, *, complete: bool = True, **extra: Any) -> dict[str, Any]:
    return {"fires_per_s": rate, "seconds": 10_000 / rate, "complete": complete, **extra}


def test_repeated_runs_fold_into_medians_with_min_and_max() -> None:
    runs = [
        _burst(19_000.0, ticks=12),
        _burst(25_000.0, ticks=10),
        _burst(21_000.0, complete=False, ticks=11),
    ]
    folded = aggregate(runs)
    assert folded["fires_per_s"] == 21_000.0 and folded["ticks"] == 11
    assert folded["spread"]["fires_per_s"] == [19_000.0, 25_000.0]
    assert folded["complete"] is False  # not complete in every run
    assert folded["repeats"] == 3 and folded["runs"] == runs
    assert with_spread(folded, "fires_per_s", report.fmt_rate) == "21,000/s (19,000/s–25,000/s, 3 runs)"
    # One run: no spread printed; a failed run makes the whole measurement an error.
    assert with_spread(aggregate([_burst(5.0)]), "fires_per_s", report.fmt_rate) == "5/s"
    failed = aggregate([_burst(5.0), {"error": "timeout"}])
    assert failed["error"] == "timeout" and failed["repeats"] == 2


def test_a_burst_ratio_compares_beatx_with_peers_of_the_same_size_only() -> None:
    capped = _burst(40.0, complete=False, fired=800)
    results = {
        "peers": {
            "100/10000": {
                "celery beat": _burst(100.0),
                "django-celery-beat": _burst(90.0),
                "RedBeat": _burst(1_000.0),
                "beatx": _burst(2_000.0),
            },
            "10000/10000": {
                "celery beat": capped,
                "django-celery-beat": _burst(30.0, complete=False, fired=600),
                "RedBeat": _burst(800.0),
                "beatx": _burst(16_000.0),
            },
        },
        "beatx": {"10000": {"send_task": _burst(2_400.0)}},
    }
    results["beatx"]["10000"]["celery"] = results["peers"]["10000/10000"]["beatx"]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in report.burst_table(results).splitlines()[2:]
    }
    # 2,000 ÷ 1,000 at 100 of 10,000; 16,000 ÷ 800 at 10,000 of 10,000 (not ÷ 1,000).
    assert rows["100 of 10,000"][-1] == "×2 fires/s"
    assert rows["10,000 of 10,000"][-1] == "×20 fires/s"
    assert (
        rows["10,000 of 10,000"][0].startswith("capped at")
        and "800/10,000 sent" in rows["10,000 of 10,000"][0]
    )
    assert rows["10,000 of 10,000, beatx CeleryDispatcher, send_task path"][-1] == "×3 fires/s"
    assert len(rows) == 3  # the default path is not printed twice


def test_start_up_cells_show_the_spread_of_repeated_runs() -> None:
    runs = [{"startup_s": 0.020, "idle_tick_s": 1e-3, "rss_mb": 40.0} for _ in range(2)]
    runs.append({"startup_s": 0.050, "idle_tick_s": 1e-3, "rss_mb": 40.0})
    results = {"RedBeat": {"1000": aggregate(runs)}, "beatx": {"1000": aggregate(runs)}}
    table = report.scale_table(results)
    assert "20.0 ms (20.0 ms–50.0 ms, 3 runs)" in table
    assert "Celery app built before" in table


def test_the_rabbitmq_table_shows_the_brokers_confirmed_ceiling_and_the_cpu() -> None:
    confirmed = [{"msg_per_s": rate, "cpu_s": 0.17} for rate in (18_000.0, 20_000.0, 19_000.0)]
    beatx = [_burst(11_000.0, sent=10_000, n_due=10_000, queued=10_000, cpu_s=0.61) for _ in range(3)]
    table = report.amqp_table(
        {"n_due": 10_000, "raw": [{"msg_per_s": 30_000.0}], "confirmed": confirmed, "beatx": beatx}
    )
    row = next(line for line in table.splitlines() if "confirmed ceiling" in line)
    assert "19,000/s" in row and "18,000/s – 20,000/s" in row and "CPU 170.0 ms" in row
    beatx_row = next(line for line in table.splitlines() if "AMQP path" in line)
    assert "beat CPU 610.0 ms" in beatx_row
    # A run without the confirmed children (older results) has no such row.
    older = report.amqp_table({"n_due": 10_000, "raw": [{"msg_per_s": 30_000.0}], "beatx": beatx})
    assert "confirmed ceiling" not in older
