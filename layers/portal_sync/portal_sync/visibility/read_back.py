"""The read-back of the website column (docs/website-visibility.md, "Read-back of the Dynamics
column"): what Dynamics shows of each mentor, compared with what we last applied, so that a hand
edit in Dynamics is found and put right.

Someone may change the visibility column of a contact by hand in Dynamics; the website then
shows (or hides) a mentor against their status, and nothing of ours would notice. So every
organisation with a Dynamics connection has its in-sync mentors read back in passes: a pass
starts at most every PASS_INTERVAL, walks the mentors in profile id order from a cursor, 50 per
filtered GET, and a call of `run` (the schedule's, every minute) reads a bounded number of
batches, the organisation that has waited longest first.

A mentor whose column differs (null counts as hidden) is a hand edit: what Dynamics shows
becomes the applied state, and a forced change of the desired state goes through the outbox,
so the normal delivery writes it back (outbox.py, delivery.py). A read that Dynamics cannot
answer now (5xx, timeout, 429) is tried again by the next call, from the same batch; one it
refuses (credentials, an unknown column) ends the organisation's pass, logged for on-call,
since every batch would be refused alike until an administrator changes the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from uuid import UUID

from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.observability import error_facts, logger, tracer
from portal_sync.visibility.outbox import Outbox
from portal_sync.visibility.ports import DynamicsTargets, VisibilityRepository

ACTOR = "system:read-back"
REPAIR_ACTION = "read_back_repair"
FOUND_ACTION = "hand_edit_found"
PASS_INTERVAL = timedelta(hours=12)  # every mentor is read back at least daily
BATCH_SIZE = 50  # contacts per filtered GET (adapters/dynamics/web_api.py)
MAX_BATCHES_PER_RUN = 4  # across all organisations: a run takes seconds, not minutes


@dataclass
class ReadBackPass:
    """An organisation's read-back: the pass under way (or the last one) and where it is.
    `mentors_read` and `hand_edits_repaired` count the current (or last) pass."""

    organization_id: UUID
    pass_started_at: datetime | None = None
    after_profile_id: UUID | None = None  # the last mentor read; None: from the first
    last_pass_finished_at: datetime | None = None
    mentors_read: int = 0
    hand_edits_repaired: int = 0
    last_repaired_at: datetime | None = None

    @property
    def under_way(self) -> bool:
        started, finished = self.pass_started_at, self.last_pass_finished_at
        return started is not None and (finished is None or finished < started)

    def due(self, now: datetime, interval: timedelta) -> bool:
        """A new pass may start: none under way, and the last one started `interval` ago."""
        if self.under_way:
            return False
        return self.pass_started_at is None or self.pass_started_at <= now - interval

    def start(self, now: datetime) -> None:
        self.pass_started_at, self.after_profile_id = now, None
        self.mentors_read = self.hand_edits_repaired = 0

    def finish(self, now: datetime) -> None:
        self.last_pass_finished_at, self.after_profile_id = now, None


@dataclass(frozen=True)
class AppliedMentor:
    """An in-sync mentor as the read-back compares it: what Dynamics was last told."""

    profile_id: UUID
    contact_id: str
    applied: bool


class ReadBackStore(Protocol):
    def waiting(self, now: datetime, interval: timedelta, limit: int) -> list[UUID]:
        """Organisations with a Dynamics connection, not held by a Retry-After, whose pass is
        under way or due, the longest waiting first (a pass under way since its last batch, a
        due one since it became due)."""
        ...

    def claim(self, organization_id: UUID) -> ReadBackPass | None:
        """The organisation's read-back (created when it has none), locked until the
        transaction ends; None while another run holds it."""
        ...

    def mentors(
        self, organization_id: UUID, after_profile_id: UUID | None, limit: int
    ) -> list[AppliedMentor]:
        """In-sync mentors with a contact id and an applied state, by profile id, after
        `after_profile_id`."""
        ...

    def save(self, progress: ReadBackPass) -> None: ...


class ColumnReader(Protocol):
    def read_column(
        self, connection: DynamicsConnection, contact_ids: Sequence[str], column: str
    ) -> dict[str, bool | None]:
        """`column` of up to 50 contacts by id; a contact that does not exist is absent.
        Raises DynamicsError."""
        ...


@dataclass(frozen=True)
class ReadBackWork:
    """What one batch uses, in one transaction."""

    store: ReadBackStore
    repo: VisibilityRepository
    targets: DynamicsTargets


@dataclass(frozen=True)
class ReadBackResult:
    mentors_read: int = 0
    hand_edits_repaired: int = 0
    organizations: int = 0  # organisations read from in this run


@dataclass
class _Batch:
    read: int = 0
    repaired: int = 0
    more: bool = False  # the organisation's pass goes on with the next batch


@dataclass
class _Totals:
    read: int = 0
    repaired: int = 0
    organizations: set[UUID] = field(default_factory=set)


def hand_edit_message(raw: bool | None, desired: bool) -> str:
    """What the mentor's log says of a hand edit found, in a coordinator's words."""
    shown = "visible" if raw else "hidden (the column was emptied)" if raw is None else "hidden"
    found = f"Dynamics showed the mentor as {shown}, changed there by hand"
    wanted = "visible" if desired else "hidden"
    if bool(raw) == desired:
        return f"{found}; that is what the mentor's status now asks for: the website stays {wanted}"
    return f"{found}; the website is set back to {wanted}"


class ReadBack:
    def __init__(
        self,
        work: Callable[[], AbstractContextManager[ReadBackWork]],
        reader: ColumnReader,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        interval: timedelta = PASS_INTERVAL,
        batch_size: int = BATCH_SIZE,
        max_batches: int = MAX_BATCHES_PER_RUN,
    ) -> None:
        """`work`: a transaction's store, repository and Dynamics targets (one per batch)."""
        self._work = work
        self._reader = reader
        self._now = now
        self._today = today
        self._interval = interval
        self._batch_size = batch_size
        self._max_batches = max_batches

    @tracer.capture_method
    def run(self) -> ReadBackResult:
        """At most `max_batches` batches, one organisation's at a time in turns, the longest
        waiting first; never raises (what failed is logged and tried again next run)."""
        try:
            with self._work() as work:
                waiting = work.store.waiting(self._now(), self._interval, self._max_batches)
        except Exception as exc:
            logger.error(
                "Could not start the read-back of the website column", extra=error_facts(exc)
            )
            return ReadBackResult()
        totals, budget = _Totals(), self._max_batches
        while waiting and budget > 0:
            for organization_id in list(waiting):
                if budget == 0:
                    break
                budget -= 1
                batch = self._batch(organization_id)
                totals.read += batch.read
                totals.repaired += batch.repaired
                if batch.read:
                    totals.organizations.add(organization_id)
                if not batch.more:
                    waiting.remove(organization_id)
        return ReadBackResult(totals.read, totals.repaired, len(totals.organizations))

    def _batch(self, organization_id: UUID) -> _Batch:
        try:
            with self._work() as work:
                return self._read_batch(work, organization_id)
        except Exception as exc:  # the transaction rolled back: the next run reads it again
            logger.error(
                "Read-back of the website column failed; the next run tries again",
                extra={"organization_id": str(organization_id), **error_facts(exc)},
            )
            return _Batch()

    def _read_batch(self, work: ReadBackWork, organization_id: UUID) -> _Batch:
        progress = work.store.claim(organization_id)
        now = self._now()
        if progress is None:
            return _Batch()  # another run is reading it
        if not progress.under_way:
            if not progress.due(now, self._interval):
                return _Batch()  # a concurrent run finished it meanwhile
            progress.start(now)
        mentors = work.store.mentors(organization_id, progress.after_profile_id, self._batch_size)
        if not mentors:
            progress.finish(now)
            work.store.save(progress)
            return _Batch()
        target = work.targets.target(organization_id)
        if target is None:
            logger.warning(
                "Read-back of the website column skipped: the organisation's Dynamics "
                "credentials are not stored",
                extra={"organization_id": str(organization_id)},
            )
            progress.finish(now)
            work.store.save(progress)
            return _Batch()
        try:
            shown = self._reader.read_column(
                target.connection, [m.contact_id for m in mentors], target.visibility_column
            )
        except DynamicsError as exc:
            return self._read_failed(work, progress, exc, now)
        repaired = 0
        for mentor in mentors:
            if mentor.contact_id not in shown:
                continue  # no such contact: the next delivery reports it
            raw = shown[mentor.contact_id]
            if bool(raw) != mentor.applied and self._repair(
                work.repo, organization_id, mentor, raw
            ):
                repaired += 1
        progress.after_profile_id = mentors[-1].profile_id
        progress.mentors_read += len(mentors)
        progress.hand_edits_repaired += repaired
        if repaired:
            progress.last_repaired_at = now
        finished = len(mentors) < self._batch_size
        if finished:
            progress.finish(now)
        work.store.save(progress)
        if repaired:
            logger.info(
                "Hand edits of the website column repaired",
                extra={"organization_id": str(organization_id), "repaired": repaired},
            )
        return _Batch(len(mentors), repaired, more=not finished)

    def _read_failed(
        self, work: ReadBackWork, progress: ReadBackPass, exc: DynamicsError, now: datetime
    ) -> _Batch:
        facts = {
            "organization_id": str(progress.organization_id),
            "failure": exc.kind.value,
            "status_code": exc.status_code,
        }
        if exc.retry_after is not None:
            # Dataverse's service protection: nothing goes to it before Retry-After, whoever
            # sends it (the deliveries honour the same block).
            work.repo.block_until(
                progress.organization_id, now + timedelta(seconds=exc.retry_after)
            )
        if exc.retryable:
            work.store.save(progress)  # a pass just started stays started, at the same batch
            logger.info("Read-back of the website column waits for Dynamics", extra=facts)
            return _Batch()
        # Refused for every batch alike until an administrator changes the settings: the pass
        # ends here rather than asking again every minute; the next one starts on time.
        progress.finish(now)
        work.store.save(progress)
        logger.warning(
            "Read-back of the website column stopped for this pass: Dynamics refused the read",
            extra={**facts, "message": exc.message},
        )
        return _Batch()

    def _repair(
        self,
        repo: VisibilityRepository,
        organization_id: UUID,
        read: AppliedMentor,
        raw: bool | None,
    ) -> bool:
        """Dynamics shows `raw`, not what we applied: it becomes the applied state, and a forced
        change delivers the desired state again. Skipped when the mentor changed since it was
        read (its own delivery sends their state)."""
        status = repo.lock_mentor(organization_id, read.profile_id)
        if (
            status is None
            or status.sync_state != "in_sync"
            or status.applied != read.applied
            or status.contact_id != read.contact_id
        ):
            return False
        status.applied = bool(raw)
        recorded = Outbox(repo, self._today).record(status, REPAIR_ACTION, ACTOR, force=True)
        repo.log(
            recorded,
            FOUND_ACTION,
            hand_edit_message(raw, recorded.desired),
            ACTOR,
            recorded.current_change_id,
        )
        return True
