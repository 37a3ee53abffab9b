"""The admin API's request and response bodies (docs/admin-api.md).

They are the OpenAPI document too: field descriptions are what an admin console developer reads.
Secrets are write-only: requests carry them as SecretStr, responses only as `SecretStatus`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from portal_sync.inbound.dataverse.mapping import FieldMapping
from portal_sync.inbound.source_config import SOURCE_ID_PATTERN, SignatureMode

FeatureName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,49}$")]
Owner = Literal["app", "portal"]
SourceIdText = Annotated[
    str,
    StringConstraints(pattern=SOURCE_ID_PATTERN),
    Field(description="Names the organisation's webhook endpoint: /portal-webhook/{source_id}"),
]
LogicalName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{1,99}$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$", to_lower=True)]
# As the gateway documents it (e.g. Ocp-Apim-Subscription-Key); HTTP compares it case-blind.
GatewayHeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]


def _https(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    return value


HttpsUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_https)]


def _storable(value: object) -> bool:
    """Text PostgreSQL can store: no NUL character, no lone surrogate (not UTF-8 encodable)."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_storable(item) for item in value)
    return True


class Strict(BaseModel):
    """A request body: unknown fields and text PostgreSQL cannot store are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _only_storable_text(cls, data: object) -> object:
        if not _storable(data):
            raise ValueError("text must be valid Unicode without NUL characters")
        return data


class DynamicsConnectionUpdate(Strict):
    base_url: Annotated[str, StringConstraints(max_length=2000)] = Field(
        description="The environment's https origin, e.g. https://hlf.crm4.dynamics.com: a "
        "public host name, no IP address, port, path, query or fragment. Changing it (or the "
        "tenant, client id or authentication type) needs the credentials again. With api_key, "
        "the API gateway's origin: Dynamics itself (*.dynamics.com) is refused."
    )
    auth_type: Literal["oauth_client_credentials", "api_key"] = Field(
        description="oauth_client_credentials: an Entra ID app registration, the only "
        "authentication Dynamics itself accepts. api_key: an API gateway in front of Dynamics "
        "(e.g. Azure API Management) that holds the OAuth credentials and checks a key."
    )
    tenant_id: str | None = Field(default=None, description="Entra ID tenant (OAuth only)")
    client_id: str | None = Field(default=None, description="App registration (OAuth only)")
    client_secret: SecretStr | None = Field(
        default=None, description="Write-only. Omit to keep the stored one."
    )
    api_key: SecretStr | None = Field(
        default=None, description="Write-only. Omit to keep the stored one."
    )
    api_key_header: GatewayHeaderName | None = Field(
        default=None,
        description="api_key only: the header the gateway reads the key from (default "
        "Ocp-Apim-Subscription-Key, Azure API Management's). Omit to keep the stored one.",
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.auth_type == "oauth_client_credentials":
            if not self.tenant_id or not self.client_id:
                raise ValueError("OAuth client credentials need tenant_id and client_id")
            if self.api_key is not None:
                raise ValueError("api_key does not belong to OAuth client credentials")
            if self.api_key_header is not None:
                raise ValueError("api_key_header does not belong to OAuth client credentials")
        elif self.client_secret is not None:
            raise ValueError("client_secret does not belong to API key authentication")
        return self

    def secret(self) -> str | None:
        value = self.client_secret if self.auth_type == "oauth_client_credentials" else self.api_key
        return value.get_secret_value() if value is not None else None


class IntegrationUpdate(Strict):
    """Fields present are changed; fields left out keep their value."""

    enabled: bool | None = None
    source_id: SourceIdText | None = None
    signature_mode: SignatureMode | None = None
    header_name: HeaderName | None = Field(
        default=None, description="header-key mode: the header Dataverse sends the key in"
    )
    dataverse_organization_id: UUID | None = Field(
        default=None,
        description="The Dynamics environment (Dataverse OrganizationId) webhooks must come "
        "from and whose members the organisation's events write; organisations with the same "
        "one share their members. Platform administrators only.",
    )
    application_user_ids: list[UUID] | None = Field(
        default=None, description="Our Dynamics application users: their changes are echoes"
    )
    dynamics: DynamicsConnectionUpdate | None = None
    website_visibility_column: LogicalName | None = Field(
        default=None,
        description="Two-options column of the contact that the public website filters mentors on",
    )
    field_mapping: FieldMapping | None = None
    reconcile_interval_minutes: int | None = Field(
        default=None,
        ge=5,
        le=1440,
        description="How often the organisation is reconciled with Dynamics, in minutes",
    )
    feature_ownership: dict[FeatureName, Owner] | None = None
    deep_links: dict[FeatureName, HttpsUrl] | None = Field(
        default=None,
        description="Per portal-owned feature, an https URL template; {org_id}, {contact_id} "
        "and {feature} are filled in (URL-encoded) for the member who opens it",
    )


class SecretStatus(BaseModel):
    configured: bool
    fingerprint: str | None = Field(default=None, description="First 12 hex of its SHA-256")
    updated_at: datetime | None = None


class WebhookSecretStatus(SecretStatus):
    previous_valid_until: datetime | None = Field(
        default=None, description="The previous secret still verifies until then"
    )


class DynamicsConnectionView(BaseModel):
    base_url: str
    auth_type: str
    tenant_id: str | None
    client_id: str | None
    credentials: SecretStatus
    api_key_header: str | None = Field(
        default=None, description="api_key only: the header the gateway reads the key from"
    )
    application_user_id: str | None = Field(
        default=None,
        description="The Dynamics application user (systemuserid) the credentials act as, "
        "learned through WhoAmI on the first website change; its changes are our own echoes",
    )
    application_user_learned_at: datetime | None = None


class IntegrationView(BaseModel):
    organization_id: UUID
    enabled: bool
    source_id: str
    webhook_url: str
    signature_mode: SignatureMode
    header_name: str
    webhook_secret: WebhookSecretStatus
    dataverse_organization_id: str | None
    application_user_ids: list[str]
    dynamics: DynamicsConnectionView | None
    website_visibility_column: str
    field_mapping: FieldMapping
    field_mapping_is_default: bool
    reconcile_interval_minutes: int
    feature_ownership: dict[str, Owner]
    deep_links: dict[str, str]
    updated_at: datetime


class RotateSecretRequest(Strict):
    grace_period_hours: float = Field(
        default=24, ge=0, le=24 * 14, description="How long the previous secret stays valid"
    )


class RotatedSecret(BaseModel):
    secret: str = Field(description="Shown once: store it in Dynamics (or the relay) now")
    fingerprint: str
    signature_mode: SignatureMode
    header_name: str | None
    previous_valid_until: datetime | None


class SecretTestResult(BaseModel):
    verified: bool
    status_code: int | None
    endpoint: str
    message: str


class SyncRunView(BaseModel):
    """An import or reconciliation: its progress while it runs, its result once it ended."""

    id: UUID
    kind: Literal["import", "reconcile"]
    phase: Literal["running", "succeeded", "failed"]
    trigger: str = Field(description="admin, schedule, onboarding, enabled or connection_changed")
    current_table: str | None = Field(description="The table being read; null once all are")
    full_read: bool = Field(
        description="Every row is read (an import, or a reconciliation whose delta link "
        "Dynamics no longer honoured)"
    )
    pages_read: int
    rows_read: int
    rows_changed: int
    rows_unchanged: int
    rows_failed: int
    rows_drift: int = Field(
        description="Of rows_changed, those no webhook had delivered (lost webhooks)"
    )
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None = Field(description="Its last progress")
    error: str | None


class VisibilityOutageView(BaseModel):
    started_at: datetime
    cause: str = Field(description="What the first delivery that gave up reported")
    mentors_affected: int
    alerted_at: datetime | None = Field(description="When on-call was told; null: not yet")


class VisibilityReadBackView(BaseModel):
    pass_started_at: datetime | None
    last_pass_finished_at: datetime | None
    mentors_read: int = Field(description="Mentors read back in the current (or last) pass")
    hand_edits_repaired: int = Field(
        description="Of those, edited by hand in Dynamics and set back (current or last pass)"
    )
    last_repaired_at: datetime | None


class WebsiteVisibilityStatus(BaseModel):
    """The organisation's peer mentors on the public website (docs/website-visibility.md)."""

    mentors: dict[str, int] = Field(description="Mentors by sync state: in_sync, pending, failed")
    outage: VisibilityOutageView | None = Field(
        description="Deliveries to Dynamics failing now (one on-call alert per outage); null: none"
    )
    read_back: VisibilityReadBackView | None = Field(
        description="The read-back of the Dynamics column; null: not started yet"
    )


class SyncStatus(BaseModel):
    organization_id: UUID
    last_processed_at: datetime | None
    last_success_at: datetime | None
    pending: int = Field(
        description="The organisation's accepted webhooks not yet applied (nor logged as "
        "failed): queued, or waiting for a retry"
    )
    failed: int = Field(description="Events whose latest attempt ended in error")
    last_24h: dict[str, int] = Field(description="Events processed in 24 h, by status")
    full_import: SyncRunView | None = Field(
        default=None, description="The running or last full import"
    )
    reconciliation: SyncRunView | None = Field(
        default=None, description="The running or last reconciliation"
    )
    next_reconciliation_at: datetime | None = Field(
        default=None,
        description="When the schedule reconciles next; null while the integration is "
        "disabled or has no Dynamics connection",
    )
    website_visibility: WebsiteVisibilityStatus | None = None


class SyncEventView(BaseModel):
    id: UUID
    event_id: str
    event_type: str
    source_message: str | None
    source_table: str | None
    status: str
    message: str
    received_at: datetime
    processed_at: datetime
    attempts: int
    can_reprocess: bool


class SyncEventPage(BaseModel):
    items: list[SyncEventView]
    next_cursor: str | None


class ReprocessResult(BaseModel):
    event_id: str
    status: Literal["queued"]
    removed_from_dead_letter_queue: int


class RejectionRate(BaseModel):
    received: int
    rejected: int
    rate_percent: float
    alert: bool
    minimum_volume: int


class OutageStatus(BaseModel):
    alert: bool
    last_healthy_at: datetime | None
    reason: str | None


class WebhookHealth(BaseModel):
    organization_id: UUID
    endpoint_url: str
    signature_mode: SignatureMode
    replay_protection: bool
    note: str | None
    received_24h: int
    accepted_24h: int
    duplicate_24h: int
    rejected_24h: int
    rejected_by_reason_24h: dict[str, int]
    last_hour: RejectionRate
    outage: OutageStatus


class OrganizationCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
    source_id: SourceIdText | None = Field(
        default=None, description="Defaults to a name derived from the organisation's name"
    )
    dataverse_organization_id: UUID | None = Field(
        default=None,
        description="The organisation's Dynamics environment (Dataverse OrganizationId), when "
        "known; without one its members are its own",
    )
    dynamics: DynamicsConnectionUpdate | None = Field(
        default=None,
        description="The Dynamics connection; with one, the organisation's members are "
        "imported at once",
    )


class OrganizationCreated(BaseModel):
    id: UUID
    name: str
    integration: IntegrationView


class Feature(BaseModel):
    feature: str
    owner: Owner
    deep_link: str | None


class FeatureList(BaseModel):
    organization_id: UUID
    features: list[Feature]


class MemberView(BaseModel):
    profile_id: UUID
    dynamics_contact_id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    role: str
    status: str
    last_synced_at: datetime | None


class MemberPage(BaseModel):
    items: list[MemberView]
    next_cursor: str | None


class CallerOrganization(BaseModel):
    id: UUID
    name: str
    role: Literal["admin", "coordinator"] = Field(
        description="The caller's role there: admin (every organisation route) or "
        "coordinator (the members view)"
    )


class CallerView(BaseModel):
    """Who the caller is, from the database (never from the token's claims)."""

    user_id: UUID
    is_global_admin: bool = Field(
        description="A platform administrator: may do everything in every organisation "
        "(GET /orgs lists them all) and onboard new ones"
    )
    organizations: list[CallerOrganization] = Field(
        description="The organisations the caller administers or coordinates through an "
        "active membership, by name"
    )


class OrganizationSummary(BaseModel):
    id: UUID
    name: str
    source_id: str | None = Field(description="Its webhook source; null: no integration yet")
    enabled: bool = Field(description="Its integration accepts webhooks")


class OrganizationPage(BaseModel):
    items: list[OrganizationSummary]
    next_cursor: str | None


class OnboardingTemplate(BaseModel):
    """What POST /orgs gives a new organisation's integration (its webhook secret is none yet;
    a Dynamics connection only when the request names one)."""

    enabled: bool
    signature_mode: SignatureMode
    field_mapping: FieldMapping = Field(description="The mapping it starts with")
    field_mapping_is_default: bool = Field(
        description="The platform's default mapping (which follows the platform's changes)"
    )
    feature_ownership: dict[str, Owner]
    deep_links: dict[str, str]


class AuditEntry(BaseModel):
    id: UUID
    actor: str
    action: str
    details: dict[str, object]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class FieldError(BaseModel):
    path: str = Field(description="The field, e.g. deep_links.courses ('body' for the whole body)")
    message: str


class ApiError(BaseModel):
    """Every error answer (Supabase's shape); `errors` only on 422."""

    code: int
    message: str
    errors: list[FieldError] | None = None
