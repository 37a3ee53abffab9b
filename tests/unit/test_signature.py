"""Standard Webhooks verification interoperates with the reference implementation and never
crashes on malformed headers; the header-key mode compares exactly."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from portal_sync.inbound.signature import (
    RejectReason,
    VerificationFailed,
    check_timestamp,
    header_key_matches,
    parse_signed_headers,
    sign,
    signature_matches,
)
from standardwebhooks.webhooks import Webhook
from support import signed_headers

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = b'{"type":"membership.created"}'


def test_signature_made_by_the_reference_library_verifies() -> None:
    headers = signed_headers(SECRET, BODY)
    assert signature_matches(parse_signed_headers(headers), BODY, [SECRET])


def test_our_signature_verifies_with_the_reference_library() -> None:
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "msg_1", now, BODY),
    }
    assert Webhook(SECRET).verify(BODY, headers) == {"type": "membership.created"}


def test_any_listed_signature_against_any_active_secret() -> None:
    headers = signed_headers(OTHER, BODY)
    valid = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1,{base64.b64encode(b'x' * 32).decode()} {valid}"
    signed = parse_signed_headers(headers)
    assert signature_matches(signed, BODY, [SECRET, OTHER])
    assert not signature_matches(signed, BODY, [SECRET])


def test_body_or_id_changes_break_the_signature() -> None:
    headers = signed_headers(SECRET, BODY)
    assert not signature_matches(parse_signed_headers(headers), BODY + b" ", [SECRET])
    headers["webhook-id"] = "msg_other"
    assert not signature_matches(parse_signed_headers(headers), BODY, [SECRET])


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_missing_signature(missing: str) -> None:
    headers = signed_headers(SECRET, BODY)
    del headers[missing]
    with pytest.raises(VerificationFailed) as failure:
        parse_signed_headers(headers)
    assert failure.value.reason is RejectReason.MISSING_SIGNATURE


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_timestamp_outside_five_minutes_is_rejected(offset: int) -> None:
    now = int(time.time())
    signed = parse_signed_headers(signed_headers(SECRET, BODY, timestamp=now + offset))
    with pytest.raises(VerificationFailed) as failure:
        check_timestamp(signed, now, 300)
    assert failure.value.reason is RejectReason.TIMESTAMP_OUT_OF_WINDOW


def test_timestamp_inside_window_passes() -> None:
    now = int(time.time())
    check_timestamp(
        parse_signed_headers(signed_headers(SECRET, BODY, timestamp=now - 299)), now, 300
    )


def test_non_numeric_timestamp_is_out_of_window() -> None:
    headers = {**signed_headers(SECRET, BODY), "webhook-timestamp": "yesterday"}
    with pytest.raises(VerificationFailed) as failure:
        parse_signed_headers(headers)
    assert failure.value.reason is RejectReason.TIMESTAMP_OUT_OF_WINDOW


@given(st.text(max_size=300))
def test_malformed_signature_header_never_raises_anything_unexpected(value: str) -> None:
    headers = {**signed_headers(SECRET, BODY), "webhook-signature": value}
    try:
        signed = parse_signed_headers(headers)
    except VerificationFailed:
        return
    assert not signature_matches(signed, BODY, [SECRET])


def test_non_utf8_body_is_verified_over_its_bytes() -> None:
    body = b"\xff\xfe not utf-8"
    now = int(time.time())
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "m", now, body),
    }
    assert signature_matches(parse_signed_headers(headers), body, [SECRET])


def test_header_key_matches_only_the_exact_value() -> None:
    assert header_key_matches("s3cret-value", ["old", "s3cret-value"])
    assert not header_key_matches("s3cret-valu", ["s3cret-value"])
    assert not header_key_matches("", ["s3cret-value"])
    assert not header_key_matches(None, ["s3cret-value"])
