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
from portal_sync.db.connection import ConnectionProvider
from portal_sync.db.receipt_ledger import PostgresReceiptLedger
from portal_sync.webhooks.receipts import Outcome, Receipt
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


def test_the_duplicate_check_is_one_round_trip_outside_any_transaction(
    connections: ConnectionProvider, tmp_path: Path
) -> None:
    ledger = PostgresReceiptLedger(connections, retry_after_seconds=2)
    delivery_id = f"msg_{uuid.uuid4().hex}"
    assert ledger.record(receipt(delivery_id, Outcome.ACCEPTED))

    answers: list[bool | None] = []
    messages = wire(
        connections,
        tmp_path / "trace",
        lambda: answers.append(ledger.already_accepted("demo-portal", delivery_id)),
    )

    assert answers == [True]
    assert round_trips(messages) == 1, messages
    assert [m for m in messages if m.startswith("F Query")] == []  # no BEGIN, no COMMIT
    # Nothing left open: a transaction-mode pooler gets its backend back at once.
    assert connections.get().info.transaction_status == pq.TransactionStatus.IDLE


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
