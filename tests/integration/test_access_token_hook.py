"""The custom access token hook Supabase calls at sign-in (CONTRACT.md section 4)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from conftest import Database


def hook(db: Database, user_id: uuid.UUID) -> dict[str, Any]:
    event = {"user_id": str(user_id), "claims": {"sub": str(user_id), "role": "authenticated"}}
    row = db.one("select public.custom_access_token_hook(%s::jsonb) as result", json.dumps(event))
    return row["result"]


def member(db: Database, status: str) -> tuple[uuid.UUID, uuid.UUID]:
    org, user = uuid.uuid4(), uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Chapter')", (org,))
        profile = conn.execute(
            "insert into profiles (auth_user_id, is_active) values (%s, %s) returning id",
            (user, status == "active"),
        ).fetchone()
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status) values (%s, %s, 'coordinator', %s)",
            (org, profile["id"], status),
        )
    return org, user


def test_active_member_gets_org_roles_in_the_token(db: Database) -> None:
    org, user = member(db, "active")
    result = hook(db, user)
    assert result["claims"]["org_roles"] == {str(org): "coordinator"}
    assert result["claims"]["app_metadata"]["org_roles"] == {str(org): "coordinator"}
    assert result["claims"]["sub"] == str(user)


def test_deactivated_member_is_refused(db: Database) -> None:
    _, user = member(db, "inactive")
    result = hook(db, user)
    assert result["error"]["http_code"] == 403
    assert "no longer active" in result["error"]["message"]


def test_user_who_is_not_a_synced_member_keeps_the_token_unchanged(db: Database) -> None:
    user = uuid.uuid4()
    result = hook(db, user)
    assert result == {"claims": {"sub": str(user), "role": "authenticated"}}
