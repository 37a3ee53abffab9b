"""What the ingest knows of each request: the receipt, and the message put on the queue."""

from __future__ import annotations

import base64
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from portal_sync.inbound.signature import RejectReason
from portal_sync.inbound.source_config import SignatureMode


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


# Not a rejection of the sender: the event could not be queued and the sender was asked (503)
# to try again. Recorded so that webhook health shows the endpoint failing.
QUEUE_UNAVAILABLE = "QUEUE_UNAVAILABLE"


class Receipt(BaseModel):
    id: UUID
    source_id: str
    organization_id: UUID | None = None
    delivery_id: str | None = None
    outcome: Outcome
    reason: RejectReason | Literal["QUEUE_UNAVAILABLE"] | None = None
    signature_mode: SignatureMode | None = None
    received_at: datetime


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
