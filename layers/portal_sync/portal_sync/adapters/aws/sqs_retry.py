"""Exponential back-off for SQS messages that failed for a transient reason.

Without it a failed message returns after the queue's visibility timeout every time, and a
database outage longer than maxReceiveCount x timeout would park every event in the
dead-letter queue. With it the attempts spread over an hour or more (docs/inbound.md,
"Retries and parking").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from portal_sync.observability import logger, tracer

BATCH_LIMIT = 10  # entries per ChangeMessageVisibilityBatch call


def delay_for(receive_count: int, base_seconds: int, max_seconds: int) -> int:
    return int(min(max_seconds, base_seconds * 2 ** max(0, receive_count - 1)))


class SqsBackOff:
    def __init__(self, sqs: Any, queue_url: str, *, base_seconds: int, max_seconds: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._base_seconds = base_seconds
        self._max_seconds = max_seconds

    @tracer.capture_method
    def back_off(self, records: Sequence[dict[str, Any]]) -> None:
        """Hides each failed record (as Lambda delivered it) for its receive count's delay."""
        for start in range(0, len(records), BATCH_LIMIT):
            entries = [
                {
                    "Id": str(index),
                    "ReceiptHandle": record["receiptHandle"],
                    "VisibilityTimeout": delay_for(
                        int(record.get("attributes", {}).get("ApproximateReceiveCount", 1)),
                        self._base_seconds,
                        self._max_seconds,
                    ),
                }
                for index, record in enumerate(records[start : start + BATCH_LIMIT])
            ]
            try:
                self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)
            except (BotoCoreError, ClientError):
                # The messages still come back after the queue's own visibility timeout.
                logger.warning("Could not set a back-off on failed messages")
