"""``beatx jobs history ID``: the audit log of the changes made with the command (and any other
way), against a real Redis store."""

from __future__ import annotations

import getpass
import json

import pytest

from tests.cli.test_cli import Beatx, beatx

__all__ = ["beatx"]


@pytest.mark.redis
def test_jobs_history_shows_who_changed_a_job_through_the_cli(beatx: Beatx) -> None:
    assert beatx("jobs", "add", "nightly", "--func", "app.tasks.nightly", "--every", "60").returncode == 0
    assert beatx("jobs", "pause", "nightly").returncode == 0
    assert beatx("jobs", "remove", "nightly").returncode == 0

    as_json = beatx("jobs", "history", "nightly", "--json")
    assert as_json.returncode == 0, as_json.stderr
    changes = json.loads(as_json.stdout)
    assert [(c["action"], c["source"], c["actor"]) for c in changes] == [
        ("removed", "cli", getpass.getuser()),
        ("paused", "cli", getpass.getuser()),
        ("added", "cli", getpass.getuser()),
    ]
    assert changes[1]["changes"]["status"] == ["active", "paused"]

    table = beatx("jobs", "history", "nightly")
    assert table.returncode == 0, table.stderr
    assert 'status: "active" -> "paused"' in table.stdout
    assert beatx("jobs", "history", "never-existed").stdout.startswith("No recorded changes")
