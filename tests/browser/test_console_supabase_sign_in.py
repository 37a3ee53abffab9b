"""The console as a deployment runs it, in Debian's Chromium: `"mode": "supabase"`, signing in
with supabase-js against a stand-in of the project's Auth (tools/portal_sync_dev/local/
auth_standin.py, whose tokens carry the database's access token hook's claims), the admin API on
another origin (as API Gateway is to CloudFront) and Auth on a third (docs/console.md,
"Signing in").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from browser_console import Console, admin_api, chromium, open_tab  # noqa: F401
from playwright.sync_api import expect
from portal_sync_dev.local.auth_standin import AuthStandIn
from portal_sync_dev.local.lambda_http import LocalApiServer
from portal_sync_dev.local.seed import DEMO_ORG_ADMIN_EMAIL

PASSWORD = "correct horse battery staple"
SUPABASE_STORAGE = "portal-sync-console.supabase-auth"


class SupabaseConsole(Console):
    def console_message(self, message: Any) -> None:
        # Chromium logs Supabase Auth's 400 to a wrong password, which the page shows in words.
        auth_answer = "/auth/v1/" in (message.location or {}).get("url", "")
        if auth_answer and message.text.startswith("Failed to load resource"):
            return
        super().console_message(message)

    def sign_in_with(self, email: str, password: str) -> None:
        self.page.get_by_label("E-mail address").fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()


@pytest.fixture
def auth(system: Any) -> Iterator[AuthStandIn]:
    standin = AuthStandIn(system.database_url, system.jwt_secret).start()
    standin.set_password(DEMO_ORG_ADMIN_EMAIL, PASSWORD)
    yield standin
    standin.stop()


@pytest.fixture
def deployed_console(system: Any, auth: AuthStandIn) -> Iterator[str]:
    """The console on an origin of its own, with a deployment's config.json and CSP."""
    config = {
        "mode": "supabase",
        "api_base_url": system.base_url,
        "supabase_url": auth.url,
        "supabase_anon_key": auth.anon_key,
    }
    site = system.console_site(lambda: config, connect_src=(system.base_url, auth.url))
    server = LocalApiServer("127.0.0.1", 0, [], sites=(site,))
    server.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(name="console")
def supabase_console(browser: Any, deployed_console: str) -> Iterator[SupabaseConsole]:
    with open_tab(browser, partial(SupabaseConsole, base_url=deployed_console)) as tab:
        yield tab


def recorded(page: Any) -> tuple[list[Any], list[Any]]:
    """The requests the page sends and the responses it is sent from now on, in order."""
    requests: list[Any] = []
    responses: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    page.on("response", lambda response: responses.append(response))
    return requests, responses


def issued_tokens(responses: list[Any]) -> list[tuple[str, str]]:
    """(grant type, access token) of each session Auth answered, in order."""
    return [
        (parse_qs(urlsplit(r.url).query)["grant_type"][0], r.json()["access_token"])
        for r in responses
        if urlsplit(r.url).path.endswith("/auth/v1/token") and r.request.method == "POST" and r.ok
    ]


def bearers(requests: list[Any], path: str) -> list[str]:
    """The bearer tokens the admin API was sent for `path`, in order."""
    return [
        r.all_headers()["authorization"].removeprefix("Bearer ")
        for r in requests
        if urlsplit(r.url).path == f"/functions/v1/admin-api{path}" and r.method == "GET"
    ]


def test_a_wrong_password_is_refused_in_supabase_auths_words_and_the_right_one_loads_a_screen(
    console: SupabaseConsole, system: Any, auth: AuthStandIn
) -> None:
    page = console.page
    requests, responses = recorded(page)
    console.open()
    expect(console.heading()).to_have_text("Sign in")
    console.screenshot("supabase-sign-in")
    console.assert_accessible()

    console.sign_in_with(DEMO_ORG_ADMIN_EMAIL, "not the password")
    refusal = page.get_by_role("alert").filter(has_text="You could not be signed in")
    expect(refusal).to_contain_text("Invalid login credentials")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    assert page.evaluate("sessionStorage.getItem('portal-sync-console.session')") is None
    console.screenshot("supabase-sign-in-refused")
    console.assert_accessible()

    console.sign_in_with(DEMO_ORG_ADMIN_EMAIL, PASSWORD)
    # The token's org_roles claim (the access token hook's) names the one organisation: its
    # first screen opens, with what the admin API answers for it.
    expect(console.heading()).to_have_text("Integration settings")
    expect(page.get_by_text(f"Signed in as {DEMO_ORG_ADMIN_EMAIL}")).to_be_visible()
    expect(page.get_by_label("Source id")).to_have_value(system.seed.source_id)

    [(grant, token)] = issued_tokens(responses)
    assert grant == "password"
    claims = jwt.decode(token, system.jwt_secret, algorithms=["HS256"], audience="authenticated")
    assert claims["iss"] == f"{auth.url}/auth/v1" and claims["email"] == DEMO_ORG_ADMIN_EMAIL
    assert claims["org_roles"] == {str(system.seed.org_id): "admin"}
    sent = bearers(requests, f"/orgs/{system.seed.org_id}/integration")
    assert sent and set(sent) == {token}
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('portal-sync-console.session'))")
    assert stored["token"] == token and "anonKey" in stored["supabase"]


def test_a_short_lived_token_is_refreshed_and_the_next_screen_loads_with_the_new_one(
    console: SupabaseConsole, system: Any, auth: AuthStandIn
) -> None:
    auth.access_token_seconds = 3
    page = console.page
    requests, responses = recorded(page)
    console.open()
    console.sign_in_with(DEMO_ORG_ADMIN_EMAIL, PASSWORD)
    expect(console.heading()).to_have_text("Integration settings")
    [(_, first)] = [issued for issued in issued_tokens(responses) if issued[0] == "password"]
    first_expiry = jwt.decode(first, options={"verify_signature": False})["exp"]

    # Once the first token has expired the API refuses it; the console goes on with a new one.
    time.sleep(max(0.0, first_expiry - time.time()) + 1.5)
    orgs = f"/orgs/{system.seed.org_id}"
    assert admin_api(system, "GET", f"{orgs}/integration", first).status_code == 401
    console.go(f"{orgs}/sync")
    expect(console.heading()).to_have_text("Sync status and log")
    expect(page.get_by_text("Your session has ended")).to_have_count(0)

    refreshed = [token for grant, token in issued_tokens(responses) if grant == "refresh_token"]
    assert refreshed, "supabase-js refreshed no token"
    sent = bearers(requests, f"{orgs}/sync/status")
    assert sent and set(sent) <= set(refreshed) and first not in sent
    claims = jwt.decode(sent[0], system.jwt_secret, algorithms=["HS256"], audience="authenticated")
    assert claims["exp"] > first_expiry
    # The hook ran again for the refreshed token.
    assert claims["org_roles"] == {str(system.seed.org_id): "admin"}
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('portal-sync-console.session'))")
    assert stored["token"] in refreshed


def test_signing_out_ends_the_supabase_session(
    console: SupabaseConsole, system: Any, auth: AuthStandIn
) -> None:
    page = console.page
    console.open()
    console.sign_in_with(DEMO_ORG_ADMIN_EMAIL, PASSWORD)
    expect(console.heading()).to_have_text("Integration settings")
    refresh_token = page.evaluate(
        f"JSON.parse(sessionStorage.getItem('{SUPABASE_STORAGE}')).refresh_token"
    )

    def logout(response: Any) -> bool:
        path = urlsplit(response.url).path
        return path.endswith("/auth/v1/logout") and response.request.method == "POST"

    with page.expect_response(logout) as out:
        page.get_by_role("button", name="Sign out").click()
    assert out.value.status == 204
    expect(console.heading()).to_have_text("Sign in")
    page.wait_for_function("sessionStorage.length === 0")

    # The refresh token is revoked at Auth: nobody holding it gets a new access token.
    answer = httpx.post(
        f"{auth.url}/auth/v1/token?grant_type=refresh_token",
        json={"refresh_token": refresh_token},
        headers={"apikey": auth.anon_key, "x-supabase-api-version": "2024-01-01"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["code"] == "refresh_token_not_found"
    page.reload()
    expect(console.heading()).to_have_text("Sign in")
    expect(page.get_by_label("E-mail address")).to_be_visible()


def test_the_deployed_console_is_served_with_supabase_js_and_a_csp_naming_its_origins(
    deployed_console: str, system: Any, auth: AuthStandIn
) -> None:
    page = httpx.get(f"{deployed_console}/console/", timeout=10)
    bundle = httpx.get(f"{deployed_console}/console/vendor/supabase.js", timeout=10)
    config = httpx.get(f"{deployed_console}/console/config.json", timeout=10).json()

    csp = page.headers["content-security-policy"]
    assert f"connect-src 'self' {system.base_url} {auth.url};" in csp
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert b"signInWithPassword" in bundle.content
    assert config == {
        "mode": "supabase",
        "api_base_url": system.base_url,
        "supabase_url": auth.url,
        "supabase_anon_key": auth.anon_key,
    }
    # Under make run nothing changes: the local sign-in, the functions on the console's origin.
    local = httpx.get(f"{system.console_url}config.json", timeout=10).json()
    assert local["mode"] == "local" and local["api_base_url"] == ""
    assert "supabase_url" not in local
    local_csp = httpx.get(system.console_url, timeout=10).headers["content-security-policy"]
    assert "connect-src 'self';" in local_csp
