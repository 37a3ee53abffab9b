"""What the admin logic needs from storage, Secrets Manager, SQS and HTTP, one protocol per
concern (adapters/postgres/admin_repository.py implements every storage one), and the records
they hand over."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from portal_sync.access.authority import Authority
from portal_sync.dataverse.connection import DEFAULT_API_KEY_HEADER
from portal_sync.inbound.source_config import SignatureMode, SourceConfig

# An integration update: record field (= column) name -> its new value, as JSON.
IntegrationChanges = dict[str, Any]


@dataclass(frozen=True)
class IntegrationRecord:
    """An organisation's stored integration settings (integration_configs). Secret values are
    never part of it: the webhook keys and Dynamics credentials live in the SecretVault, and
    of the credentials only a fingerprint and the time they were set are kept here."""

    organization_id: UUID
    enabled: bool
    source_id: str
    signature_mode: SignatureMode
    header_name: str
    dataverse_organization_id: str | None
    application_user_ids: list[str]
    field_mapping: dict[str, Any] | None  # None (or empty): the default mapping
    feature_ownership: dict[str, str]
    deep_links: dict[str, str]
    website_visibility_column: str
    dynamics_base_url: str | None
    dynamics_auth_type: str | None
    dynamics_tenant_id: str | None
    dynamics_client_id: str | None
    dynamics_credentials_fingerprint: str | None
    dynamics_credentials_updated_at: datetime | None
    updated_at: datetime
    # API-key mode (a gateway in front of Dataverse): the header the key goes in.
    dynamics_api_key_header: str = DEFAULT_API_KEY_HEADER
    # The application user the credentials act as (WhoAmI), learned by the website delivery.
    dynamics_application_user_id: str | None = None
    dynamics_application_user_learned_at: datetime | None = None
    # How often the schedule reconciles the organisation with Dynamics.
    reconcile_interval_minutes: int = 15

    @property
    def connected(self) -> bool:
        """A Dynamics base URL with credentials stored for it: its rows can be read."""
        return bool(self.dynamics_base_url and self.dynamics_credentials_fingerprint)

    def changed(self, changes: IntegrationChanges) -> IntegrationRecord:
        """The record as it is once `changes` are written."""
        values = dict(changes)
        if "signature_mode" in values:
            values["signature_mode"] = SignatureMode(values["signature_mode"])
        return replace(self, **values)


# The fields an update may change: all but the key and the time the database sets.
CHANGEABLE_FIELDS = frozenset(
    field.name
    for field in fields(IntegrationRecord)
    if field.name not in ("organization_id", "updated_at")
)


@dataclass(frozen=True)
class NewIntegration:
    """The settings an organisation starts with (onboarding); the rest take their defaults."""

    enabled: bool
    signature_mode: SignatureMode
    field_mapping: dict[str, Any] | None
    feature_ownership: dict[str, str]
    deep_links: dict[str, str]
    dataverse_organization_id: str | None


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class ReceiptCounts:
    by_outcome: dict[str, int]
    rejected_by_reason: dict[str, int]


class AccessRepository(Protocol):
    def authority(self, user_id: UUID) -> Authority: ...
    def organization_exists(self, organization_id: UUID) -> bool: ...


class IntegrationRepository(Protocol):
    def integration(self, organization_id: UUID) -> IntegrationRecord | None: ...
    def update_integration(self, organization_id: UUID, changes: IntegrationChanges) -> None: ...
    def source_owner(self, source_id: str) -> UUID | None: ...
    def create_organization(self, name: str, source_id: str, integration: NewIntegration) -> UUID:
        """A new organisation with its integration; its id."""

    def organizations_on_dataverse(self, dataverse_organization_id: str) -> list[UUID]:
        """The organisations whose Dataverse OrganizationId is this one (any case)."""

    def move_members(self, from_environment: str, to_environment: str) -> int:
        """Moves the profiles of one Dynamics environment to another; how many moved."""


class AuditLog(Protocol):
    def audit(
        self, organization_id: UUID | None, actor: str, action: str, details: dict[str, Any]
    ) -> None: ...
    def audit_log(self, organization_id: UUID, limit: int, cursor: str | None) -> Page: ...


class SyncLogReader(Protocol):
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


class ReceiptReader(Protocol):
    def receipt_counts(self, organization_id: UUID, since: datetime) -> ReceiptCounts: ...
    def last_receipt_at(
        self, organization_id: UUID, outcomes: tuple[str, ...]
    ) -> datetime | None: ...


class MemberDirectory(Protocol):
    def members(self, organization_id: UUID, limit: int, cursor: str | None) -> Page: ...
    def member(self, organization_id: UUID, profile_id: UUID) -> dict[str, Any] | None:
        """The profile's membership of this organisation, as a row of `members`; None when
        the profile is no member of it."""

    def contact_of(self, organization_id: UUID, user_id: UUID) -> str | None: ...


class OrganizationDirectory(Protocol):
    def organizations(self, *, only: list[UUID] | None, limit: int, cursor: str | None) -> Page:
        """Organisations by name (then id), with their source id and enabled flag; `only`:
        these and no others (None: all)."""

    def organization_names(self, organization_ids: list[UUID]) -> dict[UUID, str]:
        """Their names, in name order."""


class AdminRepository(
    AccessRepository,
    IntegrationRepository,
    AuditLog,
    SyncLogReader,
    ReceiptReader,
    MemberDirectory,
    OrganizationDirectory,
    Protocol,
):
    """Everything the admin API keeps in PostgreSQL, in one transaction per request."""


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
