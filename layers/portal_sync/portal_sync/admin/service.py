"""The admin API's operations, one method per route, with authority checked in each.

Knows nothing of HTTP: the handler maps NotFound/Conflict/InvalidSettings/Forbidden to answers.
Every change is written to the audit log with what changed, never a secret value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from portal_sync.access.authority import Access, Authority, Forbidden
from portal_sync.access.caller import Caller
from portal_sync.admin import deep_links, health
from portal_sync.admin.models import (
    AuditEntry,
    AuditPage,
    DynamicsConnectionView,
    Feature,
    FeatureList,
    IntegrationUpdate,
    IntegrationView,
    MemberPage,
    MemberView,
    OrganizationCreate,
    OrganizationCreated,
    ReprocessResult,
    RotatedSecret,
    RotateSecretRequest,
    SecretStatus,
    SecretTestResult,
    SyncEventPage,
    SyncEventView,
    SyncStatus,
    WebhookHealth,
    WebhookSecretStatus,
)
from portal_sync.admin.ports import AdminRepository, EventRequeue, SecretVault, WebhookSender
from portal_sync.dataverse.base_url import BaseUrlNotAllowed, checked_base_url
from portal_sync.inbound.dataverse.mapping import DEFAULT_FIELD_MAPPING, FieldMapping
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.portal_event import TEST_EVENT_TYPE
from portal_sync.inbound.signature import WHSEC_PREFIX, sign
from portal_sync.inbound.source_config import SignatureMode, SigningKey, SourceConfig

WEBHOOK_PATH = "/functions/v1/portal-webhook/{source_id}"

# What a new organisation starts with (POST /orgs). Which features the portal owns and where
# their pages are is HLF's decision: these links are the starting point an admin adjusts.
PLATFORM_DEFAULT_TEMPLATE: dict[str, Any] = {
    "enabled": True,
    "signature_mode": SignatureMode.STANDARD_WEBHOOKS.value,
    "field_mapping": None,  # the default mapping (contact, hlf_membership, hlf_courseenrollment)
    "feature_ownership": {
        "membership": "portal",
        "courses": "portal",
        "events": "app",
        "peer_mentoring": "app",
        "expenses": "app",
    },
    "deep_links": {
        "membership": "https://minside.hlf.no/medlemskap",
        "courses": "https://minside.hlf.no/kurs",
    },
}


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class InvalidSettings(Exception):
    """Validation beyond one field's shape; `errors` are (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


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
    }
)


# The connection settings the stored credentials were entered for (name -> column).
_CREDENTIALS_BELONG_TO = {
    "base URL": "dynamics_base_url",
    "tenant": "dynamics_tenant_id",
    "client id": "dynamics_client_id",
    "authentication type": "dynamics_auth_type",
}


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def new_secret(mode: SignatureMode) -> str:
    raw = secrets.token_bytes(32)
    if mode is SignatureMode.STANDARD_WEBHOOKS:
        return WHSEC_PREFIX + base64.b64encode(raw).decode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class AdminService:
    def __init__(
        self,
        repo: AdminRepository,
        vault: SecretVault,
        requeue: EventRequeue,
        sender: WebhookSender,
        *,
        public_base_url: str,
        allow_local_dynamics: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`allow_local_dynamics`: a Dynamics base URL may be plain http on this machine
        (`make run`'s stand-in; dataverse/base_url.py)."""
        self._repo = repo
        self._vault = vault
        self._requeue = requeue
        self._sender = sender
        self._base_url = public_base_url.rstrip("/")
        self._allow_local_dynamics = allow_local_dynamics
        self._clock = clock
        self._authorities: dict[UUID, Authority] = {}

    # -- authority --------------------------------------------------------------------------

    def _require(self, caller: Caller, organization_id: UUID, level: Access) -> None:
        self._authority(caller).require(organization_id, level)
        if not self._repo.organization_exists(organization_id):
            # Only callers with access get this far, so a 404 tells outsiders nothing.
            raise NotFound("No such organisation")

    def _authority(self, caller: Caller) -> Authority:
        if caller.user_id not in self._authorities:
            self._authorities[caller.user_id] = self._repo.authority(caller.user_id)
        return self._authorities[caller.user_id]

    # -- integration settings -----------------------------------------------------------------

    def get_integration(self, caller: Caller, organization_id: UUID) -> IntegrationView:
        self._require(caller, organization_id, Access.ADMIN)
        return self._integration_view(organization_id)

    def update_integration(
        self, caller: Caller, organization_id: UUID, update: IntegrationUpdate
    ) -> IntegrationView:
        self._require(caller, organization_id, Access.ADMIN)
        row = self._integration_row(organization_id)
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
        ) != member_environment(organization_id, row["dataverse_organization_id"])
        if rebinds and not self._authority(caller).is_global_admin:
            # The environment decides whose people the organisation's webhooks may write.
            raise Forbidden(
                "Only platform administrators may change the organisation's Dynamics "
                "environment (dataverse_organization_id)"
            )
        # The update's fields are named as the columns are; the Dynamics connection is split.
        changes: dict[str, Any] = {key: value for key, value in sent.items() if key != "dynamics"}
        audit: dict[str, Any] = {"changed": sorted(sent)}
        if update.dynamics is not None:
            changes.update(self._dynamics_changes(organization_id, row, update, audit))

        merged = {**row, **changes}
        self._check_features(merged)
        new_source = merged["source_id"]
        if new_source != row["source_id"]:
            owner = self._repo.source_owner(new_source)
            if owner is not None and owner != organization_id:
                raise Conflict(f"The source id '{new_source}' is used by another organisation")
            audit["source_id"] = {"from": row["source_id"], "to": new_source}

        if changes:
            self._repo.update_integration(organization_id, changes)
        if rebinds:
            audit["members_moved"] = self._rebind_members(organization_id, row, merged)
        self._sync_source(organization_id, row["source_id"], merged)
        self._repo.audit(organization_id, caller.actor, "integration.updated", audit)
        return self._integration_view(organization_id)

    def _dynamics_changes(
        self,
        organization_id: UUID,
        row: dict[str, Any],
        update: IntegrationUpdate,
        audit: dict[str, Any],
    ) -> dict[str, Any]:
        dynamics = update.dynamics
        assert dynamics is not None
        try:
            base_url = checked_base_url(dynamics.base_url, allow_local=self._allow_local_dynamics)
        except BaseUrlNotAllowed as exc:
            raise InvalidSettings([("dynamics.base_url", str(exc))]) from None
        changes: dict[str, Any] = {
            "dynamics_base_url": base_url,
            "dynamics_auth_type": dynamics.auth_type,
            "dynamics_tenant_id": dynamics.tenant_id,
            "dynamics_client_id": dynamics.client_id,
        }
        secret = dynamics.secret()
        if secret is not None:
            self._vault.write_dynamics_credentials(organization_id, secret)
            changes["dynamics_credentials_fingerprint"] = fingerprint(secret)
            changes["dynamics_credentials_updated_at"] = self._clock()
            audit["dynamics_credentials"] = "replaced"
            return changes
        field = "client_secret" if dynamics.auth_type == "oauth_client_credentials" else "api_key"
        if not row.get("dynamics_credentials_fingerprint"):
            raise InvalidSettings(
                [(f"dynamics.{field}", "is required when the connection has no credentials yet")]
            )
        # Stored credentials are only ever sent where they were entered for.
        moved = [
            name
            for name, column in _CREDENTIALS_BELONG_TO.items()
            if changes[column] != self._stored(row, column)
        ]
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

    def _stored(self, row: dict[str, Any], column: str) -> Any:
        value = row.get(column)
        if column == "dynamics_base_url" and value:
            try:
                return checked_base_url(value, allow_local=self._allow_local_dynamics)
            except BaseUrlNotAllowed:
                return None  # stored before the rule: the credentials must be entered again
        return value

    def _rebind_members(
        self, organization_id: UUID, row: dict[str, Any], merged: dict[str, Any]
    ) -> int:
        """The organisation's members follow it to its new Dynamics environment, unless other
        organisations stay on the old one (then the members are theirs too, and stay)."""
        previous = row["dataverse_organization_id"]
        if previous and any(
            other != organization_id for other in self._repo.organizations_on_dataverse(previous)
        ):
            return 0
        return self._repo.move_members(
            member_environment(organization_id, previous),
            member_environment(organization_id, merged["dataverse_organization_id"]),
        )

    def _check_features(self, merged: dict[str, Any]) -> None:
        links = merged.get("deep_links") or {}
        missing = [
            (f"deep_links.{feature}", "a portal-owned feature needs a deep link")
            for feature, owner in sorted((merged.get("feature_ownership") or {}).items())
            if owner == "portal" and feature not in links
        ]
        if missing:
            raise InvalidSettings(missing)

    def _sync_source(
        self, organization_id: UUID, previous_source_id: str, merged: dict[str, Any]
    ) -> None:
        """Writes what the ingest reads (Secrets Manager), keeping the keys."""
        current = self._vault.read_source(previous_source_id)
        config = SourceConfig(
            source_id=merged["source_id"],
            organization_id=organization_id,
            enabled=merged["enabled"],
            mode=SignatureMode(merged["signature_mode"]),
            keys=current.keys if current else [],
            header_name=merged["header_name"],
        )
        self._vault.write_source(config)
        if previous_source_id != config.source_id:
            self._vault.delete_source(previous_source_id)

    def _integration_row(self, organization_id: UUID) -> dict[str, Any]:
        row = self._repo.integration(organization_id)
        if row is None:
            raise NotFound("The organisation has no integration yet")
        return row

    def _integration_view(self, organization_id: UUID) -> IntegrationView:
        row = self._integration_row(organization_id)
        source = self._vault.read_source(row["source_id"])
        now = self._clock()
        active = [key for key in (source.keys if source else []) if key.is_active(now)]
        newest = active[0] if active else None
        previous_until = max(
            (key.expires_at for key in active[1:] if key.expires_at is not None), default=None
        )
        dynamics = None
        if row["dynamics_base_url"]:
            dynamics = DynamicsConnectionView(
                base_url=row["dynamics_base_url"],
                auth_type=row["dynamics_auth_type"],
                tenant_id=row["dynamics_tenant_id"],
                client_id=row["dynamics_client_id"],
                credentials=SecretStatus(
                    configured=bool(row["dynamics_credentials_fingerprint"]),
                    fingerprint=row["dynamics_credentials_fingerprint"],
                    updated_at=row["dynamics_credentials_updated_at"],
                ),
            )
        return IntegrationView(
            organization_id=organization_id,
            enabled=row["enabled"],
            source_id=row["source_id"],
            webhook_url=self._webhook_url(row["source_id"]),
            signature_mode=SignatureMode(row["signature_mode"]),
            header_name=row["header_name"],
            webhook_secret=WebhookSecretStatus(
                configured=newest is not None,
                fingerprint=fingerprint(newest.value) if newest else None,
                updated_at=newest.created_at if newest else None,
                previous_valid_until=previous_until,
            ),
            dataverse_organization_id=row["dataverse_organization_id"],
            application_user_ids=list(row["application_user_ids"] or []),
            dynamics=dynamics,
            website_visibility_column=row["website_visibility_column"],
            field_mapping=(
                FieldMapping.model_validate(row["field_mapping"])
                if row["field_mapping"]
                else DEFAULT_FIELD_MAPPING
            ),
            field_mapping_is_default=not row["field_mapping"],
            feature_ownership=row["feature_ownership"] or {},
            deep_links=row["deep_links"] or {},
            updated_at=row["updated_at"],
        )

    def _webhook_url(self, source_id: str) -> str:
        return self._base_url + WEBHOOK_PATH.format(source_id=source_id)

    # -- webhook secrets ----------------------------------------------------------------------

    def rotate_secret(
        self, caller: Caller, organization_id: UUID, request: RotateSecretRequest
    ) -> RotatedSecret:
        self._require(caller, organization_id, Access.ADMIN)
        row = self._integration_row(organization_id)
        mode = SignatureMode(row["signature_mode"])
        now = self._clock()
        grace_end = now + timedelta(hours=request.grace_period_hours)
        current = self._vault.read_source(row["source_id"])
        previous = [
            key.model_copy(update={"expires_at": min(grace_end, key.expires_at or grace_end)})
            for key in (current.keys if current else [])
            if key.is_active(now)
        ]
        value = new_secret(mode)
        keys = [SigningKey(value=value, created_at=now)]
        if request.grace_period_hours > 0:
            keys += previous
        self._vault.write_source(
            SourceConfig(
                source_id=row["source_id"],
                organization_id=organization_id,
                enabled=row["enabled"],
                mode=mode,
                keys=keys,
                header_name=row["header_name"],
            )
        )
        previous_until = grace_end if previous and request.grace_period_hours > 0 else None
        self._repo.audit(
            organization_id,
            caller.actor,
            "webhook_secret.rotated",
            {
                "fingerprint": fingerprint(value),
                "previous_valid_until": previous_until.isoformat() if previous_until else None,
            },
        )
        return RotatedSecret(
            secret=value,
            fingerprint=fingerprint(value),
            signature_mode=mode,
            header_name=row["header_name"] if mode is SignatureMode.HEADER_KEY else None,
            previous_valid_until=previous_until,
        )

    def test_secret(self, caller: Caller, organization_id: UUID) -> SecretTestResult:
        self._require(caller, organization_id, Access.ADMIN)
        row = self._integration_row(organization_id)
        url = self._webhook_url(row["source_id"])
        source = self._vault.read_source(row["source_id"])
        keys = source.active_keys(self._clock()) if source else []
        if not keys:
            return SecretTestResult(
                verified=False,
                status_code=None,
                endpoint=url,
                message="No webhook secret is configured yet: rotate one first.",
            )
        now = self._clock()
        body = json.dumps(
            {
                "type": TEST_EVENT_TYPE,
                "occurred_at": now.isoformat(),
                "note": "Signed test delivery from the admin console; nothing is applied.",
            }
        ).encode()
        headers = {"content-type": "application/json"}
        if row["signature_mode"] == SignatureMode.HEADER_KEY.value:
            headers[row["header_name"]] = keys[0]
        else:
            webhook_id = f"msg_test_{uuid.uuid4().hex}"
            timestamp = int(now.timestamp())
            headers |= {
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(keys[0], webhook_id, timestamp, body),
            }
        attempt = self._sender.post(url, headers, body)
        result = SecretTestResult(
            verified=attempt.status_code == 202,
            status_code=attempt.status_code,
            endpoint=url,
            message=_explain_test(attempt.status_code, attempt.error, row["enabled"]),
        )
        self._repo.audit(
            organization_id,
            caller.actor,
            "webhook_secret.tested",
            {"verified": result.verified, "status_code": attempt.status_code},
        )
        return result

    # -- sync history ---------------------------------------------------------------------------

    def sync_status(self, caller: Caller, organization_id: UUID) -> SyncStatus:
        self._require(caller, organization_id, Access.ADMIN)
        summary = self._repo.sync_summary(organization_id, self._clock() - timedelta(hours=24))
        return SyncStatus(
            organization_id=organization_id,
            last_processed_at=summary["last_processed_at"],
            last_success_at=summary["last_success_at"],
            pending=summary["pending"],
            failed=summary["failed"],
            last_24h=summary["last_24h"],
        )

    def sync_events(
        self,
        caller: Caller,
        organization_id: UUID,
        *,
        status: str | None,
        event_type: str | None,
        limit: int,
        cursor: str | None,
    ) -> SyncEventPage:
        self._require(caller, organization_id, Access.ADMIN)
        page = self._repo.sync_events(
            organization_id, status=status, event_type=event_type, limit=limit, cursor=cursor
        )
        return SyncEventPage(
            items=[SyncEventView.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )

    def reprocess(self, caller: Caller, organization_id: UUID, id: UUID) -> ReprocessResult:
        self._require(caller, organization_id, Access.ADMIN)
        row = self._repo.sync_event(organization_id, id)
        if row is None:
            raise NotFound("No such event in this organisation")
        if row["status"] != "error":
            raise Conflict(
                f"Only events that ended in error can be reprocessed; this one is {row['status']}"
            )
        message = self._repo.kept_payload(organization_id, row["event_id"])
        if message is None:
            raise Conflict("The original event was not kept, so it cannot be reprocessed")
        self._requeue.send(message)
        removed = self._requeue.remove_parked(organization_id, row["event_id"])
        self._repo.audit(
            organization_id,
            caller.actor,
            "sync_event.reprocessed",
            {"event_id": row["event_id"], "removed_from_dead_letter_queue": removed},
        )
        return ReprocessResult(
            event_id=row["event_id"], status="queued", removed_from_dead_letter_queue=removed
        )

    # -- webhook health ---------------------------------------------------------------------------

    def webhook_health(self, caller: Caller, organization_id: UUID) -> WebhookHealth:
        self._authority(caller).require_global_admin()
        row = self._integration_row(organization_id)
        now = self._clock()
        day = self._repo.receipt_counts(organization_id, now - timedelta(hours=24))
        hour = self._repo.receipt_counts(organization_id, now - timedelta(hours=1))
        recent = self._repo.receipt_counts(organization_id, now - health.OUTAGE_WINDOW)
        last_healthy = self._repo.last_receipt_at(organization_id, ("accepted", "duplicate"))
        mode = SignatureMode(row["signature_mode"])
        return WebhookHealth(
            organization_id=organization_id,
            endpoint_url=self._webhook_url(row["source_id"]),
            signature_mode=mode,
            replay_protection=mode is SignatureMode.STANDARD_WEBHOOKS,
            note=(
                "header-key mode has no replay protection: anyone who sees one request can "
                "resend it. Prefer signed (standard-webhooks) delivery through a relay."
                if mode is SignatureMode.HEADER_KEY
                else None
            ),
            received_24h=health.received(day),
            accepted_24h=day.by_outcome.get("accepted", 0),
            duplicate_24h=day.by_outcome.get("duplicate", 0),
            rejected_24h=day.by_outcome.get("rejected", 0),
            rejected_by_reason_24h=day.rejected_by_reason,
            last_hour=health.rejection_rate(hour),
            outage=health.outage(recent, last_healthy, now),
        )

    # -- organisations, features, members, audit -------------------------------------------------

    def create_organization(
        self, caller: Caller, request: OrganizationCreate
    ) -> OrganizationCreated:
        self._authority(caller).require_global_admin()
        source_id = request.source_id or _source_id_for(request.name)
        if self._repo.source_owner(source_id) is not None:
            raise Conflict(f"The source id '{source_id}' is already in use")
        template = PLATFORM_DEFAULT_TEMPLATE
        organization_id = self._repo.create_organization(
            request.name,
            source_id,
            {
                "enabled": template["enabled"],
                "signature_mode": template["signature_mode"],
                "field_mapping": template["field_mapping"],
                "feature_ownership": template["feature_ownership"],
                "deep_links": template["deep_links"],
                "dataverse_organization_id": (
                    str(request.dataverse_organization_id)
                    if request.dataverse_organization_id
                    else None
                ),
            },
        )
        self._vault.write_source(
            SourceConfig(
                source_id=source_id,
                organization_id=organization_id,
                enabled=template["enabled"],
                mode=SignatureMode(template["signature_mode"]),
            )
        )
        self._repo.audit(
            organization_id,
            caller.actor,
            "organization.created",
            {"name": request.name, "source_id": source_id, "template": "platform-default"},
        )
        return OrganizationCreated(
            id=organization_id,
            name=request.name,
            integration=self._integration_view(organization_id),
        )

    def features(self, caller: Caller, organization_id: UUID) -> FeatureList:
        self._require(caller, organization_id, Access.MEMBER)
        row = self._integration_row(organization_id)
        contact_id = self._repo.contact_of(organization_id, caller.user_id)
        links: dict[str, str] = row["deep_links"] or {}
        features = []
        for feature, owner in sorted((row["feature_ownership"] or {}).items()):
            link = None
            if owner == "portal" and feature in links:
                link = deep_links.render(
                    links[feature],
                    org_id=str(organization_id),
                    feature=feature,
                    contact_id=contact_id,
                )
            features.append(Feature(feature=feature, owner=owner, deep_link=link))
        return FeatureList(organization_id=organization_id, features=features)

    def members(
        self, caller: Caller, organization_id: UUID, *, limit: int, cursor: str | None
    ) -> MemberPage:
        self._require(caller, organization_id, Access.COORDINATOR)
        page = self._repo.members(organization_id, limit, cursor)
        return MemberPage(
            items=[MemberView.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )

    def audit_log(
        self, caller: Caller, organization_id: UUID, *, limit: int, cursor: str | None
    ) -> AuditPage:
        self._require(caller, organization_id, Access.ADMIN)
        page = self._repo.audit_log(organization_id, limit, cursor)
        return AuditPage(
            items=[AuditEntry.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )


def _source_id_for(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "org"
    return f"{slug}-{secrets.token_hex(3)}"


def _explain_test(status_code: int | None, error: str | None, enabled: bool) -> str:
    if status_code is None:
        return f"The endpoint could not be reached ({error or 'no answer'}). Check its URL and that the service is running."
    if status_code == 202:
        return (
            "The endpoint verified the signed test delivery and queued it; "
            "it appears in the sync log as skipped."
        )
    if status_code == 401:
        if not enabled:
            return "The endpoint refused the delivery: the integration is disabled."
        return "The endpoint refused the signature. The stored secret does not verify: rotate it and try again."
    if status_code == 503:
        return "The endpoint verified the delivery but could not queue it; try again in a minute."
    return f"The endpoint answered {status_code}; the delivery was not accepted."
