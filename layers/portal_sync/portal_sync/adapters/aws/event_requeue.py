"""The admin API's EventRequeue (admin/ports.py) on SQS: puts a kept event back on the queue
for reprocessing, and takes its copies out of the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

from portal_sync.observability import tracer

# A reprocess looks through this many dead-letter messages at most (10 per receive call).
_DLQ_SCAN_ROUNDS = 10


class SqsEventRequeue:
    def __init__(self, sqs: Callable[[], Any], queue_url: str, dead_letter_queue_url: str) -> None:
        # The client's factory, called when the queue is used: most admin requests do not use
        # it, and creating a client (botocore, its service model) is tens of ms of a cold start.
        self._sqs_factory = sqs
        self._queue_url = queue_url
        self._dlq_url = dead_letter_queue_url

    @property
    def _sqs(self) -> Any:
        return self._sqs_factory()

    @tracer.capture_method
    def send(self, message_body: str) -> None:
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=message_body)

    @tracer.capture_method
    def remove_parked(self, organization_id: UUID, event_id: str) -> int:
        if not self._dlq_url:
            return 0
        removed, others = 0, []
        # Messages looked at stay invisible during the scan, so each is seen once; the others
        # are made visible again at the end.
        for _ in range(_DLQ_SCAN_ROUNDS):
            messages = self._sqs.receive_message(
                QueueUrl=self._dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                if _is_event(message["Body"], organization_id, event_id):
                    self._sqs.delete_message(
                        QueueUrl=self._dlq_url, ReceiptHandle=message["ReceiptHandle"]
                    )
                    removed += 1
                else:
                    others.append(message["ReceiptHandle"])
        for handle in others:
            self._sqs.change_message_visibility(
                QueueUrl=self._dlq_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        return removed


def _is_event(body: str, organization_id: UUID, event_id: str) -> bool:
    """Whether a parked message is this event of this organisation (a QueuedEvent's JSON,
    inbound/queue_message.py); anything unreadable is someone else's and stays."""
    try:
        message = json.loads(body)
        return bool(
            message.get("event_id") == event_id
            and message["receipt"]["organization_id"] == str(organization_id)
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
