"""Webhook health from the recorded receipts (CONTRACT.md section 5).

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
from datetime import datetime, timedelta

from portal_sync.admin.models import OutageStatus, RejectionRate
from portal_sync.admin.ports import ReceiptCounts

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
