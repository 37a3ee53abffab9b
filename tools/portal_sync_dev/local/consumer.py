"""Consumes the event queue continuously through the real `process_event` handler, the way
Lambda's SQS event source mapping does: batches, partial batch responses, deletes on success."""

from __future__ import annotations

import threading
from typing import Any

import boto3

from portal_sync_dev.local.lambda_http import LocalFunction


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-north-1",
            }
            for m in messages
        ]
    }


class QueueConsumer:
    def __init__(self, queue_url: str, function: LocalFunction, batch_size: int = 10) -> None:
        self._sqs = boto3.client("sqs")
        self._queue_url = queue_url
        self._queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self._function = function
        self._batch_size = batch_size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # never started (a system without consumption)
            self._thread.join(timeout=10)

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receives one batch and runs it through the handler; returns how many it received."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        try:
            result = self._function.invoke(sqs_event(messages, self._queue_arn))
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except Exception:
            # A crashed invocation: every message comes back after its visibility timeout.
            import traceback

            traceback.print_exc()
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                import traceback

                traceback.print_exc()
                self._stop.wait(1)


class Scheduler:
    """Calls `job` every `interval` seconds, as an EventBridge schedule invokes a function."""

    def __init__(self, interval: float, job: Any, first_after: float | None = None) -> None:
        self._interval = interval
        self._first_after = interval if first_after is None else first_after
        self._job = job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedule", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        wait = self._first_after
        while not self._stop.wait(wait):
            wait = self._interval
            try:
                self._job()
            except Exception:
                import traceback

                traceback.print_exc()
