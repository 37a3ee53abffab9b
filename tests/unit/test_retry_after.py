"""How long a 429's Retry-After header asks us to wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from portal_sync.adapters.dynamics.retry_after import (
    DEFAULT_RETRY_AFTER_SECONDS,
    parse_retry_after,
)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 2.5 ") == 2.5
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0
    )
    assert parse_retry_after(None) == 5
    assert parse_retry_after("") == 5
    assert parse_retry_after("soon") == 5
    assert parse_retry_after("-3") == 0


def test_a_value_that_is_no_usable_time_waits_the_default() -> None:
    for value in ("inf", "nan", "-inf", "Mon, 99 Foo 2026 25:61:00 GMT"):
        assert parse_retry_after(value) == DEFAULT_RETRY_AFTER_SECONDS, value


def test_an_http_date_without_a_zone_is_taken_as_utc() -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 22 Nov 2026 10:00:12 -0000", now=now) == 12
