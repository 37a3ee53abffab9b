"""Reading an organisation's integration, for every admin service that needs it: its record
(NotFound without one), its webhook endpoint, and the view admins get of it, which shows the
secrets' status (configured, fingerprint, since when) but never their values."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from portal_sync.admin.errors import NotFound
from portal_sync.admin.models import (
    DynamicsConnectionView,
    IntegrationView,
    SecretStatus,
    WebhookSecretStatus,
)
from portal_sync.admin.ports import IntegrationRecord, IntegrationRepository, SecretVault
from portal_sync.inbound.dataverse.mapping import DEFAULT_FIELD_MAPPING, FieldMapping
from portal_sync.inbound.source_config import SourceConfig
from portal_sync.observability import tracer

WEBHOOK_PATH = "/functions/v1/portal-webhook/{source_id}"


def fingerprint(secret: str) -> str:
    """How a secret is shown and audited: the first 12 hex of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class Integrations:
    def __init__(
        self,
        repo: IntegrationRepository,
        vault: SecretVault,
        *,
        public_base_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repo
        self._vault = vault
        self._base_url = public_base_url.rstrip("/")
        self._clock = clock

    def record(self, organization_id: UUID) -> IntegrationRecord:
        record = self._repo.integration(organization_id)
        if record is None:
            raise NotFound("The organisation has no integration yet")
        return record

    def webhook_url(self, source_id: str) -> str:
        return self._base_url + WEBHOOK_PATH.format(source_id=source_id)

    @tracer.capture_method
    def view(self, organization_id: UUID) -> IntegrationView:
        record = self.record(organization_id)
        return IntegrationView(
            organization_id=organization_id,
            enabled=record.enabled,
            source_id=record.source_id,
            webhook_url=self.webhook_url(record.source_id),
            signature_mode=record.signature_mode,
            header_name=record.header_name,
            # The keys' truth is the source the ingest verifies with, not a copy of ours.
            webhook_secret=self._secret_status(self._vault.read_source(record.source_id)),
            dataverse_organization_id=record.dataverse_organization_id,
            application_user_ids=list(record.application_user_ids or []),
            dynamics=_dynamics_view(record),
            website_visibility_column=record.website_visibility_column,
            field_mapping=(
                FieldMapping.model_validate(record.field_mapping)
                if record.field_mapping
                else DEFAULT_FIELD_MAPPING
            ),
            field_mapping_is_default=not record.field_mapping,
            reconcile_interval_minutes=record.reconcile_interval_minutes,
            feature_ownership=record.feature_ownership or {},
            deep_links=record.deep_links or {},
            updated_at=record.updated_at,
        )

    def _secret_status(self, source: SourceConfig | None) -> WebhookSecretStatus:
        now = self._clock()
        # Newest first: the first active key is the current one, the others are in their grace.
        active = [key for key in (source.keys if source else []) if key.is_active(now)]
        newest = active[0] if active else None
        previous_until = max(
            (key.expires_at for key in active[1:] if key.expires_at is not None), default=None
        )
        return WebhookSecretStatus(
            configured=newest is not None,
            fingerprint=fingerprint(newest.value) if newest else None,
            updated_at=newest.created_at if newest else None,
            previous_valid_until=previous_until,
        )


def _dynamics_view(record: IntegrationRecord) -> DynamicsConnectionView | None:
    if not record.dynamics_base_url:
        return None
    return DynamicsConnectionView(
        base_url=record.dynamics_base_url,
        auth_type=record.dynamics_auth_type or "",
        tenant_id=record.dynamics_tenant_id,
        client_id=record.dynamics_client_id,
        credentials=SecretStatus(
            configured=bool(record.dynamics_credentials_fingerprint),
            fingerprint=record.dynamics_credentials_fingerprint,
            updated_at=record.dynamics_credentials_updated_at,
        ),
        api_key_header=(
            record.dynamics_api_key_header if record.dynamics_auth_type == "api_key" else None
        ),
        application_user_id=record.dynamics_application_user_id,
        application_user_learned_at=record.dynamics_application_user_learned_at,
    )
