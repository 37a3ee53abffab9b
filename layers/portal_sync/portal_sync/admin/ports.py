"""What the admin logic needs from storage, Secrets Manager, SQS and HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from portal_sync.access.authority import Authority
from portal_sync.inbound.source_config import SourceConfig


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class ReceiptCounts:
    by_outcome: dict[str, int]
    rejected_by_reason: dict[str, int]


class AdminRepository(Protocol):
    def authority(self, user_id: UUID) -> Authority: ...
    def organization_exists(self, organization_id: UUID) -> bool: ...
    def integration(self, organization_id: UUID) -> dict[str, Any] | None: ...
    def update_integration(self, organization_id: UUID, changes: dict[str, Any]) -> None: ...
    def source_owner(self, source_id: str) -> UUID | None: ...
    def create_organization(
        self, name: str, source_id: str, integration: dict[str, Any]
    ) -> UUID: ...
    def audit(
        self, organization_id: UUID | None, actor: str, action: str, details: dict[str, Any]
    ) -> None: ...
    def audit_log(self, organization_id: UUID, limit: int, cursor: str | None) -> Page: ...
    def sync_summary(self, organization_id: UUID, since: datetime) -> dict[str, Any]: ...
    def sync_events(
        self,
        organization_id: UUID,
        *,
        status: str | None,
        event_type: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page: ...
    def sync_event(self, organization_id: UUID, id: UUID) -> dict[str, Any] | None: ...
    def kept_payload(self, organization_id: UUID, event_id: str) -> str | None: ...
    def receipt_counts(self, organization_id: UUID, since: datetime) -> ReceiptCounts: ...
    def last_receipt_at(
        self, organization_id: UUID, outcomes: tuple[str, ...]
    ) -> datetime | None: ...
    def members(self, organization_id: UUID, limit: int, cursor: str | None) -> Page: ...
    def contact_of(self, organization_id: UUID, user_id: UUID) -> str | None: ...
    def organizations_on_dataverse(self, dataverse_organization_id: str) -> list[UUID]:
        """The organisations whose Dataverse OrganizationId is this one (any case)."""

    def move_members(self, from_environment: str, to_environment: str) -> int:
        """Moves the profiles of one Dynamics environment to another; how many moved."""


class SecretVault(Protocol):
    """Secrets Manager: the webhook sources (read by the ingest) and Dynamics credentials."""

    def read_source(self, source_id: str) -> SourceConfig | None: ...
    def write_source(self, config: SourceConfig) -> None: ...
    def delete_source(self, source_id: str) -> None: ...
    def write_dynamics_credentials(self, organization_id: UUID, secret: str) -> None: ...


class EventRequeue(Protocol):
    def send(self, message_body: str) -> None: ...
    def remove_parked(self, organization_id: UUID, event_id: str) -> int:
        """Deletes the event's messages from the dead-letter queue; how many there were."""


@dataclass(frozen=True)
class DeliveryAttempt:
    status_code: int | None
    error: str | None


class WebhookSender(Protocol):
    def post(self, url: str, headers: dict[str, str], body: bytes) -> DeliveryAttempt: ...
