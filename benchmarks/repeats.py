"""Repeated measurements (``--repeat N``): one result per run, folded into one dict of medians
with each figure's spread.

A run on a shared machine is noisy; one figure says little. :func:`aggregate` keeps every
number as the median of the runs, with ``spread[key] = [min, max]`` and ``repeats = N``, so
the tables print ``median (min–max)`` and the JSON keeps every run (``runs``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["aggregate", "with_spread"]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from ``runs`` (the results of the same child, run again): every number the
    median of the runs that have it, ``spread[key] = [min, max]``; a flag (``complete``) true
    only if it was in every run; anything else as the first run had it. A run that failed
    (``error``) makes the whole result an error, with the runs kept."""
    if len(runs) == 1:
        return dict(runs[0])
    failed = [run for run in runs if "error" in run]
    if failed:
        return {"error": failed[0]["error"], "repeats": len(runs), "runs": list(runs)}
    out: dict[str, Any] = dict(runs[0])
    spread: dict[str, list[float]] = {}
    for key, first in runs[0].items():
        values = [run.get(key) for run in runs]
        if _number(first) and all(_number(v) for v in values):
            out[key] = statistics.median(values)  # type: ignore[type-var]
            spread[key] = [min(values), max(values)]  # type: ignore[type-var]
        elif isinstance(first, bool):
            out[key] = all(bool(v) for v in values)
    out["spread"] = spread
    out["repeats"] = len(runs)
    out["runs"] = list(runs)
    return out


def with_spread(result: Any, key: str, fmt: Callable[[Any], str]) -> str:
    """``fmt(median)``, followed by `` (min–max, N runs)`` when ``result`` was repeated."""
    if not isinstance(result, dict):
        return fmt(None)
    text = fmt(result.get(key))
    low_high = (result.get("spread") or {}).get(key)
    if low_high and result.get("repeats", 1) > 1:
        text += f" ({fmt(low_high[0])}–{fmt(low_high[1])}, {result['repeats']} runs)"
    return text
