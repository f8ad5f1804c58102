"""A beat: the leader lease plus the engine loop, for one scheduler process.

Several beats may share a store; :class:`Leadership` makes exactly one of them tick. The
lease is renewed every third of ``lease_timeout``; a standby polls often enough to take an
expired lease over within ``lease_timeout`` of the leader's last renewal. A leader checks
its lease again, on its own monotonic clock, before sending each fire, so a process paused
past its lease (SIGSTOP, a long GC, a VM freeze) sends nothing more when it resumes (at
most what it was writing when it froze: one message, or one Redis pipeline) and writes
nothing back: its claims expire and the new leader re-plans them with the same task ids.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from beatx.alert_watch import AlertWatch
from beatx.alerts import Alert
from beatx.clock import Clock, SystemClock
from beatx.dispatch.base import Dispatcher, MessageRenderer
from beatx.engine.engine import Engine, TickResult, atomic_fire_possible
from beatx.errors import ConfigurationError, LeaseLostError, StoreError, TransientDispatchError
from beatx.events import Event, EventBus, EventKind
from beatx.store_watch import StoreWatch
from beatx.stores.base import BeatStatus, JobStore

__all__ = ["Beat", "Leadership", "make_owner_token"]

logger = logging.getLogger("beatx.beat")

#: The shortest time with nothing due in which an alert check runs (it also needs twice
#: what the last check took; see :meth:`AlertWatch.maybe_check`).
ALERT_QUIET = 0.05

#: Jobs a leader checks per renewal interval for being in no index (see ``_sweep_step``).
SWEEP_STEP = 5000


def make_owner_token() -> str:
    """A lease token naming this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """Takes, renews and gives up the leader lease of one beat.

    Each term of leadership has its own token, ``{base}:{term}``: a beat that lost the lease
    (frozen past it, cut off from the store) and takes it again later leads under a new
    token, so nothing claimed or planned in an earlier term can be written back in this one.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        lease_timeout: float = 30.0,
        owner: str | None = None,
        clock: Clock | None = None,
        events: EventBus | None = None,
    ) -> None:
        if lease_timeout <= 0:
            raise ConfigurationError(f"lease_timeout must be > 0 seconds, got {lease_timeout!r}")
        self.store = store
        self.base_owner = owner or make_owner_token()
        self.term = 1
        #: The lease token of the current (or next) term.
        self.owner = f"{self.base_owner}:{self.term}"
        self.lease_timeout = lease_timeout
        #: How often a standby retries, and how much of the lease a leader gives up as margin.
        self.poll_interval = min(1.0, lease_timeout / 10)
        self.renew_interval = lease_timeout / 3
        self.clock = clock or SystemClock()
        self.events = events or EventBus()
        self.leader_since: datetime | None = None
        #: Whether this beat last found the lease held by another beat (said once in the log).
        self.standing_by = False
        self._valid_until = float("-inf")
        self._renewed_at = float("-inf")

    @property
    def is_leader(self) -> bool:
        """Whether this beat may act as leader now, judged on its own monotonic clock."""
        return self.clock.monotonic() < self._valid_until

    def ensure(self) -> bool:
        """Renew the lease when due, or try to take it. Returns whether this beat leads."""
        started = self.clock.monotonic()
        if self.is_leader and started - self._renewed_at < self.renew_interval:
            return True
        # The stored expiry is one poll short of the timeout, so a standby polling every
        # poll_interval takes over within lease_timeout of the last renewal.
        stored_ttl = self.lease_timeout - self.poll_interval
        if not self.is_leader and self.leader_since is not None:
            self.lost()  # the lease ran out on this beat's clock: that term is over
        try:
            held = self.store.acquire_lease(self.owner, now=self.clock.now(), ttl=stored_ttl)
        except StoreError as exc:
            logger.warning("cannot reach the store to renew the lease: %s", exc)
            if not self.is_leader:
                self.lost()
            return self.is_leader
        if held:
            self.standing_by = False
            self._renewed_at = started
            self._valid_until = started + stored_ttl - self.poll_interval
            if self.leader_since is None:
                self.leader_since = self.clock.now()
                logger.info("leader lease acquired owner=%s", self.owner)
                self._emit(EventKind.LEADER_ACQUIRED)
        else:
            self.lost()
            if not self.standing_by:
                self.standing_by = True
                self._say_standing_by()
        return held

    def _say_standing_by(self) -> None:
        try:
            lease = self.store.get_lease()
        except StoreError:
            lease = None
        holder = (
            f"beat {lease.owner} holds the leader lease" if lease else "another beat holds the leader lease"
        )
        logger.info(
            "standing by: %s; this beat (%s) takes over within %gs if it stops renewing",
            holder,
            self.base_owner,
            self.lease_timeout,
        )

    def lost(self) -> None:
        """Forget leadership (the lease expired or another beat holds it); a later term gets
        a new token."""
        self._valid_until = float("-inf")
        if self.leader_since is not None:
            self.leader_since = None
            logger.warning("leader lease lost owner=%s", self.owner)
            self._emit(EventKind.LEADER_LOST)
            self._next_term()

    def _next_term(self) -> None:
        self.term += 1
        self.owner = f"{self.base_owner}:{self.term}"

    def release(self) -> None:
        """Give the lease up so a standby takes over at once (on a clean shutdown)."""
        if self.leader_since is None:
            return
        try:
            self.store.release_lease(self.owner)
        except StoreError as exc:
            logger.warning("could not release the lease (it expires by itself): %s", exc)
        else:
            logger.info("leader lease released owner=%s", self.owner)
        self.leader_since = None
        self._valid_until = float("-inf")
        self._emit(EventKind.LEADER_LOST)
        self._next_term()

    def _emit(self, kind: EventKind) -> None:
        if self.events.has_listeners:
            self.events.emit(Event(kind, self.clock.now(), data={"owner": self.owner}))


class Beat:
    """One scheduler process: lease, ticks, health reports.

    Call :meth:`run_once` and then :meth:`wait` with what it returned, in a loop; or
    :meth:`run` until a stop flag is set.

    With a ``lookahead`` (seconds), the beat wakes that much before fires are due, claims and
    plans them and builds their messages, then sleeps in :meth:`run_once` until they are due
    and sends them: a group of fires due together leaves on time instead of after the work
    of the whole group. Keep it 0 where :meth:`run_once` must not block (an event loop).

    With ``freeze_gc``, the objects that exist when the beat is built (Celery, the app, Django:
    they live as long as the process) are moved out of the cyclic garbage collector's reach
    (:func:`gc.freeze`), so its full passes no longer walk them: unfrozen, such a pass holds a
    tick back for tens of milliseconds and slows a burst. For a process
    that runs one beat (``celery beat -S beatx`` sets it); tests building many beats leave it off.

    With ``atomic_fire`` (the default), the first tick as leader asks the dispatcher where its
    broker is: when it is a Redis server the store is on too, the store's write-back script
    pushes each fire's message (the engine's ``outbox``), so a fire goes out exactly when its
    job is written back, whatever instant the beat is killed or frozen at.

    While it leads, the beat checks the jobs' alert rules (:mod:`beatx.alert_watch`) before a
    tick: at once in a new term, then every ``alert_interval`` seconds (None: never), and hands
    each alert raised or resolved to ``alert_deliver`` (an
    :class:`~beatx.alert_delivery.AlertDelivery`'s ``deliver``), besides its events.

    With ``log_each_fire``, each fire sent is logged at INFO; otherwise one INFO line per group
    of fires sent together, and each fire at DEBUG (see :class:`~beatx.engine.Engine`).
    """

    def __init__(
        self,
        store: JobStore,
        dispatcher: Dispatcher,
        *,
        clock: Clock | None = None,
        events: EventBus | None = None,
        lease_timeout: float = 30.0,
        owner: str | None = None,
        max_concurrent_jobs: int | None = None,
        batch_size: int = 1000,
        max_sleep: float = 60.0,
        status_interval: float = 1.0,
        lookahead: float = 0.0,
        freeze_gc: bool = False,
        restore: Callable[[], str] | None = None,
        atomic_fire: bool = True,
        log_each_fire: bool = False,
        alert_interval: float | None = 10.0,
        alert_deliver: Callable[[Alert], None] | None = None,
    ) -> None:
        if freeze_gc:
            gc.freeze()
        #: Puts back the configured jobs after the store lost its data (see
        #: :mod:`beatx.store_watch`); returns what it restored.
        self.restore = restore
        self._watch: StoreWatch | None = None
        self._swept_term = 0
        self._sweep_cursor: str | None = None
        self._watched_at = float("-inf")
        self.store = store
        self.clock = clock or SystemClock()
        self.events = events or EventBus()
        self.leadership = Leadership(
            store, lease_timeout=lease_timeout, owner=owner, clock=self.clock, events=self.events
        )
        self.engine = Engine(
            store,
            dispatcher,
            owner=self.leadership.owner,
            batch_size=batch_size,
            # Claims are fenced by the lease, so no other beat can take them while this one
            # leads; they only need to outlive one tick. Expiring well before the lease does
            # lets a new leader re-plan a dead leader's claimed jobs as soon as it takes over.
            claim_ttl=self.leadership.renew_interval,
            max_sleep=max_sleep,
            max_concurrent_jobs=max_concurrent_jobs,
            events=self.events,
            guard=lambda: self.leadership.is_leader,
            clock=self.clock,
            lookahead=lookahead,
            wait_until=self._wait_until,
            # Fires that fell due while leadership moved (a dead leader's lease runs out,
            # then its claims) are each sent, not coalesced as after an outage.
            catch_up_window=lease_timeout + self.leadership.renew_interval,
            log_each_fire=log_each_fire,
        )
        #: Whether the fire path is still to be chosen (on the first tick as leader, when
        #: the broker can be asked where it is): see :meth:`_choose_fire_path`.
        self._choosing_fire_path = atomic_fire
        #: The alert rules' watch (:mod:`beatx.alert_watch`): checked before a tick while this
        #: beat leads, at once in a new term, then every ``alert_interval`` seconds.
        self.alerts = (
            AlertWatch(
                store, events=self.events, deliver=alert_deliver, interval=alert_interval, clock=self.clock
            )
            if alert_interval
            else None
        )
        self.status_interval = status_interval
        self.store_retry_delay = 1.0
        #: Back-off after a tick whose fires the broker refused: doubles per failing tick up
        #: to ``max_retry_delay``; changes announced meanwhile do not shorten it.
        self.retry_delay = 1.0
        self.max_retry_delay = max(1.0, min(8.0, self.leadership.renew_interval))
        self._failing_ticks = 0
        self._backoff_until = float("-inf")
        self.last_tick_at: datetime | None = None
        self.totals = {"fired": 0, "missed": 0, "skipped": 0}
        self._status_written_at = float("-inf")
        #: When (monotonic) the last tick said the next fire is due: an alert check waits for
        #: a quiet moment (nothing due before it would end), so it never delays a burst.
        self._next_due_at = float("-inf")

    @property
    def owner(self) -> str:
        return self.leadership.owner

    def run_once(self) -> float:
        """Lead if possible and tick. Returns the seconds to wait before the next call."""
        self._watch_store()
        if not self.leadership.ensure():
            self.engine.discard()
            return self.leadership.poll_interval
        if self.engine.owner != self.leadership.owner:
            # A new term: nothing planned in an earlier one is sent or written back.
            self.engine.discard()
            self.engine.owner = self.leadership.owner
        if self._swept_term != self.leadership.term:
            # A new term sweeps the store once more, a step per renewal interval.
            self._swept_term = self.leadership.term
            self._sweep_cursor = "0"
        if self.alerts is not None:
            room = max(ALERT_QUIET, 2 * self.alerts.last_duration)
            quiet = self.clock.monotonic() + room <= self._next_due_at
            self.alerts.maybe_check(self.leadership.term, quiet=quiet)
        started = self.clock.monotonic()
        if started < self._backoff_until:
            return self._backoff_until - started
        if self._choosing_fire_path:
            self._choose_fire_path()
        now = self.clock.now()
        try:
            result = self.engine.tick(now)
        except LeaseLostError:
            self.engine.discard()
            self.leadership.lost()
            return self.leadership.poll_interval
        except StoreError as exc:
            logger.error("store unavailable, retrying in %.1fs: %s", self.store_retry_delay, exc)
            return self.store_retry_delay
        elapsed = self.clock.monotonic() - started
        self._after_tick(now, result, elapsed)
        self._next_due_at = started + result.sleep
        if result.dispatch_errors:
            self._failing_ticks += 1
            delay = float(min(self.retry_delay * 2.0 ** (self._failing_ticks - 1), self.max_retry_delay))
            self._backoff_until = self.clock.monotonic() + delay
            logger.warning(
                "broker unavailable: %d fire(s) kept due, retrying in %.1fs", result.dispatch_errors, delay
            )
            return delay
        self._failing_ticks = 0
        until_renewal = self.leadership.renew_interval - (
            self.clock.monotonic() - self.leadership._renewed_at
        )
        # The engine's sleep counts from the start of the tick; the tick itself used some of it.
        sleep = max(result.sleep - elapsed, 0.0)
        if self.alerts is not None:
            until_renewal = min(until_renewal, self.alerts.seconds_until_due())
        return max(0.0, min(sleep, until_renewal))

    def _choose_fire_path(self) -> None:
        """Use the atomic fire (the store pushes each fire's message in its write-back script,
        see :class:`~beatx.engine.engine.Engine`'s ``outbox``) when the store and the broker
        are one Redis server; otherwise fires are published, then written back."""
        dispatcher = self.engine.dispatcher
        try:
            possible = atomic_fire_possible(self.store, dispatcher)
        except TransientDispatchError as exc:
            logger.warning("the fire path is chosen once the broker answers: %s", exc)
            return
        self._choosing_fire_path = False
        if possible:
            assert isinstance(dispatcher, MessageRenderer)
            self.engine.outbox = dispatcher
            logger.info(
                "atomic fire: broker and store share a Redis server, each fire's message is pushed "
                "by the script that writes its job back (exactly once, even if this beat is killed)"
            )
        else:
            logger.info(
                "fires are published, then their jobs written back: a beat killed between the two "
                "has its fires sent again with the same task ids (the worker-side guard, "
                "beatx_dedupe, drops the repeat)"
            )

    def _sweep_step(self) -> None:
        """One step of the sweep that puts back any job a store left in no index (stores that
        keep separate indexes offer ``reindex_orphans_step``): :data:`SWEEP_STEP` jobs per
        renewal interval, so the sweep never weighs on a tick, even with a million jobs."""
        step = getattr(self.store, "reindex_orphans_step", None)
        if step is None or self._sweep_cursor is None or not self.leadership.is_leader:
            return
        try:
            cursor, _ = step(self._sweep_cursor, SWEEP_STEP)
        except StoreError as exc:
            logger.warning("could not sweep the store for jobs in no index: %s", exc)
            return
        self._sweep_cursor = None if cursor == "0" else cursor

    def _watch_store(self) -> None:
        """Every renewal interval, check that the store still holds its data (one small read);
        after a loss, forget every claim and restore the configured jobs."""
        mono = self.clock.monotonic()
        if mono - self._watched_at < self.leadership.renew_interval:
            return
        self._watched_at = mono
        try:
            if self._watch is None:
                self._watch = StoreWatch(self.store, owner=self.leadership.base_owner, restore=self.restore)
            elif self._watch.check(self.clock.now()):
                self.engine.discard()
        except StoreError as exc:
            logger.warning("cannot check the store for data loss: %s", exc)
        self._sweep_step()

    def _after_tick(self, now: datetime, result: TickResult, duration: float) -> None:
        self.last_tick_at = now
        self.totals["fired"] += result.fired
        self.totals["missed"] += result.missed
        self.totals["skipped"] += result.skipped
        if self.events.has_listeners:
            self.events.emit(
                Event(
                    EventKind.TICK,
                    now,
                    data={"duration": duration, "due": result.claimed, "fired": result.fired},
                )
            )
        mono = self.clock.monotonic()
        if mono - self._status_written_at >= self.status_interval:
            self._status_written_at = mono
            try:
                self.store.write_status(
                    BeatStatus(
                        owner=self.owner,
                        leader_since=self.leadership.leader_since,
                        last_tick_at=now,
                        due_backlog=self.store.due_count(now),
                        jobs_fired=self.totals["fired"],
                        jobs_missed=self.totals["missed"],
                        jobs_skipped=self.totals["skipped"],
                    )
                )
            except StoreError as exc:
                logger.warning("could not write the beat status: %s", exc)

    def _wait_until(self, when: datetime) -> None:
        delay = (when - self.clock.now()).total_seconds()
        if delay > 0:
            time.sleep(delay)

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when the store announces a change."""
        if seconds <= 0:
            return
        if self.clock.monotonic() < self._backoff_until:
            time.sleep(seconds)  # a back-off is not cut short by change notifications
            return
        try:
            self.store.wait_for_change(seconds)
        except StoreError as exc:
            logger.warning("change notifications unavailable: %s", exc)
            time.sleep(min(seconds, self.store_retry_delay))

    def close(self) -> None:
        """Give back the jobs claimed ahead and give up the lease (if held). The store is left
        open for its owner to close."""
        self.engine.close()
        self.leadership.release()
