"""The ``beatx`` command: inspect and change jobs in a store, read cron expressions, run a
scheduler as a service.

It is thin on purpose: it parses arguments, builds a :class:`~beatx.JobManager` (or a
:class:`~beatx.Scheduler` for ``beatx run``), calls the library and renders the answer with
rich (or JSON with ``--json``). Exit codes a script can rely on:

- 0: done;
- 1: no such job, or the operation was refused (pausing a finished job, an id already taken);
- 2: bad input (usage errors, a bad cron expression, bad JSON, a bad date or interval);
- 3: the store is unreachable, or the configuration is wrong.

Needs ``pip install 'beatx[cli]'``.

One file per job: :mod:`~beatx.cli.group` (the global options), :mod:`~beatx.cli.target` (which
store), one module per command (:mod:`~beatx.cli.job_commands`, :mod:`~beatx.cli.cron_command`,
:mod:`~beatx.cli.status_command`, :mod:`~beatx.cli.run_command`, :mod:`~beatx.cli.runs_command`, :mod:`~beatx.cli.history_command`,
:mod:`~beatx.cli.import_command`), :mod:`~beatx.cli.service` (the
long-running ``beatx run`` service), :mod:`~beatx.cli.render`, :mod:`~beatx.cli.params`,
:mod:`~beatx.cli.exit_codes` and :mod:`~beatx.cli.entry` (``main``).
"""

from __future__ import annotations

# The command modules register their commands on the groups when imported.
from beatx.cli import (
    calendar_commands,
    cron_command,
    history_command,
    import_command,
    job_commands,
    run_command,
    runs_command,
    shards_command,
    status_command,
)
from beatx.cli.entry import main
from beatx.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from beatx.cli.group import cli

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNAVAILABLE", "cli", "main"]

del (
    calendar_commands,
    cron_command,
    history_command,
    import_command,
    job_commands,
    run_command,
    runs_command,
    shards_command,
    status_command,
)
