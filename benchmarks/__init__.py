"""beatx's benchmark suite: ``python -m benchmarks`` (see ``benchmarks/README.md``).

beatx and the schedulers Celery users run today (celery beat's default scheduler,
django-celery-beat, RedBeat) are measured side by side, in one run, on the same Redis: start-up,
idle tick and memory by job count, a runtime edit, a burst of due jobs, fire lateness, cron
next-fire cost and broker publishing. Every measurement runs in a fresh child process.
"""

from __future__ import annotations
