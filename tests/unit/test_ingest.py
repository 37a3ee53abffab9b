"""The ingest logic with in-memory ports: answers, receipts, and what reaches the queue."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from portal_sync.inbound.ingest import (
    IngestLimits,
    QueueUnavailable,
    WebhookIngest,
    WebhookRequest,
    derive_delivery_id,
)
from portal_sync.inbound.nesting import MAX_NESTING
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.signature import RejectReason
from portal_sync.inbound.source_config import SignatureMode, SigningKey, SourceConfig
from portal_sync.observability import logger
from support import capture_log_lines, signed_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ORG = uuid.uuid4()
BODY = json.dumps({"type": "membership.created"}).encode()


class Sources:
    def __init__(self, *configs: SourceConfig) -> None:
        self.configs = {c.source_id: c for c in configs}
        self.refreshed = 0
        self.looked_up: list[str] = []

    def get(self, source_id: str) -> SourceConfig | None:
        self.looked_up.append(source_id)
        return self.configs.get(source_id)

    def refresh(self, source_id: str) -> SourceConfig | None:
        self.refreshed += 1
        return self.configs.get(source_id)


class Queue:
    def __init__(self, broken: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.broken = broken

    def send(self, message_body: str) -> None:
        if self.broken:
            raise QueueUnavailable("down")
        self.messages.append(json.loads(message_body))


class Ledger:
    """webhook_receipts in memory, with its unique index of accepted deliveries."""

    def __init__(self, reachable: bool = True) -> None:
        self.receipts: list[Receipt] = []
        self.reachable = reachable

    @property
    def accepted(self) -> set[tuple[str, str | None]]:
        return {(r.source_id, r.delivery_id) for r in self.receipts if r.outcome == "accepted"}

    def claim(self, receipt: Receipt) -> bool | None:
        if not self.reachable:
            return None
        first = (receipt.source_id, receipt.delivery_id) not in self.accepted
        outcome = Outcome.ACCEPTED if first else Outcome.DUPLICATE
        self.receipts.append(receipt.model_copy(update={"outcome": outcome}))
        return first

    def record(self, receipt: Receipt) -> bool:
        if self.reachable:
            # Replaces a receipt of the same id, as the upsert does.
            self.receipts = [r for r in self.receipts if r.id != receipt.id] + [receipt]
        return self.reachable


def standard(source_id: str = "src", keys: tuple[str, ...] = (SECRET,)) -> SourceConfig:
    return SourceConfig(
        source_id=source_id, organization_id=ORG, keys=[SigningKey(value=k) for k in keys]
    )


def make(
    sources: Sources | None = None, queue: Queue | None = None, ledger: Ledger | None = None
) -> tuple[WebhookIngest, Queue, Ledger]:
    queue, ledger = queue or Queue(), ledger or Ledger()
    ingest = WebhookIngest(
        sources or Sources(standard()), queue, ledger, IngestLimits(512 * 1024, 300)
    )
    return ingest, queue, ledger


def test_accepted_event_is_queued_with_its_receipt_and_exact_body() -> None:
    ingest, queue, ledger = make()
    headers = signed_headers(SECRET, BODY, webhook_id="msg_1")

    result = ingest.handle(WebhookRequest("src", headers, BODY))

    assert (result.status_code, result.body) == (202, {"status": "accepted", "id": "msg_1"})
    [message] = queue.messages
    queued = QueuedEvent.model_validate(message)
    assert queued.body() == BODY
    assert queued.event_id == "msg_1"
    assert queued.receipt.organization_id == ORG
    # The ingest wrote the accepted receipt itself, the one the message carries.
    assert [(r.id, r.outcome) for r in ledger.receipts] == [(queued.receipt.id, "accepted")]


def test_the_ingest_logs_under_the_receipt_id_the_consumer_logs_the_event_under() -> None:
    """One search by correlation id finds an event from its webhook to its sync log entry."""
    ingest, queue, _ = make()
    headers = signed_headers(SECRET, BODY, webhook_id="msg_1")

    with capture_log_lines() as log:
        ingest.handle(WebhookRequest("src", headers, BODY))

    [accepted] = log.saying("Webhook accepted")
    queued = QueuedEvent.model_validate(queue.messages[0])
    assert accepted["correlation_id"] == queued.correlation_id == str(queued.receipt.id)
    # Not left behind for the next request (or another function in the same process).
    assert "correlation_id" not in logger.thread_safe_get_current_keys()


def test_a_resend_before_the_first_is_applied_is_a_duplicate_and_not_queued() -> None:
    ingest, queue, ledger = make()
    headers = signed_headers(SECRET, BODY, webhook_id="msg_1")

    first = ingest.handle(WebhookRequest("src", headers, BODY))
    again = ingest.handle(WebhookRequest("src", headers, BODY))

    assert first.body == {"status": "accepted", "id": "msg_1"}
    assert again.body == {"status": "duplicate", "id": "msg_1"}
    assert len(queue.messages) == 1
    assert [r.outcome for r in ledger.receipts] == ["accepted", "duplicate"]


def test_rejection_with_database_down_travels_on_the_queue() -> None:
    ingest, queue, _ = make(ledger=Ledger(reachable=False))

    result = ingest.handle(WebhookRequest("src", {}, BODY))

    assert result.status_code == 401
    [message] = queue.messages
    assert QueuedReceipt.model_validate(message).receipt.reason == "MISSING_SIGNATURE"


def test_accepting_works_with_the_database_down() -> None:
    ingest, queue, _ = make(ledger=Ledger(reachable=False))
    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, BODY), BODY))
    assert result.status_code == 202
    assert queue.messages[0]["kind"] == "event"


def test_queue_down_is_503_so_dataverse_retries() -> None:
    ingest, _, ledger = make(queue=Queue(broken=True))
    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, BODY), BODY))
    assert result.status_code == 503
    assert result.body["code"] == 503
    [receipt] = ledger.receipts
    assert (receipt.outcome, receipt.reason) == ("rejected", "QUEUE_UNAVAILABLE")


def test_the_retry_of_a_delivery_that_could_not_be_queued_is_accepted_not_a_duplicate() -> None:
    """The claimed receipt must not stay `accepted` when the answer was 503: the sender's retry
    would be answered `duplicate` and the event lost."""
    queue = Queue(broken=True)
    ingest, _, ledger = make(queue=queue)
    headers = signed_headers(SECRET, BODY, webhook_id="msg_1")

    assert ingest.handle(WebhookRequest("src", headers, BODY)).status_code == 503
    queue.broken = False
    retry = ingest.handle(WebhookRequest("src", headers, BODY))

    assert retry.body == {"status": "accepted", "id": "msg_1"}
    assert len(queue.messages) == 1
    assert sorted((r.outcome, r.reason or "") for r in ledger.receipts) == [
        ("accepted", ""),
        ("rejected", "QUEUE_UNAVAILABLE"),
    ]


def test_a_failure_of_ours_is_a_503_with_a_receipt_never_an_exception() -> None:
    """Dataverse retries 503 once and never a 500; nothing of the failure reaches the answer."""

    class Broken(Sources):
        def get(self, source_id: str) -> SourceConfig | None:
            raise RuntimeError("kari@example.org")  # a bug whose message quotes personal data

    ingest, _, ledger = make(Broken(standard()))

    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, BODY), BODY))

    assert result.status_code == 503
    assert set(result.body) == {"code", "message"} and result.body["code"] == 503
    assert "kari" not in result.body["message"]
    assert [r.reason for r in ledger.receipts] == ["QUEUE_UNAVAILABLE"]


def test_a_body_exactly_as_deep_as_the_consumer_reads_is_accepted() -> None:
    ingest, queue, _ = make()
    depth = MAX_NESTING - 1  # and the object around the lists: MAX_NESTING levels
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"

    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, body), body))

    assert result.status_code == 202
    assert len(queue.messages) == 1


@pytest.mark.parametrize("depth", [MAX_NESTING, 1200, 100_000])
def test_a_verified_body_nested_too_deep_to_parse_is_unparsable_json_with_a_receipt(
    depth: int,
) -> None:
    """Deeper than the consumer reads (MAX_NESTING levels, the object itself included), on
    any Python: 3.11's parser stops near 1,000 levels, 3.13's parses 1,200."""
    ingest, queue, ledger = make()
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"

    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, body), body))

    assert (result.status_code, result.body["code"]) == (400, 400)
    assert [(r.outcome, r.reason) for r in ledger.receipts] == [("rejected", "UNPARSABLE_JSON")]
    assert queue.messages == []


@pytest.mark.parametrize(
    "source_id",
    ["", "a", "../etc/passwd", "wp-admin.php?x=1", "x" * 65, "src\n", "-src", "ünïcode"],
)
def test_a_source_id_of_no_possible_source_is_unknown_without_a_lookup(source_id: str) -> None:
    """A scanner's random path costs no Secrets Manager call (only ids the admin API could
    have created are looked up)."""
    sources = Sources(standard())
    ingest, queue, _ = make(sources)

    body_headers = signed_headers(SECRET, BODY, webhook_id="msg_1")
    result = ingest.handle(WebhookRequest(source_id, body_headers, BODY))

    assert result.receipt.reason == RejectReason.UNKNOWN_SOURCE
    assert sources.looked_up == [] and queue.messages == []


def test_rotated_secret_is_fetched_again_before_rejecting() -> None:
    sources = Sources(standard(keys=("whsec_b2xk",)))
    ingest, _, _ = make(sources)
    stale_view = sources.configs["src"]
    sources.get = lambda _id: stale_view  # type: ignore[method-assign]
    sources.configs["src"] = standard(keys=(SECRET,))

    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, BODY), BODY))

    assert result.status_code == 202
    assert sources.refreshed == 1


def test_expired_previous_key_no_longer_verifies() -> None:
    from datetime import UTC, datetime, timedelta

    old = SigningKey(value=SECRET, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    config = SourceConfig(
        source_id="src", organization_id=ORG, keys=[SigningKey(value="whsec_bmV3"), old]
    )
    ingest, _, ledger = make(Sources(config))

    result = ingest.handle(WebhookRequest("src", signed_headers(SECRET, BODY), BODY))

    assert result.status_code == 401
    assert ledger.receipts[0].reason == "SIGNATURE_MISMATCH"


def test_header_key_mode() -> None:
    config = SourceConfig(
        source_id="dataverse-src",
        organization_id=ORG,
        mode=SignatureMode.HEADER_KEY,
        header_name="X-Portal-Key",
        keys=[SigningKey(value="k-123")],
    )
    ingest, queue, ledger = make(Sources(config))
    dataverse = json.dumps(
        {
            "MessageName": "Update",
            "PrimaryEntityName": "contact",
            "OperationId": "op-1",
            "OwningExtension": {"Id": "step-9"},
        }
    ).encode()

    ok = ingest.handle(WebhookRequest("dataverse-src", {"x-portal-key": "k-123"}, dataverse))
    wrong = ingest.handle(WebhookRequest("dataverse-src", {"x-portal-key": "k-124"}, dataverse))
    missing = ingest.handle(WebhookRequest("dataverse-src", {}, dataverse))

    assert ok.body == {"status": "accepted", "id": "dataverse:op-1:step-9"}
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert [r.reason for r in ledger.receipts] == [None, "SIGNATURE_MISMATCH", "MISSING_SIGNATURE"]
    assert len(queue.messages) == 1


def test_delivery_id_never_uses_the_shared_correlation_id() -> None:
    payload = {"CorrelationId": "chain", "OperationId": "op", "OwningExtension": {"Id": "s"}}
    assert derive_delivery_id({}, payload, b"{}") == "dataverse:op:s"
    assert derive_delivery_id({}, {"CorrelationId": "chain"}, b"{}").startswith("sha256:")


ZERO_GUID = "00000000-0000-0000-0000-000000000000"
STEP = "9d8c7b6a-5f4e-4d3c-8b2a-190817161514"


def capture(name: str) -> bytes:
    return (ROOT / "tests" / "fixtures" / "dataverse" / f"{name}.json").read_bytes()


def test_a_synchronous_step_with_a_zero_operation_id_is_named_by_its_request_id() -> None:
    """A synchronous step has no system job: every event it posts may carry the all-zero
    OperationId, which must not name them all (each after the first a "duplicate")."""
    body = capture("contact-update-sync-zero-operationid")
    payload = json.loads(body)
    assert payload["OperationId"] == ZERO_GUID

    delivery_id = derive_delivery_id({}, payload, body)

    assert delivery_id == f"dataverse:a3c5e7f9-2b4d-4f61-8a0c-1e3f5a7c9b2d:{STEP}"


def test_without_any_id_a_synchronous_event_is_named_by_its_body() -> None:
    first, second = (
        capture("contact-update-sync-zero-operationid"),
        capture("contact-update-sync-zero-ids"),
    )
    payload = json.loads(second)
    assert payload["OperationId"] == ZERO_GUID and payload["RequestId"] is None

    delivery_id = derive_delivery_id({}, payload, second)

    assert delivery_id.startswith("sha256:")
    assert delivery_id == derive_delivery_id({}, json.loads(second), second)  # a resend
    assert delivery_id != derive_delivery_id({}, json.loads(first), first)
    for zero in ("{00000000-0000-0000-0000-000000000000}", "0" * 32, ZERO_GUID.upper()):
        spelled = {**payload, "OperationId": zero, "RequestId": zero}
        assert derive_delivery_id({}, spelled, second).startswith("sha256:"), zero


def test_two_synchronous_events_with_zero_operation_ids_are_both_accepted() -> None:
    config = SourceConfig(
        source_id="dataverse-src",
        organization_id=ORG,
        mode=SignatureMode.HEADER_KEY,
        header_name="x-portal-key",
        keys=[SigningKey(value="k-123")],
    )
    ingest, queue, ledger = make(Sources(config))
    headers = {"x-portal-key": "k-123"}
    bodies = [
        capture("contact-update-sync-zero-operationid"),
        capture("contact-update-sync-zero-ids"),
    ]

    answers = [ingest.handle(WebhookRequest("dataverse-src", headers, body)) for body in bodies]

    assert [a.body["status"] for a in answers] == ["accepted", "accepted"]
    assert len(queue.messages) == 2
    assert len(ledger.accepted) == 2


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["webhook-id", "webhook-timestamp", "webhook-signature", "x-portal-key", "content-type"]
        ),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=2048),
    source=st.sampled_from(["src", "other", "", "../x"]),
)
def test_fuzzed_requests_never_crash_and_never_queue_unsigned_events(
    headers: dict[str, str], body: bytes, source: str
) -> None:
    ingest, queue, _ = make()
    result = ingest.handle(WebhookRequest(source, headers, body))
    assert result.status_code in (400, 401, 413)
    assert not [m for m in queue.messages if m["kind"] == "event"]


def test_signed_body_at_the_edge_of_the_limit() -> None:
    ingest, _, _ = make()
    body = json.dumps({"padding": "x" * (512 * 1024 - 15)}).encode()
    assert len(body) == 512 * 1024
    assert (
        ingest.handle(WebhookRequest("src", signed_headers(SECRET, body), body)).status_code == 202
    )
    bigger = body[:-2] + b'x"}'
    assert (
        ingest.handle(WebhookRequest("src", signed_headers(SECRET, bigger), bigger)).status_code
        == 413
    )


def test_timestamp_is_checked_against_now() -> None:
    ingest, _, ledger = make()
    headers = signed_headers(SECRET, BODY, timestamp=int(time.time()) + 400)
    assert ingest.handle(WebhookRequest("src", headers, BODY)).status_code == 401
    assert ledger.receipts[0].reason == "TIMESTAMP_OUT_OF_WINDOW"
