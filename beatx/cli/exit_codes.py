"""The ``beatx`` command's exit codes, and the errors that map to them."""

from __future__ import annotations

from collections.abc import Sequence

from beatx.errors import (
    BeatxError,
    CalendarInUseError,
    CalendarLookupError,
    ConfigurationError,
    ConflictingIdError,
    InvalidCalendarError,
    InvalidJobError,
    InvalidTriggerError,
    JobLookupError,
    SerializationError,
    StoreError,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNAVAILABLE", "CommandError"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  1  no such job, or the operation was refused
  2  bad input (usage, cron expression, JSON, date, interval)
  3  store unreachable, or a configuration error"""


class CommandError(Exception):
    """An error :func:`main` shows as one ``error: ...`` line on stderr, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_EXIT_BY_ERROR: Sequence[tuple[type[BaseException], int]] = (
    (JobLookupError, EXIT_REFUSED),
    (CalendarLookupError, EXIT_REFUSED),
    (CalendarInUseError, EXIT_REFUSED),
    (InvalidCalendarError, EXIT_BAD_INPUT),
    (ConflictingIdError, EXIT_REFUSED),
    (InvalidTriggerError, EXIT_BAD_INPUT),
    (InvalidJobError, EXIT_BAD_INPUT),
    (StoreError, EXIT_UNAVAILABLE),
    (SerializationError, EXIT_UNAVAILABLE),
    (ConfigurationError, EXIT_UNAVAILABLE),
    (BeatxError, EXIT_UNAVAILABLE),
)
