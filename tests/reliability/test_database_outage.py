"""PostgreSQL stopped in the middle of a webhook stream and started again: nothing accepted is lost.

A sender posts a steady stream of signed webhooks over HTTP while the embedded PostgreSQL is
stopped part-way through and started again a little later, with the consumer applying batches
all along (some of them cut off by the stop). Some deliveries are sent twice, as a sender
retrying would, one of them while the database is down (when duplicates can only be caught by
the consumer). Every answer is 202, and every accepted event ends up applied exactly once.

tests/integration/test_resilience.py covers the simpler case of a few webhooks sent entirely
while PostgreSQL is down; this is the stream version, with the outage starting and ending while
requests and batches are in flight.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from conftest import Database, eventually
from support import portal_event, signed_headers

EVENTS = 60
PACE_SECONDS = 0.03


def test_every_event_accepted_around_a_database_restart_is_applied_once(
    system: Any, db: Database
) -> None:
    if db.server is None:
        pytest.skip("needs the embedded PostgreSQL, which the tests can stop")
    server = db.server
    url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    contacts = [str(uuid.uuid4()) for _ in range(EVENTS)]
    bodies = [
        portal_event("membership.created", contact, role="member", first_name=f"Stream{i}")
        for i, contact in enumerate(contacts)
    ]
    # Deliveries the sender repeats: one early (the first is applied by then), one while down.
    repeats = {5: 2, 30: 33}  # index repeated -> sent again after this index
    answers: list[tuple[str, int, dict[str, Any]]] = []
    sent = threading.Event()
    progress = threading.Semaphore(0)

    def send(client: httpx.Client, index: int) -> None:
        webhook_id = f"msg_outage_{index}"
        body = bodies[index]
        response = client.post(
            url,
            content=body,
            headers=signed_headers(system.seed.webhook_secret, body, webhook_id=webhook_id),
        )
        answers.append((webhook_id, response.status_code, response.json()))

    def sender() -> None:
        with httpx.Client(timeout=15) as client:
            for index in range(EVENTS):
                send(client, index)
                for repeated, after in repeats.items():
                    if after == index:
                        send(client, repeated)
                progress.release()
                time.sleep(PACE_SECONDS)
        sent.set()

    thread = threading.Thread(target=sender, name="webhook-sender", daemon=True)
    thread.start()
    try:
        for _ in range(EVENTS // 3):
            assert progress.acquire(timeout=30)
        server.stop()
        stopped_at = len(answers)
        for _ in range(EVENTS // 3):
            assert progress.acquire(timeout=30)
    finally:
        server.start()
    restarted_at = len(answers)
    thread.join(timeout=60)
    assert sent.is_set()

    # The outage really fell in the middle of the stream.
    assert 0 < stopped_at < restarted_at < len(answers)
    assert Counter(status for _, status, _ in answers) == {202: EVENTS + len(repeats)}
    accepted_ids = {answer["id"] for _, _, answer in answers}
    assert accepted_ids == {f"msg_outage_{i}" for i in range(EVENTS)}

    def applied() -> list[dict[str, Any]] | None:
        rows = db.rows(
            "select event_id, status, attempts from portal_sync_events where event_id like 'msg_outage_%%'"
        )
        return rows if len(rows) == EVENTS else None

    log = eventually(applied, timeout=40, interval=0.2)
    assert {r["event_id"] for r in log} == accepted_ids
    assert {(r["status"], r["attempts"]) for r in log} == {("success", 1)}
    members = db.rows(
        "select dynamics_contact_id, first_name, is_active from profiles"
        " where dynamics_contact_id = any(%s)",
        contacts,
    )
    assert sorted((m["dynamics_contact_id"], m["first_name"]) for m in members) == sorted(
        (contact, f"Stream{i}") for i, contact in enumerate(contacts)
    )
    assert all(m["is_active"] for m in members)

    # One accepted receipt per delivery id, and each repeat recorded as a duplicate (by the
    # ingest while PostgreSQL was up, by the consumer for the one sent while it was down).
    receipts = eventually(
        lambda: (
            (
                rows := db.rows(
                    "select delivery_id, outcome from webhook_receipts"
                    " where delivery_id like 'msg_outage_%%'"
                )
            )
            and len(rows) == EVENTS + len(repeats)
            and rows
        ),
        timeout=20,
        interval=0.2,
    )
    outcomes = Counter((r["delivery_id"], r["outcome"]) for r in receipts)
    assert outcomes == {
        **{(f"msg_outage_{i}", "accepted"): 1 for i in range(EVENTS)},
        **{(f"msg_outage_{i}", "duplicate"): 1 for i in repeats},
    }
