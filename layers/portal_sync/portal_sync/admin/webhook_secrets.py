"""An organisation's webhook secret: rotating it (the previous one keeps verifying for a grace
period, so Dynamics can be switched over without losing events) and testing it with a signed
delivery to the organisation's own endpoint (docs/admin-api.md, "Integration settings").

A new secret is shown once, in the rotation's answer; the audit log records its fingerprint.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from portal_sync.access.authority import Access
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.integrations import Integrations, fingerprint
from portal_sync.admin.models import RotatedSecret, RotateSecretRequest, SecretTestResult
from portal_sync.admin.ports import AuditLog, SecretVault, WebhookSender
from portal_sync.inbound.portal_event import TEST_EVENT_TYPE
from portal_sync.inbound.signature import WHSEC_PREFIX, sign
from portal_sync.inbound.source_config import SignatureMode, SigningKey, SourceConfig
from portal_sync.observability import tracer


def new_secret(mode: SignatureMode) -> str:
    raw = secrets.token_bytes(32)
    if mode is SignatureMode.STANDARD_WEBHOOKS:
        return WHSEC_PREFIX + base64.b64encode(raw).decode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class WebhookSecrets:
    def __init__(
        self,
        access: AdminAccess,
        integrations: Integrations,
        audit: AuditLog,
        vault: SecretVault,
        sender: WebhookSender,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._access = access
        self._integrations = integrations
        self._audit = audit
        self._vault = vault
        self._sender = sender
        self._clock = clock

    @tracer.capture_method
    def rotate(
        self, caller: Caller, organization_id: UUID, request: RotateSecretRequest
    ) -> RotatedSecret:
        self._access.require(caller, organization_id, Access.ADMIN)
        record = self._integrations.record(organization_id)
        mode = record.signature_mode
        now = self._clock()
        grace_end = now + timedelta(hours=request.grace_period_hours)
        current = self._vault.read_source(record.source_id)
        # A key already expiring sooner keeps its own end: a rotation never extends a grace.
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
                source_id=record.source_id,
                organization_id=organization_id,
                enabled=record.enabled,
                mode=mode,
                keys=keys,
                header_name=record.header_name,
            )
        )
        previous_until = grace_end if previous and request.grace_period_hours > 0 else None
        self._audit.audit(
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
            header_name=record.header_name if mode is SignatureMode.HEADER_KEY else None,
            previous_valid_until=previous_until,
        )

    @tracer.capture_method
    def test(self, caller: Caller, organization_id: UUID) -> SecretTestResult:
        """Sends a signed `webhook.test` delivery to the endpoint, as Dynamics would: the ingest
        verifies and queues it, and the consumer logs it as skipped."""
        self._access.require(caller, organization_id, Access.ADMIN)
        record = self._integrations.record(organization_id)
        url = self._integrations.webhook_url(record.source_id)
        source = self._vault.read_source(record.source_id)
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
        if record.signature_mode is SignatureMode.HEADER_KEY:
            headers[record.header_name] = keys[0]
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
            message=_explain_test(attempt.status_code, attempt.error, record.enabled),
        )
        self._audit.audit(
            organization_id,
            caller.actor,
            "webhook_secret.tested",
            {"verified": result.verified, "status_code": attempt.status_code},
        )
        return result


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
