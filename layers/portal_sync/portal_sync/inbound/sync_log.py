"""The sync log: one entry per event applied, skipped or failed, which admins read
(`sync_log`; GET /orgs/{id}/sync/events)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


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
