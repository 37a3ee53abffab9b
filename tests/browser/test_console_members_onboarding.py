"""The members screen (with a peer mentor's website visibility) and onboarding, in Debian's
Chromium against the local system (docs/console.md).

Each test does what a coordinator or administrator does on the screen and checks what the APIs
(and the Dynamics stand-in, where the website reads) then hold, not only what the page shows;
each screen is photographed (.local/test-artifacts/console/) and checked with axe-core.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from browser_console import (  # noqa: F401
    PHONE,
    Console,
    admin_api,
    chromium,
    console_tab,
    mentor_status,
    website_column,
    website_sync,
)
from conftest import Database, eventually
from peer_mentors import calm_standin
from playwright.sync_api import expect

DELIVERED = 20_000  # ms: a delivery through the state machine to the stand-in, locally


def onboard(system: Any, name: str) -> str:
    created = admin_api(system, "POST", "/orgs", system.seed.admin_token, json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def organization_count(db: Database) -> int:
    row = db.one("select count(*) as n from organizations")
    assert row is not None
    return int(row["n"])


# -- members and a mentor's website visibility --------------------------------------------------


def test_a_mentor_hidden_and_restored_in_the_console_is_hidden_and_shown_by_dynamics(
    console: Console, system: Any
) -> None:
    page = console.page
    calm_standin(system)
    mentor = str(system.seed.mentor_id)
    console.sign_in("org_admin")
    page.get_by_role("link", name="Members", exact=True).click()
    expect(console.heading()).to_have_text("Members")
    expect(console.heading()).to_be_focused()

    rows = page.locator(".members-table tbody tr")
    expect(rows).to_have_count(3)  # the demo administrator, coordinator and peer mentor
    mentor_row = page.locator(f'tr[data-profile-id="{mentor}"]')
    expect(mentor_row.locator('td[data-label="Name"]')).to_have_text("Demo Mentor")
    expect(mentor_row.locator('td[data-label="Role"]')).to_have_text("Peer mentor")
    expect(mentor_row.locator('td[data-label="Membership"]')).to_have_text("Active")
    expect(mentor_row.locator('td[data-label="Website"]')).to_contain_text("Shown")
    admin_row = rows.filter(has_text="Demo Administrator")
    expect(admin_row.locator('td[data-label="Role"]')).to_have_text("Administrator")
    expect(admin_row).to_contain_text("org-admin@example.org")
    expect(admin_row.locator('td[data-label="Website"]')).to_have_text("Not a peer mentor")
    console.screenshot("members")
    console.assert_accessible()

    mentor_row.get_by_role("link", name="Website visibility of Demo Mentor").click()
    expect(console.heading()).to_have_text("Website visibility: Demo Mentor")
    expect(console.heading()).to_be_focused()
    on_website = page.get_by_role("region", name="On the website")
    expect(on_website).to_contain_text("In sync")
    console.screenshot("member-visibility")
    console.assert_accessible()

    page.get_by_role("button", name="Hide from the website").click()
    dialog = page.get_by_role("dialog", name="Hide Demo Mentor from the website?")
    expect(dialog).to_contain_text("stays hidden until a coordinator restores them")
    console.assert_accessible()
    dialog.get_by_role("button", name="Hide the mentor").click()

    result = page.get_by_role("status").filter(has_text="Demo Mentor is now hidden")
    expect(result).to_be_focused()
    # The API holds the hiding as soon as it answered; Dynamics follows, and so does the page.
    hidden = mentor_status(system)
    assert hidden["hidden_manually"] is True and hidden["desired"] is False
    expect(result).to_contain_text("Dynamics now shows the mentor as hidden.", timeout=DELIVERED)
    delivered = mentor_status(system)
    assert (delivered["state"], delivered["applied"]) == ("in_sync", False)
    assert website_column(system) is False
    expect(on_website).to_contain_text("a coordinator hid the mentor")
    history = page.locator(".history-table tbody tr")
    expect(page.locator('.history-table tr[data-operation="hidden"]')).to_contain_text("You")
    expect(history.first).to_have_attribute("data-operation", "applied")
    expect(page.get_by_role("button", name="Hide from the website")).to_have_count(0)
    console.screenshot("member-visibility-hidden")
    console.assert_accessible()

    page.get_by_role("link", name="All members").click()
    expect(mentor_row.locator('td[data-label="Website"]')).to_contain_text("Hidden")
    mentor_row.get_by_role("link", name="Website visibility of Demo Mentor").click()
    page.get_by_role("button", name="Show on the website again").click()
    dialog = page.get_by_role("dialog", name="Show Demo Mentor on the website again?")
    dialog.get_by_role("button", name="Show the mentor again").click()

    result = page.get_by_role("status").filter(has_text="shown on the website again")
    expect(result).to_contain_text("Dynamics now shows the mentor as visible.", timeout=DELIVERED)
    restored = mentor_status(system)
    assert (restored["hidden_manually"], restored["state"], restored["applied"]) == (
        False,
        "in_sync",
        True,
    )
    assert website_column(system) is True
    expect(page.locator('.history-table tr[data-operation="restored"]')).to_contain_text("You")


def test_a_failed_delivery_is_retried_and_a_refused_restore_says_why(
    console: Console, system: Any
) -> None:
    page = console.page
    standin = calm_standin(system)
    mentor = str(system.seed.mentor_id)
    # Dynamics refuses the hiding's PATCH for good (a contact it cannot find): no retries.
    standin.fail_next("404", count=1, method="PATCH")
    console.sign_in("org_admin")
    console.go(f"/orgs/{system.seed.org_id}/members?mentor={mentor}")
    expect(console.heading()).to_have_text("Website visibility: Demo Mentor")

    page.get_by_role("button", name="Hide from the website").click()
    page.get_by_role("dialog").get_by_role("button", name="Hide the mentor").click()

    result = page.get_by_role("status").filter(has_text="Demo Mentor is now hidden")
    expect(result).to_contain_text("The delivery to Dynamics failed:", timeout=DELIVERED)
    failed = mentor_status(system)
    assert failed["state"] == "failed" and failed["last_error"]
    on_website = page.get_by_role("region", name="On the website")
    expect(on_website).to_contain_text("Delivery failed")
    expect(on_website).to_contain_text(failed["last_error"])
    assert website_column(system) is True  # the website still shows the mentor
    console.screenshot("member-visibility-failed")
    console.assert_accessible()

    page.get_by_role("button", name="Retry the delivery").click()
    dialog = page.get_by_role("dialog", name="Deliver Demo Mentor's visibility again now?")
    expect(dialog).to_contain_text("to show the mentor as hidden")
    dialog.get_by_role("button", name="Retry now").click()

    result = page.get_by_role("status").filter(has_text="started again")
    expect(result).to_contain_text("Dynamics now shows the mentor as hidden.", timeout=DELIVERED)
    assert mentor_status(system)["state"] == "in_sync"
    assert website_column(system) is False
    expect(page.locator('.history-table tr[data-operation="retry"]')).to_contain_text("You")
    expect(page.locator('.history-table tr[data-outcome="failed"]').first).to_be_visible()

    # Paused meanwhile (the app does it): lifting the hiding would not show the mentor.
    assert website_sync(system, "POST", f"/{mentor}/pause").status_code == 200
    page.get_by_role("button", name="Refresh").click()
    expect(on_website).to_contain_text("the mentor is paused")
    page.get_by_role("button", name="Show on the website again").click()
    page.get_by_role("dialog").get_by_role("button", name="Show the mentor again").click()

    refused = page.get_by_role("alert").filter(has_text="This cannot be done now")
    expect(refused).to_contain_text(
        "The mentor cannot be shown on the website: the mentor is paused"
    )
    expect(refused).to_be_focused()
    assert mentor_status(system)["hidden_manually"] is True
    console.screenshot("member-visibility-restore-refused")


def test_a_coordinator_sees_the_members_and_a_mentors_visibility_but_not_the_settings(
    console: Console, system: Any
) -> None:
    page = console.page
    calm_standin(system)
    console.open("/sign-in")
    page.get_by_role("button", name="Sign in as Coordinator").click()

    # GET /me names one organisation the coordinator coordinates: its members view opens.
    expect(console.heading()).to_have_text("Members")
    expect(page.get_by_text("(Coordinator)")).to_be_visible()
    expect(page.get_by_role("navigation")).to_contain_text("HLF demo chapter")
    rows = page.locator(".members-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Demo Coordinator").locator('td[data-label="Role"]')).to_have_text(
        "Coordinator"
    )
    console.screenshot("members-coordinator")
    page.get_by_role("link", name="Website visibility of Demo Mentor").click()
    expect(page.get_by_role("region", name="On the website")).to_contain_text("In sync")
    expect(page.get_by_role("button", name="Hide from the website")).to_be_visible()

    # The settings are administrators': the API refuses them, and the screen says so.
    page.get_by_role("link", name="Integration settings").click()
    expect(console.heading()).to_have_text("Integration settings")
    refusal = page.get_by_role("alert").filter(has_text="Access refused")
    expect(refusal).to_contain_text("You do not have access to this organisation")
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    settings = admin_api(
        system, "GET", f"/orgs/{system.seed.org_id}/integration", system.seed.coordinator_token
    )
    assert settings.status_code == 403
    console.assert_accessible()


def test_an_org_admin_is_refused_another_organisations_members_and_onboarding(
    console: Console, system: Any, db: Database
) -> None:
    page = console.page
    other = onboard(system, "Another chapter")
    console.sign_in("org_admin")
    console.go(f"/orgs/{other}/members")

    expect(console.heading()).to_have_text("Members")
    refusal = page.get_by_role("alert").filter(has_text="Access refused")
    expect(refusal).to_contain_text("You do not have access to this organisation")
    expect(page.locator(".members-table")).to_have_count(0)
    console.screenshot("members-refused")
    console.assert_accessible()

    # Onboarding is not offered to an organisation administrator (GET /me: not a global
    # administrator), and its address shows the API's refusal of the template instead of a form.
    console.go("/")
    expect(console.heading()).to_have_text("Organisations")
    expect(page.get_by_role("link", name="HLF demo chapter")).to_be_visible()
    expect(page.get_by_role("link", name="New organisation")).to_have_count(0)
    before = organization_count(db)
    console.go("/new-organization")
    expect(console.heading()).to_have_text("New organisation")
    refused = page.get_by_role("alert").filter(has_text="Access refused")
    expect(refused).to_contain_text("Only platform administrators may do this")
    expect(page.get_by_role("button", name="Create organisation")).to_have_count(0)
    template = admin_api(system, "GET", "/onboarding-template", system.seed.org_admin_token)
    assert template.status_code == 403
    assert organization_count(db) == before
    console.assert_accessible()


# -- onboarding -------------------------------------------------------------------------------


def test_an_organisation_onboarded_in_the_console_starts_from_the_default_template(
    console: Console, system: Any
) -> None:
    page = console.page
    served = admin_api(system, "GET", "/onboarding-template", system.seed.admin_token).json()
    console.sign_in("global_admin")
    # A global administrator starts on the organisations GET /orgs lists.
    expect(console.heading()).to_have_text("Organisations")
    page.get_by_role("link", name="New organisation").click()
    expect(console.heading()).to_have_text("New organisation")
    expect(console.heading()).to_be_focused()

    template = page.get_by_role("region", name=re.compile("the platform default template"))
    expect(template).to_contain_text("The default mapping")
    expect(template).to_contain_text("Standard Webhooks")
    preview = template.locator("tbody tr[data-feature]").evaluate_all(
        """rows => rows.map(row => [row.dataset.feature,
                                   row.querySelector('[data-label="Owner"]').innerText,
                                   row.querySelector('code')?.innerText ?? null])"""
    )
    owners = {"App": "app", "Portal": "portal"}
    # What the page shows is what the API serves as the template ...
    assert {feature: owners[owner] for feature, owner, _ in preview} == served["feature_ownership"]
    assert {feature: link for feature, _, link in preview if link} == served["deep_links"]
    mapping = template.locator("tbody tr[data-table]").evaluate_all(
        "rows => rows.map(row => [row.dataset.table, row.dataset.kind, row.innerText])"
    )
    assert [(table, kind) for table, kind, _ in mapping] == [
        (table, spec["kind"]) for table, spec in served["field_mapping"]["tables"].items()
    ]
    membership = dict((table, text) for table, _, text in mapping)["hlf_membership"]
    assert "Contact: hlf_contactid" in membership and "100000002 = Coordinator" in membership
    console.screenshot("onboarding")
    console.assert_accessible()

    # The API's own validation, at its field: a name is needed.
    page.get_by_role("button", name="Create organisation").click()
    name = page.get_by_label("Name", exact=True)
    expect(name).to_have_attribute("aria-invalid", "true")
    summary = page.get_by_role("alert").filter(has_text="The organisation was not created")
    expect(summary).to_be_focused()
    console.screenshot("onboarding-refused")
    console.assert_accessible()

    name.fill("HLF Bergen")
    page.get_by_label("Source id (optional)").fill("hlf-bergen")
    page.get_by_role("button", name="Create organisation").click()

    created = page.get_by_role("region", name="HLF Bergen was created")
    expect(created).to_be_focused()
    org_id = created.locator("code").first.inner_text()
    integration = admin_api(
        system, "GET", f"/orgs/{org_id}/integration", system.seed.admin_token
    ).json()
    assert integration["source_id"] == "hlf-bergen"
    assert integration["enabled"] is True
    assert integration["signature_mode"] == "standard-webhooks"
    assert integration["field_mapping_is_default"] is True
    assert integration["webhook_secret"]["configured"] is False
    assert integration["dynamics"] is None
    assert integration["field_mapping"] == served["field_mapping"]
    # ... and what the organisation started with.
    assert {feature: owners[owner] for feature, owner, _ in preview} == integration[
        "feature_ownership"
    ]
    assert {feature: link for feature, _, link in preview if link} == integration["deep_links"]
    expect(created).to_contain_text(integration["webhook_url"])
    console.screenshot("onboarding-created")
    console.assert_accessible()

    page.get_by_role("link", name="Review its integration settings").click()
    expect(console.heading()).to_have_text("Integration settings")
    expect(page.get_by_role("navigation")).to_contain_text("HLF Bergen")
    expect(page.get_by_label("Source id")).to_have_value("hlf-bergen")
    page.get_by_role("link", name="Change organisation").click()
    expect(page.get_by_role("link", name="HLF Bergen")).to_be_visible()

    # A source id already in use: the API's 409, at the field.
    page.get_by_role("link", name="New organisation").click()
    page.get_by_label("Name", exact=True).fill("HLF Bergen again")
    page.get_by_label("Source id (optional)").fill("hlf-bergen")
    page.get_by_role("button", name="Create organisation").click()
    source_id = page.get_by_label("Source id (optional)")
    expect(source_id).to_have_attribute("aria-invalid", "true")
    expect(source_id).to_have_accessible_description(re.compile("already in use"))


def test_an_organisation_onboarded_with_a_dynamics_connection_has_its_members_imported(
    console: Console, system: Any
) -> None:
    page = console.page
    client = system.run_info()["dynamics_sandbox_client"]
    console.sign_in("global_admin")
    console.go("/new-organization")
    page.get_by_label("Name", exact=True).fill("HLF Tromsø")
    page.get_by_label("Connect it to Dynamics now").check()
    page.get_by_label("Environment address").fill(system.dynamics.url)
    page.get_by_label("Tenant id").fill(client["tenant_id"])
    page.get_by_label("Client id").fill(client["client_id"])
    page.get_by_label("Client secret").fill(client["client_secret"])
    console.assert_accessible()

    page.get_by_role("button", name="Create organisation").click()

    created = page.get_by_role("region", name="HLF Tromsø was created")
    expect(created).to_contain_text(f"Connected to {system.dynamics.url}")
    org_id = created.locator("code").first.inner_text()
    dynamics = admin_api(
        system, "GET", f"/orgs/{org_id}/integration", system.seed.admin_token
    ).json()["dynamics"]
    assert dynamics["base_url"] == system.dynamics.url
    assert dynamics["credentials"]["configured"] is True
    assert (
        dynamics["credentials"]["fingerprint"]
        == hashlib.sha256(client["client_secret"].encode()).hexdigest()[:12]
    )
    # Write-only: once sent, the secret is nowhere in the page.
    assert client["client_secret"] not in page.content()

    page.get_by_role("link", name="Follow the import of its members").click()
    expect(console.heading()).to_have_text("Sync status and log")
    full_import = page.locator(".facts .fact", has_text="Full import")

    def import_ended() -> bool:
        page.get_by_role("button", name="Refresh").click()
        return "Succeeded." in full_import.inner_text() or "Failed." in full_import.inner_text()

    eventually(import_ended, timeout=90, interval=1)
    expect(full_import).to_contain_text("Succeeded.")
    status = admin_api(system, "GET", f"/orgs/{org_id}/sync/status", system.seed.admin_token)
    run = status.json()["full_import"]
    assert (run["trigger"], run["phase"]) == ("onboarding", "succeeded"), json.dumps(run)
    members = admin_api(
        system, "GET", f"/orgs/{org_id}/members?limit=5", system.seed.admin_token
    ).json()
    assert len(members["items"]) == 5 and members["next_cursor"]


# -- small screens ------------------------------------------------------------------------------


def test_members_visibility_and_onboarding_fit_a_phone(console: Console, system: Any) -> None:
    page = console.page
    page.set_viewport_size(PHONE)
    calm_standin(system)
    console.sign_in("global_admin")
    mentor = system.seed.mentor_id
    for route, name, ready in (
        (f"/orgs/{system.seed.org_id}/members", "members-phone", "Demo Mentor"),
        (
            f"/orgs/{system.seed.org_id}/members?mentor={mentor}",
            "member-visibility-phone",
            "History",
        ),
        ("/new-organization", "onboarding-phone", "Create organisation"),
    ):
        console.go(route)
        expect(page.get_by_text(ready, exact=True).first).to_be_visible(timeout=15_000)
        console.assert_no_horizontal_scroll()
        console.screenshot(name)
        console.assert_accessible()
