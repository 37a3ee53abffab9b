"""Accepting a webhook: verify, record a receipt, queue. Knows nothing of HTTP or Lambda."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from portal_sync.inbound.nesting import MAX_NESTING, nested_deeper_than
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.receipts import QUEUE_UNAVAILABLE, Outcome, Receipt
from portal_sync.inbound.signature import (
    RejectReason,
    VerificationFailed,
    check_timestamp,
    header_key_matches,
    parse_signed_headers,
    signature_matches,
)
from portal_sync.inbound.source_config import SignatureMode, SourceConfig, is_source_id
from portal_sync.observability import error_facts, log_keys, logger, tracer
from portal_sync.unavailable import SourceStoreUnavailable

# Headers Dataverse sends that the consumer needs (size-exceeded flag) or that help tracing.
FORWARDED_HEADERS = (
    "x-ms-dynamics-organization",
    "x-ms-dynamics-entity-name",
    "x-ms-dynamics-request-name",
    "x-ms-correlation-request-id",
    "x-ms-dynamics-msg-size-exceeded",
    "x-request-id",
)


class QueueUnavailable(Exception):
    pass


class SourceLookup(Protocol):
    def get(self, source_id: str) -> SourceConfig | None: ...
    def refresh(self, source_id: str) -> SourceConfig | None: ...


class EventQueue(Protocol):
    def send(self, message_body: str) -> None: ...


class ReceiptLedger(Protocol):
    def claim(self, receipt: Receipt) -> bool | None:
        """Records an accepted receipt unless its delivery was accepted before, in which case
        the receipt is recorded as a duplicate: True when accepted, False when a duplicate,
        None when the ledger cannot tell (database unreachable; nothing was recorded)."""

    def record(self, receipt: Receipt) -> bool:
        """Writes the receipt, replacing one of the same id (a claimed receipt whose event
        could not be queued); False when it could not (the caller queues it instead)."""


@dataclass(frozen=True)
class WebhookRequest:
    source_id: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class IngestResult:
    status_code: int
    body: dict[str, Any]
    receipt: Receipt | None


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int
    signature_tolerance_seconds: int


# One message for every verification failure: the answer never says which source or secret exists.
UNAUTHORIZED_MESSAGE = "Webhook verification failed"

_ANSWERS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.PAYLOAD_TOO_LARGE: (413, "Payload too large"),
    RejectReason.UNPARSABLE_JSON: (400, "Body is not a JSON object"),
}


class WebhookIngest:
    def __init__(
        self,
        sources: SourceLookup,
        queue: EventQueue,
        ledger: ReceiptLedger,
        limits: IngestLimits,
        clock: Any = time.time,
    ) -> None:
        self._sources = sources
        self._queue = queue
        self._ledger = ledger
        self._limits = limits
        self._clock = clock

    @tracer.capture_method
    def handle(self, request: WebhookRequest) -> IngestResult:
        now = self._clock()
        receipt = Receipt(
            id=uuid.uuid4(),
            source_id=request.source_id[:128],
            outcome=Outcome.REJECTED,
            received_at=datetime.fromtimestamp(now, UTC),
        )
        # The receipt id is the event's correlation id on every line, here and in the consumer
        # (QueuedEvent.correlation_id), so one search finds its whole way through.
        with log_keys({"correlation_id": str(receipt.id)}):
            try:
                return self._handle(request, receipt, now)
            except Exception as exc:
                # A failure of ours: Dataverse retries a 503 once and never a 500. The facts
                # only: an exception's message may quote the body (names, e-mail addresses).
                logger.error(
                    "Webhook ingest failed",
                    extra={"receipt_id": str(receipt.id), **error_facts(exc)},
                )
                return self._unavailable(receipt)

    def _handle(self, request: WebhookRequest, receipt: Receipt, now: float) -> IngestResult:
        try:
            config, delivery_id = self._verify(request, receipt, now)
        except VerificationFailed as failure:
            return self._reject(receipt, failure.reason)
        except SourceStoreUnavailable as exc:
            logger.error(
                "Webhook source store unavailable",
                extra={"receipt_id": str(receipt.id), **error_facts(exc)},
            )
            return self._unavailable(receipt)

        receipt = receipt.model_copy(
            update={"delivery_id": delivery_id, "outcome": Outcome.ACCEPTED}
        )
        # The accepted receipt is written now, in the round trip that checks for a duplicate,
        # so that a resend is a duplicate even before the first delivery is applied. With the
        # database down (None) the receipt travels on the queue and the consumer writes it.
        claimed = self._ledger.claim(receipt)
        if claimed is False:
            receipt = receipt.model_copy(update={"outcome": Outcome.DUPLICATE})
            return IngestResult(202, {"status": "duplicate", "id": delivery_id}, receipt)

        message = QueuedEvent(
            receipt=receipt,
            event_id=delivery_id,
            correlation_id=str(receipt.id),
            # Kept when empty too: Dataverse's size-exceeded flag counts by its presence.
            headers={k: v for k in FORWARDED_HEADERS if (v := request.headers.get(k)) is not None},
            body_b64=base64.b64encode(request.body).decode(),
        )
        try:
            self._queue.send(message.model_dump_json())
        except QueueUnavailable as exc:
            logger.error(
                "Could not queue webhook",
                extra={"receipt_id": str(receipt.id), **error_facts(exc)},
            )
            # Replaces the claimed receipt: left `accepted`, the sender's retry of this 503
            # would be answered `duplicate` and the event lost.
            return self._unavailable(receipt)
        logger.info(
            "Webhook accepted",
            extra={
                "receipt_id": str(receipt.id),
                "event_id": delivery_id,
                "source_id": config.source_id,
            },
        )
        return IngestResult(202, {"status": "accepted", "id": delivery_id}, receipt)

    def _verify(
        self, request: WebhookRequest, receipt: Receipt, now: float
    ) -> tuple[SourceConfig, str]:
        if len(request.body) > self._limits.max_body_bytes:
            raise VerificationFailed(RejectReason.PAYLOAD_TOO_LARGE)
        if not is_source_id(request.source_id):
            raise VerificationFailed(RejectReason.UNKNOWN_SOURCE)  # never looked up
        config = self._sources.get(request.source_id)
        if config is None or not config.enabled:
            raise VerificationFailed(RejectReason.UNKNOWN_SOURCE)
        receipt.organization_id = config.organization_id
        receipt.signature_mode = config.mode
        if not config.active_keys():
            config = self._sources.refresh(request.source_id) or config
            if not config.active_keys():
                raise VerificationFailed(RejectReason.SECRET_NOT_CONFIGURED)

        if config.mode is SignatureMode.STANDARD_WEBHOOKS:
            signed = parse_signed_headers(request.headers)
            check_timestamp(signed, now, self._limits.signature_tolerance_seconds)
            if not signature_matches(signed, request.body, config.active_keys()):
                # The secret may have been rotated since it was cached: ask once more.
                fresh = self._sources.refresh(request.source_id)
                if fresh is None or not signature_matches(
                    signed, request.body, fresh.active_keys()
                ):
                    raise VerificationFailed(RejectReason.SIGNATURE_MISMATCH)
            delivery_id = signed.webhook_id
        else:
            presented = request.headers.get(config.header_name.lower())
            if not presented:
                raise VerificationFailed(RejectReason.MISSING_SIGNATURE)
            if not header_key_matches(presented, config.active_keys()):
                fresh = self._sources.refresh(request.source_id)
                if fresh is None or not header_key_matches(presented, fresh.active_keys()):
                    raise VerificationFailed(RejectReason.SIGNATURE_MISMATCH)
            delivery_id = ""

        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nested deeper than the parser goes (a verified body, still junk).
            raise VerificationFailed(RejectReason.UNPARSABLE_JSON) from None
        if not isinstance(payload, dict) or nested_deeper_than(payload, MAX_NESTING):
            # Too deep for the consumer to read (inbound/nesting.py), however far this Python's
            # parser goes (3.11's stops near 1,000 levels, 3.13's goes much deeper).
            raise VerificationFailed(RejectReason.UNPARSABLE_JSON)
        return config, storable_delivery_id(
            delivery_id or derive_delivery_id(request.headers, payload, request.body)
        )

    def _reject(self, receipt: Receipt, reason: RejectReason) -> IngestResult:
        receipt = receipt.model_copy(update={"outcome": Outcome.REJECTED, "reason": reason})
        self._record(receipt)
        logger.warning(
            "Webhook rejected",
            extra={
                "receipt_id": str(receipt.id),
                "reason": reason.value,
                "source_id": receipt.source_id,
            },
        )
        status, message = _ANSWERS.get(reason, (401, UNAUTHORIZED_MESSAGE))
        return IngestResult(status, {"code": status, "message": message}, receipt)

    def _unavailable(self, receipt: Receipt) -> IngestResult:
        receipt = receipt.model_copy(
            update={"outcome": Outcome.REJECTED, "reason": QUEUE_UNAVAILABLE}
        )
        self._record(receipt)
        message = "The event could not be queued; please retry"
        return IngestResult(503, {"code": 503, "message": message}, receipt)

    def _record(self, receipt: Receipt) -> None:
        try:
            if self._ledger.record(receipt):
                return
            self._queue.send(QueuedReceipt(receipt=receipt).model_dump_json())
        except Exception as exc:  # the answer must still be given
            logger.error(
                "Receipt lost: neither PostgreSQL nor the queue took it",
                extra={"receipt_id": str(receipt.id), **error_facts(exc)},
            )


_PLAIN_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
# The empty GUID in any of its spellings (braces, no dashes).
_ZERO_GUID = re.compile(r"^\s*[{(]?[0-]+[)}]?\s*$")


def storable_delivery_id(delivery_id: str) -> str:
    """The id as the sync log and the receipts keep it. A sender's id may be anything it
    signed (a NUL byte, thousands of characters) that PostgreSQL cannot store or index: such
    an id is kept as its hash, which still tells a redelivery of it from other deliveries."""
    if _PLAIN_ID.match(delivery_id):
        return delivery_id
    return "sha256:" + hashlib.sha256(delivery_id.encode("utf-8", "surrogatepass")).hexdigest()


def derive_delivery_id(headers: Mapping[str, str], payload: dict[str, Any], body: bytes) -> str:
    """The id of one delivery of one event, for senders that do not send `webhook-id`.

    Dataverse: `OperationId` with the step (`OwningExtension.Id`) identifies one delivery of one
    event, and its retry carries the same pair; an all-zero one (synchronous steps) is no id:
    `RequestId`, else a hash of the body. `CorrelationId` is shared by a whole chain and
    must not be used. Other senders: their `id`, else a hash of the body.
    """
    # A synchronous step has no system job: its OperationId may be all zeros, which every such
    # event shares, so RequestId stands in, else the body's hash (docs/dataverse-mapping.md).
    operation_id = next(
        (
            value
            for value in (payload.get("OperationId"), payload.get("RequestId"))
            if isinstance(value, str) and value and not _ZERO_GUID.match(value)
        ),
        None,
    )
    if operation_id is not None:
        extension = payload.get("OwningExtension")
        step = extension.get("Id") if isinstance(extension, dict) else None
        return f"dataverse:{operation_id}:{step}" if step else f"dataverse:{operation_id}"
    if isinstance(payload.get("OperationId"), str) and payload["OperationId"]:
        return "sha256:" + hashlib.sha256(body).hexdigest()  # all zeros, and no RequestId
    for key in ("webhook-id", "x-request-id"):
        if value := headers.get(key):
            return value[:200]
    explicit = payload.get("id")
    if isinstance(explicit, str) and explicit:
        return explicit[:200]
    return "sha256:" + hashlib.sha256(body).hexdigest()
