"""The admin console's screens in Debian's Chromium, against the local system (docs/console.md).

Each test does what an administrator does on a screen and checks what the API then holds, not
only what the page shows; each screen is photographed (.local/test-artifacts/console/) and
checked with axe-core for serious and critical accessibility violations.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from browser_console import PHONE, Console, admin_api, chromium, console_tab  # noqa: F401
from conftest import Database, eventually
from playwright.sync_api import expect
from support import portal_event, signed_headers


def send_webhook(system: Any, body: bytes, secret: str | None = None) -> httpx.Response:
    url = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    headers = signed_headers(secret or system.seed.webhook_secret, body)
    return httpx.post(url, content=body, headers=headers, timeout=10)


def features(system: Any, org_id: Any) -> dict[str, dict[str, Any]]:
    answer = admin_api(system, "GET", f"/orgs/{org_id}/features", system.seed.org_admin_token)
    assert answer.status_code == 200, answer.text
    return {feature["feature"]: feature for feature in answer.json()["features"]}


def onboard(system: Any, name: str) -> str:
    """A second organisation, as a global administrator creates one (no webhook secret yet)."""
    created = admin_api(system, "POST", "/orgs", system.seed.admin_token, json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def until(check: Callable[[], bool], act: Callable[[], None], timeout: float = 10) -> None:
    """Does `act` (a click on Refresh) until `check` holds: the system works asynchronously."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition was not met in time"
        act()
        time.sleep(0.3)


# -- integration settings ----------------------------------------------------------------------


def test_a_feature_given_to_the_portal_with_its_link_reaches_the_apps_feature_list(
    console: Console, system: Any
) -> None:
    page = console.page
    console.sign_in("org_admin")
    expect(console.heading()).to_have_text("Integration settings")
    assert features(system, system.seed.org_id)["events"]["owner"] == "app"
    events = page.get_by_role("group", name="Events", exact=True)

    events.get_by_role("radio", name="Portal").check()
    page.get_by_role("button", name="Save settings").click()

    # Without a link the API refuses it (422): its message at the field and in the summary,
    # whose link takes the reader to the field.
    link = page.get_by_label("Deep link for Events")
    expect(link).to_have_attribute("aria-invalid", "true")
    expect(link).to_have_accessible_description(
        re.compile("a portal-owned feature needs a deep link")
    )
    summary = page.get_by_role("alert").filter(has_text="The settings were not saved")
    expect(summary).to_be_focused()
    console.screenshot("integration-settings-refused")
    console.assert_accessible()
    summary.get_by_role("link", name=re.compile("Deep link for Events")).click()
    expect(link).to_be_focused()
    assert features(system, system.seed.org_id)["events"]["owner"] == "app"

    link.fill("https://minside.hlf.no/arrangementer")
    page.get_by_role("button", name="Save settings").click()

    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    events_feature = features(system, system.seed.org_id)["events"]
    assert events_feature["owner"] == "portal"
    assert events_feature["deep_link"].startswith("https://minside.hlf.no/arrangementer?")
    # Loaded again, the screen shows what the API now holds.
    page.reload()
    saved = page.get_by_role("group", name="Events", exact=True)
    expect(saved.get_by_role("radio", name="Portal")).to_be_checked()
    expect(page.get_by_label("Deep link for Events")).to_have_value(
        "https://minside.hlf.no/arrangementer"
    )
    console.screenshot("integration-settings")
    console.assert_accessible()


def test_the_apis_validation_messages_are_shown_at_their_fields(
    console: Console, system: Any
) -> None:
    page = console.page
    console.sign_in("org_admin")
    courses = page.get_by_label("Deep link for Courses")
    source_id = page.get_by_label("Source id")

    courses.fill("http://minside.hlf.no/kurs")
    source_id.fill("Not a source id!")
    page.get_by_role("button", name="Save settings").click()

    expect(courses).to_have_accessible_description(re.compile("must be an https:// URL"))
    expect(source_id).to_have_attribute("aria-invalid", "true")
    summary = page.get_by_role("alert").filter(has_text="The settings were not saved")
    expect(summary.get_by_role("link")).to_have_count(2)
    # Nothing was saved: the API holds the settings as they were.
    integration = admin_api(
        system, "GET", f"/orgs/{system.seed.org_id}/integration", system.seed.org_admin_token
    ).json()
    assert integration["deep_links"]["courses"] == "https://minside.hlf.no/kurs"
    assert integration["source_id"] == system.seed.source_id

    page.get_by_role("button", name="Discard changes").click()
    expect(courses).to_have_value("https://minside.hlf.no/kurs")
    expect(page.get_by_role("alert")).to_have_count(0)


# -- webhook secret ----------------------------------------------------------------------------


def test_a_rotated_secret_is_shown_once_copied_and_verified_by_the_test_delivery(
    console: Console, system: Any
) -> None:
    page = console.page
    console.sign_in("org_admin")
    page.get_by_role("link", name="Webhook secret").click()
    expect(console.heading()).to_have_text("Webhook secret")
    expect(console.heading()).to_be_focused()

    page.get_by_label("Grace period (hours)").fill("2")
    page.get_by_role("button", name="Rotate secret").click()

    shown = page.get_by_role("region", name="New secret: shown once")
    expect(shown).to_be_focused()
    secret = shown.get_by_label("New secret").input_value()
    assert secret.startswith("whsec_") and secret != system.seed.webhook_secret
    shown.get_by_role("button", name="Copy secret").click()
    expect(shown).to_contain_text("The secret was copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(shown).to_contain_text("The previous secret keeps working until")
    fingerprint = re.search(r"Fingerprint: (\w{12})", shown.inner_text())
    assert fingerprint is not None
    current = page.get_by_role("region", name="Current secret")
    expect(current).to_contain_text(f"Configured (fingerprint {fingerprint.group(1)})")
    expect(current).to_contain_text("Previous secret valid until")
    # What the screen said is so: the new secret signs the next webhook, the old one still does.
    contact = str(uuid.uuid4())
    assert (
        send_webhook(system, portal_event("membership.created", contact), secret).status_code == 202
    )
    assert send_webhook(system, portal_event("membership.created", contact)).status_code == 202
    console.screenshot("webhook-secret-rotated")
    console.assert_accessible()

    page.get_by_role("button", name="Send a test delivery").click()

    result = page.get_by_role("status").filter(has_text="It works")
    expect(result).to_contain_text("The endpoint verified the signed test delivery")
    expect(result).to_contain_text("HTTP 202")
    console.screenshot("webhook-secret")
    console.assert_accessible()

    shown.get_by_role("button", name="I have stored it").click()
    expect(page.get_by_role("region", name="New secret: shown once")).to_have_count(0)
    assert secret not in page.content()


def test_the_secret_test_explains_a_refusal_and_a_zero_grace_rotation_asks_first(
    console: Console, system: Any
) -> None:
    page = console.page
    other = onboard(system, "Fjordby chapter")
    console.sign_in("global_admin")
    expect(console.heading()).to_have_text("Organisations")
    expect(page.get_by_role("link", name="HLF demo chapter")).to_be_visible()
    page.get_by_label("Organisation id").fill("not-an-id")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_label("Organisation id")).to_have_accessible_description(
        re.compile("Enter the organisation's id as a UUID")
    )
    console.screenshot("organisations")
    console.assert_accessible()
    page.get_by_label("Organisation id").fill(other)
    page.get_by_role("button", name="Open").click()
    expect(console.heading()).to_have_text("Integration settings")
    page.get_by_role("link", name="Webhook secret").click()
    current = page.get_by_role("region", name="Current secret")
    expect(current).to_contain_text("Not configured")

    page.get_by_role("button", name="Send a test delivery").click()

    refused = page.get_by_role("status").filter(has_text="It does not work")
    expect(refused).to_contain_text("No webhook secret is configured yet: rotate one first.")
    console.screenshot("webhook-secret-test-refused")

    page.get_by_label("Grace period (hours)").fill("0")
    page.get_by_role("button", name="Rotate secret").click()
    dialog = page.get_by_role("dialog", name="Retire the previous secret at once?")
    expect(dialog).to_be_visible()
    console.assert_accessible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(current).to_contain_text("Not configured")
    page.get_by_role("button", name="Rotate secret").click()
    dialog.get_by_role("button", name="Rotate and retire it now").click()

    shown = page.get_by_role("region", name="New secret: shown once")
    expect(shown).to_contain_text("The previous secret no longer works.")
    expect(current).to_contain_text("Configured (fingerprint")
    page.get_by_role("button", name="Send a test delivery").click()
    expect(page.get_by_role("status").filter(has_text="It works")).to_contain_text("HTTP 202")


def test_a_grace_period_the_api_refuses_is_shown_at_its_field(
    console: Console, system: Any
) -> None:
    page = console.page
    path = f"/orgs/{system.seed.org_id}/integration"
    before = admin_api(system, "GET", path, system.seed.org_admin_token).json()["webhook_secret"]
    console.sign_in("org_admin")
    console.go(f"/orgs/{system.seed.org_id}/secret")
    grace = page.get_by_label("Grace period (hours)")

    grace.fill("400")
    page.get_by_role("button", name="Rotate secret").click()

    expect(grace).to_have_attribute("aria-invalid", "true")
    expect(grace).to_have_accessible_description(re.compile("336"))
    expect(page.get_by_role("region", name="New secret: shown once")).to_have_count(0)
    after = admin_api(system, "GET", path, system.seed.org_admin_token).json()["webhook_secret"]
    assert after == before


# -- sync status and log -----------------------------------------------------------------------


def test_the_sync_log_is_filtered_paged_and_an_error_reprocessed(
    console: Console, system: Any, db: Database
) -> None:
    page = console.page
    for minute in range(3):
        occurred = f"2026-11-20T10:0{minute}:00Z"
        body = portal_event("membership.created", str(uuid.uuid4()), occurred_at=occurred)
        assert send_webhook(system, body).status_code == 202
    # A role change without a role: an error the sender must fix, kept for reprocessing.
    unknown_role = {
        "type": "membership.role_updated",
        "occurred_at": "2026-11-20T11:00:00Z",
        "member": {"dynamics_contact_id": str(uuid.uuid4())},
    }
    failed_id = send_webhook(system, json.dumps(unknown_role).encode()).json()["id"]
    eventually(lambda: db.one("select count(*) as n from portal_sync_events")["n"] == 4)
    console.sign_in("org_admin")
    console.go(f"/orgs/{system.seed.org_id}/sync?limit=2")
    expect(console.heading()).to_have_text("Sync status and log")

    expect(page.locator(".figure", has_text="Failed")).to_contain_text("1")
    expect(
        page.get_by_text("In the last 24 hours: 3 succeeded, 1 failed, 0 skipped.")
    ).to_be_visible()
    rows = page.locator(".log-table tbody tr")
    expect(rows).to_have_count(2)
    # Newest first: the failed event arrived last.
    expect(rows.first).to_have_attribute("data-event-id", failed_id)
    first_page = rows.evaluate_all("rows => rows.map(row => row.dataset.eventId)")
    console.screenshot("sync-log")
    console.assert_accessible()

    older = page.get_by_role("button", name="Older entries")
    older.click()
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(rows).to_have_count(2)
    second_page = rows.evaluate_all("rows => rows.map(row => row.dataset.eventId)")
    assert not set(first_page) & set(second_page)
    expect(older).to_be_disabled()
    page.get_by_role("button", name="Newer entries").click()
    expect(rows.first).to_have_attribute("data-event-id", failed_id)

    page.get_by_label("Status", exact=True).select_option(label="Failed")
    page.get_by_role("button", name="Show entries").click()

    expect(rows).to_have_count(1)
    failed = rows.first
    expect(failed.locator(".badge")).to_have_text("Failed")
    expect(failed).to_contain_text("role")
    assert "status=error" in page.evaluate("location.hash")

    failed.get_by_role("button", name=f"Reprocess event {failed_id}").click()

    expect(failed).to_contain_text("Queued again")
    attempts = failed.locator('td[data-label="Attempts"]')
    # Applied again, it fails the same way, and the log counts the second attempt.
    until(
        lambda: attempts.inner_text() == "2",
        lambda: page.get_by_role("button", name="Refresh").click(),
    )
    actions = [row["action"] for row in db.rows("select action from audit_logs")]
    assert actions == ["sync_event.reprocessed"]
    console.screenshot("sync-log-reprocessed")

    page.get_by_label("Status", exact=True).select_option(label="Any status")
    page.get_by_label("Event type").fill("membership.created")
    page.get_by_label("Entries per page").select_option("10")
    page.get_by_role("button", name="Show entries").click()
    expect(rows).to_have_count(3)
    expect(page.locator(".log-table tbody code")).to_have_text(["membership.created"] * 3)
    console.assert_accessible()


# -- who may see what --------------------------------------------------------------------------


def test_an_org_admin_is_refused_another_organisations_screens(
    console: Console, system: Any
) -> None:
    page = console.page
    other = onboard(system, "Another chapter")
    console.sign_in("org_admin")
    page.get_by_role("link", name="Change organisation").click()
    page.get_by_label("Organisation id").fill(other)
    page.get_by_role("button", name="Open").click()

    for screen in ("Integration settings", "Webhook secret", "Sync status and log"):
        page.get_by_role("link", name=screen).click()
        expect(console.heading()).to_have_text(screen)
        refusal = page.get_by_role("alert").filter(has_text="Access refused").first
        expect(refusal).to_contain_text("You do not have access to this organisation")
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    console.screenshot("refused-another-organisation")
    console.assert_accessible()

    # Their own organisation is still theirs.
    console.go(f"/orgs/{system.seed.org_id}/integration")
    expect(page.get_by_role("button", name="Save settings")).to_be_visible()


def test_the_organisations_page_lists_what_the_api_says_each_may_open(
    console: Console, system: Any, db: Database
) -> None:
    page = console.page
    onboard(system, "Fjordby chapter")
    with db.connect() as conn:  # more than a page of the console's (50)
        for number in range(1, 51):
            conn.execute("insert into organizations (name) values (%s)", (f"HLF lag {number:02}",))
    listed = []
    cursor = None
    while True:
        answer = admin_api(
            system,
            "GET",
            "/orgs?limit=200" + (f"&cursor={cursor}" if cursor else ""),
            system.seed.admin_token,
        ).json()
        listed += [organization["name"] for organization in answer["items"]]
        if not (cursor := answer["next_cursor"]):
            break
    assert len(listed) == 52

    # A global administrator: every organisation, by name as GET /orgs lists them, 50 a page.
    console.sign_in("global_admin")
    expect(console.heading()).to_have_text("Organisations")
    expect(
        page.get_by_text("As a global administrator you may open every organisation.")
    ).to_be_visible()
    links = page.locator(".organization-list li a")
    expect(links).to_have_count(50)
    page.get_by_role("button", name="Show more organisations").click()
    expect(links).to_have_count(52)
    expect(links.nth(50)).to_be_focused()
    assert links.all_inner_texts() == listed
    expect(page.get_by_role("button", name="Show more organisations")).to_have_count(0)
    expect(page.get_by_role("link", name="New organisation")).to_be_visible()
    page.get_by_role("link", name="Fjordby chapter").click()
    expect(console.heading()).to_have_text("Integration settings")
    # Its name, as the list had it, titles its screens.
    expect(page.get_by_role("navigation")).to_contain_text("Fjordby chapter")

    # An organisation administrator: theirs (GET /me), with their role, and no onboarding.
    me = admin_api(system, "GET", "/me", system.seed.org_admin_token).json()
    assert [o["name"] for o in me["organizations"]] == ["HLF demo chapter"]
    page.get_by_role("button", name="Sign out").click()
    console.sign_in("org_admin")
    expect(console.heading()).to_have_text("Integration settings")  # their only one
    page.get_by_role("link", name="Change organisation").click()
    expect(console.heading()).to_have_text("Organisations")
    expect(links).to_have_text(["HLF demo chapter"])
    expect(page.locator(".organization-list li")).to_contain_text("Your role: Administrator")
    expect(page.get_by_role("link", name="New organisation")).to_have_count(0)
    console.screenshot("organisations-org-admin")
    console.assert_accessible()


# -- signing in and out ------------------------------------------------------------------------


def test_sign_in_lists_the_demo_identities_and_a_refused_token_signs_out(
    console: Console, system: Any
) -> None:
    page = console.page
    console.open()
    expect(console.heading()).to_have_text("Sign in")
    expect(page.get_by_role("button", name="Sign in as Global administrator")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in as Coordinator")).to_be_visible()
    expect(page.get_by_text("org-admin@example.org")).to_be_visible()
    expect(page.get_by_text("coordinator@example.org")).to_be_visible()
    console.screenshot("sign-in")
    console.assert_accessible()

    console.sign_in("org_admin")
    page.get_by_role("button", name="Sign out").click()
    expect(console.heading()).to_have_text("Sign in")
    assert page.evaluate("sessionStorage.length") == 0

    # A token the API refuses (expired, say): the console says so and asks to sign in again.
    page.evaluate(
        """org => sessionStorage.setItem("portal-sync-console.session", JSON.stringify(
            {token: "not-a-token", role: "org_admin", email: "org-admin@example.org",
             organizations: [{id: org, name: "HLF demo chapter"}]}))""",
        str(system.seed.org_id),
    )
    console.go(f"/orgs/{system.seed.org_id}/integration")
    expect(console.heading()).to_have_text("Sign in")
    expect(page.get_by_text("Your session has ended. Sign in again to continue.")).to_be_visible()


def test_a_translation_is_one_more_strings_file(console: Console, system: Any) -> None:
    """No translation is written yet: the test serves a strings/nb.js as the server would."""
    page = console.page
    page.route(
        "**/console/strings/nb.js",
        lambda route: route.fulfill(
            status=200,
            content_type="text/javascript; charset=utf-8",
            body='export default { language: "nb", locale: "nb-NO", "signin.title": "Logg inn" };',
        ),
    )

    page.goto(f"{console.url}?lang=nb#/sign-in")

    expect(console.heading()).to_have_text("Logg inn")
    assert page.evaluate("document.documentElement.lang") == "nb"
    # What the translation lacks is shown in English.
    expect(page.get_by_role("button", name="Sign in as Global administrator")).to_be_visible()


def test_the_console_works_from_the_keyboard_with_a_visible_focus(
    console: Console, system: Any
) -> None:
    page = console.page
    console.open()
    expect(console.heading()).to_have_text("Sign in")

    def focused() -> dict[str, str]:
        return page.evaluate(
            """() => { const e = document.activeElement, s = getComputedStyle(e);
                 return {text: (e.innerText || e.value || "").trim(), tag: e.tagName,
                         id: e.id, outline: `${s.outlineStyle} ${s.outlineWidth}`}; }"""
        )

    def tab_to(predicate: Callable[[dict[str, str]], bool], limit: int = 60) -> dict[str, str]:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if predicate(current := focused()):
                return current
        raise AssertionError("not reached with Tab")

    skip = tab_to(lambda element: element["text"] == "Skip to main content", limit=1)
    assert skip["outline"] == "solid 3px"
    expect(page.get_by_role("link", name="Skip to main content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main-content"
    button = tab_to(lambda element: element["text"] == "Sign in as Organisation administrator")
    assert button["outline"] == "solid 3px"
    page.keyboard.press("Enter")
    expect(console.heading()).to_have_text("Integration settings")

    # The Events owner (a radio group: Tab enters it, an arrow key chooses), its link, Enter.
    tab_to(lambda element: element["id"] == "owner-events-app")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")
    assert focused()["id"] == "deep-link-events"
    page.keyboard.type("https://minside.hlf.no/arrangementer")
    page.keyboard.press("Enter")

    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    assert features(system, system.seed.org_id)["events"]["owner"] == "portal"


def test_every_screen_fits_a_phone(console: Console, system: Any) -> None:
    page = console.page
    page.set_viewport_size(PHONE)
    console.sign_in("org_admin")
    assert (
        send_webhook(system, portal_event("membership.created", str(uuid.uuid4()))).status_code
        == 202
    )
    for route, name, ready in (
        ("integration", "integration-settings-phone", "Dynamics connection"),
        ("secret", "webhook-secret-phone", "Test the secret"),
        ("sync", "sync-log-phone", "membership.created"),
    ):
        console.go(f"/orgs/{system.seed.org_id}/{route}")
        expect(page.get_by_text(ready, exact=True).first).to_be_visible(timeout=15_000)
        console.assert_no_horizontal_scroll()
        console.screenshot(name)
        console.assert_accessible()
