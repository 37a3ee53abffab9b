"""A member is one Dynamics contact of one Dynamics environment (docs/security.md).

An organisation's webhooks only ever write members of its own environment (its Dataverse
OrganizationId; without one, an environment of its own): naming another organisation's
contact id changes nothing of theirs.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from conftest import Database, eventually
from portal_sync_dev.local.aws_local import put_source_secret
from portal_sync_dev.local.seed import new_webhook_secret
from support import portal_event, signed_headers

SHARED_ENVIRONMENT = "5b6a1c2e-0f4d-4e21-9a3b-7c8d9e0f1a2b"


def other_organisation(
    system: Any, db: Database, dataverse_organization_id: str | None = None
) -> tuple[uuid.UUID, str, str]:
    """An organisation with a webhook source of its own: (id, source id, secret)."""
    org, source, secret = uuid.uuid4(), f"chapter-{uuid.uuid4().hex[:8]}", new_webhook_secret()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Chapter B')", (org,))
        conn.execute(
            "insert into integration_configs (organization_id, source_id, dataverse_organization_id)"
            " values (%s, %s, %s)",
            (org, source, dataverse_organization_id),
        )
    put_source_secret(
        source,
        {"organization_id": str(org), "enabled": True, "keys": [{"value": secret}]},
    )
    return org, source, secret


def send(system: Any, source: str, secret: str, body: bytes) -> str:
    headers = signed_headers(secret, body)
    url = f"{system.base_url}/functions/v1/portal-webhook/{source}"
    assert httpx.post(url, content=body, headers=headers).status_code == 202
    return headers["webhook-id"]


def logged(db: Database, event_id: str) -> dict[str, Any]:
    return eventually(
        lambda: db.one(
            "select status, message, profile_id from portal_sync_events where event_id = %s",
            event_id,
        )
    )


def test_another_organisations_webhook_cannot_rewrite_a_member(system: Any, db: Database) -> None:
    contact = str(uuid.uuid4())
    # The demo organisation's member.
    first = send(
        system,
        system.seed.source_id,
        system.webhook_secret,
        portal_event("membership.created", contact, first_name="Kari"),
    )
    assert logged(db, first)["status"] == "success"
    org_b, source_b, secret_b = other_organisation(system, db)

    # Organisation B names the same contact, with other details and a later time.
    attack = send(
        system,
        source_b,
        secret_b,
        portal_event(
            "membership.created",
            contact,
            first_name="Mallory",
            occurred_at="2026-11-21T10:00:00Z",
        ),
    )

    entry = logged(db, attack)
    assert entry["status"] == "error"
    assert "another Dynamics environment" in entry["message"]
    assert entry["profile_id"] is None
    profile = db.one("select first_name from profiles where dynamics_contact_id = %s", contact)
    assert profile == {"first_name": "Kari"}
    memberships = db.rows(
        "select m.organization_id from organization_memberships m"
        " join profiles p on p.id = m.profile_id where p.dynamics_contact_id = %s",
        contact,
    )
    assert memberships == [{"organization_id": system.seed.org_id}]
    assert org_b not in {row["organization_id"] for row in memberships}


def test_organisations_of_one_environment_share_its_members(system: Any, db: Database) -> None:
    with db.connect() as conn:
        conn.execute(
            "update integration_configs set dataverse_organization_id = %s"
            " where organization_id = %s",
            (SHARED_ENVIRONMENT, system.seed.org_id),
        )
    contact = str(uuid.uuid4())
    first = send(
        system,
        system.seed.source_id,
        system.webhook_secret,
        portal_event("membership.created", contact),
    )
    assert logged(db, first)["status"] == "success"
    org_b, source_b, secret_b = other_organisation(system, db, SHARED_ENVIRONMENT.upper())

    second = send(
        system,
        source_b,
        secret_b,
        portal_event("membership.created", contact, role="coordinator"),
    )

    assert logged(db, second)["status"] == "success"
    memberships = db.rows(
        "select m.organization_id, m.role from organization_memberships m"
        " join profiles p on p.id = m.profile_id where p.dynamics_contact_id = %s"
        " order by m.role",
        contact,
    )
    assert memberships == [
        {"organization_id": org_b, "role": "coordinator"},
        {"organization_id": system.seed.org_id, "role": "member"},
    ]
    assert db.one(
        "select dynamics_environment from profiles where dynamics_contact_id = %s", contact
    ) == {"dynamics_environment": SHARED_ENVIRONMENT}
