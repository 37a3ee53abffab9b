"""The ingest's receipt ledger on a real PostgreSQL: what each call costs on the wire.

Round trips are counted from libpq's own protocol trace (PQtrace): the client waits for the
server once per ReadyForQuery message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Database
from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.receipt_ledger import PostgresReceiptLedger
from portal_sync.inbound.receipts import Outcome, Receipt
from psycopg import pq


@pytest.fixture
def connections(db: Database) -> Iterator[ConnectionProvider]:
    """An autocommit connection, as the ingest builds it (functions/webhook_ingest/app.py)."""
    provider = ConnectionProvider(db.url, autocommit=True)
    yield provider
    provider.discard()


def wire(provider: ConnectionProvider, trace: Path, call: Callable[[], Any]) -> list[str]:
    """The protocol messages exchanged during `call`: (direction, type, contents) per message,
    e.g. `F Query "BEGIN"` from the client, `B ReadyForQuery I` from the server."""
    conn = provider.get()
    with trace.open("w") as out:
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            call()
        finally:
            conn.pgconn.untrace()
    # Lines are "direction<TAB>length<TAB>type<TAB>contents"; SQL text may continue a line.
    messages = []
    for line in trace.read_text().splitlines():
        direction, _, kind, contents = [*line.split("\t"), "", "", ""][:4]
        if direction in ("F", "B") and kind:
            messages.append(f"{direction} {kind} {contents.strip()}".strip())
    return messages


def round_trips(messages: list[str]) -> int:
    return sum(message.startswith("B ReadyForQuery") for message in messages)


def receipt(delivery_id: str, outcome: Outcome) -> Receipt:
    return Receipt(
        id=uuid.uuid4(),
        source_id="demo-portal",
        organization_id=None,
        delivery_id=delivery_id,
        outcome=outcome,
        reason=None,
        signature_mode="standard-webhooks",
        received_at=datetime.now(UTC),
    )


def test_claiming_a_delivery_is_one_round_trip_outside_any_transaction(
    connections: ConnectionProvider, db: Database, tmp_path: Path
) -> None:
    """The ingest writes the accepted receipt, or the duplicate one, in one statement."""
    ledger = PostgresReceiptLedger(connections, retry_after_seconds=2)
    delivery_id = f"msg_{uuid.uuid4().hex}"
    first, again = receipt(delivery_id, Outcome.ACCEPTED), receipt(delivery_id, Outcome.ACCEPTED)

    answers: list[bool | None] = []
    for claimed in (first, again):
        messages = wire(
            connections, tmp_path / "trace", lambda r=claimed: answers.append(ledger.claim(r))
        )
        assert round_trips(messages) == 1, messages
        assert [m for m in messages if m.startswith("F Query")] == []  # no BEGIN, no COMMIT

    assert answers == [True, False]
    # Nothing left open: a transaction-mode pooler gets its backend back at once.
    assert connections.get().info.transaction_status == pq.TransactionStatus.IDLE
    rows = db.rows("select id, outcome from webhook_receipts order by recorded_at, outcome")
    assert [(r["id"], r["outcome"]) for r in rows] == [
        (first.id, "accepted"),
        (again.id, "duplicate"),
    ]


def test_concurrent_claims_of_one_delivery_accept_exactly_one(db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    delivery_id = f"msg_{uuid.uuid4().hex}"
    providers = [ConnectionProvider(db.url, autocommit=True) for _ in range(8)]
    try:
        ledgers = [PostgresReceiptLedger(p, retry_after_seconds=2) for p in providers]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda ledger: ledger.claim(receipt(delivery_id, Outcome.ACCEPTED)), ledgers
                )
            )
    finally:
        for provider in providers:
            provider.discard()

    assert sorted(answers) == [False] * 7 + [True]
    outcomes = db.rows("select outcome from webhook_receipts where delivery_id = %s", delivery_id)
    assert sorted(r["outcome"] for r in outcomes) == ["accepted"] + ["duplicate"] * 7


def test_a_delivery_that_could_not_be_queued_is_accepted_on_the_senders_retry(
    connections: ConnectionProvider, db: Database
) -> None:
    """503 and the receipt rejected: the retry is accepted, not answered `duplicate`."""
    from portal_sync.inbound.ingest import (
        IngestLimits,
        QueueUnavailable,
        WebhookIngest,
        WebhookRequest,
    )
    from portal_sync.inbound.source_config import SigningKey, SourceConfig
    from support import signed_headers

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    org = db.one("insert into organizations (name) values ('Ledger test') returning id")["id"]
    source = SourceConfig(source_id="src", organization_id=org, keys=[SigningKey(value=secret)])

    class Sources:  # the ingest's source port, in memory
        def get(self, source_id: str) -> SourceConfig | None:
            return source

        refresh = get

    class Queue:  # the ingest's queue port, in memory
        broken = True
        sent: list[str] = []

        def send(self, message_body: str) -> None:
            if self.broken:
                raise QueueUnavailable("down")
            self.sent.append(message_body)

    queue = Queue()
    ingest = WebhookIngest(
        Sources(),
        queue,
        PostgresReceiptLedger(connections, retry_after_seconds=2),
        IngestLimits(512 * 1024, 300),
    )
    body = b'{"type": "membership.created"}'
    headers = signed_headers(secret, body, webhook_id="msg_queue_down")

    assert ingest.handle(WebhookRequest("src", headers, body)).status_code == 503
    queue.broken = False
    retry = ingest.handle(WebhookRequest("src", headers, body))

    assert retry.body == {"status": "accepted", "id": "msg_queue_down"}
    rows = db.rows(
        "select outcome, reason from webhook_receipts where delivery_id = 'msg_queue_down'"
        " order by recorded_at"
    )
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("rejected", "QUEUE_UNAVAILABLE"),
        ("accepted", None),
    ]


def test_a_receipt_is_written_and_committed_in_one_round_trip(
    connections: ConnectionProvider, db: Database, tmp_path: Path
) -> None:
    ledger = PostgresReceiptLedger(connections, retry_after_seconds=2)
    duplicate = receipt(f"msg_{uuid.uuid4().hex}", Outcome.DUPLICATE)

    messages = wire(connections, tmp_path / "trace", lambda: ledger.record(duplicate))

    assert round_trips(messages) == 1, messages
    # Visible to another connection: committed, not waiting in an open transaction.
    assert db.one("select outcome from webhook_receipts where id = %s", duplicate.id) == {
        "outcome": "duplicate"
    }


def test_the_ledger_refuses_a_connection_that_would_leave_transactions_open() -> None:
    with pytest.raises(ValueError, match="autocommit"):
        PostgresReceiptLedger(ConnectionProvider("postgresql://unused"), retry_after_seconds=2)
