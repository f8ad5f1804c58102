"""Noticing that a store lost its data (a Redis restarted empty, a database restored from an
old dump), so the beats do not lead an empty schedule in silence.

Each store carries an *epoch*: a random value written under :data:`EPOCH_META` when a beat
first opens it. Every beat remembers the epoch it saw and reads it again every few seconds
(one small read). When it is gone or changed, the data it stood for is gone: the beat writes
a new epoch, logs an error, records the loss under :data:`DATA_LOSS_META` (``beatx status``,
the health API and the admin show it) and calls its ``restore`` hook, which re-imports the
jobs that come from configuration (``beat_schedule``, the YAML file). Jobs added through the
API, the admin or the CLI cannot be restored by beatx: the error says so.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from beatx.errors import StoreError
from beatx.stores.base import JobStore

__all__ = ["DATA_LOSS_META", "EPOCH_META", "DataLoss", "StoreWatch", "read_data_loss"]

logger = logging.getLogger("beatx.beat")

#: The meta key holding the store's epoch.
EPOCH_META = "store_epoch"
#: The meta key holding the last data loss noticed (JSON of :class:`DataLoss`).
DATA_LOSS_META = "data_loss"


@dataclass(frozen=True, slots=True)
class DataLoss:
    """The last time a beat found its store emptied, and what it could put back."""

    detected_at: datetime
    detected_by: str
    restored: str

    def describe(self) -> str:
        return (
            f"the store lost its data (noticed {self.detected_at.isoformat(timespec='seconds')} by "
            f"{self.detected_by}); {self.restored}"
        )


def read_data_loss(store: JobStore) -> DataLoss | None:
    """The last data loss recorded in ``store``, or None."""
    raw = store.read_meta(DATA_LOSS_META)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return DataLoss(datetime.fromisoformat(data["detected_at"]), data["detected_by"], data["restored"])
    except (KeyError, TypeError, ValueError):
        return None


class StoreWatch:
    """Checks one store's epoch for one beat.

    :param restore: called once per loss noticed; puts back what configuration defines and
        returns a sentence saying what it restored.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        owner: str,
        restore: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.restore = restore
        self.epoch = self._adopt(store.read_meta(EPOCH_META))
        self.losses = 0

    def _adopt(self, current: str | None) -> str:
        """The epoch to remember: the stored one, or a new one written when there is none
        (read back, so beats writing at the same moment end up on the same value)."""
        if current:
            return current
        self.store.write_meta(EPOCH_META, uuid.uuid4().hex)
        return self.store.read_meta(EPOCH_META) or ""

    def check(self, now: datetime) -> bool:
        """Whether the store lost its data since the last check (then handle it)."""
        current = self.store.read_meta(EPOCH_META)
        if current == self.epoch:
            return False
        self.epoch = self._adopt(current)
        self.losses += 1
        restored = "nothing is defined in configuration to restore"
        if self.restore is not None:
            try:
                restored = self.restore()
            except Exception as exc:
                restored = f"restoring the configured jobs failed: {exc}"
        loss = DataLoss(
            now,
            self.owner,
            f"{restored}; jobs added through the API, the admin or the CLI were lost and must be added again",
        )
        logger.error("%s", loss.describe())
        try:
            self.store.write_meta(
                DATA_LOSS_META,
                json.dumps(
                    {
                        "detected_at": loss.detected_at.isoformat(),
                        "detected_by": loss.detected_by,
                        "restored": loss.restored,
                    }
                ),
            )
        except StoreError as exc:
            logger.warning("could not record the data loss in the store: %s", exc)
        return True
