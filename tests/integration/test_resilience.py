"""Accepting without PostgreSQL, retries, parking and secret rotation (docs/inbound.md, "Retries and parking")."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import Database, eventually
from portal_sync_dev.local.aws_local import put_source_secret
from support import portal_event, signed_headers, sqs_record


def post(system: Any, body: bytes, secret: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}",
        content=body,
        headers=signed_headers(secret or system.seed.webhook_secret, body),
        timeout=15,
    )


def test_webhooks_accepted_while_postgres_is_down_are_applied_after_restart(
    system: Any, db: Database
) -> None:
    if db.server is None:
        pytest.skip("needs the embedded PostgreSQL, which the tests can stop")
    contacts = [str(uuid.uuid4()) for _ in range(5)]
    db.server.stop()
    try:
        answers = [post(system, portal_event("membership.created", c)) for c in contacts]
        rejected = httpx.post(
            f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}", content=b"{}"
        )
    finally:
        db.server.start()

    assert [a.status_code for a in answers] == [202] * 5
    assert rejected.status_code == 401
    applied = eventually(
        lambda: (
            (
                rows := db.rows(
                    "select dynamics_contact_id from profiles where dynamics_contact_id = any(%s)",
                    contacts,
                )
            )
            and len(rows) == 5
            and rows
        ),
        timeout=30,
    )
    assert {r["dynamics_contact_id"] for r in applied} == set(contacts)
    # Receipts written while the database was down arrive through the queue.
    receipts = eventually(
        lambda: (
            (rows := db.rows("select outcome, reason from webhook_receipts"))
            and len(rows) == 6
            and rows
        ),
        timeout=30,
    )
    assert sorted(r["outcome"] for r in receipts) == ["accepted"] * 5 + ["rejected"]


def test_rotated_secret_works_on_the_very_next_webhook_and_old_one_until_grace_ends(
    system: Any, db: Database
) -> None:
    new_secret = "whsec_" + "bmV3LXNlY3JldC1mb3ItdGhlLWRlbW8tb3JnYW5pc2F0aW9u"
    grace_end = datetime.now(UTC) + timedelta(seconds=2)
    assert (
        post(system, portal_event("membership.created", str(uuid.uuid4()))).status_code == 202
    )  # the old secret is now cached

    put_source_secret(
        system.seed.source_id,
        {
            "organization_id": str(system.seed.org_id),
            "keys": [
                {"value": new_secret},
                {"value": system.seed.webhook_secret, "expires_at": grace_end.isoformat()},
            ],
        },
    )
    assert (
        post(system, portal_event("membership.created", str(uuid.uuid4())), new_secret).status_code
        == 202
    )
    assert post(system, portal_event("membership.created", str(uuid.uuid4()))).status_code == 202

    # The grace period's end is checked on every request, against the cached secret too.
    time.sleep(max(0.0, (grace_end - datetime.now(UTC)).total_seconds()) + 0.2)
    assert post(system, portal_event("membership.created", str(uuid.uuid4()))).status_code == 401
    assert (
        post(system, portal_event("membership.created", str(uuid.uuid4())), new_secret).status_code
        == 202
    )


def test_event_failing_on_its_last_attempt_is_logged_as_error_and_parked(
    system: Any, db: Database
) -> None:
    """A message that keeps failing is retried; on its last receive it is shown as an error
    (payload kept for reprocessing) and still reported failed, so SQS's redrive parks it."""
    from portal_sync.inbound.queue_message import QueuedEvent
    from portal_sync.inbound.receipts import Outcome, Receipt

    consume = system.functions["process_event"].invoke  # its lock keeps the consumer thread out
    receipt = Receipt(
        id=uuid.uuid4(),
        source_id=system.seed.source_id,
        organization_id=system.seed.org_id,
        delivery_id="msg_poison",
        outcome=Outcome.ACCEPTED,
        received_at=datetime.now(UTC),
    )
    body = portal_event("membership.created", str(uuid.uuid4()))
    message = QueuedEvent(
        receipt=receipt,
        event_id="msg_poison",
        correlation_id="c",
        body_b64=base64.b64encode(body).decode(),
    )

    def record(receive_count: int) -> dict[str, Any]:
        return sqs_record("m-1", message.model_dump_json(), receive_count)

    # Poison: the database refuses this one message's receipt.
    with db.connect() as conn:
        conn.execute(
            "alter table webhook_receipts add constraint poison check (delivery_id <> 'msg_poison') not valid"
        )
    try:
        first_try = consume({"Records": [record(1)]})
        logged_after_first = db.one(
            "select 1 as x from portal_sync_events where event_id = 'msg_poison'"
        )
        last_try = consume({"Records": [record(10)]})
    finally:
        with db.connect() as conn:
            conn.execute("alter table webhook_receipts drop constraint poison")

    assert first_try == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert logged_after_first is None  # still being retried: not an error yet
    assert last_try == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    entry = db.one("select * from portal_sync_events where event_id = 'msg_poison'")
    assert entry is not None and entry["status"] == "error"
    assert entry["event_type"] == "membership.created"
    assert "after 10 attempts" in entry["message"] and "parked" in entry["message"]
    assert entry["attempts"] == 10  # as the message says (the failed ones were rolled back)
    assert "constraint" not in entry["message"]  # no driver errors shown to admins
    kept = db.one("select message from portal_sync_event_payloads where event_id = 'msg_poison'")
    assert kept["message"]["event_id"] == "msg_poison"
    # Nothing but the seeded demo mentor has a Dynamics contact: the poisoned event applied nothing.
    assert [
        r["first_name"]
        for r in db.rows("select first_name from profiles where dynamics_contact_id is not null")
    ] == ["Demo"]


def test_malformed_queue_message_is_dropped_not_retried_forever(system: Any, db: Database) -> None:
    record = {
        "messageId": "m-2",
        "receiptHandle": "h",
        "body": json.dumps({"kind": "something-else"}),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-north-1:000000000000:q",
        "awsRegion": "eu-north-1",
    }
    assert system.functions["process_event"].invoke({"Records": [record]}) == {
        "batchItemFailures": []
    }
