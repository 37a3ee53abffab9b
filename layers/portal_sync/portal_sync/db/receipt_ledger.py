"""Webhook receipts in PostgreSQL, as the ingest sees them: best effort, never in the way.

The ingest must accept webhooks while PostgreSQL is down, so every call here is guarded: after
a failure the ledger stops asking for `retry_after` seconds (the receipts then ride on the
queue and the consumer writes them).

Every call is one statement that stands alone, so the ledger runs on an autocommit connection:
one round trip each (the duplicate check sits on every webhook's path), where a transaction
block would add a BEGIN and a COMMIT round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from portal_sync.db.connection import ConnectionProvider, DatabaseUnavailable
from portal_sync.observability import logger
from portal_sync.webhooks.receipts import Receipt

INSERT_RECEIPT = """
insert into webhook_receipts
    (id, source_id, organization_id, delivery_id, outcome, reason, signature_mode, received_at)
values (%(id)s, %(source_id)s, %(organization_id)s, %(delivery_id)s, %(outcome)s, %(reason)s,
        %(signature_mode)s, %(received_at)s)
on conflict do nothing
"""


def receipt_params(receipt: Receipt) -> dict[str, object]:
    return receipt.model_dump(mode="python")


class PostgresReceiptLedger:
    def __init__(
        self,
        connections: ConnectionProvider,
        retry_after_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not connections.autocommit:
            # Without autocommit the first statement would open a transaction nobody commits.
            raise ValueError("PostgresReceiptLedger needs a ConnectionProvider(autocommit=True)")
        self._connections = connections
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._down_until = 0.0

    def already_accepted(self, source_id: str, delivery_id: str) -> bool | None:
        rows = self._run(
            "select 1 from webhook_receipts where source_id = %s and delivery_id = %s"
            " and outcome = 'accepted' limit 1",
            (source_id, delivery_id),
        )
        return None if rows is None else bool(rows)

    def record(self, receipt: Receipt) -> bool:
        return self._run(INSERT_RECEIPT, receipt_params(receipt)) is not None

    def _run(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[object] | None:
        if self._clock() < self._down_until:
            return None
        try:
            conn = self._connections.get()
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        except (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError):
            self._connections.discard()
            self._down_until = self._clock() + self._retry_after
            logger.warning("PostgreSQL unavailable to the ingest; receipts go through the queue")
            return None
