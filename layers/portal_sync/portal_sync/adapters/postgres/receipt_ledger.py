"""Webhook receipts in PostgreSQL, as the ingest sees them: best effort, never in the way.

The ingest must accept webhooks while PostgreSQL is down, so every call here is guarded: after
a failure the ledger stops asking for `retry_after` seconds (the receipts then ride on the
queue and the consumer writes them).

Every call is one statement that stands alone, so the ledger runs on an autocommit connection:
one round trip each (the claim sits on every webhook's path), where a transaction block would
add a BEGIN and a COMMIT round trip. The receipts' part in the pipeline: docs/inbound.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.inbound.receipts import Receipt
from portal_sync.observability import error_facts, logger, tracer
from portal_sync.unavailable import DatabaseUnavailable

_INSERT_RECEIPT = """
insert into webhook_receipts
    (id, source_id, organization_id, delivery_id, outcome, reason, signature_mode, received_at)
values (%(id)s, %(source_id)s, %(organization_id)s, %(delivery_id)s, %(outcome)s, %(reason)s,
        %(signature_mode)s, %(received_at)s)
"""
# The consumer's receipts (sync_repository.py): one already recorded is left as it is.
INSERT_RECEIPT = _INSERT_RECEIPT + "on conflict do nothing"
# The ingest's receipts: a claimed receipt whose event could not be queued is replaced by its
# rejection (same id), so that it no longer blocks the sender's retry as a duplicate.
RECORD_RECEIPT = (
    _INSERT_RECEIPT
    + "on conflict (id) do update set outcome = excluded.outcome, reason = excluded.reason"
)

# The accepted receipt, unless the delivery was accepted before (the partial unique index
# webhook_receipts_accepted_delivery decides, also between concurrent requests): then the
# same receipt is written as a duplicate. Both in one statement, one round trip.
CLAIM_RECEIPT = """
with accepted as (
    insert into webhook_receipts
        (id, source_id, organization_id, delivery_id, outcome, signature_mode, received_at)
    values (%(id)s, %(source_id)s, %(organization_id)s, %(delivery_id)s, 'accepted',
            %(signature_mode)s, %(received_at)s)
    on conflict (source_id, delivery_id) where outcome = 'accepted' do nothing
    returning id
), duplicate as (
    insert into webhook_receipts
        (id, source_id, organization_id, delivery_id, outcome, signature_mode, received_at)
    select %(id)s, %(source_id)s, %(organization_id)s, %(delivery_id)s, 'duplicate',
           %(signature_mode)s, %(received_at)s
     where not exists (select from accepted)
)
select exists (select from accepted) as accepted
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

    @tracer.capture_method
    def claim(self, receipt: Receipt) -> bool | None:
        rows = self._run(CLAIM_RECEIPT, receipt_params(receipt))
        return None if rows is None else bool(rows[0]["accepted"])

    @tracer.capture_method
    def record(self, receipt: Receipt) -> bool:
        return self._run(RECORD_RECEIPT, receipt_params(receipt)) is not None

    def _run(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> list[dict[str, Any]] | None:
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
        except psycopg.Error as exc:
            # Any other refusal (a grant, a constraint) must not refuse the webhook either: the
            # receipt goes through the queue, and the consumer reports what fails there.
            logger.error("The ingest could not write a receipt", extra=error_facts(exc))
            return None
