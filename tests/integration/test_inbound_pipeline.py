"""End to end over loopback HTTP: a signed webhook in, rows in PostgreSQL out (CONTRACT 3 and 4)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import Database, eventually
from support import portal_event, signed_headers


def webhook_url(system: Any, source_id: str | None = None) -> str:
    return f"{system.base_url}/functions/v1/portal-webhook/{source_id or system.seed.source_id}"


def send(system: Any, body: bytes, **kwargs: Any) -> httpx.Response:
    headers = signed_headers(system.seed.webhook_secret, body, **kwargs)
    return httpx.post(webhook_url(system), content=body, headers=headers, timeout=10)


def member(db: Database, contact_id: str) -> dict[str, Any] | None:
    return db.one(
        "select p.*, m.role, m.status, m.source_modified_at from profiles p"
        " join organization_memberships m on m.profile_id = p.id where p.dynamics_contact_id = %s",
        contact_id,
    )


def log_entry(db: Database, event_id: str) -> dict[str, Any] | None:
    return db.one("select * from portal_sync_events where event_id = %s", event_id)


def test_membership_created_is_applied_within_two_seconds(system: Any, db: Database) -> None:
    contact = str(uuid.uuid4())
    response = send(system, portal_event("membership.created", contact, role="peer_mentor"))

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    row = eventually(lambda: member(db, contact), timeout=2.0)
    assert (row["first_name"], row["last_name"], row["email"]) == (
        "Kari",
        "Nordmann",
        "kari@example.org",
    )
    assert row["role"] == "peer_mentor"
    assert row["status"] == "active" and row["is_active"] is True
    entry = eventually(lambda: log_entry(db, response.json()["id"]))
    assert entry["status"] == "success"
    assert entry["event_type"] == "membership.created"
    assert entry["attempts"] == 1
    assert entry["processed_at"] >= entry["received_at"]
    receipt = db.one("select * from webhook_receipts where delivery_id = %s", response.json()["id"])
    assert receipt is not None and receipt["outcome"] == "accepted"


def test_role_update_and_deactivation_are_applied(system: Any, db: Database) -> None:
    contact = str(uuid.uuid4())
    send(system, portal_event("membership.created", contact, occurred_at="2026-11-20T10:00:00Z"))
    eventually(lambda: member(db, contact))

    send(
        system,
        portal_event(
            "membership.role_updated",
            contact,
            role="coordinator",
            occurred_at="2026-11-20T11:00:00Z",
        ),
    )
    eventually(lambda: (row := member(db, contact)) and row["role"] == "coordinator")

    deactivation = send(
        system, portal_event("membership.deactivated", contact, occurred_at="2026-11-20T12:00:00Z")
    )
    row = eventually(lambda: (row := member(db, contact)) and row["status"] == "inactive" and row)
    assert row["is_active"] is False
    entry = eventually(lambda: log_entry(db, deactivation.json()["id"]))
    assert "deactivated" in entry["message"]


def test_role_update_for_unknown_member_creates_the_member(system: Any, db: Database) -> None:
    contact = str(uuid.uuid4())
    response = send(system, portal_event("membership.role_updated", contact, role="coordinator"))

    assert response.status_code == 202
    row = eventually(lambda: member(db, contact))
    assert row["role"] == "coordinator" and row["status"] == "active"
    entry = eventually(lambda: log_entry(db, response.json()["id"]))
    assert entry["status"] == "success"
    assert "not known" in entry["message"] and "created" in entry["message"]


def test_older_event_after_newer_is_skipped_as_stale(system: Any, db: Database) -> None:
    contact = str(uuid.uuid4())
    send(
        system,
        portal_event(
            "membership.role_updated",
            contact,
            role="coordinator",
            occurred_at="2026-11-20T12:00:00Z",
        ),
    )
    eventually(lambda: member(db, contact))

    older = send(
        system,
        portal_event(
            "membership.role_updated", contact, role="member", occurred_at="2026-11-20T09:00:00Z"
        ),
    )
    entry = eventually(lambda: log_entry(db, older.json()["id"]))

    assert entry["status"] == "skipped"
    assert "Stale" in entry["message"]
    assert member(db, contact)["role"] == "coordinator"


def test_duplicate_delivery_changes_nothing(system: Any, db: Database) -> None:
    contact = str(uuid.uuid4())
    body = portal_event("membership.created", contact)
    first = send(system, body, webhook_id="msg_duplicate_1")
    entry = eventually(lambda: log_entry(db, "msg_duplicate_1"))
    before = member(db, contact)

    again = send(system, body, webhook_id="msg_duplicate_1")

    assert first.json() == {"status": "accepted", "id": "msg_duplicate_1"}
    assert again.status_code == 202
    assert again.json() == {"status": "duplicate", "id": "msg_duplicate_1"}
    eventually(lambda: db.one("select 1 as x from webhook_receipts where outcome = 'duplicate'"))
    assert log_entry(db, "msg_duplicate_1")["attempts"] == entry["attempts"] == 1
    assert member(db, contact) == before


def test_a_resend_before_the_first_is_applied_is_a_duplicate(system: Any, db: Database) -> None:
    """The ingest writes the accepted receipt when it accepts: a resend arriving while the first
    delivery still waits in the queue is answered `duplicate`, and only one is applied."""
    body = portal_event("membership.created", str(uuid.uuid4()))
    with system.consumer_paused() as consumer:
        first = send(system, body, webhook_id="msg_race")
        again = send(system, body, webhook_id="msg_race")
        while consumer.poll_once(wait_seconds=0):
            pass

    assert first.json() == {"status": "accepted", "id": "msg_race"}
    assert again.json() == {"status": "duplicate", "id": "msg_race"}
    outcomes = sorted(
        r["outcome"]
        for r in db.rows("select outcome from webhook_receipts where delivery_id = 'msg_race'")
    )
    assert outcomes == ["accepted", "duplicate"]
    # The consumer took the receipt the ingest wrote for its own delivery, not for a duplicate.
    entry = log_entry(db, "msg_race")
    assert entry["status"] == "success" and entry["attempts"] == 1


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
            401,
            "MISSING_SIGNATURE",
        ),
        (
            lambda h, b: ({**h, "webhook-signature": "v1,AAAA" + h["webhook-signature"][7:]}, b),
            401,
            "SIGNATURE_MISMATCH",
        ),
        (lambda h, b: (h, b + b" "), 401, "SIGNATURE_MISMATCH"),
    ],
    ids=["missing-signature", "wrong-signature", "tampered-body"],
)
def test_rejections_answer_and_are_recorded(
    system: Any, db: Database, mutate: Any, status: int, reason: str
) -> None:
    contact = str(uuid.uuid4())
    body = portal_event("membership.created", contact)
    headers, sent = mutate(signed_headers(system.seed.webhook_secret, body), body)

    response = httpx.post(webhook_url(system), content=sent, headers=headers)

    assert response.status_code == status
    assert response.json() == {"code": 401, "message": "Webhook verification failed"}
    receipt = db.one("select * from webhook_receipts order by received_at desc limit 1")
    assert receipt["outcome"] == "rejected" and receipt["reason"] == reason
    assert member(db, contact) is None


def test_stale_timestamp_is_rejected(system: Any, db: Database) -> None:
    import time

    body = portal_event("membership.created", str(uuid.uuid4()))
    response = send(system, body, timestamp=int(time.time()) - 301)

    assert response.status_code == 401
    assert db.one("select reason from webhook_receipts")["reason"] == "TIMESTAMP_OUT_OF_WINDOW"


def test_unknown_source_answers_like_a_bad_signature(system: Any, db: Database) -> None:
    body = portal_event("membership.created", str(uuid.uuid4()))
    headers = signed_headers(system.seed.webhook_secret, body)

    response = httpx.post(webhook_url(system, "no-such-source"), content=body, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "Webhook verification failed"}
    assert db.one("select reason from webhook_receipts")["reason"] == "UNKNOWN_SOURCE"


def test_source_without_secret_is_rejected(system: Any, db: Database) -> None:
    from portal_sync_dev.local.aws_local import put_source_secret

    put_source_secret("no-secret", {"organization_id": str(system.seed.org_id), "keys": []})
    body = portal_event("membership.created", str(uuid.uuid4()))

    response = httpx.post(
        webhook_url(system, "no-secret"), content=body, headers=signed_headers("whsec_AAAA", body)
    )

    assert response.status_code == 401
    assert db.one("select reason from webhook_receipts")["reason"] == "SECRET_NOT_CONFIGURED"


def test_body_limit(system: Any, db: Database) -> None:
    padding = "x" * (256 * 1024)
    big = json.dumps(
        {**json.loads(portal_event("membership.created", str(uuid.uuid4()))), "padding": padding}
    ).encode()
    assert send(system, big).status_code == 202  # Dataverse's own limit must pass

    too_big = b'{"padding": "' + b"x" * (600 * 1024) + b'"}'
    response = send(system, too_big)

    assert response.status_code == 413
    assert (
        db.one("select reason from webhook_receipts where outcome = 'rejected'")["reason"]
        == "PAYLOAD_TOO_LARGE"
    )


def test_verified_body_that_is_not_json_is_a_400(system: Any, db: Database) -> None:
    response = send(system, b"membership created, honest")

    assert response.status_code == 400
    assert db.one("select reason from webhook_receipts")["reason"] == "UNPARSABLE_JSON"


def test_cors_preflight_answers_with_supabase_headers(system: Any) -> None:
    response = httpx.options(
        webhook_url(system),
        headers={"origin": "https://app.example.org", "access-control-request-method": "POST"},
    )
    assert response.status_code in (200, 204)
    allowed = response.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "x-client-info", "apikey", "content-type"):
        assert name in allowed


def test_an_event_with_a_nul_character_is_an_error_at_once_not_a_poison_message(
    system: Any, db: Database
) -> None:
    """PostgreSQL text cannot hold U+0000: instead of failing ten times and being parked unseen,
    the event is shown as an error straight away (its payload kept)."""
    contact = str(uuid.uuid4())
    body = portal_event("membership.created", contact, first_name="Ka\u0000ri")
    assert b"\\u0000" in body

    response = send(system, body)

    assert response.status_code == 202
    entry = eventually(lambda: log_entry(db, response.json()["id"]))
    assert entry["status"] == "error" and "NUL" in entry["message"]
    assert entry["attempts"] == 1
    assert member(db, contact) is None


@pytest.mark.parametrize(
    "bad_time",
    ["2999-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"],
    ids=["far future", "year 1 at +14:00"],
)
def test_an_implausible_occurred_at_is_an_error_and_never_makes_later_events_stale(
    system: Any, db: Database, bad_time: str
) -> None:
    """Applied, 2999 would make every later change of the member stale (deactivations too), and
    year 1 at +14:00 (year 0 in UTC) would make every later event of the member fail."""
    contact = str(uuid.uuid4())
    created = send(system, portal_event("membership.created", contact))
    eventually(lambda: (row := log_entry(db, created.json()["id"])) and row["status"] == "success")

    bad = send(
        system, portal_event("membership.role_updated", contact, role="admin", occurred_at=bad_time)
    )
    entry = eventually(lambda: log_entry(db, bad.json()["id"]))

    assert bad.status_code == 202
    assert entry["status"] == "error" and entry["attempts"] == 1
    assert "occurred_at" in entry["message"] and "not applied" in entry["message"]
    assert entry["source_modified_at"] is None
    assert db.one(
        "select 1 as kept from portal_sync_event_payloads where event_id = %s", bad.json()["id"]
    )
    deactivation = send(
        system, portal_event("membership.deactivated", contact, occurred_at="2026-11-20T11:00:00Z")
    )
    done = eventually(lambda: log_entry(db, deactivation.json()["id"]))
    assert done["status"] == "success", done["message"]
    row = member(db, contact)
    assert (row["status"], row["role"]) == ("inactive", "member")
    assert row["source_modified_at"] == datetime(2026, 11, 20, 11, tzinfo=UTC)


def test_a_signed_body_nested_1200_deep_is_unparsable_json_with_a_receipt(
    system: Any, db: Database
) -> None:
    body = b'{"type": "membership.created", "x": ' + b"[" * 1200 + b"]" * 1200 + b"}"

    response = send(system, body)

    assert response.status_code == 400
    assert response.json()["code"] == 400
    receipt = db.one("select outcome, reason from webhook_receipts")
    assert receipt == {"outcome": "rejected", "reason": "UNPARSABLE_JSON"}


def test_a_failure_of_ours_in_the_ingest_answers_503_never_500(system: Any) -> None:
    """Dataverse retries 502/503/504 once and a 500 never: whatever fails in the ingest (here
    the request's own base64 body, decoded before the ingest logic runs) answers 503."""
    from portal_sync_dev.local.lambda_http import build_http_event

    event = build_http_event(
        "POST", f"/functions/v1/portal-webhook/{system.seed.source_id}", {}, b"{}", "127.0.0.1"
    )
    event.update(body="not base64!", isBase64Encoded=True)

    result = system.functions["webhook_ingest"].invoke(event)

    assert result["statusCode"] == 503
    answer = json.loads(result["body"])
    assert answer["code"] == 503 and set(answer) == {"code", "message"}
