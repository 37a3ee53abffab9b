"""When the webhook health view alerts (its numbers come from recorded receipts)."""

from __future__ import annotations

from datetime import UTC, datetime

from portal_sync.admin.health import MINIMUM_VOLUME, outage, rejection_rate
from portal_sync.admin.ports import ReceiptCounts

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HEALTHY_AT = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


def counts(accepted: int = 0, duplicate: int = 0, **rejected: int) -> ReceiptCounts:
    by_outcome = {"accepted": accepted, "duplicate": duplicate, "rejected": sum(rejected.values())}
    return ReceiptCounts({k: v for k, v in by_outcome.items() if v}, rejected)


def test_rate_alerts_above_ten_percent_only_with_enough_volume() -> None:
    assert rejection_rate(counts(accepted=17, SIGNATURE_MISMATCH=3)).alert is True  # 15 %
    assert rejection_rate(counts(accepted=18, SIGNATURE_MISMATCH=2)).alert is False  # 10 %
    quiet = rejection_rate(counts(SIGNATURE_MISMATCH=MINIMUM_VOLUME - 1))
    assert quiet.rate_percent == 100.0 and quiet.alert is False


def test_no_traffic_is_no_alert() -> None:
    rate = rejection_rate(counts())
    assert (rate.received, rate.rate_percent, rate.alert) == (0, 0.0, False)
    assert outage(counts(), HEALTHY_AT, NOW).alert is False


def test_outage_when_requests_arrive_and_none_is_accepted() -> None:
    down = outage(counts(SIGNATURE_MISMATCH=2, SECRET_NOT_CONFIGURED=1), HEALTHY_AT, NOW)
    assert down.alert is True
    assert down.last_healthy_at == HEALTHY_AT
    assert "SIGNATURE_MISMATCH" in (down.reason or "")
    # One stray bad request is not an outage; one accepted delivery ends it.
    assert outage(counts(SIGNATURE_MISMATCH=1), HEALTHY_AT, NOW).alert is False
    assert outage(counts(accepted=1, SIGNATURE_MISMATCH=5), HEALTHY_AT, NOW).alert is False


def test_a_single_queue_failure_is_an_outage_of_our_own() -> None:
    down = outage(counts(QUEUE_UNAVAILABLE=1), HEALTHY_AT, NOW)
    assert down.alert is True and "could not be queued" in (down.reason or "")
