"""An organisation's integration settings: reading them, and changing them with the rules a
change must keep (docs/admin-api.md, "Integration settings"):

- a setting that always has a value cannot be set to null;
- only platform administrators move an organisation to another Dynamics environment
  (dataverse_organization_id), and its members follow it unless other organisations stay;
- stored Dynamics credentials are only sent where they were entered for: a changed base URL,
  tenant, client id or authentication type needs them again (docs/security.md);
- an API key is for a gateway in front of Dynamics, never for Dynamics itself (which accepts
  only Entra bearer tokens); the application user learned through WhoAmI is forgotten when
  the connection or its credentials change (docs/admin-api.md);
- a portal-owned feature needs a deep link; a source id belongs to one organisation;
- what the ingest reads (the source in Secrets Manager) is rewritten with its keys kept;
- enabling the integration, or connecting it to Dynamics (first, or at another base URL), starts
  a full import of the members Dynamics has (admin/sync_runs.py).

Every change is audited with what changed, never a secret value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from portal_sync.access.authority import Access, Forbidden
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.errors import Conflict, InvalidSettings
from portal_sync.admin.integrations import Integrations, fingerprint
from portal_sync.admin.models import DynamicsConnectionUpdate, IntegrationUpdate, IntegrationView
from portal_sync.admin.ports import (
    AuditLog,
    IntegrationChanges,
    IntegrationRecord,
    IntegrationRepository,
    SecretVault,
)
from portal_sync.admin.sync_runs import SyncRuns
from portal_sync.dataverse.base_url import BaseUrlNotAllowed, checked_base_url
from portal_sync.dataverse.connection import is_dataverse_host
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.source_config import SourceConfig
from portal_sync.observability import tracer
from portal_sync.reconciliation.ports import Run, Trigger

# Settings that always have a value (NOT NULL columns): an explicit null cannot change them.
_NOT_NULL_SETTINGS = frozenset(
    {
        "enabled",
        "source_id",
        "signature_mode",
        "header_name",
        "application_user_ids",
        "feature_ownership",
        "deep_links",
        "website_visibility_column",
        "reconcile_interval_minutes",
    }
)


class IntegrationSettings:
    def __init__(
        self,
        access: AdminAccess,
        integrations: Integrations,
        repo: IntegrationRepository,
        audit: AuditLog,
        vault: SecretVault,
        runs: SyncRuns,
        *,
        allow_local_dynamics: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`allow_local_dynamics`: a Dynamics base URL may be plain http on this machine
        (`make run`'s stand-in; dataverse/base_url.py)."""
        self._access = access
        self._integrations = integrations
        self._repo = repo
        self._audit = audit
        self._vault = vault
        self._runs = runs
        self._allow_local_dynamics = allow_local_dynamics
        self._clock = clock

    @tracer.capture_method
    def get(self, caller: Caller, organization_id: UUID) -> IntegrationView:
        self._access.require(caller, organization_id, Access.ADMIN)
        return self._integrations.view(organization_id)

    @tracer.capture_method
    def update(
        self,
        caller: Caller,
        organization_id: UUID,
        update: IntegrationUpdate,
        *,
        import_trigger: Trigger | None = None,
    ) -> IntegrationView:
        """`import_trigger`: why an import that this change starts is started (onboarding);
        by default, the integration was enabled or its Dynamics connection changed."""
        self._access.require(caller, organization_id, Access.ADMIN)
        record = self._integrations.record(organization_id)
        sent = update.model_dump(exclude_unset=True, mode="json")
        nulls = sorted(
            key for key, value in sent.items() if value is None and key in _NOT_NULL_SETTINGS
        )
        if nulls:
            raise InvalidSettings(
                [(key, "cannot be null; leave it out to keep the current value") for key in nulls]
            )
        rebinds = "dataverse_organization_id" in sent and member_environment(
            organization_id, sent["dataverse_organization_id"]
        ) != member_environment(organization_id, record.dataverse_organization_id)
        if rebinds and not self._access.is_platform_admin(caller):
            # The environment decides whose people the organisation's webhooks may write.
            raise Forbidden(
                "Only platform administrators may change the organisation's Dynamics "
                "environment (dataverse_organization_id)"
            )
        # The update's fields are named as the record's are; the Dynamics connection is split.
        changes: IntegrationChanges = {
            key: value for key, value in sent.items() if key != "dynamics"
        }
        audit: dict[str, Any] = {"changed": sorted(sent)}
        new_secret = update.dynamics.secret() if update.dynamics is not None else None
        if update.dynamics is not None:
            changes.update(self._dynamics_changes(record, update.dynamics, audit))

        merged = record.changed(changes)
        _check_features(merged)
        if merged.source_id != record.source_id:
            owner = self._repo.source_owner(merged.source_id)
            if owner is not None and owner != organization_id:
                raise Conflict(
                    f"The source id '{merged.source_id}' is used by another organisation"
                )
            audit["source_id"] = {"from": record.source_id, "to": merged.source_id}

        if changes:
            self._repo.update_integration(organization_id, changes)
        if new_secret is not None:
            # Only once every check passed, after the row (whose transaction a failed write
            # rolls back): a refused change must leave the stored credentials as they were.
            self._vault.write_dynamics_credentials(organization_id, new_secret)
        if rebinds:
            audit["members_moved"] = self._rebind_members(organization_id, record, merged)
        self._sync_source(organization_id, record.source_id, merged)
        started = self._import_after(record, merged, import_trigger)
        if started is not None:
            audit["import_started"] = str(started.id)
        self._audit.audit(organization_id, caller.actor, "integration.updated", audit)
        return self._integrations.view(organization_id)

    def _import_after(
        self, record: IntegrationRecord, merged: IntegrationRecord, trigger: Trigger | None
    ) -> Run | None:
        """Members Dynamics has and no webhook will announce are imported when the
        integration is enabled or reads from another Dynamics (docs/admin-api.md)."""
        # Compared canonically: the same URL sent again in another spelling changes nothing.
        connection_changed = merged.connected and (
            not record.connected or self._stored_base_url(merged) != self._stored_base_url(record)
        )
        if trigger is None:
            if merged.enabled and not record.enabled:
                trigger = Trigger.ENABLED
            elif connection_changed:
                trigger = Trigger.CONNECTION_CHANGED
            else:
                return None
        return self._runs.import_after(merged, trigger, connection_changed=connection_changed)

    def _dynamics_changes(
        self,
        record: IntegrationRecord,
        dynamics: DynamicsConnectionUpdate,
        audit: dict[str, Any],
    ) -> IntegrationChanges:
        try:
            base_url = checked_base_url(dynamics.base_url, allow_local=self._allow_local_dynamics)
        except BaseUrlNotAllowed as exc:
            raise InvalidSettings([("dynamics.base_url", str(exc))]) from None
        if dynamics.auth_type == "api_key" and is_dataverse_host(base_url):
            raise InvalidSettings(
                [
                    (
                        "dynamics.auth_type",
                        "api_key is for an API gateway in front of Dynamics: Dynamics itself "
                        "accepts only oauth_client_credentials (or enter the gateway's URL)",
                    )
                ]
            )
        changes: IntegrationChanges = {
            "dynamics_base_url": base_url,
            "dynamics_auth_type": dynamics.auth_type,
            "dynamics_tenant_id": dynamics.tenant_id,
            "dynamics_client_id": dynamics.client_id,
        }
        if dynamics.api_key_header is not None:
            changes["dynamics_api_key_header"] = dynamics.api_key_header
        # Stored credentials are only ever sent where they were entered for.
        entered_for = (
            ("base URL", self._stored_base_url(record), base_url),
            ("tenant", record.dynamics_tenant_id, dynamics.tenant_id),
            ("client id", record.dynamics_client_id, dynamics.client_id),
            ("authentication type", record.dynamics_auth_type, dynamics.auth_type),
        )
        moved = [name for name, stored, sent in entered_for if sent != stored]
        secret = dynamics.secret()
        if secret is not None or moved:
            # Other credentials may act as another application user: WhoAmI is asked again.
            changes["dynamics_application_user_id"] = None
            changes["dynamics_application_user_learned_at"] = None
        if secret is not None:  # written to the vault by update(), once all checks passed
            changes["dynamics_credentials_fingerprint"] = fingerprint(secret)
            changes["dynamics_credentials_updated_at"] = self._clock()
            audit["dynamics_credentials"] = "replaced"
            return changes
        field = "client_secret" if dynamics.auth_type == "oauth_client_credentials" else "api_key"
        if not record.dynamics_credentials_fingerprint:
            raise InvalidSettings(
                [(f"dynamics.{field}", "is required when the connection has no credentials yet")]
            )
        if moved:
            raise InvalidSettings(
                [
                    (
                        f"dynamics.{field}",
                        f"is required again: the {' and '.join(moved)} changed, and the stored "
                        "credentials are only sent where they were entered for",
                    )
                ]
            )
        return changes

    def _stored_base_url(self, record: IntegrationRecord) -> str | None:
        """The stored base URL in its canonical form, to compare with the one sent."""
        if not record.dynamics_base_url:
            return record.dynamics_base_url
        try:
            return checked_base_url(
                record.dynamics_base_url, allow_local=self._allow_local_dynamics
            )
        except BaseUrlNotAllowed:
            return None  # stored before the rule: the credentials must be entered again

    def _rebind_members(
        self, organization_id: UUID, record: IntegrationRecord, merged: IntegrationRecord
    ) -> int:
        """The organisation's members follow it to its new Dynamics environment, unless other
        organisations stay on the old one (then the members are theirs too, and stay)."""
        previous = record.dataverse_organization_id
        if previous and any(
            other != organization_id for other in self._repo.organizations_on_dataverse(previous)
        ):
            return 0
        return self._repo.move_members(
            member_environment(organization_id, previous),
            member_environment(organization_id, merged.dataverse_organization_id),
        )

    def _sync_source(
        self, organization_id: UUID, previous_source_id: str, merged: IntegrationRecord
    ) -> None:
        """Writes what the ingest reads (Secrets Manager), keeping the keys."""
        current = self._vault.read_source(previous_source_id)
        config = SourceConfig(
            source_id=merged.source_id,
            organization_id=organization_id,
            enabled=merged.enabled,
            mode=merged.signature_mode,
            keys=current.keys if current else [],
            header_name=merged.header_name,
        )
        self._vault.write_source(config)
        if previous_source_id != config.source_id:
            self._vault.delete_source(previous_source_id)


def _check_features(merged: IntegrationRecord) -> None:
    links = merged.deep_links or {}
    missing = [
        (f"deep_links.{feature}", "a portal-owned feature needs a deep link")
        for feature, owner in sorted((merged.feature_ownership or {}).items())
        if owner == "portal" and feature not in links
    ]
    if missing:
        raise InvalidSettings(missing)
