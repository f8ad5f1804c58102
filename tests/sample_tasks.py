"""Functions that tests schedule by reference."""

from __future__ import annotations

import asyncio
from typing import Any

calls: list[tuple[Any, ...]] = []


def record(*args: Any, **kwargs: Any) -> None:
    calls.append((args, kwargs))


async def record_async(*args: Any, **kwargs: Any) -> None:
    await asyncio.sleep(0)
    calls.append((args, kwargs))


def explode() -> None:
    raise RuntimeError("kaboom")
