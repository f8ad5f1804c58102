from __future__ import annotations

import inspect

import beatx
import beatx.errors


def test_all_is_sorted_and_complete() -> None:
    assert beatx.__all__ == sorted(beatx.__all__)
    public = {
        name for name in dir(beatx) if not name.startswith("_") and not inspect.ismodule(getattr(beatx, name))
    }
    assert public - {"annotations", "TYPE_CHECKING", "Any", "logging"} == set(beatx.__all__)


def test_every_error_derives_from_beatx_error() -> None:
    for name in beatx.errors.__all__:
        assert issubclass(getattr(beatx.errors, name), beatx.BeatxError)
    assert issubclass(beatx.InvalidTriggerError, ValueError)
    assert issubclass(beatx.JobLookupError, LookupError)
    assert issubclass(beatx.ConflictingIdError, KeyError)


def test_job_status_values_are_the_documented_strings() -> None:
    assert [s.value for s in beatx.JobStatus] == ["active", "paused", "completed", "failed", "cancelled"]


def test_importing_beatx_pulls_in_no_optional_dependency() -> None:
    import subprocess
    import sys

    code = "import sys, beatx; print(sorted(m for m in ('celery', 'kombu', 'redis', 'django', 'yaml', 'dateutil', 'ephem') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
