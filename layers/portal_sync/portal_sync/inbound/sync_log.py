"""The sync log: one entry per event applied, skipped or failed, which admins read
(`sync_log`; GET /orgs/{id}/sync/events), and what it says of an event that kept failing.

A message that fails is retried by the queue; its failures leave nothing in the log (they roll
back). SQS parks it in the dead-letter queue after its last receive: that attempt logs it as an
error an administrator can reprocess (docs/inbound.md, "Retries and parking").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from portal_sync.dataverse.connection import DynamicsError
from portal_sync.unavailable import DatabaseUnavailable

# An entry's identity: one per event of an organisation.
LogKey = tuple[UUID, str]  # (organisation, event id)


class LogStatus(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass
class SyncLogEntry:
    organization_id: UUID
    event_id: str
    event_type: str
    status: LogStatus
    message: str
    received_at: datetime
    source_message: str | None = None
    source_table: str | None = None
    profile_id: UUID | None = None
    receipt_id: UUID | None = None
    correlation_id: str | None = None
    source_modified_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # How many attempts this write stands for: more than one when the failed ones before it
    # were rolled back (the error logged on an event's last attempt).
    attempts: int = 1


class FailureCause(StrEnum):
    """Why the last attempt of a parked event failed, in the words the sync log uses."""

    DATABASE = "the database was unreachable"
    DYNAMICS = "Dynamics did not answer the read of the row (the change exceeded 256 KB)"
    UNEXPECTED = "an unexpected error occurred"

    @classmethod
    def of(cls, error: BaseException, *, database_failed: bool = False) -> FailureCause:
        """`database_failed`: the storage said the error was its own (a timeout, a deadlock)."""
        if database_failed or isinstance(error, DatabaseUnavailable):
            return cls.DATABASE
        if isinstance(error, DynamicsError):
            return cls.DYNAMICS
        return cls.UNEXPECTED


def is_last_attempt(attempts: int, max_receive_count: int) -> bool:
    """After this attempt SQS's redrive policy parks the message (template.yaml's
    maxReceiveCount, the consumer's MAX_RECEIVE_COUNT)."""
    return attempts >= max_receive_count


def parked_message(attempts: int, cause: FailureCause) -> str:
    """The sync log's message of an event logged on its last attempt. It never quotes the
    error itself: PostgreSQL's messages quote the failing row (personal data)."""
    return (
        f"Could not be applied after {attempts} attempts: {cause}. "
        "The event is parked for reprocessing."
    )
