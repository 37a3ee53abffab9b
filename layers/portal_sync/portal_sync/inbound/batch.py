"""How a batch of queued messages is applied: together first, one at a time when that fails.

Together: the whole batch in one transaction, read and written set-wise (a few statements for
the batch, whatever its size). If that fails for any reason but the database being unreachable,
nothing of it is kept and the batch is applied again in one transaction, each message in its own
savepoint: a failing message rolls back alone and goes back to the queue, the others are
applied. A message failing its last attempt is logged as an error before SQS parks it. With the
database unreachable the whole batch goes back to the queue at once (docs/inbound.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from portal_sync.inbound.log_context import about_batch, about_message
from portal_sync.inbound.ports import RowReader, SyncRepository, UnitOfWork
from portal_sync.inbound.processor import EventProcessor
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.sync_log import FailureCause, LogStatus, is_last_attempt, parked_message
from portal_sync.observability import error_facts, logger, tracer
from portal_sync.unavailable import DatabaseUnavailable

MembershipChanged = Callable[[UUID, UUID], None]


@dataclass(frozen=True)
class Delivery:
    """A queued message as the queue handed it over."""

    id: str  # the queue's message id, by which a failure is reported back
    message: QueuedEvent | QueuedReceipt
    attempts: int  # how many times the queue has delivered it, this time included


@dataclass(repr=False)
class BatchOutcome:
    # What each message applied was logged as (None: nothing to log, e.g. a duplicate).
    applied: dict[str, LogStatus | None] = field(default_factory=dict)
    # Why each of the others failed: the queue delivers them again.
    failed: dict[str, Exception] = field(default_factory=dict)
    # A change that was kept reconsidered a mentor's website visibility: deliveries to start.
    mentors_reconsidered: bool = False

    def __repr__(self) -> str:
        # The errors by class only: a PostgreSQL error's message quotes the failing row
        # (personal data), and the Tracer records this as the strategy's answer in X-Ray.
        applied = {id_: status and status.value for id_, status in self.applied.items()}
        failed = {id_: type(error).__name__ for id_, error in self.failed.items()}
        return (
            f"BatchOutcome(applied={applied}, failed={failed}, "
            f"mentors_reconsidered={self.mentors_reconsidered})"
        )


class BatchApply:
    """Applies one invocation's batch (build one per invocation: the row reader may remember,
    for the invocation, which organisations' Dynamics is failing)."""

    def __init__(
        self,
        work: UnitOfWork,
        *,
        max_receive_count: int,
        row_reader: RowReader | None = None,
        on_membership_change: MembershipChanged | None = None,
    ) -> None:
        self._work = work
        self._max_receive_count = max_receive_count
        self._row_reader = row_reader
        self._on_membership_change = on_membership_change
        # The mentors reconsidered by the changes applied since it was last cleared.
        self._reconsidered: list[tuple[UUID, UUID]] = []

    @tracer.capture_method
    def apply(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        if not deliveries:
            return BatchOutcome()
        with about_batch([d.message for d in deliveries]):
            try:
                outcome = self._together(deliveries)
                return outcome if outcome is not None else self._one_at_a_time(deliveries)
            except DatabaseUnavailable as exc:
                logger.exception("PostgreSQL unavailable; the whole batch will be retried")
                return BatchOutcome(failed={d.id: exc for d in deliveries})

    @tracer.capture_method
    def _together(self, deliveries: Sequence[Delivery]) -> BatchOutcome | None:
        """None when the batch failed for a reason other than the database: nothing of it was
        kept, and the messages are to be applied one at a time, so that a bad one fails alone."""
        self._reconsidered.clear()
        try:
            with self._work.transaction():
                statuses = self._events(self._work.batch_repository()).process_batch(
                    [d.message for d in deliveries]
                )
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            logger.warning(
                "The batch could not be applied together; applying one message at a time",
                extra=error_facts(exc),
            )
            return None
        return BatchOutcome(
            applied={d.id: status for d, status in zip(deliveries, statuses, strict=True)},
            mentors_reconsidered=bool(self._reconsidered),
        )

    @tracer.capture_method
    def _one_at_a_time(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        outcome = BatchOutcome()
        with self._work.transaction():
            events = self._events(self._work.repository())
            for delivery in deliveries:
                with about_message(delivery.message):
                    self._reconsidered.clear()
                    try:
                        with self._work.savepoint():
                            outcome.applied[delivery.id] = events.process(delivery.message)
                    except DatabaseUnavailable:
                        raise
                    except Exception as exc:
                        outcome.failed[delivery.id] = exc
                        self._failed(events, delivery, exc)
                    else:
                        outcome.mentors_reconsidered |= bool(self._reconsidered)
        return outcome

    def _failed(self, events: EventProcessor, delivery: Delivery, exc: Exception) -> None:
        """Logs the failure for on-call; on the message's last attempt, in the sync log too, as
        an error an administrator can reprocess (its earlier failures left nothing there)."""
        logger.error("Event failed", extra={"attempt": delivery.attempts, **error_facts(exc)})
        message = delivery.message
        if not (
            isinstance(message, QueuedEvent)
            and is_last_attempt(delivery.attempts, self._max_receive_count)
        ):
            return
        cause = FailureCause.of(exc, database_failed=self._work.is_database_failure(exc))
        try:
            with self._work.savepoint():
                events.record_failure(
                    message, parked_message(delivery.attempts, cause), delivery.attempts
                )
        except DatabaseUnavailable:
            raise
        except Exception as error:  # still reported failed: SQS parks it all the same
            logger.error("Could not log the parked event", extra=error_facts(error))

    def _events(self, repo: SyncRepository) -> EventProcessor:
        return EventProcessor(
            repo, on_membership_change=self._membership_changed, row_reader=self._row_reader
        )

    def _membership_changed(self, organization_id: UUID, profile_id: UUID) -> None:
        self._reconsidered.append((organization_id, profile_id))
        if self._on_membership_change is not None:
            self._on_membership_change(organization_id, profile_id)
