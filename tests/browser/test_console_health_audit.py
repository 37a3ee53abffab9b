"""The admin console's webhook health and audit log screens (docs/console.md), in Chromium,
checked against what the admin API answers."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from browser_console import PHONE, Console, admin_api, chromium, console_tab  # noqa: F401
from conftest import Database
from playwright.sync_api import expect
from portal_sync.admin.health import MINIMUM_VOLUME
from support import portal_event, signed_headers


def webhook(system: Any, secret: str) -> int:
    body = portal_event("membership.created", str(uuid.uuid4()))
    url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    return httpx.post(
        url, content=body, headers=signed_headers(secret, body), timeout=10
    ).status_code


def test_webhook_health_shows_the_apis_figures_and_rejection_reasons(
    console: Console, system: Any, db: Database
) -> None:
    # Enough deliveries for the rate to count (MINIMUM_VOLUME), 3 of them rejected: 15 %, above the 10 % line.
    accepted = MINIMUM_VOLUME - 3
    assert {webhook(system, system.seed.webhook_secret) for _ in range(accepted)} == {202}
    wrong = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    assert [webhook(system, wrong) for _ in range(3)] == [401, 401, 401]
    org = system.seed.org_id
    health = admin_api(system, "GET", f"/orgs/{org}/webhook-health", system.seed.admin_token)
    assert health.status_code == 200
    figures = health.json()

    console.sign_in("global_admin")
    console.go(f"/orgs/{org}/health")
    expect(console.heading()).to_have_text("Webhook health")
    page = console.page
    expect(page.locator('[data-figure="rejected"] .figure-value')).to_have_text(
        str(figures["rejected_24h"])
    )
    expect(page.locator('[data-figure="received"] .figure-value')).to_have_text(
        str(figures["received_24h"])
    )
    assert figures["rejected_by_reason_24h"]["SIGNATURE_MISMATCH"] == 3
    bar = page.locator('.chart-row:has([data-reason="SIGNATURE_MISMATCH"])')
    expect(bar.locator(".chart-label")).to_have_text("Wrong signature or key")
    # The API's rejection-rate alert is a banner.
    assert figures["last_hour"]["alert"] is True
    expect(page.locator('[data-alert="rejection-rate"]')).to_be_visible()
    console.screenshot("webhook-health")
    console.assert_accessible()
    page.set_viewport_size(PHONE)
    console.assert_no_horizontal_scroll()


def test_the_audit_log_shows_the_newest_action_first(console: Console, system: Any) -> None:
    org = system.seed.org_id
    rotated = admin_api(
        system,
        "POST",
        f"/orgs/{org}/integration/webhook-secret",
        system.seed.org_admin_token,
        json={},
    )
    assert rotated.status_code in (200, 201), rotated.text
    audit = admin_api(system, "GET", f"/orgs/{org}/audit-log", system.seed.org_admin_token)
    assert audit.status_code == 200
    newest = audit.json()["items"][0]

    console.sign_in("org_admin")
    console.go(f"/orgs/{org}/audit")
    expect(console.heading()).to_have_text("Audit log")
    first = console.page.locator(".audit-table tbody tr").first
    expect(first).to_have_attribute("data-audit-id", str(newest["id"]))
    expect(first).to_have_attribute("data-action", newest["action"])
    console.screenshot("audit-log")
    console.assert_accessible()
    console.page.set_viewport_size(PHONE)
    console.assert_no_horizontal_scroll()
