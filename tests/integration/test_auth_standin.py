"""The Supabase Auth stand-in (tools/portal_sync_dev/local/auth_standin.py) answers what
supabase-js's auth client calls as Supabase Auth does (supabase/auth internal/api: token.go,
tokens/service.go, logout.go, errors.go), and its tokens carry the claims of the database's
own access token hook, called as Supabase Auth calls it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from conftest import Database
from portal_sync_dev.local.auth_standin import AuthStandIn

SECRET = "auth-standin-test-secret-that-is-long-enough"
PASSWORD = "correct horse battery staple"
# What supabase-js sends with every Auth call.
API_VERSION = {"x-supabase-api-version": "2024-01-01"}


@pytest.fixture
def auth(db: Database) -> Iterator[AuthStandIn]:
    standin = AuthStandIn(db.url, SECRET).start()
    yield standin
    standin.stop()


def call(
    auth: AuthStandIn, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    return httpx.request(
        method,
        f"{auth.url}/auth/v1{path}",
        headers={"apikey": auth.anon_key, **API_VERSION, **(headers or {})},
        timeout=10,
        **kw,
    )


def sign_in(auth: AuthStandIn, email: str, password: str = PASSWORD) -> httpx.Response:
    return call(
        auth, "POST", "/token?grant_type=password", json={"email": email, "password": password}
    )


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="authenticated"
    )
    return decoded


def member(db: Database, user_id: uuid.UUID, status: str = "active") -> uuid.UUID:
    """The account's synced profile with one membership; answers the organisation."""
    org = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Chapter')", (org,))
        profile = conn.execute(
            "insert into profiles (auth_user_id, dynamics_contact_id, email, is_active)"
            " values (%s, %s, %s, %s) returning id",
            (user_id, str(uuid.uuid4()), f"{user_id}@example.org", status == "active"),
        ).fetchone()
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status)"
            " values (%s, %s, 'admin', %s)",
            (org, profile["id"], status),
        )
    return org


def test_a_password_sign_in_answers_a_session_whose_token_the_hook_stamped(
    auth: AuthStandIn, db: Database
) -> None:
    user_id = auth.set_password("Admin@Example.org", PASSWORD)
    org = member(db, user_id)

    answer = sign_in(auth, "admin@example.org")

    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["token_type"] == "bearer" and session["expires_in"] == 3600
    assert session["user"]["id"] == str(user_id) and session["user"]["email"] == "admin@example.org"
    assert session["user"]["last_sign_in_at"] is not None
    token = claims(session["access_token"])
    assert token["sub"] == str(user_id) and token["role"] == "authenticated"
    assert token["exp"] == session["expires_at"] and token["iss"] == f"{auth.url}/auth/v1"
    assert token["aal"] == "aal1" and uuid.UUID(token["session_id"])
    assert token["org_roles"] == {str(org): "admin"}
    assert token["app_metadata"]["org_roles"] == {str(org): "admin"}
    user = call(
        auth, "GET", "/user", headers={"authorization": f"Bearer {session['access_token']}"}
    )
    assert user.status_code == 200 and user.json()["id"] == str(user_id)


def test_refusals_are_supabase_auths_error_json_in_either_api_version(
    auth: AuthStandIn, db: Database
) -> None:
    auth.set_password("admin@example.org", PASSWORD)

    wrong = sign_in(auth, "admin@example.org", "not it")
    assert wrong.status_code == 400
    assert wrong.json() == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    assert wrong.headers["x-supabase-api-version"] == "2024-01-01"
    assert wrong.headers["x-sb-error-code"] == "invalid_credentials"
    # A client that names no API version gets the initial format.
    old = httpx.post(
        f"{auth.url}/auth/v1/token?grant_type=password",
        json={"email": "nobody@example.org", "password": PASSWORD},
        headers={"apikey": auth.anon_key},
        timeout=10,
    )
    assert old.status_code == 400
    assert old.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }
    missing = call(auth, "POST", "/token?grant_type=password", json={"password": PASSWORD})
    assert missing.json() == {"code": "validation_failed", "message": "missing email or phone"}
    assert call(auth, "POST", "/token?grant_type=magic").json()["code"] == "invalid_credentials"
    no_key = httpx.post(f"{auth.url}/auth/v1/token?grant_type=password", json={}, timeout=10)
    assert no_key.status_code == 401
    assert no_key.json()["message"] == "No API key found in request"


def test_an_unconfirmed_address_and_an_inactive_member_are_refused(
    auth: AuthStandIn, db: Database
) -> None:
    unconfirmed = auth.set_password("new@example.org", PASSWORD)
    with db.connect() as conn:
        conn.execute(
            "update auth.users set email_confirmed_at = null where id = %s", (unconfirmed,)
        )
    answer = sign_in(auth, "new@example.org")
    assert answer.status_code == 400 and answer.json()["code"] == "email_not_confirmed"

    # The hook refuses a member whose memberships are all inactive; Auth answers its words.
    former = auth.set_password("former@example.org", PASSWORD)
    member(db, former, status="inactive")
    refused = sign_in(auth, "former@example.org")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "Your membership is no longer active. Contact your organisation to regain access."
    )


def test_refresh_tokens_rotate_and_a_reused_one_ends_the_session(
    auth: AuthStandIn, db: Database
) -> None:
    auth.set_password("admin@example.org", PASSWORD)
    first = sign_in(auth, "admin@example.org").json()

    def refresh(token: str) -> httpx.Response:
        return call(auth, "POST", "/token?grant_type=refresh_token", json={"refresh_token": token})

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] != first["refresh_token"]
    new, old = claims(second.json()["access_token"]), claims(first["access_token"])
    assert new["session_id"] == old["session_id"] and new["sub"] == old["sub"]
    # Within the reuse interval (two tabs refreshing at once) the current token is answered.
    again = refresh(first["refresh_token"])
    assert again.status_code == 200
    assert again.json()["refresh_token"] == second.json()["refresh_token"]

    auth.refresh_token_reuse_seconds = 0
    reused = refresh(first["refresh_token"])
    assert reused.status_code == 400 and reused.json() == {
        "code": "refresh_token_already_used",
        "message": "Invalid Refresh Token: Already Used",
    }
    gone = refresh(second.json()["refresh_token"])
    assert gone.json()["code"] == "refresh_token_not_found"
    assert refresh("short").json()["code"] == "validation_failed"


def test_logout_revokes_the_sessions_refresh_tokens(auth: AuthStandIn, db: Database) -> None:
    auth.set_password("admin@example.org", PASSWORD)
    session = sign_in(auth, "admin@example.org").json()
    bearer = {"authorization": f"Bearer {session['access_token']}"}

    assert call(auth, "POST", "/logout").status_code == 401
    assert call(auth, "POST", "/logout?scope=global", headers=bearer).status_code == 204

    refresh = call(
        auth,
        "POST",
        "/token?grant_type=refresh_token",
        json={"refresh_token": session["refresh_token"]},
    )
    assert refresh.json()["code"] == "refresh_token_not_found"
    user = call(auth, "GET", "/user", headers=bearer)
    assert user.status_code == 403 and user.json()["code"] == "session_not_found"


def test_cors_lets_a_browser_on_another_origin_call_it(auth: AuthStandIn) -> None:
    preflight = httpx.options(
        f"{auth.url}/auth/v1/token?grant_type=password",
        headers={
            "origin": "https://console.example.org",
            "access-control-request-method": "POST",
            "access-control-request-headers": "apikey, authorization, content-type, "
            "x-client-info, x-supabase-api-version",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "x-supabase-api-version" in preflight.headers["access-control-allow-headers"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
