"""Webhook health from the recorded receipts, for platform administrators (docs/admin-api.md,
"Webhook health"; what on-call does about an alert: docs/runbook.md).

Rejection rate: rejected / received over the last rolling hour, alerting above 10 % once at
least MINIMUM_VOLUME requests arrived, so one bad request in a quiet hour pages nobody.

Outage: the endpoint is *healthy* when it accepts what Dynamics sends, so the last-known healthy
time is the newest accepted (or duplicate) receipt. An outage is on when, within the last
OUTAGE_WINDOW, requests arrived and none was accepted: either at least OUTAGE_MIN_REQUESTS of
them, or any request refused because the queue was unavailable (our side is down). Silence is
not an outage: Dynamics may simply have nothing to send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.integrations import Integrations
from portal_sync.admin.models import OutageStatus, RejectionRate, WebhookHealth
from portal_sync.admin.ports import ReceiptCounts, ReceiptReader
from portal_sync.inbound.source_config import SignatureMode
from portal_sync.observability import tracer

RATE_THRESHOLD_PERCENT = 10.0
MINIMUM_VOLUME = 20
OUTAGE_WINDOW = timedelta(minutes=15)
OUTAGE_MIN_REQUESTS = 3
_HEALTHY = ("accepted", "duplicate")


def received(counts: ReceiptCounts) -> int:
    return sum(counts.by_outcome.values())


def rejection_rate(counts: ReceiptCounts) -> RejectionRate:
    total, rejected = received(counts), counts.by_outcome.get("rejected", 0)
    rate = round(100.0 * rejected / total, 1) if total else 0.0
    return RejectionRate(
        received=total,
        rejected=rejected,
        rate_percent=rate,
        alert=total >= MINIMUM_VOLUME and rate > RATE_THRESHOLD_PERCENT,
        minimum_volume=MINIMUM_VOLUME,
    )


def outage(recent: ReceiptCounts, last_healthy_at: datetime | None, now: datetime) -> OutageStatus:
    """`recent` counts the receipts of the last OUTAGE_WINDOW."""
    healthy = sum(recent.by_outcome.get(outcome, 0) for outcome in _HEALTHY)
    total = received(recent)
    queue_down = recent.rejected_by_reason.get("QUEUE_UNAVAILABLE", 0)
    if healthy or not total or (total < OUTAGE_MIN_REQUESTS and not queue_down):
        return OutageStatus(alert=False, last_healthy_at=last_healthy_at, reason=None)
    minutes = int(OUTAGE_WINDOW.total_seconds() // 60)
    if queue_down:
        reason = (
            f"{queue_down} webhook(s) in the last {minutes} minutes could not be queued "
            "(answered 503); Dynamics retries once, then drops them"
        )
    else:
        [(top_reason, _)] = Counter(recent.rejected_by_reason).most_common(1) or [("unknown", 0)]
        reason = (
            f"{total} webhooks in the last {minutes} minutes and none accepted "
            f"(most often {top_reason}); check the secret configured in Dynamics"
        )
    return OutageStatus(alert=True, last_healthy_at=last_healthy_at, reason=reason)


HEADER_KEY_NOTE = (
    "header-key mode has no replay protection: anyone who sees one request can "
    "resend it. Prefer signed (standard-webhooks) delivery through a relay."
)


class WebhookHealthReport:
    def __init__(
        self,
        access: AdminAccess,
        integrations: Integrations,
        receipts: ReceiptReader,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._access = access
        self._integrations = integrations
        self._receipts = receipts
        self._clock = clock

    @tracer.capture_method
    def report(self, caller: Caller, organization_id: UUID) -> WebhookHealth:
        self._access.require_platform_admin(caller)
        record = self._integrations.record(organization_id)
        now = self._clock()
        day = self._receipts.receipt_counts(organization_id, now - timedelta(hours=24))
        hour = self._receipts.receipt_counts(organization_id, now - timedelta(hours=1))
        recent = self._receipts.receipt_counts(organization_id, now - OUTAGE_WINDOW)
        last_healthy = self._receipts.last_receipt_at(organization_id, _HEALTHY)
        mode = record.signature_mode
        return WebhookHealth(
            organization_id=organization_id,
            endpoint_url=self._integrations.webhook_url(record.source_id),
            signature_mode=mode,
            replay_protection=mode is SignatureMode.STANDARD_WEBHOOKS,
            note=HEADER_KEY_NOTE if mode is SignatureMode.HEADER_KEY else None,
            received_24h=received(day),
            accepted_24h=day.by_outcome.get("accepted", 0),
            duplicate_24h=day.by_outcome.get("duplicate", 0),
            rejected_24h=day.by_outcome.get("rejected", 0),
            rejected_by_reason_24h=day.rejected_by_reason,
            last_hour=rejection_rate(hour),
            outage=outage(recent, last_healthy, now),
        )
