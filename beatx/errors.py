"""The exceptions beatx raises.

Every error derives from :class:`BeatxError`, so ``except beatx.BeatxError`` catches them all::

    BeatxError
    ├── ConfigurationError            (also ValueError)  bad settings, YAML, unimportable func
    ├── InvalidTriggerError           (also ValueError)  bad cron field, zero interval, bad date
    ├── InvalidJobError               (also ValueError)  bad job fields (max_instances < 1, ...)
    ├── ConflictingIdError            (also KeyError)    a job with this id already exists
    ├── JobLookupError                (also LookupError) no job with this id
    ├── SerializationError            (also ValueError)  stored state beatx cannot read
    └── StoreError                                       the store is unreachable or failed
        └── LeaseLostError                               this process no longer leads
"""

from __future__ import annotations

__all__ = [
    "BeatxError",
    "ConfigurationError",
    "ConflictingIdError",
    "InvalidJobError",
    "InvalidTriggerError",
    "JobLookupError",
    "LeaseLostError",
    "SerializationError",
    "StoreError",
]


class BeatxError(Exception):
    """Root of every exception raised by beatx."""


class ConfigurationError(BeatxError, ValueError):
    """A setting, a configuration file or a job reference is wrong."""


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


class SerializationError(BeatxError, ValueError):
    """Stored state cannot be read (unknown format version or a corrupt record)."""


class StoreError(BeatxError):
    """The job store is unreachable or an operation on it failed."""


class LeaseLostError(StoreError):
    """This process tried to act as leader but another process holds the lease."""
