"""The exceptions beatx raises.

Every error derives from :class:`BeatxError`, so ``except beatx.BeatxError`` catches them all::

    BeatxError
    ├── ConfigurationError            (also ValueError)  bad settings, YAML, unimportable func
    │   └── MissingExtraError                            a setting needs an extra that is not installed
    ├── InvalidTriggerError           (also ValueError)  bad cron field, zero interval, bad date
    ├── InvalidJobError               (also ValueError)  bad job fields (max_instances < 1, ...)
    ├── ConflictingIdError            (also KeyError)    a job with this id already exists
    ├── JobLookupError                (also LookupError) no job with this id
    ├── JobClaimedError                                  a beat holds the job run_job_now would fire
    ├── RevisionConflictError                            a job changed since it was read
    ├── SerializationError            (also ValueError)  stored state beatx cannot read
    ├── InvalidCalendarError          (also ValueError)  bad exclusion calendar, or one that excludes every fire
    ├── CalendarLookupError           (also LookupError) no exclusion calendar with this name
    ├── CalendarInUseError                               a calendar jobs name cannot be removed
    ├── StoreError                                       the store is unreachable or failed
    │   └── LeaseLostError                               this process no longer leads
    └── DispatchError                                    a fire could not be sent
        ├── TransientDispatchError                       broker down or slow: retried
        └── PermanentDispatchError                       the fire can never be sent: job FAILED
"""

from __future__ import annotations

__all__ = [
    "BeatxError",
    "CalendarInUseError",
    "CalendarLookupError",
    "ConfigurationError",
    "ConflictingIdError",
    "DispatchError",
    "InvalidCalendarError",
    "InvalidJobError",
    "InvalidTriggerError",
    "JobClaimedError",
    "JobLookupError",
    "LeaseLostError",
    "MissingExtraError",
    "PermanentDispatchError",
    "RevisionConflictError",
    "SerializationError",
    "StoreError",
    "TransientDispatchError",
]


class BeatxError(Exception):
    """Root of every exception raised by beatx."""


class ConfigurationError(BeatxError, ValueError):
    """A setting, a configuration file or a job reference is wrong."""


class MissingExtraError(ConfigurationError):
    """A setting asks for a feature whose optional dependency is not installed (the message
    names the setting and the ``pip install 'beatx[...]'`` that brings it)."""


class InvalidTriggerError(BeatxError, ValueError):
    """A trigger cannot be built from the arguments given."""


class InvalidJobError(BeatxError, ValueError):
    """A job's fields are invalid."""


class ConflictingIdError(BeatxError, KeyError):
    """A job with the same id already exists and ``replace_existing`` was not set."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"A job with the id {job_id!r} already exists")
        self.job_id = job_id

    def __str__(self) -> str:
        # KeyError.__str__ would quote the whole message.
        return str(self.args[0])


class JobLookupError(BeatxError, LookupError):
    """No job with the given id exists."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with the id {job_id!r} was found")
        self.job_id = job_id


class JobClaimedError(BeatxError):
    """A beat holds a claim on the job (it is planning or holding back its fires), so a fire
    sent outside the schedule (``run_job_now``) could not take the job within ``waited``
    seconds. Nothing was sent; try again."""

    def __init__(self, job_id: str, waited: float) -> None:
        super().__init__(
            f"job {job_id!r} is held by a beat (claimed while it plans or holds back its fires) and "
            f"was not released within {waited:g} s; nothing was sent, try again"
        )
        self.job_id = job_id
        self.waited = waited


class InvalidCalendarError(BeatxError, ValueError):
    """An exclusion calendar cannot be built from the values given, or a job's calendars
    exclude every fire of its trigger within the search horizon."""


class CalendarLookupError(BeatxError, LookupError):
    """No exclusion calendar with the given name exists."""

    def __init__(self, name: str, *, job_id: str | None = None) -> None:
        where = f"job {job_id!r} excludes calendar {name!r}, but there is" if job_id else "there is"
        super().__init__(f"{where} no exclusion calendar named {name!r}")
        self.name = name
        self.job_id = job_id

    def __str__(self) -> str:
        return str(self.args[0])


class CalendarInUseError(BeatxError):
    """An exclusion calendar cannot be removed while jobs name it."""

    def __init__(self, name: str, job_ids: list[str]) -> None:
        shown = ", ".join(repr(job_id) for job_id in job_ids[:10]) + (" ..." if len(job_ids) > 10 else "")
        super().__init__(
            f"exclusion calendar {name!r} is used by {len(job_ids)} job(s) ({shown}); "
            "remove it from their exclude lists first"
        )
        self.name = name
        self.job_ids = job_ids


class SerializationError(BeatxError, ValueError):
    """Stored state cannot be read (unknown format version or a corrupt record)."""


class StoreError(BeatxError):
    """The job store is unreachable or an operation on it failed."""


class LeaseLostError(StoreError):
    """This process tried to act as leader but another process holds the lease."""


class RevisionConflictError(BeatxError):
    """A job was changed by someone else since it was read (``expected_revision`` differs)."""

    def __init__(self, job_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"job {job_id!r} is at revision {actual}, not {expected}: it changed since it was read"
        )
        self.job_id = job_id
        self.expected = expected
        self.actual = actual


class DispatchError(BeatxError):
    """A fire could not be handed to whatever runs it."""


class TransientDispatchError(DispatchError):
    """The broker (or the loop) is unavailable or too slow now; the fire is tried again later,
    under the misfire rules."""


class PermanentDispatchError(DispatchError):
    """The fire can never be sent as it is (its arguments or options cannot be encoded, an
    unknown option): the job becomes FAILED with the error and is not retried until edited."""
