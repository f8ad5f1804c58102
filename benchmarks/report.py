"""Turns a results dict into the tables (raw figures, ratios against the best peer) and the
list of targets met or missed."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from benchmarks.repeats import with_spread
from benchmarks.suite import PEERS, PG_SCHEDULERS, SCHEDULERS, SEND_TASK_PATH

Row = list[str]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def fmt_s(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    if v < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if v < 1:
        return f"{v * 1e3:.1f} ms"
    return f"{v:.2f} s"


def fmt_ms(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.1f} ms"


def fmt_mb(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.0f} MiB"


def fmt_rate(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:,.0f}/s"


def ratio(beatx: Any, peers: list[Any], higher_is_better: bool = False) -> str:
    """beatx against the best peer: ``×0.05`` means beatx needs 5% of the best peer's cost."""
    b = _num(beatx)
    values = [v for v in (_num(p) for p in peers) if v is not None and v > 0]
    if b is None or not values:
        return "–"
    best = max(values) if higher_is_better else min(values)
    r = b / best
    return f"×{r:.3g}"


def table(header: Row, rows: list[Row]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def _burst_label(dispatcher: str, figures: dict[str, Any]) -> str:
    """How a beatx burst row sent its fires."""
    if dispatcher == "send_task":
        return "CeleryDispatcher, send_task path"
    if dispatcher == "publish":
        return "CeleryDispatcher, publish then write back (beatx_atomic_fire=False)"
    if dispatcher.startswith("info"):
        lines = figures.get("log_lines")
        logged = f", {int(lines):,} log lines" if _num(lines) is not None else ""
        cpu = (
            f", beat CPU {with_spread(figures, 'cpu_s', fmt_s)}"
            if _num(figures.get("cpu_s")) is not None
            else ""
        )
        each = " with beatx_log_each_fire" if dispatcher == "info_each" else ""
        return f"atomic fire, logging at INFO (celery beat -l info){each}{logged}{cpu}"
    return "CeleryDispatcher, atomic fire (default)" if figures.get("atomic_fire") else "CeleryDispatcher"


def _get(d: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def scale_table(res: dict[str, Any]) -> str:
    sizes = sorted({int(n) for s in SCHEDULERS for n in (res.get(s) or {})})
    header = ["metric", "jobs", *SCHEDULERS, "beatx ÷ best peer"]
    rows: list[Row] = []
    metrics: list[tuple[str, str, Callable[[Any], str]]] = [
        ("start-up (construct + first tick; the Celery app built before)", "startup_s", fmt_s),
        ("idle tick", "idle_tick_s", fmt_s),
        ("resident memory (VmRSS)", "rss_mb", fmt_mb),
    ]
    for label, key, fmt in metrics:
        for n in sizes:
            values = {s: _get(res, s, str(n), key) for s in SCHEDULERS}
            rows.append(
                [
                    label,
                    f"{n:,}",
                    *(with_spread(_get(res, s, str(n)), key, fmt) for s in SCHEDULERS),
                    ratio(values["beatx"], [values[p] for p in PEERS]),
                ]
            )
    reload_rows = [_get(res, "django-celery-beat", str(n), "edit_reload_tick_s") for n in sizes]
    for n, value in zip(sizes, reload_rows, strict=True):
        if value is not None:
            rows.append(["tick after one edit (full reload)", f"{n:,}", "–", fmt_s(value), "–", "–", "–"])
    return table(header, rows)


def _burst_cell(v: dict[str, Any], due: int) -> str:
    """A burst's time and rate (their medians and spread over repeats), or what it sent by its cap."""
    if "error" in v:
        return "error: " + str(v["error"])[:60]
    rate = with_spread(v, "fires_per_s", fmt_rate)
    if v.get("complete"):
        return f"{rate} in {fmt_s(v.get('seconds'))}"
    sent = v.get("fired") if v.get("fired") is not None else v.get("queued")
    return f"capped at {fmt_s(v.get('seconds'))}: {int(sent or 0):,}/{due:,} sent, {rate}"


def burst_table(res: dict[str, Any]) -> str:
    """Every scheduler at each size (the ratio compares beatx with the peers at that size
    only), then beatx's other paths at its sizes against the peers at the same size."""
    header = ["burst (due in one second)", *SCHEDULERS, "beatx ÷ best peer"]
    rows: list[Row] = []
    sizes = res.get("peers") or {}
    for key, by in sizes.items():
        due, total = (int(x) for x in key.split("/"))
        cells = [_burst_cell(by[s], due) if s in by else "–" for s in SCHEDULERS]
        beatx = _get(by, "beatx", "fires_per_s")
        peer_rates = [_get(by, p, "fires_per_s") for p in PEERS]
        rows.append(
            [f"{due:,} of {total:,}", *cells, ratio(beatx, peer_rates, higher_is_better=True) + " fires/s"]
        )
    for n, by_dispatcher in (res.get("beatx") or {}).items():
        peers = sizes.get(f"{n}/{n}") or {}
        peer_rates = [_get(peers, p, "fires_per_s") for p in PEERS]
        for dispatcher, v in by_dispatcher.items():
            if dispatcher == "celery" and peers.get("beatx") == v:
                continue  # in the row of its size above
            cell = _burst_cell(v, int(n))
            rows.append(
                [
                    f"{int(n):,} of {int(n):,}, beatx {_burst_label(dispatcher, v)}",
                    "",
                    "",
                    "",
                    cell,
                    ratio(v.get("fires_per_s"), peer_rates, higher_is_better=True) + " fires/s",
                ]
            )
    return table(header, rows)


def lateness_table(res: dict[str, Any]) -> str:
    header = ["fire lateness (publish − due)", "scheduler", "p50", "p99", "max", "fires / expected"]
    rows: list[Row] = []
    for key, label in (
        ("same_phase", "200 jobs, same phase, every 1 s"),
        ("random_phase", "10,000 jobs, random phases, every 10 s"),
    ):
        block = res.get(key) or {}
        for scheduler in (*SCHEDULERS, SEND_TASK_PATH):
            v = block.get(scheduler)
            if v is None:
                continue
            if "error" in v:
                rows.append([label, scheduler, "error", "", "", str(v["error"])[:60]])
                continue
            if not v.get("fires"):
                rows.append([label, scheduler, "–", "–", "–", f"0 / {v.get('expected')} (see the JSON)"])
                continue
            rows.append(
                [
                    label,
                    f"{scheduler} (atomic fire)" if v.get("atomic_fire") else scheduler,
                    with_spread(v, "p50_ms", fmt_ms),
                    with_spread(v, "p99_ms", fmt_ms),
                    with_spread(v, "max_ms", fmt_ms),
                    f"{v.get('fires')} / {v.get('expected')}",
                ]
            )
        peers = [_get(block, p, "p99_ms") for p in PEERS]
        for name in ("beatx", SEND_TASK_PATH):
            beatx = _get(block, name, "p99_ms")
            if beatx is not None and any(_num(p) for p in peers):
                rows.append([label, f"{name} ÷ best peer (p99)", "", ratio(beatx, peers), "", ""])
    return table(header, rows)


def edit_table(res: dict[str, Any]) -> str:
    header = [
        "one job edited at runtime (due 200 ms later)",
        "seen",
        "publish − due",
        "edit → publish",
        "note",
    ]
    rows: list[Row] = [["celery beat (default)", "no", "–", "–", "beat_schedule is static: needs a restart"]]
    for name, v in res.items():
        if "error" in v:
            rows.append([name, "error", "", "", str(v["error"])[:60]])
            continue
        note = ""
        if "max_interval_s" in v:
            note = f"sleeps up to max_interval = {v['max_interval_s']} s"
        if "claimed_after_edit" in v:
            note = f"tick after the edit claimed {v['claimed_after_edit']} job(s) (no reload)"
        if "poll_interval_s" in v:
            note = f"store polls its change counter every {v['poll_interval_s']} s"
        seen = "yes" if v.get("seen") else f"no (> {v.get('timeout_s')} s)"
        rows.append([name, seen, fmt_ms(v.get("fire_lateness_ms")), fmt_ms(v.get("edit_to_fire_ms")), note])
    return table(header, rows)


def cron_table(res: dict[str, Any]) -> str:
    header = [
        "cron next-fire (per call)",
        "UTC median",
        "UTC worst expr",
        "Europe/Paris median",
        "Europe/Paris worst expr",
    ]
    rows: list[Row] = []
    libraries = ["beatx", "croniter", "cronsim", "celery crontab"]
    for lib in libraries:
        u, d = res.get(f"{lib}/utc") or {}, res.get(f"{lib}/dst") or {}
        rows.append(
            [
                lib,
                f"{u.get('median_us', float('nan')):.1f} µs",
                f"{u.get('max_us', float('nan')):.1f} µs",
                f"{d.get('median_us', float('nan')):.1f} µs",
                f"{d.get('max_us', float('nan')):.1f} µs",
            ]
        )
    for zone, label in (("utc", "UTC"), ("dst", "Europe/Paris")):
        beatx = _get(res, f"beatx/{zone}", "median_us")
        peers = [_get(res, f"{lib}/{zone}", "median_us") for lib in libraries[1:]]
        rows.append([f"beatx ÷ best peer ({label})", ratio(beatx, peers), "", "", ""])
    return table(header, rows)


def recurrence_table(res: dict[str, Any]) -> str:
    header = ["next-fire in Europe/Paris (per call)", "median", "worst expr", "expressions", "refused"]
    rows: list[Row] = []
    keys = ("extended cron/beatx", "extended cron/croniter", "rrule/beatx", "rrule/dateutil")
    calendars = ("calendars skip/beatx", "calendars next_business_day/beatx")
    for key in keys + tuple(k for k in calendars if k in res):
        v = res.get(key) or {}
        rows.append(
            [
                key,
                f"{v.get('median_us') or float('nan'):.1f} µs",
                f"{v.get('max_us') or float('nan'):.1f} µs",
                str(v.get("expressions", "")),
                str(v.get("errors", "")),
            ]
        )
    return table(header, rows)


def publish_table(res: dict[str, Any]) -> str:
    header = ["publishing to the Redis broker", "msg/s", "messages"]
    rows = [
        [name, fmt_rate(v.get("msg_per_s")), str(v.get("msgs"))]
        for name, v in (res.get("throughput") or {}).items()
        if isinstance(v, dict)
    ]
    w = res.get("worker") or {}
    if w:
        status = "OK" if w.get("ok") else "FAILED"
        rows.append(
            [
                f"unmodified `celery worker` consumed beatx messages: {status}",
                f"{w.get('consumed')}/{w.get('sample')}",
                f"errors: {w.get('worker_errors') or 0}",
            ]
        )
    return table(header, rows)


def _pg_burst_cell(v: Any) -> str:
    if not isinstance(v, dict):
        return "–"
    if "error" in v:
        return "error: " + str(v["error"])[:50]
    if v.get("complete"):
        return f"{fmt_s(v.get('seconds'))} ({fmt_rate(v.get('fires_per_s'))})"
    sent, due = int(v.get("fired") or 0), int(v.get("n_due") or 0)
    return f"{sent:,} of {due:,} sent in the {fmt_s(v.get('seconds'))} cap ({fmt_rate(v.get('fires_per_s'))})"


def pg_table(res: dict[str, Any]) -> str:
    if "error" in res and not any(res.get(s) for s in PG_SCHEDULERS):
        return f"not run: {res['error']}"
    sizes = sorted({int(n) for s in PG_SCHEDULERS for n in (res.get(s) or {})})
    header = [
        "PostgreSQL " + str(res.get("server", "")),
        "jobs",
        *PG_SCHEDULERS,
        "beatx ÷ django-celery-beat",
    ]
    rows: list[Row] = []
    metrics: list[tuple[str, str, Callable[[Any], str], bool]] = [
        ("start-up (construct + first tick)", "startup_s", fmt_s, False),
        ("idle tick (median)", "idle_tick_s", fmt_s, False),
        ("tick after one edit (django-celery-beat: full reload)", "edit_tick_s", fmt_s, False),
        ("resident memory (VmRSS)", "rss_mb", fmt_mb, False),
    ]
    for label, key, fmt, higher in metrics:
        for n in sizes:
            values = {s: _get(res, s, str(n), key) for s in PG_SCHEDULERS}
            if all(v is None for v in values.values()):
                continue
            rows.append(
                [
                    label,
                    f"{n:,}",
                    *(fmt(values[s]) for s in PG_SCHEDULERS),
                    ratio(values["beatx"], [values["django-celery-beat"]], higher_is_better=higher),
                ]
            )
    for n in sizes:
        cells = {s: _get(res, s, str(n), "burst") for s in PG_SCHEDULERS}
        due = next((c.get("n_due") for c in cells.values() if isinstance(c, dict) and c.get("n_due")), None)
        if due is None:
            continue
        rates = {s: _get(cells, s, "fires_per_s") for s in PG_SCHEDULERS}
        versus = ratio(rates["beatx"], [rates["django-celery-beat"]], higher_is_better=True)
        rows.append(
            [
                f"burst: {int(due):,} due at once, until the last message is in the broker",
                f"{n:,}",
                *(_pg_burst_cell(cells[s]) for s in PG_SCHEDULERS),
                versus if versus == "–" else versus + " fires/s",
            ]
        )
    for n in sizes:
        loads = {s: _get(res, s, str(n), "load", "load_s") for s in PG_SCHEDULERS}
        if any(v is not None for v in loads.values()):
            rows.append(
                ["(setup) rows loaded with COPY in", f"{n:,}", *(fmt_s(loads[s]) for s in PG_SCHEDULERS), ""]
            )
    return table(header, rows)


def _pg_series(res: dict[str, Any], scheduler: str, key: str, fmt: Callable[[Any], str]) -> str:
    block = res.get(scheduler) or {}
    parts = [
        f"{int(n):,}: {fmt(_get(block, n, key))}"
        for n in sorted(block, key=int)
        if _get(block, n, key) is not None
    ]
    return ", ".join(parts) or "–"


def pg_targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The PostgreSQL targets of issue 15, each with django-celery-beat's figure of the run."""
    out: list[tuple[str, str, bool | None]] = []
    bx = {int(n): v for n, v in (res.get("beatx") or {}).items() if isinstance(v, dict) and "error" not in v}
    if not bx:
        return out
    sizes = sorted(bx)
    small, large = bx[sizes[0]], bx[sizes[-1]]
    peer = "; django-celery-beat "

    ticks = [bx[n].get("idle_tick_s") for n in sizes]
    if all(_num(t) is not None for t in ticks):
        growth = ticks[-1] / ticks[0] if len(sizes) > 1 and ticks[0] else None
        flat = "" if growth is None else f" (×{growth:.2f} {sizes[0]:,} → {sizes[-1]:,})"
        out.append(
            (
                "PostgreSQL: idle tick <= 2 ms at every size, 10,000 → 1,000,000 jobs",
                _pg_series(res, "beatx", "idle_tick_s", fmt_s)
                + flat
                + peer
                + _pg_series(res, "django-celery-beat", "idle_tick_s", fmt_s),
                max(ticks) <= 2e-3,
            )
        )
    top = sizes[-1]
    out.append(
        (
            f"PostgreSQL: start-up with 1,000,000 jobs <= 1 s (largest here: {top:,})",
            f"{fmt_s(bx[top].get('startup_s'))}"
            + peer
            + _pg_series(res, "django-celery-beat", "startup_s", fmt_s),
            (_num(bx[top].get("startup_s")) or float("inf")) <= 1.0 if top >= 1_000_000 else None,
        )
    )
    for n in sizes:
        burst = bx[n].get("burst") or {}
        if "error" in burst or not burst:
            out.append((f"PostgreSQL: burst, {n:,} jobs stored: >= 5,000 fires/s", "error", False))
            continue
        theirs = _get(res, "django-celery-beat", str(n), "burst")
        their = "not run at this size" if not isinstance(theirs, dict) else _pg_burst_cell(theirs)
        rate = _num(burst.get("fires_per_s")) or 0.0
        out.append(
            (
                f"PostgreSQL: burst of {int(burst.get('n_due', 0)):,} due at once of {n:,} stored: >= 5,000 fires/s",
                _pg_burst_cell(burst) + peer + their,
                rate >= 5_000 and bool(burst.get("complete")),
            )
        )
    rss_small, rss_large = _num(small.get("rss_mb")), _num(large.get("rss_mb"))
    if rss_small and rss_large is not None:
        out.append(
            (
                f"PostgreSQL: beat memory flat, VmRSS at {sizes[-1]:,} within +20% of {sizes[0]:,}",
                _pg_series(res, "beatx", "rss_mb", fmt_mb)
                + (f" ({(rss_large / rss_small - 1) * 100:+.1f}%)" if len(sizes) > 1 else "")
                + peer
                + _pg_series(res, "django-celery-beat", "rss_mb", fmt_mb),
                rss_large <= rss_small * 1.2 if len(sizes) > 1 else None,
            )
        )
    return out


# -- targets ----------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of the issue that this run measured."""
    out: list[tuple[str, str, bool | None]] = []
    scale = results.get("scale") or {}
    bx = scale.get("beatx") or {}
    sizes = sorted(int(n) for n in bx if "error" not in bx[n])
    if sizes:
        ticks = [bx[str(n)]["idle_tick_s"] for n in sizes]
        out.append(
            (
                "idle tick <= 1 ms at every size",
                ", ".join(f"{n:,}: {fmt_s(t)}" for n, t in zip(sizes, ticks, strict=True)),
                max(ticks) <= 1e-3,
            )
        )
        small, large = bx[str(sizes[0])], bx[str(sizes[-1])]
        growth = large["idle_tick_s"] / small["idle_tick_s"]
        out.append((f"idle tick flat {sizes[0]:,} → {sizes[-1]:,} (≤ 2×)", f"×{growth:.2f}", growth <= 2.0))
        rss_growth = large["rss_mb"] - small["rss_mb"]
        out.append(
            (
                f"beat memory flat {sizes[0]:,} → {sizes[-1]:,} (≤ +20 MiB)",
                f"{small['rss_mb']:.0f} → {large['rss_mb']:.0f} MiB",
                rss_growth <= 20,
            )
        )
        top = max(sizes)
        met = bx[str(top)]["startup_s"] <= 1.0 if top >= 1_000_000 else None
        out.append(
            (
                f"start-up with 1,000,000 jobs <= 1 s (largest here: {top:,})",
                fmt_s(bx[str(top)]["startup_s"]),
                met,
            )
        )
    burst = _get(results, "burst", "beatx") or {}
    for n, by in burst.items():
        for dispatcher, v in by.items():
            if "error" in v:
                out.append((f"burst of {int(n):,}: >= 20,000 fires/s ({dispatcher})", "error", False))
                continue
            rate = v.get("fires_per_s") or 0
            label = (
                f"burst of {int(n):,} due at once: >= 20,000 fires/s end to end (median), {_burst_label(dispatcher, v)}"
                if dispatcher == "celery"
                else f"(info) same burst target, {int(n):,} due at once, {_burst_label(dispatcher, v)}"
            )
            runs = [r.get("fires_per_s") or 0 for r in v.get("runs") or [v]]
            met = sum(1 for r in runs if r >= 20_000)
            out.append(
                (
                    label,
                    f"{fmt_s(v.get('seconds'))}, {with_spread(v, 'fires_per_s', fmt_rate)}"
                    + (f"; met in {met} of {len(runs)} runs" if len(runs) > 1 else ""),
                    rate >= 20_000 and bool(v.get("complete")),
                )
            )
    out += pg_targets(results.get("pg") or {})
    worker = _get(results, "publish", "worker")
    if worker:
        out.append(
            (
                "messages consumed by an unmodified Celery worker",
                f"{worker.get('consumed')}/{worker.get('sample')}",
                bool(worker.get("ok")),
            )
        )
    late = results.get("lateness") or {}
    rp = _get(late, "random_phase", "beatx")
    if rp and "error" not in rp:
        out.append(
            (
                f"lateness p99 <= 5 ms, {rp['n']:,} jobs at random phases every 10 s, every fire present",
                f"p99 {rp['p99_ms']:.1f} ms, {rp['fires']}/{rp['expected']} fires",
                rp["p99_ms"] <= 5 and rp["fires"] >= rp["expected"],
            )
        )
    sp = _get(late, "same_phase", "beatx")
    if sp and "error" not in sp:
        out.append(
            (
                "lateness p99 <= 20 ms, 200 jobs in the same phase every 1 s",
                f"p99 {sp['p99_ms']:.1f} ms, {sp['fires']}/{sp['expected']} fires",
                sp["p99_ms"] <= 20 and sp["fires"] >= sp["expected"],
            )
        )
    for key, limit in (("random_phase", 5.0), ("same_phase", 20.0)):
        v = _get(late, key, SEND_TASK_PATH)
        if v and "error" not in v:
            out.append(
                (
                    f"(info) same lateness target, {key.replace('_', ' ')}, with the send_task path",
                    f"p99 {v['p99_ms']:.1f} ms, {v['fires']}/{v['expected']} fires",
                    v["p99_ms"] <= limit and v["fires"] >= v["expected"],
                )
            )
    edit = results.get("edit") or {}
    for name, limit in (("beatx (Redis)", 100.0), ("beatx (Django store)", 1000.0)):
        v = edit.get(name)
        if v and "error" not in v:
            lat = v.get("fire_lateness_ms")
            out.append(
                (
                    f"runtime edit reaches the beat, {name}: <= {limit:.0f} ms",
                    fmt_ms(lat),
                    lat is not None and lat <= limit,
                )
            )
    cron = results.get("cron") or {}
    for zone, limit, label in (("utc", 5.0, "UTC"), ("dst", 10.0, "a daylight-saving zone")):
        median = _get(cron, f"beatx/{zone}", "median_us")
        if median is not None:
            out.append(
                (f"cron next-fire median <= {limit:.0f} µs in {label}", f"{median:.1f} µs", median <= limit)
            )
    recurrence = results.get("recurrence") or {}
    for key, limit, label in (
        ("extended cron/beatx", 10.0, "extended cron"),
        ("rrule/beatx", 50.0, "RRULE"),
        ("calendars skip/beatx", 50.0, "calendars (skip)"),
        ("calendars next_business_day/beatx", 50.0, "calendars (next_business_day)"),
    ):
        median = _get(recurrence, key, "median_us")
        if median is not None:
            out.append(
                (
                    f"{label} next-fire median <= {limit:.0f} µs in Europe/Paris",
                    f"{median:.1f} µs",
                    median <= limit,
                )
            )
    return out


def _rates(runs: Any, key: str, complete: bool = False) -> list[float]:
    """The ``key`` figure of each run that has it (and, with ``complete``, sent everything)."""
    values = []
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict) and "error" not in run and (not complete or run.get("complete")):
            value = _num(run.get(key))
            if value is not None:
                values.append(value)
    return values


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _spread(values: list[float]) -> str:
    return f"{fmt_rate(min(values))} – {fmt_rate(max(values))}" if values else "–"


def _cpu(runs: Any) -> str:
    """The median CPU time (``cpu_s``) of the runs that report it."""
    return fmt_s(_median(_rates(runs, "cpu_s")))


def amqp_table(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"not measured: {res['error']}"
    raw = _rates(res.get("raw"), "msg_per_s")
    beatx = _rates(res.get("beatx"), "fires_per_s", complete=True)
    runs = [r for r in res.get("beatx") or [] if isinstance(r, dict)]
    confirmed = ", ".join(f"{r.get('sent')}/{r.get('n_due')}" for r in runs)
    rows = [
        [
            "raw py-amqp `basic_publish` loop, no confirms (ceiling)",
            fmt_rate(_median(raw)),
            _spread(raw),
            f"{len(raw)} runs",
        ],
    ]
    confirmed_ceiling = _rates(res.get("confirmed"), "msg_per_s")
    if confirmed_ceiling:
        rows.append(
            [
                "beatx's framing alone, every message confirmed, no store (broker's confirmed ceiling)",
                fmt_rate(_median(confirmed_ceiling)),
                _spread(confirmed_ceiling),
                f"{len(confirmed_ceiling)} runs; CPU {_cpu(res.get('confirmed'))}",
            ]
        )
    rows += [
        [
            "beatx, AMQP path, every fire confirmed",
            fmt_rate(_median(beatx)),
            _spread(beatx),
            f"{len(beatx)}/{len(runs)} runs complete; confirmed {confirmed}; beat CPU {_cpu(runs)}",
        ],
    ]
    for name in ("beatx, send_task path", "celery beat", "RedBeat"):
        v = res.get(name)
        if not isinstance(v, dict):
            continue
        if "error" in v:
            rows.append([name, "error: " + str(v["error"])[:60], "–", ""])
            continue
        sent, due = int(v.get("fired") or 0), int(v.get("n_due") or 0)
        note = (
            "complete"
            if v.get("complete")
            else f"{sent:,} of {due:,} sent in the {fmt_s(v.get('seconds'))} cap"
        )
        rows.append([name, fmt_rate(v.get("fires_per_s")), "1 run", note])
    n = res.get("n_due")
    return table(
        [f"RabbitMQ, {n:,} due at once" if isinstance(n, int) else "RabbitMQ", "median", "spread", ""], rows
    )


def amqp_targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    raw = _median(_rates(res.get("raw"), "msg_per_s"))
    beatx = _median(_rates(res.get("beatx"), "fires_per_s", complete=True))
    if raw is None or beatx is None:
        return []
    runs = [r for r in res.get("beatx") or [] if isinstance(r, dict) and "error" not in r]
    all_confirmed = bool(runs) and all(r.get("sent") == r.get("n_due") == r.get("queued") for r in runs)
    confirmed = "yes" if all_confirmed else "NO"
    measured = f"{fmt_rate(beatx)} = {beatx / raw:.0%} of {fmt_rate(raw)} (medians); every fire confirmed: {confirmed}"
    return [
        (
            "RabbitMQ burst, every fire confirmed, >= 60% of the raw no-confirm py-amqp ceiling",
            measured,
            beatx >= 0.6 * raw and all_confirmed,
        )
    ]


def _cluster_table(res: dict[str, Any]) -> str:
    from benchmarks.cluster import report_table

    return report_table(res)


def _memory_table(res: dict[str, Any]) -> str:
    from benchmarks.redis_memory import report_table

    return report_table(res)


def _memory_targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    from benchmarks.redis_memory import targets as memory_targets

    return memory_targets(res)


def render(results: dict[str, Any]) -> str:
    parts: list[str] = []
    sections: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
        ("scale", "Start-up, idle tick and memory", scale_table),
        ("edit", "Runtime edit", edit_table),
        ("burst", "Burst: time until the last message is in the broker", burst_table),
        ("lateness", "Fire lateness", lateness_table),
        ("cron", "Cron next-fire time", cron_table),
        ("recurrence", "Extended cron and RRULE next-fire time", recurrence_table),
        ("publish", "Publishing", publish_table),
        ("pg", "PostgreSQL: beatx's Django store and django-celery-beat, same database", pg_table),
        ("amqp", "RabbitMQ: a burst with publisher confirms beside the raw ceiling", amqp_table),
        ("cluster", "Redis Cluster: a burst shared by 1, 2 and 3 sharded beats", _cluster_table),
        ("redis-memory", "Redis memory: bytes per job beside RedBeat", _memory_table),
    ]
    for key, title, build in sections:
        if key in results:
            parts.append(f"### {title}\n\n{build(results[key])}")
    rows = [
        [t, m, "MET" if ok else ("MISSED" if ok is False else "not measured at this size")]
        for t, m, ok in [
            *targets(results),
            *amqp_targets(results.get("amqp") or {}),
            *_memory_targets(results.get("redis-memory") or {}),
        ]
    ]
    if rows:
        parts.append("### Targets (beatx)\n\n" + table(["target", "measured", "status"], rows))
    return "\n\n".join(parts)
