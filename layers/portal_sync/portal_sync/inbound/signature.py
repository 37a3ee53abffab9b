"""Request verification: Standard Webhooks HMAC and Dataverse's static header key.

Verification is written here rather than delegated to `standardwebhooks.Webhook.verify`
because that reference implementation raises unhandled errors on malformed input (a signature
entry without a comma, bad base64, a non-UTF-8 body) and does not say *why* a request failed,
which the receipts must record. The signing scheme is the same (the tests sign with the
reference implementation); comparisons are constant-time with `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class RejectReason(StrEnum):
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    SIGNATURE_MISMATCH = "SIGNATURE_MISMATCH"
    TIMESTAMP_OUT_OF_WINDOW = "TIMESTAMP_OUT_OF_WINDOW"
    UNKNOWN_SOURCE = "UNKNOWN_SOURCE"
    SECRET_NOT_CONFIGURED = "SECRET_NOT_CONFIGURED"  # noqa: S105 - a reason, not a secret
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNPARSABLE_JSON = "UNPARSABLE_JSON"


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str
    timestamp: int
    signatures: tuple[bytes, ...]


class VerificationFailed(Exception):
    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


WHSEC_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (a bare base64 value is accepted too)."""
    raw = secret.removeprefix(WHSEC_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        # Not base64: use the text itself as the key rather than refusing to verify.
        return raw.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of a body, as a sender computes it."""
    return (
        "v1,"
        + base64.b64encode(_digest(decode_secret(secret), webhook_id, timestamp, body)).decode()
    )


def _digest(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    signed = webhook_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def parse_signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Reads the three Standard Webhooks headers (names already lower-cased)."""
    webhook_id = headers.get("webhook-id", "").strip()
    timestamp_text = headers.get("webhook-timestamp", "").strip()
    signature_text = headers.get("webhook-signature", "").strip()
    if not (webhook_id and timestamp_text and signature_text):
        raise VerificationFailed(RejectReason.MISSING_SIGNATURE)
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise VerificationFailed(RejectReason.TIMESTAMP_OUT_OF_WINDOW) from None
    signatures: list[bytes] = []
    for entry in signature_text.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return SignedHeaders(webhook_id, timestamp, tuple(signatures))


def check_timestamp(signed: SignedHeaders, now: float, tolerance_seconds: int) -> None:
    if abs(now - signed.timestamp) > tolerance_seconds:
        raise VerificationFailed(RejectReason.TIMESTAMP_OUT_OF_WINDOW)


def signature_matches(signed: SignedHeaders, body: bytes, secrets: Sequence[str]) -> bool:
    """True when any listed signature matches any active secret (all compared, constant time)."""
    matched = False
    for secret in secrets:
        expected = _digest(decode_secret(secret), signed.webhook_id, signed.timestamp, body)
        for candidate in signed.signatures:
            # No early exit: the time taken does not depend on which entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def header_key_matches(presented: str | None, keys: Sequence[str]) -> bool:
    if not presented:
        return False
    matched = False
    presented_bytes = presented.encode()
    for key in keys:
        matched |= hmac.compare_digest(presented_bytes, key.encode())
    return matched
