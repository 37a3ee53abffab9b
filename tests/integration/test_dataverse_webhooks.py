"""Dataverse posting its own `RemoteExecutionContext` with header-key auth, end to end.

Dataverse cannot sign (docs/dataverse-mapping.md): the source is configured for its HttpHeader option. The
bodies are Microsoft's documented sample and the captures under tests/fixtures/dataverse/.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from conftest import ROOT, Database, eventually

CAPTURES = ROOT / "tests" / "fixtures" / "dataverse"
SAMPLE = CAPTURES / "contact-update-async.json"  # Microsoft's documented sample
SOURCE_ID = "hlf-dataverse"
KEY_HEADER = "x-hlf-portal-key"
KEY = "dv-key-2f9c1e7a5b3d4c6e8f0a1b2c3d4e5f60"
SAMPLE_CONTACT = "6d81597f-0f9f-e711-8122-000d3aa2331c"
CAPTURED_CONTACT = "8f1c2a3b-4d5e-4f60-9a7b-1c2d3e4f5a6b"


@pytest.fixture
def dataverse_source(system: Any) -> str:
    from portal_sync_dev.local.aws_local import put_source_secret

    put_source_secret(
        SOURCE_ID,
        {
            "organization_id": str(system.seed.org_id),
            "mode": "header-key",
            "header_name": KEY_HEADER,
            "keys": [{"value": KEY}],
        },
    )
    return f"{system.base_url}/functions/v1/portal-webhook/{SOURCE_ID}"


def post(url: str, body: bytes, key: str | None = KEY) -> httpx.Response:
    payload = json.loads(body)
    headers = {
        "content-type": "application/json",
        "x-ms-dynamics-organization": "org2f3a1c.crm4.dynamics.com",
        "x-ms-dynamics-entity-name": payload["PrimaryEntityName"],
        "x-ms-dynamics-request-name": payload["MessageName"],
        "x-ms-correlation-request-id": payload["CorrelationId"],
    }
    if key is not None:
        headers[KEY_HEADER.upper()] = key  # Dataverse's header names arrive in any case
    return httpx.post(url, content=body, headers=headers, timeout=10)


def logged(db: Database, event_id: str) -> dict[str, Any] | None:
    return db.one("select * from portal_sync_events where event_id = %s", event_id)


def test_documented_sample_is_applied_and_its_redelivery_is_a_duplicate(
    system: Any, db: Database, dataverse_source: str
) -> None:
    body = SAMPLE.read_bytes()

    response = post(dataverse_source, body)

    assert response.status_code == 202
    event_id = response.json()["id"]
    # One delivery of one event: OperationId with the step, never the shared CorrelationId.
    assert event_id == (
        "dataverse:4af10637-4ea2-e711-8122-000d3aa2331c:75417616-4ea2-e711-8122-000d3aa2331c"
    )
    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "success"
    assert (entry["event_type"], entry["source_message"], entry["source_table"]) == (
        "member.updated",
        "Update",
        "contact",
    )
    profile = db.one("select * from profiles where dynamics_contact_id = %s", SAMPLE_CONTACT)
    assert profile["first_name"] == "James"
    # Ordered by the row's modifiedon (/Date(1506384247000)/), not by OperationCreatedOn.
    assert profile["details_modified_at"] == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)

    again = post(dataverse_source, body)

    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert db.one("select count(*) as n from portal_sync_events")["n"] == 1


def test_captured_tables_are_applied_or_skipped_never_errors(
    system: Any, db: Database, dataverse_source: str
) -> None:
    ids = {}
    for name in (
        "contact-create-sync",
        "membership-create",
        "account-update-unmapped",
        "email-create-activityparty",
        "contact-deactivate-setstate",
        "membership-delete",
    ):
        # One at a time, as a member's changes happen: each is applied before the next is sent.
        response = post(dataverse_source, (CAPTURES / f"{name}.json").read_bytes())
        assert response.status_code == 202, name
        ids[name] = response.json()["id"]
        eventually(lambda name=name: logged(db, ids[name]))

    entries = {name: logged(db, event_id) for name, event_id in ids.items()}
    assert {name: e["status"] for name, e in entries.items()} == {
        "contact-create-sync": "success",
        "membership-create": "success",
        "account-update-unmapped": "skipped",
        "email-create-activityparty": "skipped",
        "contact-deactivate-setstate": "success",
        "membership-delete": "success",
    }
    assert entries["account-update-unmapped"]["message"] == (
        "Table 'account' is not in the field mapping"
    )
    # The contact's Create made them a member with the default role; their membership row says more.
    assert entries["membership-create"]["message"] == (
        "Membership confirmed active; role changed from 'member' to 'peer_mentor'"
    )
    member = db.one(
        "select p.first_name, p.last_name, p.email, p.phone, p.is_active, m.role, m.status,"
        " m.source_modified_at from profiles p join organization_memberships m"
        " on m.profile_id = p.id where p.dynamics_contact_id = %s",
        CAPTURED_CONTACT,
    )
    assert (member["first_name"], member["last_name"], member["email"], member["phone"]) == (
        "Ingrid",
        "Ødegård",
        "ingrid@example.no",
        "+47 912 34 567",
    )
    assert (member["role"], member["status"], member["is_active"]) == (
        "peer_mentor",
        "inactive",
        False,
    )
    # The membership delete is timed by OperationCreatedOn, /Date(1795360000000)/.
    assert member["source_modified_at"] == datetime.fromtimestamp(1795360000, UTC)


def test_deactivation_is_ordered_by_modifiedon_not_the_offset_operation_time(
    system: Any, db: Database, dataverse_source: str
) -> None:
    """The deactivation's OperationCreatedOn is /Date(1795340000000+0100)/: read naively it would
    be older than the membership it deactivates; its Target's modifiedon is what counts."""
    for name in ("contact-create-sync", "membership-create", "contact-deactivate-setstate"):
        event_id = post(dataverse_source, (CAPTURES / f"{name}.json").read_bytes()).json()["id"]
        eventually(lambda event_id=event_id: logged(db, event_id))

    member = db.one(
        "select m.status, m.source_modified_at from profiles p join organization_memberships m"
        " on m.profile_id = p.id where p.dynamics_contact_id = %s",
        CAPTURED_CONTACT,
    )
    assert member["status"] == "inactive"
    assert member["source_modified_at"] == datetime.fromtimestamp(1795343600, UTC)


def test_a_value_nested_900_deep_is_refused_with_a_receipt_not_queued(
    system: Any, db: Database, dataverse_source: str
) -> None:
    """Parsable JSON deeper than the consumer reads (it would exhaust the stack on every
    attempt): `400 UNPARSABLE_JSON` with a receipt, on any Python (3.13's parser reads it)."""
    from dataverse_payloads import dataverse_context

    deep: Any = "x"
    for _ in range(900):
        deep = [deep]
    context = dataverse_context(
        "Update",
        "contact",
        CAPTURED_CONTACT,
        {"firstname": "Ingrid", "hlf_notes": {"__type": "Unknown:x", "Value": deep}},
        modified_on=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )

    response = post(dataverse_source, json.dumps(context).encode())

    assert response.status_code == 400
    assert response.json()["code"] == 400
    receipt = db.one("select outcome, reason from webhook_receipts")
    assert receipt == {"outcome": "rejected", "reason": "UNPARSABLE_JSON"}
    assert db.one("select count(*) as n from portal_sync_events")["n"] == 0
    assert (
        db.one("select 1 as x from profiles where dynamics_contact_id = %s", CAPTURED_CONTACT)
        is None
    )


def test_wrong_or_missing_key_is_rejected_and_recorded(
    system: Any, db: Database, dataverse_source: str
) -> None:
    body = SAMPLE.read_bytes()

    wrong = post(dataverse_source, body, key="dv-key-guessed")
    missing = post(dataverse_source, body, key=None)

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json() == missing.json() == {"code": 401, "message": "Webhook verification failed"}
    reasons = sorted(r["reason"] for r in db.rows("select reason from webhook_receipts"))
    assert reasons == ["MISSING_SIGNATURE", "SIGNATURE_MISMATCH"]
    assert db.one("select count(*) as n from portal_sync_events")["n"] == 0


def test_echo_of_our_own_write_back_is_skipped(
    system: Any, db: Database, dataverse_source: str
) -> None:
    """When the organisation's Dynamics application user made the change, it is our own echo."""
    payload = json.loads(SAMPLE.read_bytes())
    with db.connect() as conn:
        conn.execute(
            "update integration_configs set application_user_ids = %s where organization_id = %s",
            ([payload["UserId"].upper()], system.seed.org_id),
        )

    event_id = post(dataverse_source, SAMPLE.read_bytes()).json()["id"]

    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "skipped"
    assert "Echo" in entry["message"]
    assert db.one("select id from profiles where dynamics_contact_id = %s", SAMPLE_CONTACT) is None


def member_of(db: Database, contact_id: str) -> dict[str, Any]:
    member = db.one(
        "select p.first_name, p.email, p.phone, p.is_active, m.role, m.status"
        " from profiles p join organization_memberships m on m.profile_id = p.id"
        " where p.dynamics_contact_id = %s",
        contact_id,
    )
    assert member is not None
    return member


def post_captures(url: str, db: Database, *names: str) -> dict[str, dict[str, Any]]:
    """Posts the captures one at a time, each applied before the next; their log entries."""
    entries = {}
    for name in names:
        response = post(url, (CAPTURES / f"{name}.json").read_bytes())
        assert response.status_code == 202, name
        assert response.json()["status"] == "accepted", name
        event_id = response.json()["id"]
        entries[name] = eventually(lambda event_id=event_id: logged(db, event_id))
    return entries


def test_a_resaved_contact_keeps_the_member_deactivated(
    system: Any, db: Database, dataverse_source: str
) -> None:
    """The membership ended in Dynamics (its row deleted); later a flow writes the contact
    back, `statecode` 0 included, unchanged per the pre-image. The member keeps no access."""
    entries = post_captures(
        dataverse_source,
        db,
        "contact-create-sync",
        "membership-create",
        "membership-delete",
        "contact-resave-unchanged-state",
    )

    resave = entries["contact-resave-unchanged-state"]
    assert (resave["status"], resave["event_type"]) == ("success", "member.updated")
    member = member_of(db, CAPTURED_CONTACT)
    assert (member["status"], member["is_active"]) == ("inactive", False)


def test_a_persons_edit_through_a_step_running_as_the_integration_user_is_applied(
    system: Any, db: Database, dataverse_source: str
) -> None:
    """The step runs as the integration's application user (`UserId`), a person made the
    change (`InitiatingUserId`): applied. Our own tagged PATCH echoed back is skipped."""
    run_as = json.loads((CAPTURES / "contact-update-run-as-integration-user.json").read_bytes())
    with db.connect() as conn:
        conn.execute(
            "update integration_configs set application_user_ids = %s where organization_id = %s",
            ([run_as["UserId"]], system.seed.org_id),
        )

    entries = post_captures(
        dataverse_source,
        db,
        "contact-create-sync",
        "contact-update-run-as-integration-user",
        "contact-update-echo-tagged",
    )

    edit = entries["contact-update-run-as-integration-user"]
    assert (edit["status"], edit["event_type"]) == ("success", "member.updated")
    assert member_of(db, CAPTURED_CONTACT)["first_name"] == "Inga"
    echo = entries["contact-update-echo-tagged"]
    assert echo["status"] == "skipped" and "Echo" in echo["message"]


def test_two_synchronous_step_events_with_zero_operation_ids_both_apply(
    system: Any, db: Database, dataverse_source: str
) -> None:
    """A synchronous step sends OperationId 000…0 for every event: each still gets its own
    delivery id (RequestId, else the body's hash), and a resend is still a duplicate."""
    entries = post_captures(
        dataverse_source,
        db,
        "contact-create-sync",
        "contact-update-sync-zero-operationid",
        "contact-update-sync-zero-ids",
    )

    assert {name: e["status"] for name, e in entries.items()} == dict.fromkeys(entries, "success")
    member = member_of(db, CAPTURED_CONTACT)
    assert (member["phone"], member["email"]) == ("+47 400 00 001", "inga@example.no")
    again = post(dataverse_source, (CAPTURES / "contact-update-sync-zero-ids.json").read_bytes())
    assert again.status_code == 202 and again.json()["status"] == "duplicate"


SIZE_EXCEEDED_HEADER = "x-ms-dynamics-msg-size-exceeded"
MEMBERSHIP_ROW = "5b0e7c2a-91d4-4e6f-8a3b-2c4d6e8f0a1c"
MEMBERSHIP_CONTACT = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
COORDINATOR, MEMBER = 100000002, 100000000


@pytest.fixture
def dynamics(system: Any) -> Iterator[Any]:
    """The Dynamics stand-in (one for the session) without this module's row, failures or log."""
    standin = system.dynamics
    standin.delete_row("hlf_memberships", MEMBERSHIP_ROW)
    standin.clear_failures()
    standin.reset_log()
    yield standin
    standin.delete_row("hlf_memberships", MEMBERSHIP_ROW)
    standin.clear_failures()


def post_size_exceeded(url: str, context: dict[str, Any], flag: str = "True") -> str:
    """Posts the context as Dataverse does over 256 KB (row data stripped, header set); the
    accepted event's id."""
    from dataverse_payloads import size_exceeded

    headers = {"content-type": "application/json", KEY_HEADER: KEY, SIZE_EXCEEDED_HEADER: flag}
    response = httpx.post(url, content=json.dumps(size_exceeded(context)), headers=headers)
    assert response.status_code == 202
    return str(response.json()["id"])


def membership_update(modified_on: datetime) -> dict[str, Any]:
    from dataverse_payloads import dataverse_context, option

    return dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP_ROW,
        {"hlf_role": option(MEMBER)},
        modified_on=modified_on,
    )


def membership(db: Database) -> dict[str, Any] | None:
    return db.one(
        "select m.role, m.status, m.dynamics_row_id, m.source_modified_at"
        " from organization_memberships m join profiles p on p.id = m.profile_id"
        " where p.dynamics_contact_id = %s",
        MEMBERSHIP_CONTACT,
    )


@pytest.mark.parametrize(("statecode", "status"), [(0, "active"), (1, "inactive")])
def test_size_exceeded_update_is_applied_from_the_row_read_from_dynamics(
    system: Any,
    db: Database,
    dataverse_source: str,
    dynamics: Any,
    statecode: int,
    status: str,
) -> None:
    """Over 256 KB Dataverse leaves the row out: the consumer reads it through the Web API
    and applies it as Dynamics has it now (its role and state, its modifiedon)."""
    dynamics.add_row(
        "hlf_memberships",
        MEMBERSHIP_ROW,
        {"hlf_role": COORDINATOR, "statecode": statecode, "modifiedon": "2026-11-23T10:05:00Z"},
        lookups={"hlf_contactid": ("contact", MEMBERSHIP_CONTACT.upper(), "Kari Nordmann")},
    )
    # The event's own (stripped) Target said "member"; Dynamics has a coordinator now.
    event_id = post_size_exceeded(
        dataverse_source, membership_update(datetime(2026, 11, 23, 10, tzinfo=UTC))
    )

    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "success", entry["message"]
    assert entry["source_table"] == "hlf_membership"
    # Dynamics stamps modifiedon on every write: the row's own time orders the change.
    row_modified = datetime.fromisoformat(
        dynamics.row("hlf_memberships", MEMBERSHIP_ROW)["modifiedon"]
    )
    assert entry["source_modified_at"] == row_modified
    assert membership(db) == {
        "role": "coordinator",
        "status": status,
        "dynamics_row_id": MEMBERSHIP_ROW,
        "source_modified_at": row_modified,
    }
    reads = [r for r in dynamics.received if r.method == "GET"]
    assert [r.path for r in reads] == [f"/api/data/v9.2/hlf_memberships({MEMBERSHIP_ROW})"]
    assert reads[0].headers["authorization"].startswith("Bearer ")
    select = dict(urllib.parse.parse_qsl(reads[0].query))["$select"].split(",")
    assert {"hlf_role", "statecode", "modifiedon", "_hlf_contactid_value"} <= set(select)


@pytest.mark.parametrize("flag", ["1", "yes", ""])
def test_the_size_exceeded_header_counts_by_its_presence_whatever_its_value(
    system: Any, db: Database, dataverse_source: str, dynamics: Any, flag: str
) -> None:
    """The header's value is not documented: present, the row is read from Dynamics."""
    dynamics.add_row(
        "hlf_memberships",
        MEMBERSHIP_ROW,
        {"hlf_role": COORDINATOR, "statecode": 0, "modifiedon": "2026-11-23T10:05:00Z"},
        lookups={"hlf_contactid": ("contact", MEMBERSHIP_CONTACT, None)},
    )
    event_id = post_size_exceeded(
        dataverse_source, membership_update(datetime(2026, 11, 23, 10, tzinfo=UTC)), flag
    )

    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "success", entry["message"]
    assert membership(db) is not None and membership(db)["role"] == "coordinator"
    reads = [r.path for r in dynamics.received if r.method == "GET"]
    assert f"/api/data/v9.2/hlf_memberships({MEMBERSHIP_ROW})" in reads


def test_size_exceeded_update_of_a_row_deleted_since_is_skipped(
    system: Any, db: Database, dataverse_source: str, dynamics: Any
) -> None:
    event_id = post_size_exceeded(dataverse_source, membership_update(datetime.now(UTC)))

    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "skipped"
    assert "no longer exists in Dynamics" in entry["message"]
    assert membership(db) is None
    assert [r.status for r in dynamics.received if r.method == "GET"] == [404]


def test_size_exceeded_update_is_retried_while_dynamics_is_unavailable(
    system: Any, db: Database, dataverse_source: str, dynamics: Any
) -> None:
    """A Dynamics outage is not the event's fault: the message goes back to the queue (no
    error in the log) and is applied once Dynamics answers again."""
    from portal_sync_dev.local.consumer import sqs_event

    dynamics.add_row(
        "hlf_memberships",
        MEMBERSHIP_ROW,
        {"hlf_role": COORDINATOR, "statecode": 0},
        lookups={"hlf_contactid": ("contact", MEMBERSHIP_CONTACT, None)},
    )
    sqs = boto3.client("sqs")
    queue = system.aws.event_queue_url
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with system.consumer_paused():
        event_id = post_size_exceeded(dataverse_source, membership_update(datetime.now(UTC)))
        received = sqs.receive_message(
            QueueUrl=queue, WaitTimeSeconds=5, MessageSystemAttributeNames=["All"]
        )["Messages"]
        dynamics.fail_next("503", count=10)
        batch = sqs_event(received, arn)

        outage = system.functions["process_event"].invoke(batch)

        assert outage["batchItemFailures"] == [{"itemIdentifier": received[0]["MessageId"]}]
        assert logged(db, event_id) is None  # nothing logged, least of all an error
        assert 503 in {r.status for r in dynamics.received if r.method == "GET"}

        dynamics.clear_failures()
        recovered = system.functions["process_event"].invoke(batch)

        assert recovered["batchItemFailures"] == []
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[0]["ReceiptHandle"])
    entry = logged(db, event_id)
    assert entry is not None and entry["status"] == "success"
    assert membership(db) is not None and membership(db)["role"] == "coordinator"


def test_size_exceeded_without_a_dynamics_connection_is_an_error_kept_for_reprocessing(
    system: Any, db: Database, dataverse_source: str, dynamics: Any
) -> None:
    """Nothing to read the row with: an error an admin can act on (configure, reprocess)."""
    with db.connect() as conn:
        conn.execute(
            "update integration_configs set dynamics_base_url = null where organization_id = %s",
            (system.seed.org_id,),
        )
    event_id = post_size_exceeded(dataverse_source, membership_update(datetime.now(UTC)))

    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "error"
    assert "256 KB" in entry["message"]
    assert "configure the Dynamics connection" in entry["message"]
    assert "reprocess" in entry["message"]
    kept = db.one("select count(*) as n from portal_sync_event_payloads")
    assert kept["n"] == 1
    assert not [r for r in dynamics.received if r.method == "GET"]
