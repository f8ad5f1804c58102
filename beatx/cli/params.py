"""The ``beatx`` command's parameter types: a timezone name, a JSON value."""

from __future__ import annotations

import json
from typing import Any

import click

from beatx.errors import InvalidTriggerError
from beatx.triggers.base import get_timezone


class TimezoneType(click.ParamType[str]):
    name = "ZONE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            get_timezone(str(value))
        except (InvalidTriggerError, ValueError) as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class JsonType(click.ParamType[Any]):
    """A JSON value of one type (``list`` for --args, ``dict`` for --kwargs)."""

    def __init__(self, kind: type[list[Any] | dict[str, Any]]) -> None:
        self.kind = kind
        self.name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON ({exc.msg} at column {exc.colno}): {value!r}", param, ctx)
        if not isinstance(parsed, self.kind):
            expected = (
                "a JSON array such as '[1, \"a\"]'"
                if self.kind is list
                else "a JSON object such as '{\"k\": 1}'"
            )
            self.fail(f"expected {expected}, got {value!r}", param, ctx)
        return parsed


TIMEZONE = TimezoneType()
