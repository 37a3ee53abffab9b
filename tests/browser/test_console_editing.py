"""What the console changes beyond its first screens, in Debian's Chromium against the local
system (docs/console.md): the Dynamics connection (credentials write-only), the sync settings
and the field mapping (edited, then back to the default), an import and a reconciliation
started and followed until they end, a mentor paused, resumed and certified, and every failed
delivery of the organisation retried.

Each test does what an administrator does on the screen and checks what the APIs (and the
Dynamics stand-in, where the website reads) then hold; each screen is photographed
(.local/test-artifacts/console/) and checked with axe-core, also at a phone's width.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import uuid
from datetime import date, timedelta
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
RUN_ENDED = 120_000  # ms: an import of the demo environment's members, locally


def integration(system: Any) -> dict[str, Any]:
    answer = admin_api(
        system, "GET", f"/orgs/{system.seed.org_id}/integration", system.seed.org_admin_token
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def sync_status(system: Any, org_id: Any = None) -> dict[str, Any]:
    answer = admin_api(
        system, "GET", f"/orgs/{org_id or system.seed.org_id}/sync/status", system.seed.admin_token
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# -- the Dynamics connection --------------------------------------------------------------------


def test_the_dynamics_connection_is_edited_with_its_credentials_write_only(
    console: Console, system: Any
) -> None:
    page = console.page
    calm_standin(system)
    gateway = system.dynamics.gateway_url
    key = secrets.token_urlsafe(24)
    system.dynamics.add_api_key(key)
    before = integration(system)["dynamics"]
    console.sign_in("org_admin")
    expect(console.heading()).to_have_text("Integration settings")
    connection = page.get_by_role("region", name="Dynamics connection")
    expect(connection).to_contain_text(
        f"Configured (fingerprint {before['credentials']['fingerprint']})"
    )
    expect(connection.get_by_label("Environment address")).to_have_value(before["base_url"])
    expect(connection.get_by_label("Client secret")).to_have_value("")

    # Through the API gateway: another address and authentication need the key again.
    connection.get_by_role("radio", name="API key (through an API gateway)").check()
    connection.get_by_label("Environment address").fill(gateway)
    connection.get_by_role("button", name="Save the connection").click()

    api_key = connection.get_by_label("API key", exact=True)
    expect(api_key).to_have_attribute("aria-invalid", "true")
    expect(api_key).to_have_accessible_description(re.compile("is required again"))
    summary = page.get_by_role("alert").filter(has_text="The connection was not saved")
    expect(summary).to_be_focused()
    assert integration(system)["dynamics"] == before
    console.screenshot("integration-connection-refused")
    console.assert_accessible()

    api_key.fill(key)
    connection.get_by_role("button", name="Save the connection").click()

    saved = page.get_by_role("status").filter(has_text="Dynamics connection saved.")
    expect(saved).to_be_focused()
    answer = admin_api(
        system, "GET", f"/orgs/{system.seed.org_id}/integration", system.seed.org_admin_token
    )
    dynamics = answer.json()["dynamics"]
    assert (dynamics["base_url"], dynamics["auth_type"]) == (gateway, "api_key")
    assert dynamics["api_key_header"] == "Ocp-Apim-Subscription-Key"
    assert dynamics["credentials"]["configured"] is True
    assert dynamics["credentials"]["fingerprint"] == hashlib.sha256(key.encode()).hexdigest()[:12]
    # Write-only: the key is in no answer and, once sent, nowhere in the page.
    assert key not in answer.text
    assert key not in page.content()
    expect(api_key).to_have_value("")
    expect(connection).to_contain_text(
        f"Configured (fingerprint {dynamics['credentials']['fingerprint']})"
    )
    console.screenshot("integration-connection")
    console.assert_accessible()

    # A new address is read in full: the sync screen follows that import by itself.
    saved.get_by_role("link", name="Follow the import").click()
    expect(console.heading()).to_have_text("Sync status and log")
    full_import = page.locator(".facts .fact", has_text="Full import")
    expect(full_import).to_contain_text("Succeeded.", timeout=RUN_ENDED)
    run = sync_status(system)["full_import"]
    assert (run["trigger"], run["phase"]) == ("connection_changed", "succeeded"), json.dumps(run)
    assert run["rows_read"] > 0 and not run["rows_failed"]


# -- sync settings and the field mapping ---------------------------------------------------------


def test_the_sync_settings_and_field_mapping_are_edited_then_back_to_the_default(
    console: Console, system: Any
) -> None:
    page = console.page
    application_user = str(uuid.uuid4())
    console.sign_in("org_admin")
    expect(console.heading()).to_have_text("Integration settings")
    mapping = page.get_by_role("region", name="Field mapping")
    expect(mapping).to_contain_text("The platform's default mapping")
    contact = mapping.get_by_role("group", name=re.compile(r"^Table contact "))
    membership = mapping.get_by_role("group", name=re.compile(r"^Table hlf_membership "))
    expect(contact.get_by_label("Phone column")).to_have_value("mobilephone")
    expect(membership.get_by_label("Contact lookup column")).to_have_value("hlf_contactid")
    console.screenshot("integration-mapping-default")
    console.assert_accessible()

    interval = page.get_by_label("Reconciliation interval (minutes)")
    interval.fill("3")
    page.get_by_label("Website visibility column").fill("hlf_visibleonsite")
    page.get_by_label("Application users").fill(application_user)
    contact.get_by_label("Phone column").fill("telephone1")
    membership.get_by_label("Contact lookup column").fill("")
    page.get_by_role("button", name="Save settings").click()

    # The API's 422s at their fields: the interval's range, and the membership table's lookup.
    expect(interval).to_have_attribute("aria-invalid", "true")
    expect(interval).to_have_accessible_description(re.compile("greater than or equal to 5"))
    table_name = membership.get_by_label("Table (logical name)")
    expect(table_name).to_have_accessible_description(re.compile("needs contact_column"))
    summary = page.get_by_role("alert").filter(has_text="The settings were not saved")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_count(2)
    unchanged = integration(system)
    assert unchanged["field_mapping_is_default"] is True
    assert unchanged["reconcile_interval_minutes"] == 15
    console.screenshot("integration-mapping-refused")
    console.assert_accessible()
    summary.get_by_role("link", name=re.compile("table hlf_membership")).click()
    expect(table_name).to_be_focused()

    interval.fill("30")
    membership.get_by_label("Contact lookup column").fill("hlf_contactid")
    page.get_by_role("button", name="Save settings").click()

    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    saved = integration(system)
    assert saved["reconcile_interval_minutes"] == 30
    assert saved["website_visibility_column"] == "hlf_visibleonsite"
    assert saved["application_user_ids"] == [application_user]
    assert saved["field_mapping_is_default"] is False
    tables = saved["field_mapping"]["tables"]
    assert tables["contact"]["profile_columns"]["phone"] == "telephone1"
    assert tables["contact"]["profile_columns"]["email"] == "emailaddress1"
    assert tables["hlf_membership"]["contact_column"] == "hlf_contactid"
    assert tables["hlf_membership"]["role_values"]["100000001"] == "peer_mentor"
    assert set(tables) == {"contact", "hlf_membership", "hlf_courseenrollment"}
    expect(mapping).to_contain_text("A mapping of this organisation's own")

    mapping.get_by_role("button", name="Use the default mapping").click()
    expect(mapping).to_contain_text("Saving goes back to the platform's default mapping")
    page.get_by_role("button", name="Save settings").click()

    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    reset = integration(system)
    assert reset["field_mapping_is_default"] is True
    assert reset["field_mapping"]["tables"]["contact"]["profile_columns"]["phone"] == "mobilephone"
    # The other settings stay as saved.
    assert reset["reconcile_interval_minutes"] == 30
    expect(mapping).to_contain_text("The platform's default mapping")
    expect(contact.get_by_label("Phone column")).to_have_value("mobilephone")
    console.screenshot("integration-mapping")
    console.assert_accessible()


# -- an import and a reconciliation ------------------------------------------------------------


def test_an_import_and_a_reconciliation_started_in_the_console_are_followed_to_their_end(
    console: Console, system: Any, db: Database
) -> None:
    page = console.page
    standin = calm_standin(system)
    # The import's first read is held until the test lets it go (then throttled for a second):
    # meanwhile the import is certainly running.
    release = threading.Event()
    standin.fail_next("429", count=1, retry_after=1, method="GET", hold=release)
    console.sign_in("org_admin")
    console.go(f"/orgs/{system.seed.org_id}/sync")
    expect(console.heading()).to_have_text("Sync status and log")

    page.get_by_role("button", name="Start import").click()
    dialog = page.get_by_role("dialog", name="Start a full import?")
    expect(dialog).to_contain_text("Every row the field mapping names is read from Dynamics")
    console.assert_accessible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Start import")).to_be_focused()
    assert sync_status(system)["full_import"] is None

    page.get_by_role("button", name="Start import").click()
    dialog.get_by_role("button", name="Start the full import").click()

    started = page.get_by_role("region", name="Full import")
    expect(started).to_be_focused()
    expect(started).to_contain_text("Running.")
    running = sync_status(system)["full_import"]
    assert (running["phase"], running["trigger"]) == ("running", "admin")
    expect(started).to_have_attribute("data-run-id", running["id"])

    # One at a time: the API's 409 in its own words.
    page.get_by_role("button", name="Start reconciliation").click()
    page.get_by_role("dialog", name="Start a reconciliation?").get_by_role(
        "button", name="Start the reconciliation"
    ).click()
    refused = page.get_by_role("alert").filter(has_text="This cannot be done now")
    expect(refused).to_contain_text(
        f"A full import of this organisation is running (run {running['id']})"
    )
    expect(refused).to_be_focused()
    console.screenshot("sync-import-running")
    console.assert_accessible()
    release.set()

    expect(started).to_contain_text("Succeeded.", timeout=RUN_ENDED)
    done = sync_status(system)["full_import"]
    assert (done["id"], done["phase"]) == (running["id"], "succeeded"), json.dumps(done)
    assert done["rows_read"] > 1000 and not done["rows_failed"]
    expect(started).to_contain_text(f"{done['rows_read']:,} rows read")
    expect(started).to_have_attribute("data-phase", "succeeded")
    expect(page.locator(".facts .fact", has_text="Full import")).to_contain_text("Succeeded.")
    console.screenshot("sync-import-succeeded")

    page.get_by_role("button", name="Start reconciliation").click()
    page.get_by_role("dialog", name="Start a reconciliation?").get_by_role(
        "button", name="Start the reconciliation"
    ).click()

    reconciliation = page.get_by_role("region", name="Reconciliation")
    expect(reconciliation).to_be_focused()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(reconciliation).to_contain_text("Succeeded.", timeout=RUN_ENDED)
    run = sync_status(system)["reconciliation"]
    assert (run["phase"], run["trigger"]) == ("succeeded", "admin"), json.dumps(run)
    actions = [row["action"] for row in db.rows("select action from audit_logs")]
    assert actions.count("sync.import.started") == 1
    assert actions.count("sync.reconcile.started") == 1
    console.screenshot("sync-reconciliation-succeeded")
    console.assert_accessible()


def test_an_import_without_a_dynamics_connection_is_refused_in_the_apis_words(
    console: Console, system: Any
) -> None:
    page = console.page
    created = admin_api(
        system, "POST", "/orgs", system.seed.admin_token, json={"name": "Unconnected chapter"}
    )
    assert created.status_code == 201, created.text
    other = created.json()["id"]
    console.sign_in("global_admin")
    console.go(f"/orgs/{other}/sync")

    page.get_by_role("button", name="Start import").click()
    page.get_by_role("dialog").get_by_role("button", name="Start the full import").click()

    refused = page.get_by_role("alert").filter(has_text="This cannot be done now")
    expect(refused).to_contain_text("No Dynamics connection is configured")
    expect(page.get_by_role("region", name="Full import")).to_have_count(0)
    assert sync_status(system, other)["full_import"] is None


# -- a mentor's pause and certificate; every failed delivery retried ------------------------------


def test_a_mentor_paused_resumed_and_certified_in_the_console_is_followed_by_dynamics(
    console: Console, system: Any
) -> None:
    page = console.page
    calm_standin(system)
    console.sign_in("org_admin")
    console.go(f"/orgs/{system.seed.org_id}/members?mentor={system.seed.mentor_id}")
    expect(console.heading()).to_have_text("Website visibility: Demo Mentor")
    on_website = page.get_by_role("region", name="On the website")

    page.get_by_role("button", name="Pause the mentor").click()
    dialog = page.get_by_role("dialog", name="Pause Demo Mentor?")
    expect(dialog).to_contain_text("stops showing Demo Mentor while they are paused")
    console.assert_accessible()
    dialog.get_by_role("button", name="Pause", exact=True).click()

    result = page.get_by_role("status").filter(has_text="Demo Mentor is paused.")
    expect(result).to_be_focused()
    expect(result).to_contain_text("Dynamics now shows the mentor as hidden.", timeout=DELIVERED)
    paused = mentor_status(system)
    assert (paused["paused"], paused["desired"], paused["state"]) == (True, False, "in_sync")
    assert website_column(system) is False
    expect(on_website).to_contain_text("the mentor is paused")
    expect(page.locator('.history-table tr[data-operation="paused"]')).to_contain_text("You")
    expect(page.get_by_role("button", name="Pause the mentor")).to_have_count(0)

    page.get_by_role("button", name="Resume the mentor").click()
    page.get_by_role("dialog", name="Resume Demo Mentor?").get_by_role(
        "button", name="Resume", exact=True
    ).click()

    result = page.get_by_role("status").filter(has_text="Demo Mentor is no longer paused.")
    expect(result).to_contain_text("Dynamics now shows the mentor as visible.", timeout=DELIVERED)
    assert mentor_status(system)["paused"] is False
    assert website_column(system) is True

    # A certificate that ended yesterday hides the mentor; a renewal shows them again.
    certificate = page.get_by_label("Certificate valid until", exact=True)
    yesterday = date.today() - timedelta(days=1)
    certificate.fill(yesterday.isoformat())
    page.get_by_role("button", name="Save the certificate").click()
    dialog = page.get_by_role("dialog", name=re.compile(r"^Certificate valid until "))
    expect(dialog).to_contain_text("After that day the website stops showing them")
    dialog.get_by_role("button", name="Save the date").click()

    result = page.get_by_role("status").filter(has_text="Demo Mentor's certificate is valid until")
    expect(result).to_contain_text("Dynamics now shows the mentor as hidden.", timeout=DELIVERED)
    expired = mentor_status(system)
    assert (expired["certified_until"], expired["desired"]) == (yesterday.isoformat(), False)
    assert website_column(system) is False
    expect(page.locator('.history-table tr[data-operation="certificate_updated"]')).to_contain_text(
        "You"
    )
    console.screenshot("member-visibility-certificate-expired")
    console.assert_accessible()

    renewed = date.today() + timedelta(days=400)
    certificate.fill(renewed.isoformat())
    page.get_by_role("button", name="Save the certificate").click()
    page.get_by_role("dialog").get_by_role("button", name="Save the date").click()
    result = page.get_by_role("status").filter(has_text="Demo Mentor's certificate is valid until")
    expect(result).to_contain_text("Dynamics now shows the mentor as visible.", timeout=DELIVERED)
    assert mentor_status(system)["certified_until"] == renewed.isoformat()
    assert website_column(system) is True

    page.get_by_role("button", name="Remove the certificate").click()
    page.get_by_role("dialog", name="Remove Demo Mentor's certificate?").get_by_role(
        "button", name="Remove it"
    ).click()
    result = page.get_by_role("status").filter(has_text="Demo Mentor has no certificate now.")
    expect(result).to_contain_text("Dynamics now shows the mentor as hidden.", timeout=DELIVERED)
    removed = mentor_status(system)
    assert (removed["certified_until"], removed["desired"]) == (None, False)
    expect(page.get_by_role("button", name="Remove the certificate")).to_have_count(0)
    console.screenshot("member-visibility-paused-certified")


def test_every_failed_delivery_is_retried_from_the_members_screen(
    console: Console, system: Any
) -> None:
    page = console.page
    standin = calm_standin(system)
    mentor = str(system.seed.mentor_id)
    # Dynamics refuses the hiding's PATCH once, for good (a contact it cannot find).
    standin.fail_next("404", count=1, method="PATCH")
    assert website_sync(system, "POST", f"/{mentor}/hide").status_code == 200
    eventually(lambda: mentor_status(system)["state"] == "failed", timeout=DELIVERED / 1000)
    assert website_column(system) is True
    console.sign_in("org_admin")
    page.get_by_role("link", name="Members", exact=True).click()
    mentor_row = page.locator(f'tr[data-profile-id="{mentor}"]')
    expect(mentor_row.locator('td[data-label="Website"]')).to_contain_text("Delivery failed")

    page.get_by_role("button", name="Retry all failed deliveries").click()
    dialog = page.get_by_role("dialog", name="Retry every failed delivery now?")
    expect(dialog).to_contain_text("is delivered again now")
    console.assert_accessible()
    dialog.get_by_role("button", name="Retry them all").click()

    result = page.get_by_role("status").filter(has_text="The failed delivery of 1 mentor")
    expect(result).to_be_focused()
    # The list follows the delivery until Dynamics answered.
    expect(mentor_row.locator('td[data-label="Website"]')).to_have_text(
        re.compile(r"^Hidden\s*Website visibility$"), timeout=DELIVERED
    )
    delivered = mentor_status(system)
    assert (delivered["state"], delivered["applied"]) == ("in_sync", False)
    assert website_column(system) is False
    console.screenshot("members-retried")
    console.assert_accessible()

    # Nothing failed any more: the API retries none, and the screen says so.
    page.get_by_role("button", name="Retry all failed deliveries").click()
    page.get_by_role("dialog").get_by_role("button", name="Retry them all").click()
    expect(page.get_by_role("status").filter(has_text="there was nothing to retry")).to_be_visible()


# -- small screens ------------------------------------------------------------------------------


def test_the_edited_screens_fit_a_phone(console: Console, system: Any) -> None:
    page = console.page
    page.set_viewport_size(PHONE)
    calm_standin(system)
    console.sign_in("org_admin")
    org = system.seed.org_id
    for route, name, ready in (
        (f"/orgs/{org}/integration", "integration-editing-phone", "Field mapping"),
        (f"/orgs/{org}/sync", "sync-runs-phone", "Start reconciliation"),
        (f"/orgs/{org}/members", "members-retry-phone", "Retry all failed deliveries"),
        (
            f"/orgs/{org}/members?mentor={system.seed.mentor_id}",
            "member-certificate-phone",
            "Save the certificate",
        ),
    ):
        console.go(route)
        expect(page.get_by_text(ready, exact=True).first).to_be_visible(timeout=15_000)
        console.assert_no_horizontal_scroll()
        console.screenshot(name)
        console.assert_accessible()
