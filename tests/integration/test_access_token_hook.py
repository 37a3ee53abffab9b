"""The custom access token hook, called as Supabase Auth calls it, and the account-to-profile link
it depends on (docs/supabase.md).

Supabase Auth connects as `supabase_auth_admin`, whose search_path is `auth`, and calls the hook
in a transaction with a 2 s statement timeout: `select "public"."custom_access_token_hook"(?)`
(supabase/auth internal/hooks/v0hooks/v0pgfunc). The event carries the user id and the claims it
is about to sign.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import psycopg
from conftest import Database, eventually
from support import signed_headers


def call_hook(db: Database, user_id: uuid.UUID) -> dict[str, Any]:
    claims = {
        "aud": "authenticated",
        "sub": str(user_id),
        "role": "authenticated",
        "app_metadata": {"provider": "email"},
        "aal": "aal1",
    }
    event = {"user_id": str(user_id), "claims": claims, "authentication_method": "password"}
    params = psycopg.conninfo.conninfo_to_dict(db.url)
    params["user"] = "supabase_auth_admin"
    with psycopg.connect(psycopg.conninfo.make_conninfo(**params)) as conn:
        assert conn.execute("show search_path").fetchone() == ("auth",)
        conn.execute("set local statement_timeout TO '2000'")
        row = conn.execute(
            'select "public"."custom_access_token_hook"(%s)', (json.dumps(event),)
        ).fetchone()
        conn.execute("set local statement_timeout TO default")
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def sign_up(db: Database, email: str, *, verified: bool = True) -> uuid.UUID:
    """An app account, as Supabase Auth writes it (addresses lower-cased)."""
    user_id = uuid.uuid4()
    with db.connect() as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, email_confirmed_at, created_at)"
            " values (%s, 'authenticated', 'authenticated', %s, %s, now())",
            (user_id, email.lower(), datetime.now(UTC) if verified else None),
        )
    return user_id


def verify_email(db: Database, user_id: uuid.UUID) -> None:
    with db.connect() as conn:
        conn.execute("update auth.users set email_confirmed_at = now() where id = %s", (user_id,))


def synced_member(
    db: Database, email: str, status: str = "active", role: str = "peer_mentor"
) -> tuple[uuid.UUID, uuid.UUID]:
    """A member as the sync writes them (profile without an account); (org, profile)."""
    org = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Chapter')", (org,))
        profile = conn.execute(
            "insert into profiles (dynamics_contact_id, email, is_active) values (%s, %s, %s)"
            " returning id",
            (str(uuid.uuid4()), email, status == "active"),
        ).fetchone()
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status)"
            " values (%s, %s, %s, %s)",
            (org, profile["id"], role, status),
        )
    return org, profile["id"]


def deactivate(db: Database, profile_id: uuid.UUID) -> None:
    with db.connect() as conn:
        conn.execute(
            "update organization_memberships set status = 'inactive' where profile_id = %s",
            (profile_id,),
        )
        conn.execute("update profiles set is_active = false where id = %s", (profile_id,))


def linked_account(db: Database, profile_id: uuid.UUID) -> uuid.UUID | None:
    row = db.one("select auth_user_id from profiles where id = %s", profile_id)
    return row["auth_user_id"] if row else None


REFUSED = {
    "error": {
        "http_code": 403,
        "message": "Your membership is no longer active. Contact your organisation to regain access.",
    }
}


def test_an_active_member_gets_their_organisation_roles_in_the_token(db: Database) -> None:
    org, profile = synced_member(db, "kari@example.org", role="coordinator")
    user = sign_up(db, "Kari@Example.org")
    assert linked_account(db, profile) == user
    claims = call_hook(db, user)["claims"]
    assert claims["org_roles"] == {str(org): "coordinator"}
    assert claims["app_metadata"] == {"provider": "email", "org_roles": {str(org): "coordinator"}}
    assert claims["sub"] == str(user) and claims["aal"] == "aal1"


def test_an_account_created_before_the_sync_is_linked_when_the_member_arrives(
    db: Database,
) -> None:
    user = sign_up(db, "ola@example.org")
    org, profile = synced_member(db, "OLA@example.org")
    assert linked_account(db, profile) == user
    assert call_hook(db, user)["claims"]["org_roles"] == {str(org): "peer_mentor"}


def test_a_member_deactivated_after_linking_is_refused(db: Database) -> None:
    _, profile = synced_member(db, "kari@example.org")
    user = sign_up(db, "kari@example.org")
    deactivate(db, profile)
    assert call_hook(db, user) == REFUSED


def test_a_member_deactivated_before_signing_up_is_refused(db: Database) -> None:
    _, profile = synced_member(db, "kari@example.org", status="inactive")
    user = sign_up(db, "kari@example.org")
    assert linked_account(db, profile) == user
    assert call_hook(db, user) == REFUSED


def test_an_unverified_address_links_nothing_until_it_is_verified(db: Database) -> None:
    org, profile = synced_member(db, "kari@example.org")
    user = sign_up(db, "kari@example.org", verified=False)
    assert linked_account(db, profile) is None
    assert "org_roles" not in call_hook(db, user)["claims"]
    verify_email(db, user)
    assert linked_account(db, profile) == user
    assert call_hook(db, user)["claims"]["org_roles"] == {str(org): "peer_mentor"}


def test_an_address_two_members_share_links_neither(db: Database) -> None:
    _, first = synced_member(db, "family@example.org")
    _, second = synced_member(db, "family@example.org")
    user = sign_up(db, "family@example.org")
    assert (linked_account(db, first), linked_account(db, second)) == (None, None)
    assert "org_roles" not in call_hook(db, user)["claims"]


def test_an_administrator_who_is_not_a_synced_member_keeps_the_token_as_it_is(
    db: Database,
) -> None:
    user = sign_up(db, "admin@example.org")
    with db.connect() as conn:
        conn.execute("insert into platform_admins (user_id) values (%s)", (user,))
    result = call_hook(db, user)
    assert result == {
        "claims": {
            "aud": "authenticated",
            "sub": str(user),
            "role": "authenticated",
            "app_metadata": {"provider": "email"},
            "aal": "aal1",
        }
    }


def test_only_supabase_auth_may_call_the_hook(db: Database) -> None:
    for role in ("anon", "authenticated", "service_role", "portal_sync_functions"):
        row = db.one(
            "select has_function_privilege(%s, 'public.custom_access_token_hook(jsonb)',"
            " 'execute') as can",
            role,
        )
        assert row == {"can": False}, role


def test_a_synced_administrator_who_signs_up_has_authority_in_the_admin_api(
    system: Any, db: Database
) -> None:
    """The whole path: a webhook creates an organisation administrator, they sign up with the
    same (verified) address, and their Supabase token is good for the admin API."""
    contact = str(uuid.uuid4())
    body = json.dumps(
        {
            "type": "membership.created",
            "occurred_at": "2026-11-20T10:00:00Z",
            "role": "admin",
            "member": {"dynamics_contact_id": contact, "email": "chair@example.org"},
        }
    ).encode()
    url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    assert (
        httpx.post(
            url, content=body, headers=signed_headers(system.webhook_secret, body)
        ).status_code
        == 202
    )
    eventually(lambda: db.one("select id from profiles where dynamics_contact_id = %s", contact))
    user = sign_up(db, "chair@example.org")
    claims = call_hook(db, user)["claims"]
    assert claims["org_roles"] == {str(system.seed.org_id): "admin"}
    token = jwt.encode({**claims, "exp": 2_000_000_000}, system.jwt_secret, algorithm="HS256")
    response = httpx.get(
        f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}/integration",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
