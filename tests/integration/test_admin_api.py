"""The admin API end to end over loopback HTTP (docs/admin-api.md).

Real JWTs signed with the local project secret, authority from PostgreSQL, secrets in moto's
Secrets Manager, events through the real queue and consumer.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from conftest import Database, eventually
from support import add_member, portal_event, signed_headers


@dataclass
class Api:
    base: str
    org_id: uuid.UUID

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(
            method,
            f"{self.base}/functions/v1/admin-api{path}",
            headers=headers,
            timeout=15,
            **kwargs,
        )


def token(system: Any, user_id: uuid.UUID, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "aud": "authenticated",
        "role": "authenticated",
        "exp": now + 600,
    }
    claims.update(overrides)
    return jwt.encode(claims, overrides.pop("_secret", system.jwt_secret), algorithm="HS256")


def add_org(db: Database, name: str = "Other chapter") -> uuid.UUID:
    org_id = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, %s)", (org_id, name))
        conn.execute(
            "insert into integration_configs (organization_id, source_id) values (%s, %s)",
            (org_id, f"other-{org_id.hex[:8]}"),
        )
    return org_id


@pytest.fixture
def api(system: Any) -> Api:
    return Api(system.base_url, system.seed.org_id)


def send_webhook(system: Any, body: bytes, secret: str | None = None) -> httpx.Response:
    url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    headers = signed_headers(secret or system.seed.webhook_secret, body)
    return httpx.post(url, content=body, headers=headers, timeout=10)


ORG_ROUTES = [
    ("GET", "/orgs/{org}/integration", None),
    ("PUT", "/orgs/{org}/integration", {"enabled": True}),
    ("POST", "/orgs/{org}/integration/webhook-secret", {}),
    ("POST", "/orgs/{org}/integration/webhook-secret/test", None),
    ("GET", "/orgs/{org}/sync/status", None),
    ("GET", "/orgs/{org}/sync/events", None),
    ("POST", f"/orgs/{{org}}/sync/events/{uuid.uuid4()}/reprocess", None),
    ("GET", "/orgs/{org}/webhook-health", None),
    ("GET", "/orgs/{org}/features", None),
    ("GET", "/orgs/{org}/members", None),
    ("GET", f"/orgs/{{org}}/members/{uuid.uuid4()}", None),
    ("GET", "/orgs/{org}/audit-log", None),
    ("POST", "/orgs/{org}/sync/import", None),
    ("POST", "/orgs/{org}/sync/reconcile", None),
]
# The routes of no organisation, and who may call them.
CALLER_ROUTES = [
    ("GET", "/me", "anyone"),
    ("GET", "/orgs", "anyone"),
    ("POST", "/orgs", "platform-admin"),
    ("GET", "/onboarding-template", "platform-admin"),
]


# -- authentication ---------------------------------------------------------------------------


def test_missing_and_bad_tokens_answer_401_with_supabase_messages(system: Any, api: Api) -> None:
    admin = uuid.UUID(
        jwt.decode(system.seed.admin_token, options={"verify_signature": False})["sub"]
    )
    path = f"/orgs/{api.org_id}/integration"

    missing = api.call("GET", path, None)
    assert missing.status_code == 401
    assert missing.json() == {"code": 401, "message": "Missing authorization header"}

    for bad in (
        token(system, admin, _secret="not-the-project-secret-but-long-enough-for-hs256"),
        token(system, admin, aud="anon"),
        token(system, admin, exp=int(time.time()) - 60),
        jwt.encode({"sub": str(admin), "aud": "authenticated", "exp": 9999999999}, None, "none"),
        "not-a-jwt",
    ):
        response = api.call("GET", path, bad)
        assert response.status_code == 401
        assert response.json() == {"code": 401, "message": "Invalid JWT"}


@pytest.mark.parametrize(("method", "path", "body"), ORG_ROUTES)
def test_an_admin_of_another_organisation_gets_403_on_every_route(
    system: Any, db: Database, api: Api, method: str, path: str, body: Any
) -> None:
    other_org = add_org(db)
    outsider = token(system, add_member(db, other_org, "admin"))

    response = api.call(method, path.format(org=api.org_id), outsider, json=body)

    assert response.status_code == 403
    assert response.json()["code"] == 403


def test_roles_inside_the_organisation(system: Any, db: Database, api: Api) -> None:
    member = token(system, add_member(db, api.org_id, "member"))
    coordinator = token(system, add_member(db, api.org_id, "coordinator"))
    deactivated_admin = token(system, add_member(db, api.org_id, "admin", status="inactive"))
    org = api.org_id

    assert api.call("GET", f"/orgs/{org}/features", member).status_code == 200
    assert api.call("GET", f"/orgs/{org}/members", member).status_code == 403
    assert api.call("GET", f"/orgs/{org}/members", coordinator).status_code == 200
    mentor = f"/orgs/{org}/members/{system.seed.mentor_id}"
    assert api.call("GET", mentor, member).status_code == 403
    assert api.call("GET", mentor, coordinator).status_code == 200
    assert api.call("GET", mentor, deactivated_admin).status_code == 403
    assert api.call("GET", f"/orgs/{org}/integration", coordinator).status_code == 403
    assert api.call("GET", f"/orgs/{org}/integration", deactivated_admin).status_code == 403
    # Webhook health is for platform administrators only.
    assert (
        api.call("GET", f"/orgs/{org}/webhook-health", system.seed.org_admin_token).status_code
        == 403
    )
    assert (
        api.call("GET", f"/orgs/{org}/webhook-health", system.seed.admin_token).status_code == 200
    )


def test_openapi_document_describes_every_route(api: Api) -> None:
    response = api.call("GET", "/openapi.json", None)

    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for method, path, _ in ORG_ROUTES:
        template = path.replace("{org}", "{org_id}")
        if "reprocess" in template:
            template = "/orgs/{org_id}/sync/events/{event_id}/reprocess"
        elif "/members/" in template:
            template = "/orgs/{org_id}/members/{profile_id}"
        assert method.lower() in paths[template], template
    for method, path, _ in CALLER_ROUTES:
        assert method.lower() in paths[path], path
        responses = paths[path][method.lower()]["responses"]
        assert {"200" if method == "GET" else "201", "401", "403"} <= set(responses), path
    member = paths["/orgs/{org_id}/members/{profile_id}"]["get"]["responses"]
    assert "404" in member
    schemas = document["components"]["schemas"]
    assert {"CallerView", "OrganizationPage", "OnboardingTemplate", "MemberView"} <= set(schemas)
    assert document["servers"][0]["url"] == "/functions/v1/admin-api"


# -- integration settings and secrets -------------------------------------------------------------


def test_integration_shows_secrets_only_as_configured_and_fingerprint(
    system: Any, api: Api
) -> None:
    response = api.call("GET", f"/orgs/{api.org_id}/integration", system.seed.org_admin_token)

    assert response.status_code == 200
    body = response.json()
    assert body["source_id"] == system.seed.source_id
    assert body["webhook_url"].endswith(f"/functions/v1/portal-webhook/{system.seed.source_id}")
    assert body["webhook_secret"]["configured"] is True
    assert len(body["webhook_secret"]["fingerprint"]) == 12
    assert body["field_mapping_is_default"] is True
    assert system.seed.webhook_secret not in response.text
    assert system.seed.webhook_secret.removeprefix("whsec_") not in response.text


def test_a_query_parameter_the_route_does_not_have_is_refused(system: Any, api: Api) -> None:
    """A misspelt filter is a 422 naming it, not an unfiltered page that looks filtered."""
    token = system.seed.admin_token
    misspelt = api.call("GET", f"/orgs/{api.org_id}/sync/events?stauts=error", token)
    nameless = api.call("GET", "/orgs?=0.0", token)
    known = api.call("GET", f"/orgs/{api.org_id}/sync/events?status=error&limit=5", token)

    assert misspelt.status_code == 422, misspelt.text
    assert misspelt.json()["errors"] == [{"path": "stauts", "message": "is not a parameter"}]
    assert nameless.status_code == 422, nameless.text
    assert nameless.json()["errors"] == [{"path": "query", "message": "is not a parameter"}]
    assert known.status_code == 200, known.text


def test_settings_are_validated_with_field_paths(system: Any, api: Api) -> None:
    path = f"/orgs/{api.org_id}/integration"

    insecure = api.call(
        "PUT", path, system.seed.org_admin_token, json={"deep_links": {"courses": "http://x.no"}}
    )
    unlinked = api.call(
        "PUT",
        path,
        system.seed.org_admin_token,
        json={"feature_ownership": {"courses": "portal"}, "deep_links": {}},
    )
    bad_mapping = api.call(
        "PUT",
        path,
        system.seed.org_admin_token,
        json={"field_mapping": {"tables": {"hlf_membership": {"kind": "membership"}}}},
    )
    unknown = api.call("PUT", path, system.seed.org_admin_token, json={"colour": "blue"})

    assert insecure.status_code == 422
    assert insecure.json()["errors"][0]["path"] == "deep_links.courses"
    assert "https" in insecure.json()["errors"][0]["message"]
    assert unlinked.status_code == 422
    assert unlinked.json()["errors"] == [
        {"path": "deep_links.courses", "message": "a portal-owned feature needs a deep link"}
    ]
    assert bad_mapping.status_code == 422
    assert "contact_column" in bad_mapping.text
    assert unknown.status_code == 422


def test_dynamics_credentials_are_write_only_and_audited_without_their_value(
    system: Any, db: Database, api: Api
) -> None:
    import boto3

    client_secret = "s3cr3t-value-" + uuid.uuid4().hex
    response = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.org_admin_token,
        json={
            "dynamics": {
                "base_url": "https://hlf.crm4.dynamics.com",
                "auth_type": "oauth_client_credentials",
                "tenant_id": "5f3c7a2e-1111-4222-8333-444455556666",
                "client_id": "app-portal-sync",
                "client_secret": client_secret,
            }
        },
    )

    assert response.status_code == 200, response.text
    credentials = response.json()["dynamics"]["credentials"]
    assert credentials["configured"] is True and len(credentials["fingerprint"]) == 12
    assert client_secret not in response.text
    audit = db.rows("select action, details::text as details from audit_logs")
    assert [a["action"] for a in audit] == ["integration.updated"]
    assert client_secret not in audit[0]["details"]
    stored = boto3.client("secretsmanager").get_secret_value(
        SecretId=f"portal-sync/dynamics/{api.org_id}"
    )
    assert client_secret in stored["SecretString"]  # encrypted at rest by Secrets Manager
    assert client_secret not in json.dumps(
        db.rows("select * from integration_configs"), default=str
    )

    # Saving the same connection without resending the secret keeps it.
    again = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.org_admin_token,
        json={
            "dynamics": {
                "base_url": "https://hlf.crm4.dynamics.com/",
                "auth_type": "oauth_client_credentials",
                "tenant_id": "5f3c7a2e-1111-4222-8333-444455556666",
                "client_id": "app-portal-sync",
            }
        },
    )
    assert again.status_code == 200
    assert again.json()["dynamics"]["credentials"]["fingerprint"] == credentials["fingerprint"]


def test_rotated_secret_is_used_for_the_very_next_webhook(
    system: Any, db: Database, api: Api
) -> None:
    rotated = api.call(
        "POST",
        f"/orgs/{api.org_id}/integration/webhook-secret",
        system.seed.org_admin_token,
        json={"grace_period_hours": 1},
    )

    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != system.seed.webhook_secret
    assert (
        send_webhook(
            system, portal_event("membership.created", str(uuid.uuid4())), new_secret
        ).status_code
        == 202
    )
    # The previous one stays valid through the grace period.
    assert (
        send_webhook(system, portal_event("membership.created", str(uuid.uuid4()))).status_code
        == 202
    )
    view = api.call("GET", f"/orgs/{api.org_id}/integration", system.seed.org_admin_token).json()
    assert view["webhook_secret"]["fingerprint"] == rotated.json()["fingerprint"]
    assert view["webhook_secret"]["previous_valid_until"] is not None
    assert new_secret not in json.dumps(view)
    [entry] = db.rows("select action, details::text as details from audit_logs")
    assert entry["action"] == "webhook_secret.rotated" and new_secret not in entry["details"]

    # Rotating again without a grace period retires every previous secret at once.
    api.call(
        "POST",
        f"/orgs/{api.org_id}/integration/webhook-secret",
        system.seed.org_admin_token,
        json={"grace_period_hours": 0},
    )
    # A warm ingest may verify with its cached copy until the cache expires (SOURCE_CACHE_SECONDS).
    eventually(
        lambda: (
            send_webhook(
                system, portal_event("membership.created", str(uuid.uuid4())), new_secret
            ).status_code
            == 401
        ),
        timeout=4,
    )


def test_secret_test_sends_a_signed_delivery_to_the_endpoint(
    system: Any, db: Database, api: Api
) -> None:
    path = f"/orgs/{api.org_id}/integration/webhook-secret/test"

    result = api.call("POST", path, system.seed.org_admin_token)

    assert result.status_code == 200
    assert result.json()["verified"] is True, result.json()
    assert result.json()["status_code"] == 202
    assert "verified" in result.json()["message"]
    entry = eventually(
        lambda: db.one("select * from portal_sync_events where event_type = 'webhook.test'")
    )
    assert entry["status"] == "skipped"

    api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.org_admin_token,
        json={"enabled": False},
    )
    # Disabling reaches a warm ingest when its cached source expires (SOURCE_CACHE_SECONDS).
    refused = eventually(
        lambda: (
            (r := api.call("POST", path, system.seed.org_admin_token).json())
            and not r["verified"]
            and r
        ),
        timeout=4,
    )
    assert refused["status_code"] == 401
    assert "disabled" in refused["message"]


# -- sync history ------------------------------------------------------------------------------


def test_sync_log_is_filtered_paginated_and_failed_events_reprocess(
    system: Any, db: Database, api: Api
) -> None:
    token_ = system.seed.org_admin_token
    contact = str(uuid.uuid4())
    for minute in range(3):
        send_webhook(
            system,
            portal_event(
                "membership.created", str(uuid.uuid4()), occurred_at=f"2026-11-20T10:0{minute}:00Z"
            ),
        )
    # A Dataverse membership whose role value the mapping does not know: an error to fix.
    unknown_role = {
        "type": "membership.role_updated",
        "occurred_at": "2026-11-20T11:00:00Z",
        "member": {"dynamics_contact_id": contact},
    }
    failed_id = send_webhook(system, json.dumps(unknown_role).encode()).json()["id"]
    eventually(lambda: db.one("select count(*) as n from portal_sync_events")["n"] == 4)

    first = api.call("GET", f"/orgs/{api.org_id}/sync/events?limit=2", token_).json()
    second = api.call(
        "GET", f"/orgs/{api.org_id}/sync/events?limit=2&cursor={first['next_cursor']}", token_
    ).json()
    errors = api.call("GET", f"/orgs/{api.org_id}/sync/events?status=error", token_).json()

    assert len(first["items"]) == 2 and len(second["items"]) == 2 and second["next_cursor"] is None
    seen = [item["event_id"] for item in first["items"] + second["items"]]
    assert len(set(seen)) == 4
    received = [item["received_at"] for item in first["items"] + second["items"]]
    assert received == sorted(received, reverse=True)
    [failed] = errors["items"]
    assert failed["event_id"] == failed_id and failed["can_reprocess"] is True
    assert "role" in failed["message"]
    bad_cursor = api.call("GET", f"/orgs/{api.org_id}/sync/events?cursor=zzz", token_)
    assert bad_cursor.status_code == 422

    status = api.call("GET", f"/orgs/{api.org_id}/sync/status", token_).json()
    assert status["failed"] == 1 and status["last_24h"]["success"] == 3
    assert status["last_success_at"] is not None

    # Reprocessing puts the kept original back on the queue: it fails the same way (the sender
    # must fix it), is logged again, and the attempt count shows it was tried again.
    response = api.call("POST", f"/orgs/{api.org_id}/sync/events/{failed['id']}/reprocess", token_)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    entry = eventually(
        lambda: (
            (row := db.one("select * from portal_sync_events where event_id = %s", failed_id))
            and row["attempts"] == 2
            and row
        )
    )
    assert entry["status"] == "error"
    succeeded = next(i for i in first["items"] + second["items"] if i["status"] == "success")
    done = api.call("POST", f"/orgs/{api.org_id}/sync/events/{succeeded['id']}/reprocess", token_)
    assert done.status_code == 409
    actions = [r["action"] for r in db.rows("select action from audit_logs")]
    assert actions == ["sync_event.reprocessed"]


def test_sync_status_pending_counts_the_organisations_own_events_not_yet_applied(
    system: Any, db: Database, api: Api
) -> None:
    """Accepted receipts (the ingest writes them) of this organisation not in the sync log yet;
    another organisation's queued events are not counted."""
    other = add_org(db)
    db.rows(
        "insert into webhook_receipts (id, source_id, organization_id, delivery_id, outcome,"
        " received_at) values (%s, 'other', %s, 'msg_other_org', 'accepted', now())"
        " returning id",
        uuid.uuid4(),
        other,
    )
    status_path = f"/orgs/{api.org_id}/sync/status"
    with system.consumer_paused() as consumer:
        sent = [
            send_webhook(system, portal_event("membership.created", str(uuid.uuid4())))
            for _ in range(3)
        ]
        assert [r.json()["status"] for r in sent] == ["accepted"] * 3
        waiting = api.call("GET", status_path, system.seed.org_admin_token).json()
        while consumer.poll_once(wait_seconds=0):
            pass

    assert waiting["pending"] == 3
    applied = api.call("GET", status_path, system.seed.org_admin_token).json()
    assert applied["pending"] == 0 and applied["last_24h"]["success"] == 3
    others = api.call("GET", f"/orgs/{other}/sync/status", system.seed.admin_token).json()
    assert others["pending"] == 1


def test_reprocessing_a_parked_event_takes_it_out_of_the_dead_letter_queue(
    system: Any, db: Database, api: Api
) -> None:
    """An event parked after repeated failures (e.g. a database outage) applies on reprocess."""
    import boto3
    from portal_sync.inbound.queue_message import QueuedEvent
    from portal_sync.inbound.receipts import Outcome, Receipt

    contact = str(uuid.uuid4())
    body = portal_event("membership.created", contact)
    message = QueuedEvent(
        receipt=Receipt(
            id=uuid.uuid4(),
            source_id=system.seed.source_id,
            organization_id=system.seed.org_id,
            delivery_id="msg_parked",
            outcome=Outcome.ACCEPTED,
            received_at=datetime.now(UTC) - timedelta(hours=1),
        ),
        event_id="msg_parked",
        correlation_id=str(uuid.uuid4()),
        body_b64=__import__("base64").b64encode(body).decode(),
    )
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=system.aws.dead_letter_queue_url, MessageBody="unrelated")
    sqs.send_message(
        QueueUrl=system.aws.dead_letter_queue_url, MessageBody=message.model_dump_json()
    )
    with db.connect() as conn:
        row = conn.execute(
            "insert into portal_sync_events (organization_id, event_id, event_type, status, message,"
            " received_at, attempts) values (%s, 'msg_parked', 'membership.created', 'error',"
            " 'Could not be applied after 10 attempts', now(), 10) returning id",
            (system.seed.org_id,),
        ).fetchone()
        conn.execute(
            "insert into portal_sync_event_payloads (organization_id, event_id, message)"
            " values (%s, 'msg_parked', %s)",
            (system.seed.org_id, message.model_dump_json()),
        )

    response = api.call(
        "POST", f"/orgs/{api.org_id}/sync/events/{row['id']}/reprocess", system.seed.admin_token
    )

    assert response.status_code == 202
    assert response.json()["removed_from_dead_letter_queue"] == 1
    entry = eventually(
        lambda: (
            (r := db.one("select * from portal_sync_events where event_id = 'msg_parked'"))
            and r["status"] == "success"
            and r
        )
    )
    assert entry["attempts"] == 11
    assert db.one("select id from profiles where dynamics_contact_id = %s", contact) is not None
    left = sqs.get_queue_attributes(
        QueueUrl=system.aws.dead_letter_queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert (
        int(left["ApproximateNumberOfMessages"])
        + int(left["ApproximateNumberOfMessagesNotVisible"])
        == 1
    )


# -- webhook health ----------------------------------------------------------------------------


def test_webhook_health_alerts_turn_on_and_off(system: Any, db: Database, api: Api) -> None:
    def health() -> dict[str, Any]:
        response = api.call("GET", f"/orgs/{api.org_id}/webhook-health", system.seed.admin_token)
        assert response.status_code == 200
        return response.json()

    quiet = health()
    assert quiet["received_24h"] == 0
    assert quiet["last_hour"]["alert"] is False and quiet["outage"]["alert"] is False

    for _ in range(3):
        send_webhook(
            system, portal_event("membership.created", str(uuid.uuid4())), "whsec_d3Jvbmc="
        )
    outage = health()
    assert outage["outage"]["alert"] is True
    assert "SIGNATURE_MISMATCH" in outage["outage"]["reason"]
    # Three of three rejected is 100 %, but below the minimum volume nobody is paged.
    assert outage["last_hour"]["rate_percent"] == 100.0 and outage["last_hour"]["alert"] is False

    for _ in range(17):
        send_webhook(system, portal_event("membership.created", str(uuid.uuid4())))
    eventually(lambda: health()["accepted_24h"] == 17)
    recovered = health()
    assert recovered["outage"]["alert"] is False
    assert recovered["outage"]["last_healthy_at"] is not None
    assert recovered["last_hour"] == {
        "received": 20,
        "rejected": 3,
        "rate_percent": 15.0,
        "alert": True,
        "minimum_volume": 20,
    }
    assert recovered["rejected_by_reason_24h"] == {"SIGNATURE_MISMATCH": 3}

    for _ in range(10):
        send_webhook(system, portal_event("membership.created", str(uuid.uuid4())))
    eventually(lambda: health()["accepted_24h"] == 27)
    assert health()["last_hour"]["alert"] is False  # 3 of 30 is 10 %: not above it


# -- organisations, features, members, audit ----------------------------------------------------


def test_onboarding_uses_the_platform_template_and_touches_no_other_organisation(
    system: Any, db: Database, api: Api
) -> None:
    before = db.one("select * from integration_configs where organization_id = %s", api.org_id)

    created = api.call("POST", "/orgs", system.seed.admin_token, json={"name": "HLF Bergen"})
    refused = api.call("POST", "/orgs", system.seed.org_admin_token, json={"name": "Sneaky"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["integration"]["field_mapping_is_default"] is True
    assert body["integration"]["feature_ownership"]["courses"] == "portal"
    assert body["integration"]["webhook_secret"]["configured"] is False
    assert refused.status_code == 403
    after = db.one("select * from integration_configs where organization_id = %s", api.org_id)
    assert after == before
    duplicate = api.call(
        "POST",
        "/orgs",
        system.seed.admin_token,
        json={"name": "Again", "source_id": body["integration"]["source_id"]},
    )
    assert duplicate.status_code == 409

    # Its own admin can now rotate a secret and receive webhooks.
    new_org = uuid.UUID(body["id"])
    rotated = api.call(
        "POST", f"/orgs/{new_org}/integration/webhook-secret", system.seed.admin_token
    ).json()
    url = f"{system.base_url}/functions/v1/portal-webhook/{body['integration']['source_id']}"
    event = portal_event("membership.created", str(uuid.uuid4()))
    assert (
        httpx.post(url, content=event, headers=signed_headers(rotated["secret"], event)).status_code
        == 202
    )


def test_features_give_the_app_owners_and_encoded_deep_links(
    system: Any, db: Database, api: Api
) -> None:
    member_user = add_member(db, api.org_id, "peer_mentor")
    api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.org_admin_token,
        json={
            "feature_ownership": {"courses": "portal", "events": "app"},
            "deep_links": {"courses": "https://minside.hlf.no/kurs/{contact_id}?lang=nb"},
        },
    )

    response = api.call("GET", f"/orgs/{api.org_id}/features", token(system, member_user))

    assert response.status_code == 200
    features = {f["feature"]: f for f in response.json()["features"]}
    assert features["events"] == {"feature": "events", "owner": "app", "deep_link": None}
    contact = db.one(
        "select dynamics_contact_id from profiles where auth_user_id = %s", member_user
    )
    link = features["courses"]["deep_link"]
    assert link == (
        f"https://minside.hlf.no/kurs/{contact['dynamics_contact_id']}"
        f"?lang=nb&org_id={api.org_id}&feature=courses"
    )


def test_members_view_and_audit_log(system: Any, db: Database, api: Api) -> None:
    contact = str(uuid.uuid4())
    send_webhook(system, portal_event("membership.created", contact, role="coordinator"))
    eventually(lambda: db.one("select id from profiles where dynamics_contact_id = %s", contact))
    for enabled in (False, True):
        api.call(
            "PUT",
            f"/orgs/{api.org_id}/integration",
            system.seed.org_admin_token,
            json={"enabled": enabled},
        )

    members = api.call("GET", f"/orgs/{api.org_id}/members", system.seed.org_admin_token).json()
    audit = api.call(
        "GET", f"/orgs/{api.org_id}/audit-log?limit=1", system.seed.org_admin_token
    ).json()
    rest = api.call(
        "GET",
        f"/orgs/{api.org_id}/audit-log?cursor={audit['next_cursor']}",
        system.seed.org_admin_token,
    ).json()

    by_contact = {m["dynamics_contact_id"]: m for m in members["items"]}
    assert (by_contact[contact]["role"], by_contact[contact]["status"]) == ("coordinator", "active")
    assert by_contact[contact]["first_name"] == "Kari" and by_contact[contact]["last_synced_at"]
    # The seeded administrator, coordinator and the demo peer mentor are members too.
    assert sorted(m["role"] for m in members["items"]) == [
        "admin",
        "coordinator",
        "coordinator",
        "peer_mentor",
    ]
    assert [e["action"] for e in audit["items"] + rest["items"]] == ["integration.updated"] * 2
    # Enabled again with a Dynamics connection: its members are imported, and the entry says so.
    assert audit["items"][0]["details"]["changed"] == ["enabled"]
    assert set(audit["items"][0]["details"]) == {"changed", "import_started"}
    assert audit["items"][0]["actor"] != rest["items"][0]["id"]


def add_membership(
    db: Database, org_id: uuid.UUID, user_id: uuid.UUID, role: str, status: str = "active"
) -> None:
    """Another membership of a user add_member made."""
    with db.connect() as conn:
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status)"
            " select %s, id, %s, %s from profiles where auth_user_id = %s",
            (org_id, role, status, user_id),
        )


def test_me_says_who_is_calling_and_which_organisations_they_administer(
    system: Any, db: Database, api: Api
) -> None:
    # One person: admin of one chapter, coordinator of another, a plain member of a third,
    # and a former admin of a fourth.
    bergen, alta, molde, narvik = (
        add_org(db, name) for name in ("HLF Bergen", "HLF Alta", "HLF Molde", "HLF Narvik")
    )
    person = add_member(db, bergen, "admin")
    add_membership(db, alta, person, "coordinator")
    add_membership(db, molde, person, "member")
    add_membership(db, narvik, person, "admin", status="inactive")

    def me(bearer: str | None) -> dict[str, Any]:
        response = api.call("GET", "/me", bearer)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert me(token(system, person)) == {
        "user_id": str(person),
        "is_global_admin": False,
        "organizations": [  # by name
            {"id": str(alta), "name": "HLF Alta", "role": "coordinator"},
            {"id": str(bergen), "name": "HLF Bergen", "role": "admin"},
        ],
    }
    demo = {"id": str(api.org_id), "name": "HLF demo chapter"}
    assert me(system.seed.org_admin_token)["organizations"] == [{**demo, "role": "admin"}]
    coordinator = me(system.seed.coordinator_token)
    assert coordinator["is_global_admin"] is False
    assert coordinator["organizations"] == [{**demo, "role": "coordinator"}]
    # The global administrator is no member anywhere: the flag says what they may do.
    assert me(system.seed.admin_token)["is_global_admin"] is True
    assert me(system.seed.admin_token)["organizations"] == []
    assert me(token(system, add_member(db, api.org_id, "peer_mentor")))["organizations"] == []
    # Authority is the database's, whatever the token claims.
    claims = token(system, person, org_roles={str(molde): "admin"})
    assert [o["name"] for o in me(claims)["organizations"]] == ["HLF Alta", "HLF Bergen"]
    missing = api.call("GET", "/me", None)
    assert missing.status_code == 401
    assert missing.json() == {"code": 401, "message": "Missing authorization header"}


def test_orgs_lists_every_organisation_for_a_global_admin_by_name_and_theirs_for_others(
    system: Any, db: Database, api: Api
) -> None:
    alta, bergen = add_org(db, "HLF Alta"), add_org(db, "HLF Bergen")
    outsider = add_member(db, bergen, "admin")
    with db.connect() as conn:
        conn.execute("insert into organizations (name) values ('HLF zero')")  # no integration

    pages, cursor = [], None
    while True:
        query = "/orgs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.call("GET", query, system.seed.admin_token)
        assert page.status_code == 200, page.text
        pages.append(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    listed = [item for items in pages for item in items]
    assert [len(items) for items in pages] == [2, 2]
    assert [item["name"] for item in listed] == [
        "HLF Alta",
        "HLF Bergen",
        "HLF demo chapter",
        "HLF zero",
    ]
    by_name = {item["name"]: item for item in listed}
    assert by_name["HLF demo chapter"] == {
        "id": str(api.org_id),
        "name": "HLF demo chapter",
        "source_id": system.seed.source_id,
        "enabled": True,
    }
    assert by_name["HLF Alta"]["id"] == str(alta)
    assert by_name["HLF zero"]["source_id"] is None and by_name["HLF zero"]["enabled"] is False

    def names(bearer: str) -> list[str]:
        response = api.call("GET", "/orgs", bearer)
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return [item["name"] for item in response.json()["items"]]

    # Anyone else sees the organisations they administer or coordinate, and no other.
    assert names(system.seed.org_admin_token) == ["HLF demo chapter"]
    assert names(system.seed.coordinator_token) == ["HLF demo chapter"]
    assert names(token(system, outsider)) == ["HLF Bergen"]
    assert names(token(system, add_member(db, alta, "member"))) == []
    assert names(token(system, add_member(db, alta, "admin", status="inactive"))) == []

    def crafted(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    someone = str(uuid.uuid4())
    for bad in (
        "zzz",
        crafted(["2026-11-20T10:00:00+00:00", someone]),  # the sync log's kind of cursor
        crafted(["name", "HLF\x00", someone]),
        crafted(["name", "\ud800", someone]),
        crafted(["name", "HLF", 5]),
    ):
        refused = api.call("GET", f"/orgs?cursor={bad}", system.seed.admin_token)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["errors"][0]["path"] == "cursor"
    assert api.call("GET", "/orgs?limit=0", system.seed.admin_token).status_code == 422
    assert api.call("GET", "/orgs", None).status_code == 401


def test_the_onboarding_template_is_what_post_orgs_creates(system: Any, api: Api) -> None:
    from portal_sync.admin.onboarding import PLATFORM_DEFAULT_TEMPLATE
    from portal_sync.inbound.dataverse.mapping import DEFAULT_FIELD_MAPPING

    response = api.call("GET", "/onboarding-template", system.seed.admin_token)

    assert response.status_code == 200, response.text
    template = response.json()
    assert template["feature_ownership"] == PLATFORM_DEFAULT_TEMPLATE["feature_ownership"]
    assert template["deep_links"] == PLATFORM_DEFAULT_TEMPLATE["deep_links"]
    assert template["field_mapping_is_default"] is True
    assert template["field_mapping"] == DEFAULT_FIELD_MAPPING.model_dump(mode="json")
    created = api.call("POST", "/orgs", system.seed.admin_token, json={"name": "HLF Hamar"})
    assert created.status_code == 201, created.text
    integration = created.json()["integration"]
    assert {key: integration[key] for key in template} == template
    for refused in (system.seed.org_admin_token, system.seed.coordinator_token):
        answer = api.call("GET", "/onboarding-template", refused)
        assert answer.status_code == 403
        assert answer.json() == {"code": 403, "message": "Only platform administrators may do this"}
    assert api.call("GET", "/onboarding-template", None).status_code == 401


def test_one_member_is_the_member_lists_item_and_only_of_its_organisation(
    system: Any, db: Database, api: Api
) -> None:
    other_org = add_org(db)
    elsewhere = add_member(db, other_org, "peer_mentor", first_name="Ola")
    elsewhere_profile = db.one("select id from profiles where auth_user_id = %s", elsewhere)
    former = add_member(db, api.org_id, "peer_mentor", status="inactive", first_name="Per")
    former_profile = db.one("select id from profiles where auth_user_id = %s", former)
    coordinator = system.seed.coordinator_token
    listed = api.call("GET", f"/orgs/{api.org_id}/members", coordinator).json()["items"]

    for item in listed:
        one = api.call("GET", f"/orgs/{api.org_id}/members/{item['profile_id']}", coordinator)
        assert one.status_code == 200, one.text
        assert one.json() == item
    mentor = api.call("GET", f"/orgs/{api.org_id}/members/{system.seed.mentor_id}", coordinator)
    assert (mentor.json()["first_name"], mentor.json()["role"]) == ("Demo", "peer_mentor")
    gone = api.call("GET", f"/orgs/{api.org_id}/members/{former_profile['id']}", coordinator)
    assert (gone.json()["first_name"], gone.json()["status"]) == ("Per", "inactive")

    # Another organisation's member is not found here, as a profile that does not exist.
    for profile in (elsewhere_profile["id"], uuid.uuid4()):
        for bearer in (coordinator, system.seed.admin_token):
            missing = api.call("GET", f"/orgs/{api.org_id}/members/{profile}", bearer)
            assert missing.status_code == 404
            assert missing.json() == {"code": 404, "message": "No such member in this organisation"}
    # ... and their own organisation's admin finds them only there.
    theirs = token(system, add_member(db, other_org, "admin"))
    found = api.call("GET", f"/orgs/{other_org}/members/{elsewhere_profile['id']}", theirs)
    assert found.status_code == 200 and found.json()["first_name"] == "Ola"
    refused = api.call("GET", f"/orgs/{api.org_id}/members/{system.seed.mentor_id}", theirs)
    assert refused.status_code == 403
    assert (
        api.call(
            "GET", f"/orgs/{uuid.uuid4()}/members/{uuid.uuid4()}", system.seed.admin_token
        ).status_code
        == 404
    )
    assert api.call("GET", f"/orgs/{api.org_id}/members/not-an-id", coordinator).status_code == 422


def test_logs_never_contain_secrets_tokens_or_member_details(
    system: Any, db: Database, api: Api
) -> None:
    """With every function logging at DEBUG, a whole admin and webhook flow leaves no secret,
    token or personal detail in the logs (they are shipped to CloudWatch)."""
    import io
    import logging

    from portal_sync.observability import logger

    captured = io.StringIO()
    # The same JSON formatter the functions log with, so extra fields are rendered too.
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logger.registered_formatter)
    python_logger = logging.getLogger(logger.name)
    previous = logger.log_level
    python_logger.addHandler(handler)
    logger.setLevel("DEBUG")
    try:
        client_secret = "client-secret-" + uuid.uuid4().hex
        stored = api.call(
            "PUT",
            f"/orgs/{api.org_id}/integration",
            system.seed.org_admin_token,
            json={
                "dynamics": {
                    # An API key is a gateway's (Dynamics itself refuses the mode).
                    "base_url": "https://hlf-api.azure-api.net",
                    "auth_type": "api_key",
                    "api_key": client_secret,
                }
            },
        )
        assert stored.status_code == 200, stored.text  # the key was taken, and logged nowhere
        rotated = api.call(
            "POST", f"/orgs/{api.org_id}/integration/webhook-secret", system.seed.org_admin_token
        ).json()["secret"]
        body = portal_event("membership.created", str(uuid.uuid4()), first_name="Solveig")
        send_webhook(system, body, rotated)
        send_webhook(system, body, "whsec_d3Jvbmc=")  # a rejection is logged too
        eventually(lambda: db.one("select 1 as ok from profiles where first_name = 'Solveig'"))
    finally:
        logger.setLevel(previous)
        python_logger.removeHandler(handler)

    logs = captured.getvalue()
    assert "Webhook accepted" in logs and "SIGNATURE_MISMATCH" in logs  # it did log the flow
    for secret in (
        client_secret,
        rotated,
        rotated.removeprefix("whsec_"),
        system.seed.org_admin_token,
        "Solveig",
        "kari@example.org",
        "+4790000000",
    ):
        assert secret not in logs


def test_switching_to_header_key_mode_and_a_new_source_id(
    system: Any, db: Database, api: Api
) -> None:
    """Dataverse's own HttpHeader auth: the admin moves the endpoint and rotates a static key."""
    token_ = system.seed.org_admin_token
    updated = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        token_,
        json={
            "source_id": "hlf-oslo-dataverse",
            "signature_mode": "header-key",
            "header_name": "X-HLF-Key",
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["webhook_url"].endswith("/portal-webhook/hlf-oslo-dataverse")
    assert updated.json()["header_name"] == "x-hlf-key"

    rotated = api.call("POST", f"/orgs/{api.org_id}/integration/webhook-secret", token_).json()
    assert rotated["signature_mode"] == "header-key" and rotated["header_name"] == "x-hlf-key"
    body = portal_event("membership.created", str(uuid.uuid4()))
    new_url = f"{system.base_url}/functions/v1/portal-webhook/hlf-oslo-dataverse"
    old_url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"

    accepted = httpx.post(new_url, content=body, headers={"x-hlf-key": rotated["secret"]})
    assert accepted.status_code == 202
    # The old endpoint is gone (its secret was moved), once a warm ingest's cache expires.
    eventually(
        lambda: (
            httpx.post(
                old_url, content=body, headers=signed_headers(system.seed.webhook_secret, body)
            ).status_code
            == 401
        ),
        timeout=4,
    )
    health = api.call("GET", f"/orgs/{api.org_id}/webhook-health", system.seed.admin_token).json()
    assert health["replay_protection"] is False and "replay" in health["note"]

    taken = add_org(db)
    other = db.one("select source_id from integration_configs where organization_id = %s", taken)
    clash = api.call(
        "PUT", f"/orgs/{api.org_id}/integration", token_, json={"source_id": other["source_id"]}
    )
    assert clash.status_code == 409


def test_the_website_visibility_column_is_configurable(system: Any, api: Api) -> None:
    path = f"/orgs/{api.org_id}/integration"

    changed = api.call(
        "PUT", path, system.seed.org_admin_token, json={"website_visibility_column": "hlf_public"}
    )
    invalid = api.call(
        "PUT", path, system.seed.org_admin_token, json={"website_visibility_column": "Show On Web"}
    )

    assert changed.json()["website_visibility_column"] == "hlf_public"
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["path"] == "website_visibility_column"


@pytest.mark.parametrize(
    "path",
    [
        "/functions/v1/admin-api/orgs/{org}/integration",
        "/functions/v1/website-sync/{mentor}/status",
        "/api/v1/website-sync/{mentor}/pause",
    ],
)
def test_cors_preflight_needs_no_token_and_answers_supabase_headers(system: Any, path: str) -> None:
    """supabase-js in a browser sends OPTIONS first, without the Authorization header."""
    url = system.base_url + path.format(org=system.seed.org_id, mentor=system.seed.mentor_id)

    response = httpx.options(
        url,
        headers={
            "origin": "https://admin.example.org",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
        },
    )

    assert response.status_code in (200, 204)
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "x-client-info", "apikey", "content-type"} <= allowed
