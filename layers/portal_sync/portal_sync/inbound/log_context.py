"""Which events the consumer's log lines are about, so that on-call finds every line of an event
by its `correlation_id` (the ingest's receipt id; docs/inbound.md, docs/runbook.md).

A line about one message carries that message's `correlation_id` and `event_id`; a line about
the batch as a whole (applying it set-wise, falling back, starting visibility changes, backing
off) carries `correlation_ids`, the batch's, instead: a batch of 100 ids on every line of one
message would be 3.6 KB of noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.observability import log_keys


def correlation_id(message: QueuedEvent | QueuedReceipt) -> str:
    # A receipt the ingest could not write has no event; its id is what the ingest logged.
    return message.correlation_id if isinstance(message, QueuedEvent) else str(message.receipt.id)


@contextmanager
def about_batch(messages: Sequence[QueuedEvent | QueuedReceipt]) -> Iterator[None]:
    with log_keys({"correlation_ids": [correlation_id(m) for m in messages]}):
        yield


@contextmanager
def about_message(message: QueuedEvent | QueuedReceipt) -> Iterator[None]:
    keys: dict[str, Any] = {"correlation_id": correlation_id(message)}
    if isinstance(message, QueuedEvent):
        keys["event_id"] = message.event_id
    with log_keys(keys, hide=("correlation_ids",)):
        yield
