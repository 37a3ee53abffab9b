"""The message the ingest puts on the SQS queue for process_event: an accepted event, or a
receipt the ingest could not write itself."""

from __future__ import annotations

import base64
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from portal_sync.inbound.receipts import Receipt


class QueuedEvent(BaseModel):
    """An accepted webhook on its way to `process_event`. The body travels base64-encoded so
    that any byte sequence the sender signed survives SQS's character rules unchanged."""

    kind: Literal["event"] = "event"
    receipt: Receipt
    event_id: str
    correlation_id: str
    headers: dict[str, str] = Field(default_factory=dict)
    body_b64: str

    @property
    def organization_id(self) -> UUID:
        assert self.receipt.organization_id is not None
        return self.receipt.organization_id

    def body(self) -> bytes:
        return base64.b64decode(self.body_b64)


class QueuedReceipt(BaseModel):
    """A receipt the ingest could not write itself (PostgreSQL down): the consumer writes it."""

    kind: Literal["receipt"] = "receipt"
    receipt: Receipt


QueueMessage = Annotated[QueuedEvent | QueuedReceipt, Field(discriminator="kind")]
