"""The schedule policies of a Celery ``beat_schedule`` entry, given in its ``options``.

Celery's own beat takes no other entry key, so a job's policies ride in the entry's message
options under a ``beatx_`` name, and are taken out before the options become the job's::

    app.conf.beat_schedule = {
        "sync": {
            "task": "shop.tasks.sync",
            "schedule": 300,
            "options": {"queue": "sync", "beatx_catchup": "none", "beatx_overlap": "buffer_one"},
        },
    }
"""

from __future__ import annotations

from typing import Any

__all__ = ["POLICY_OPTIONS", "policy_options"]

#: Message option -> job field, for the policies a ``beat_schedule`` entry may set.
POLICY_OPTIONS = {
    "beatx_catchup": "catchup",
    "beatx_catchup_window": "catchup_window",
    "beatx_catchup_limit": "catchup_limit",
    "beatx_jitter": "jitter",
    "beatx_max_runs": "max_runs",
    "beatx_overlap": "overlap",
    "beatx_pause_after_failures": "pause_after_failures",
    "beatx_expect_every": "expect_every",
    "beatx_max_lateness": "max_lateness",
    "beatx_max_runtime": "max_runtime",
    "beatx_alert_after_failures": "alert_after_failures",
}


def policy_options(options: dict[str, Any]) -> dict[str, Any]:
    """Take the :data:`POLICY_OPTIONS` out of ``options`` (in place) and return them as job
    fields; the job checks their values (``InvalidJobError`` naming the field)."""
    return {field: options.pop(option) for option, field in POLICY_OPTIONS.items() if option in options}
