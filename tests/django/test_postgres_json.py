"""The JSON loader of the PostgreSQL claim (``django_beatx.postgres._json_loads``): what
``json.loads`` gives, and a fresh object for each empty value."""

from __future__ import annotations

import json

from django_beatx.postgres import _json_loads


def test_the_claims_json_loader_reads_what_json_reads_and_never_shares_an_empty_value() -> None:
    for text in ("{}", "[]", '{"a": [1, {"b": null}]}', '"é"', "null", "3.5", "[{}]"):
        assert _json_loads(text.encode()) == json.loads(text)
        assert _json_loads(text) == json.loads(text)
    first, second = _json_loads(b"{}"), _json_loads(b"{}")
    first["mutated"] = True
    assert second == {} and _json_loads(b"[]") is not _json_loads(b"[]")
