"""A poison message, the whole story: retried, parked, shown as an error, fixed, reprocessed.

A signed webhook arrives over HTTP whose member the database refuses (a check constraint stands
in for any cause an operator has to fix: a bad migration, a trigger, a data rule). The real
consumer retries it through the real queue until SQS's redrive policy parks it in the
dead-letter queue; meanwhile an event next to it is applied. The sync log shows it as an error
an administrator may reprocess; once the cause is removed, the admin API's reprocess takes it
out of the dead-letter queue and it is applied.

Parts of this are covered on their own in tests/integration: the last attempt writing the error
(test_resilience.py, by invoking the handler with receive counts 1 and 10) and reprocessing an
event placed in the dead-letter queue by hand (test_admin_api.py). Here every step is taken by
the running system. The back-off between attempts is set to 0 s (RETRY_BASE_SECONDS, as the
template sets it on AWS) so the ten attempts take a second instead of half a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from conftest import Database, eventually
from support import portal_event, signed_headers


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from portal_sync import bootstrap

    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RETRY_MAX_SECONDS", "0")
    bootstrap.reset()
    yield
    monkeypatch.undo()
    bootstrap.reset()


@pytest.fixture
def refused_contact(db: Database) -> Iterator[str]:
    """A contact the database refuses to store until the constraint is dropped."""
    contact = str(uuid.uuid4())
    with db.connect() as conn:
        conn.execute(
            "alter table profiles add constraint reliability_poison"
            f" check (dynamics_contact_id is distinct from '{contact}') not valid"
        )
    yield contact
    with db.connect() as conn:
        conn.execute("alter table profiles drop constraint if exists reliability_poison")


def parked(system: Any) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=system.aws.dead_letter_queue_url, AttributeNames=["All"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_poison_message_is_parked_shown_and_applied_after_the_fix_and_reprocess(
    system: Any, db: Database, fast_retries: None, refused_contact: str
) -> None:
    url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    admin_api = f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}"
    admin = {"authorization": f"Bearer {system.seed.org_admin_token}"}
    healthy_contact = str(uuid.uuid4())
    poison = portal_event("membership.created", refused_contact, role="coordinator")
    healthy = portal_event("membership.created", healthy_contact)

    sent = [
        httpx.post(url, content=body, headers=signed_headers(system.seed.webhook_secret, body))
        for body in (poison, healthy)
    ]

    assert [r.status_code for r in sent] == [202, 202]
    poison_id = sent[0].json()["id"]
    # The neighbour is not held up by the poison.
    eventually(
        lambda: db.one(
            "select 1 as ok from profiles where dynamics_contact_id = %s", healthy_contact
        )
    )
    # Ten attempts, then the error is logged and SQS parks the message.
    entry = eventually(
        lambda: db.one("select * from portal_sync_events where event_id = %s", poison_id),
        timeout=30,
        interval=0.1,
    )
    assert entry["status"] == "error"
    assert "after 10 attempts" in entry["message"] and "parked" in entry["message"]
    assert entry["attempts"] == 10
    assert "constraint" not in entry["message"] and refused_contact not in entry["message"]
    eventually(lambda: parked(system) == 1, timeout=15)
    assert (
        db.one("select 1 as ok from profiles where dynamics_contact_id = %s", refused_contact)
        is None
    )

    # The administrator sees it as an error to reprocess.
    errors = httpx.get(f"{admin_api}/sync/events?status=error", headers=admin).json()["items"]
    assert [(e["event_id"], e["event_type"], e["can_reprocess"]) for e in errors] == [
        (poison_id, "membership.created", True)
    ]
    status = httpx.get(f"{admin_api}/sync/status", headers=admin).json()
    assert status["failed"] == 1

    # The cause is fixed; reprocessing takes it out of the dead-letter queue and applies it.
    with db.connect() as conn:
        conn.execute("alter table profiles drop constraint reliability_poison")
    response = httpx.post(
        f"{admin_api}/sync/events/{errors[0]['id']}/reprocess", headers=admin, timeout=15
    )

    assert response.status_code == 202, response.text
    assert response.json() == {
        "event_id": poison_id,
        "status": "queued",
        "removed_from_dead_letter_queue": 1,
    }
    done = eventually(
        lambda: (
            (row := db.one("select * from portal_sync_events where event_id = %s", poison_id))
            and row["status"] == "success"
            and row
        ),
        timeout=15,
    )
    assert "created" in done["message"]
    member = db.one(
        "select p.is_active, m.role from profiles p join organization_memberships m"
        " on m.profile_id = p.id where p.dynamics_contact_id = %s",
        refused_contact,
    )
    assert member == {"is_active": True, "role": "coordinator"}
    assert parked(system) == 0
    assert httpx.get(f"{admin_api}/sync/status", headers=admin).json()["failed"] == 0
    assert [
        r["outcome"]
        for r in db.rows("select outcome from webhook_receipts where delivery_id = %s", poison_id)
    ] == ["accepted"]
    again = httpx.post(f"{admin_api}/sync/events/{errors[0]['id']}/reprocess", headers=admin)
    assert again.status_code == 409  # applied now: nothing left to reprocess
