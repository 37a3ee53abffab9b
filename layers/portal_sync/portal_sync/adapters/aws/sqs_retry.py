"""Exponential back-off for SQS messages that failed for a transient reason.

Without it a failed message returns after the queue's visibility timeout every time, and a
database outage longer than maxReceiveCount x timeout would park every event in the
dead-letter queue. With it the attempts spread over an hour or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from portal_sync.observability import logger


def delay_for(receive_count: int, base_seconds: int, max_seconds: int) -> int:
    return int(min(max_seconds, base_seconds * 2 ** max(0, receive_count - 1)))


def back_off(
    sqs: Any,
    queue_url: str,
    records: Sequence[dict[str, Any]],
    *,
    base_seconds: int,
    max_seconds: int,
) -> None:
    if not queue_url:
        return
    for start in range(0, len(records), 10):  # the batch API takes ten entries
        entries = [
            {
                "Id": str(index),
                "ReceiptHandle": record["receiptHandle"],
                "VisibilityTimeout": delay_for(
                    int(record.get("attributes", {}).get("ApproximateReceiveCount", 1)),
                    base_seconds,
                    max_seconds,
                ),
            }
            for index, record in enumerate(records[start : start + 10])
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError):
            # The messages still come back after the queue's own visibility timeout.
            logger.warning("Could not set a back-off on failed messages")
