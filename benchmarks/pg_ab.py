"""Two checkouts of beatx on PostgreSQL, one after the other in one run: the idle tick and the
burst of ``--only pg`` (:func:`benchmarks.pg.scale_beatx`, :func:`benchmarks.pg.burst_beatx`)
at 10,000 stored jobs, so a change is told from the machine it ran on.

    python -m benchmarks.pg_ab OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]

``OLD_CHECKOUT`` is e.g. a ``git worktree`` of the previous commit. Each step runs in a fresh
process of this interpreter with the checkout as its working directory (so it imports that
checkout's beatx), on a benchmark database of its own that is dropped at the end. The
checkouts alternate, ``ROUNDS`` times (default 2), three bursts each per round.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

JOBS = 10_000


def _step(checkout: str, expr: str) -> Any:
    code = f"import json; from benchmarks import pg; print(json.dumps({expr}))"
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=checkout, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{checkout}: {expr} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(checkout: str) -> dict[str, list[float]]:
    """Three idle-tick medians (ms) and three bursts (fires/s) of ``checkout``."""
    db = _step(checkout, "pg.create_database()")
    figures: dict[str, list[float]] = {"idle_tick_ms": [], "burst_fires_per_s": []}
    try:
        _step(checkout, f"pg.migrate({db!r})")
        _step(checkout, f"pg.load_beatx({db!r}, {JOBS})")
        for _ in range(3):
            scale = _step(checkout, f"pg.scale_beatx({db!r}, {JOBS})")
            figures["idle_tick_ms"].append(scale["idle_tick_s"] * 1000)
            burst = _step(checkout, f"pg.burst_beatx({db!r}, {JOBS}, {JOBS})")
            figures["burst_fires_per_s"].append(burst["fires_per_s"])
            _step(checkout, f"pg.load_beatx({db!r}, {JOBS})")
    finally:
        _step(checkout, f"pg.drop_database({db!r})")
    return figures


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit(__doc__)
    rounds = int(argv[2]) if len(argv) == 3 else 2
    for _ in range(rounds):
        for checkout in argv[:2]:
            figures = measure(checkout)
            print(
                checkout,
                "idle tick ms:",
                " / ".join(f"{v:.2f}" for v in figures["idle_tick_ms"]),
                "| burst fires/s:",
                " / ".join(f"{v:,.0f}" for v in figures["burst_fires_per_s"]),
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
