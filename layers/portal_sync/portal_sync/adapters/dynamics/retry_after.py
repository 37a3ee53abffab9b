"""How long a `Retry-After` header asks us to wait (RFC 9110: delta-seconds or an HTTP-date),
for Dataverse's and Entra ID's 429 answers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# What to wait when a 429 names no usable time: long enough not to be throttled again at once.
DEFAULT_RETRY_AFTER_SECONDS = 5.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait, never negative; the default when the header is absent or unreadable."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER_SECONDS
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_SECONDS
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(0.0, seconds)
