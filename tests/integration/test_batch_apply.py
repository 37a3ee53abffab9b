"""The consumer's fast path: a whole SQS batch read and written set-wise, and its way back.

`process_event` applies a batch together (BatchedSyncRepository) and, when that fails for any
reason but the connection, rolls it back and applies the messages one at a time. These tests
cover what the bulk equivalence tests (tests/reliability/test_exactly_once.py) do not: messages
of one batch that depend on each other, a bad message among good ones, and a member created by
another consumer while the batch was being applied.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import Database, eventually
from dataverse_payloads import dataverse_context, lookup, option
from portal_sync.adapters.postgres.batched_sync_repository import (
    BatchConflict,
    BatchedSyncRepository,
)
from portal_sync.adapters.postgres.sync_repository import PostgresSyncRepository
from portal_sync.inbound.processor import EventProcessor
from portal_sync.inbound.queue_message import QueuedEvent
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.observability import logger as app_logger
from psycopg.rows import dict_row
from support import portal_event, sqs_record

MODIFIED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def queued(org_id: uuid.UUID, source_id: str, body: bytes, event_id: str) -> QueuedEvent:
    receipt = Receipt(
        id=uuid.uuid4(),
        source_id=source_id,
        organization_id=org_id,
        delivery_id=event_id,
        outcome=Outcome.ACCEPTED,
        received_at=datetime.now(UTC),
    )
    return QueuedEvent(
        receipt=receipt,
        event_id=event_id,
        correlation_id=event_id,
        body_b64=base64.b64encode(body).decode(),
    )


def sqs_batch(*messages: QueuedEvent, receives: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            sqs_record(f"m-{message.event_id}", message.model_dump_json(), receives)
            for message in messages
        ]
    }


def logged(db: Database, *event_ids: str) -> dict[str, str]:
    rows = db.rows(
        "select event_id, status from portal_sync_events where event_id = any(%s)",
        list(event_ids),
    )
    return {r["event_id"]: r["status"] for r in rows}


def test_a_membership_row_created_and_updated_in_one_batch_resolves_its_contact(
    system: Any, db: Database
) -> None:
    """The update names only the row (no contact column, as Update steps without images send
    it): its contact is the one the create in the same batch gave, not yet in the database."""
    contact, row = str(uuid.uuid4()), str(uuid.uuid4())
    create = dataverse_context(
        "Create",
        "hlf_membership",
        row,
        {"hlf_contactid": lookup("contact", contact), "hlf_role": option(100000000)},
        modified_on=MODIFIED,
    )
    update = dataverse_context(
        "Update",
        "hlf_membership",
        row,
        {"hlf_role": option(100000002)},
        modified_on=MODIFIED + timedelta(minutes=1),
    )
    org, source = system.seed.org_id, system.seed.source_id
    messages = [
        queued(org, source, json.dumps(create).encode(), "dv-create"),
        queued(org, source, json.dumps(update).encode(), "dv-update"),
    ]

    response = system.functions["process_event"].invoke(sqs_batch(*messages))

    assert response == {"batchItemFailures": []}
    assert logged(db, "dv-create", "dv-update") == {"dv-create": "success", "dv-update": "success"}
    member = db.one(
        "select m.role, m.status, m.dynamics_row_id from organization_memberships m"
        " join profiles p on p.id = m.profile_id where p.dynamics_contact_id = %s",
        contact,
    )
    assert member == {"role": "coordinator", "status": "active", "dynamics_row_id": row}


def test_a_bad_message_fails_alone_and_the_rest_of_its_batch_is_applied(
    system: Any, db: Database
) -> None:
    """The database refuses one message's receipt: the batch applied together fails and is
    rolled back, then applied one message at a time, so only that message goes back to SQS."""
    org, source = system.seed.org_id, system.seed.source_id
    contacts = [str(uuid.uuid4()) for _ in range(3)]
    messages = [
        queued(org, source, portal_event("membership.created", contact), f"batch-{n}")
        for n, contact in enumerate(contacts)
    ]
    with db.connect() as conn:
        conn.execute(
            "alter table webhook_receipts add constraint poison"
            " check (delivery_id <> 'batch-1') not valid"
        )
    try:
        response = system.functions["process_event"].invoke(sqs_batch(*messages))
    finally:
        with db.connect() as conn:
            conn.execute("alter table webhook_receipts drop constraint poison")

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-batch-1"}]}
    assert logged(db, "batch-0", "batch-1", "batch-2") == {
        "batch-0": "success",
        "batch-2": "success",
    }
    created = db.rows(
        "select dynamics_contact_id from profiles where dynamics_contact_id = any(%s)", contacts
    )
    assert sorted(r["dynamics_contact_id"] for r in created) == sorted([contacts[0], contacts[2]])


def test_a_member_created_by_another_consumer_meanwhile_is_a_conflict_not_a_duplicate(
    db: Database,
) -> None:
    """The batch reads the member as unknown while another consumer is creating them; when the
    batch writes, the other has committed. Writing must neither fail with a constraint error
    nor make a second profile: it raises BatchConflict, and the same message applied on its own
    (what the consumer does next) joins the existing profile."""
    org = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Batch')", (org,))
    contact = str(uuid.uuid4())
    message = queued(org, "batch-source", portal_event("membership.created", contact), "race")

    with (
        psycopg.connect(db.url, row_factory=dict_row) as conn,
        psycopg.connect(db.url) as other,
    ):
        # The other consumer's creation, not committed yet: the batch cannot see it.
        other.execute(
            "insert into profiles (dynamics_contact_id, first_name) values (%s, 'Other')",
            (contact,),
        )
        outcome: dict[str, Any] = {}

        def apply_batch() -> None:
            try:
                with conn.transaction():
                    EventProcessor(BatchedSyncRepository(conn)).process_batch([message])
            except Exception as exc:
                outcome["error"] = exc

        batch = threading.Thread(target=apply_batch)
        batch.start()
        # Once the batch's insert waits for the other's row, the other commits.
        eventually(
            lambda: db.one(
                "select 1 as waiting from pg_stat_activity"
                " where pid = %s and wait_event_type = 'Lock'",
                conn.info.backend_pid,
            )
        )
        other.commit()
        batch.join(timeout=10)

        assert isinstance(outcome.get("error"), BatchConflict)
        with conn.transaction():
            status = EventProcessor(PostgresSyncRepository(conn)).process(message)

    assert status is not None and status.value == "success"
    profiles = db.rows("select first_name from profiles where dynamics_contact_id = %s", contact)
    assert len(profiles) == 1
    assert logged(db, "race") == {"race": "success"}


def test_a_failing_member_leaves_no_personal_data_in_the_logs(
    system: Any, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL quotes the failing row in its errors (names, e-mail): the consumer logs what
    failed (error class, SQLSTATE, constraint, table), not the message."""
    org, source = system.seed.org_id, system.seed.source_id
    contact = str(uuid.uuid4())
    body = portal_event("membership.created", contact, first_name="Refused")
    with db.connect() as conn:
        conn.execute(
            "alter table profiles add constraint no_refused check (first_name <> 'Refused') not valid"
        )
    try:
        caplog.clear()
        response = system.functions["process_event"].invoke(
            sqs_batch(queued(org, source, body, "private"))
        )
        # Each record as the function writes it to CloudWatch (Powertools' JSON formatter).
        logs = "\n".join(
            app_logger.registered_formatter.format(r)
            for r in caplog.records
            if r.name == app_logger.name
        )
    finally:
        with db.connect() as conn:
            conn.execute("alter table profiles drop constraint no_refused")

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-private"}]}
    assert "no_refused" in logs and "23514" in logs  # what failed, for on-call
    assert "Refused" not in logs and "Nordmann" not in logs and contact not in logs


def test_a_batch_costs_the_same_few_statements_whatever_its_size(db: Database) -> None:
    """What makes a batch of 100 cheap (BENCHMARKS.md, docs/inbound.md): its reads and writes
    are set-wise, so ten times the events send no more statements."""
    org = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Batch')", (org,))

    def statements_for(size: int) -> int:
        messages = [
            queued(
                org, "count", portal_event("membership.created", str(uuid.uuid4())), f"n{size}-{n}"
            )
            for n in range(size)
        ]
        with psycopg.connect(db.url, row_factory=dict_row) as conn:
            sent = 0
            execute = conn.execute

            def counting(*args: Any, **kwargs: Any) -> Any:
                nonlocal sent
                sent += 1
                return execute(*args, **kwargs)

            conn.execute = counting  # type: ignore[method-assign]
            with conn.transaction():
                statuses = EventProcessor(BatchedSyncRepository(conn)).process_batch(messages)
        assert [s.value if s else None for s in statuses] == ["success"] * size
        return sent

    few, many = statements_for(4), statements_for(40)

    assert many == few
    # Receipts and log statuses, the members, the organisation's settings; then receipts,
    # profiles, memberships and log entries written.
    assert few <= 8
    assert db.one("select count(*) as n from profiles")["n"] == 44
