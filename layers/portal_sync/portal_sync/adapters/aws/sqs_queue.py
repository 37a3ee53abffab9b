"""The event queue on SQS."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from portal_sync.inbound.ingest import QueueUnavailable
from portal_sync.observability import tracer


class SqsEventQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    @tracer.capture_method
    def send(self, message_body: str) -> None:
        try:
            self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=message_body)
        except (BotoCoreError, ClientError) as exc:
            raise QueueUnavailable(str(exc)) from exc
