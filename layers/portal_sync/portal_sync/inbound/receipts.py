"""What the ingest knows of each request it answered: the receipt (webhook_receipts)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

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
