"""The event queue's SQS batches through Powertools' partial batch processor (docs/inbound.md).

The record handler turns each record into a Delivery (what our ingest did not queue is dropped:
there is nothing to apply and nowhere to log it). The inbound batch strategy
(inbound/batch.py) applies the deliveries as a whole, and each record's outcome goes through
Powertools' success and failure bookkeeping, whose response names the failed records
(`batchItemFailures`). Then what follows a batch: the website visibility deliveries of the
mentors it reconsidered are started, and the failed messages are backed off.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BasePartialBatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.base import FailureResponse, SuccessResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import TypeAdapter, ValidationError

from portal_sync.inbound.batch import BatchApply, BatchOutcome, Delivery
from portal_sync.inbound.log_context import about_batch
from portal_sync.inbound.queue_message import QueueMessage
from portal_sync.inbound.sync_log import LogStatus
from portal_sync.observability import logger, metrics

_messages: TypeAdapter[Any] = TypeAdapter(QueueMessage)


def queued_delivery(record: SQSRecord) -> Delivery | None:
    """The record handler: the record's queue message, or None when our ingest did not queue
    it (dropped: logged, metric MalformedMessage)."""
    try:
        message = _messages.validate_json(record.body)
    except ValidationError:
        logger.error("Dropping a malformed queue message", extra={"message_id": record.message_id})
        metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
        return None
    attempts = int(record.raw_event.get("attributes", {}).get("ApproximateReceiveCount") or 1)
    return Delivery(record.message_id, message, attempts)


class EventBatchProcessor(BasePartialBatchProcessor):
    """Applies a batch with `strategy`; then `start_visibility_changes()` when mentors were
    reconsidered, and `back_off(records)` of the failed records."""

    def __init__(
        self,
        strategy: BatchApply,
        *,
        start_visibility_changes: Callable[[], None],
        back_off: Callable[[Sequence[dict[str, Any]]], None],
    ) -> None:
        # Partial failures are the normal answer, even when every record failed.
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self._strategy = strategy
        self._start_visibility_changes = start_visibility_changes
        self._back_off = back_off

    # Not traced on its own: its answer holds the records, bodies and all (personal data), and
    # the handler's and the strategy's spans cover it.
    def process(self) -> list[SuccessResponse | FailureResponse]:
        records = [SQSRecord(raw) for raw in self.records]
        deliveries = [d for r in records if (d := self.handler(record=r)) is not None]
        with about_batch([d.message for d in deliveries]):
            outcome = self._strategy.apply(deliveries)
            results = [self._book(record, outcome) for record in records]
            _count(outcome)
            if outcome.mentors_reconsidered:
                self._start_deliveries()
            failed = [r.raw_event for r in records if r.message_id in outcome.failed]
            if failed:
                metrics.add_metric(name="EventRetried", unit=MetricUnit.Count, value=len(failed))
                self._back_off(failed)
        return results

    def _book(self, record: SQSRecord, outcome: BatchOutcome) -> SuccessResponse | FailureResponse:
        error = outcome.failed.get(record.message_id)
        if error is None:  # applied, or dropped as malformed
            return self.success_handler(record, outcome.applied.get(record.message_id))
        return self.failure_handler(record, (type(error), error, error.__traceback__))

    def _start_deliveries(self) -> None:
        """Mentors hidden by a deactivation: start the deliveries now (the schedule would too)."""
        try:
            self._start_visibility_changes()
        except Exception:  # the changes wait safely in the outbox
            logger.exception("Could not start website visibility changes; the schedule will")

    def _process_record(self, record: dict[str, Any]) -> SuccessResponse | FailureResponse:
        raise NotImplementedError("the batch is applied as a whole (process)")

    async def _async_process_record(self, record: dict[str, Any]) -> Any:
        raise NotImplementedError("the batch is applied as a whole (process)")


def _count(outcome: BatchOutcome) -> None:
    statuses: list[LogStatus | None] = list(outcome.applied.values())
    for status, count in Counter(s for s in statuses if s is not None).items():
        name = "EventFailed" if status is LogStatus.ERROR else f"Event{status.value.title()}"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
