"""The admin console in a real browser: Debian's Chromium driven headless by Playwright against
the same local system `make run` starts (docs/console.md, "Tests"). The test modules import the
fixtures from here (a conftest.py here would take the module name `conftest` from tests/conftest.py,
which the other suites import helpers from).

Chromium is Debian's (tools/browser/install-chromium.sh), never a browser Playwright downloads;
axe-core comes from console/package-lock.json (tools/browser/install-axe.sh). The tests skip
only when Chromium cannot be launched at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
# As root without a sandbox; no GPU; and none of Chromium's own calls home, which this machine's
# closed network would refuse, many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / ".local" / "test-artifacts" / "console"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ROLE_LABELS = {"global_admin": "Global administrator", "org_admin": "Organisation administrator"}


# The fixtures' functions are named apart from the fixtures, so that a test module can import
# them (pytest finds them in its namespace) and still name its parameters `console`. Each module
# that imports `chromium` gets a session fixture of its own, but Playwright's sync API runs one
# instance per thread: they share it, and the last one to finish stops it.
_shared: dict[str, Any] = {"users": 0}


@pytest.fixture(scope="session", name="browser")
def chromium() -> Iterator[Any]:
    if not _shared["users"]:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:  # the test extra is installed by every make target
            pytest.fail(f"playwright is not installed: {exc}")
        manager = sync_playwright()
        playwright = manager.start()
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Exception as exc:
            manager.__exit__(None, None, None)
            pytest.skip(
                f"Chromium cannot be launched from {CHROMIUM} ({type(exc).__name__}): "
                "run tools/browser/install-chromium.sh"
            )
        _shared.update(manager=manager, browser=launched)
    _shared["users"] += 1
    yield _shared["browser"]
    _shared["users"] -= 1
    if not _shared["users"]:
        _shared["browser"].close()
        _shared["manager"].__exit__(None, None, None)


@dataclass
class Console:
    """One browser tab on the console, with what its page reported that a reader would see
    as a fault: uncaught errors, console errors (a CSP refusal is one) and failed requests."""

    page: Any
    base_url: str
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base_url}/console/"

    def console_message(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        # Chromium logs every 4xx answer; those of the API are refusals the screens show.
        api_answer = "/functions/v1/" in (message.location or {}).get("url", "")
        if not (api_answer and message.text.startswith("Failed to load resource")):
            self.problems.append(f"console {message.type}: {message.text}")

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.url}{'#' + route if route else ''}")

    def sign_in(self, role: str) -> None:
        self.open("/sign-in")
        self.page.get_by_role("button", name=f"Sign in as {ROLE_LABELS[role]}").click()
        self.page.get_by_text("Signed in as").wait_for()

    def go(self, route: str) -> None:
        """Navigation inside the app, as a link does (the page is not loaded again)."""
        self.page.evaluate("route => { location.hash = route; }", route)

    def heading(self) -> Any:
        return self.page.get_by_role("heading", level=1)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def accessibility_violations(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical findings on the page as it is now (WCAG 2.1 A/AA
        and axe's best practices)."""
        if not AXE.is_file():
            pytest.fail(f"{AXE} is missing: run tools/browser/install-axe.sh")
        # Evaluated through the DevTools protocol, which the page's CSP does not govern.
        self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
        results = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {
                    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                    "best-practice"]},
                });
                return result.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
                }));
            }"""
        )
        return [v for v in results if v["impact"] in ("serious", "critical")]

    def assert_accessible(self) -> None:
        violations = self.accessibility_violations()
        assert not violations, json.dumps(violations, indent=2)

    def assert_no_horizontal_scroll(self) -> None:
        widths = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


TabT = TypeVar("TabT", bound=Console)


@contextmanager
def open_tab(
    browser: Any, make_tab: Callable[[Any], TabT], clipboard_origin: str | None = None
) -> Iterator[TabT]:
    """A tab (`make_tab(page)`) in a browser context of its own, laptop-sized and in British
    English; what its page reports as a fault fails the test once the context is closed."""
    context = browser.new_context(viewport=LAPTOP, locale="en-GB")
    if clipboard_origin:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clipboard_origin)
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = make_tab(page)
    page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    page.on("console", lambda message: tab.console_message(message))
    page.on(
        "requestfailed",
        lambda request: tab.problems.append(f"request failed: {request.url} {request.failure}"),
    )
    yield tab
    context.close()
    assert not tab.problems, "\n".join(tab.problems)


@pytest.fixture(name="console")
def console_tab(browser: Any, system: Any) -> Iterator[Console]:
    make_tab = partial(Console, base_url=system.base_url)
    with open_tab(browser, make_tab, clipboard_origin=system.base_url) as tab:
        yield tab


def admin_api(system: Any, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{system.base_url}/functions/v1/admin-api{path}",
        headers={"authorization": f"Bearer {token}"},
        timeout=15,
        **kwargs,
    )


def website_sync(system: Any, method: str, path: str, token: str | None = None) -> httpx.Response:
    """A website-sync route, as the organisation administrator unless `token` says otherwise."""
    return httpx.request(
        method,
        f"{system.base_url}/functions/v1/website-sync{path}",
        headers={"authorization": f"Bearer {token or system.seed.org_admin_token}"},
        timeout=30,
    )


def mentor_status(system: Any) -> dict[str, Any]:
    answer = website_sync(system, "GET", f"/{system.seed.mentor_id}/status")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def website_column(system: Any) -> bool | None:
    """What the Dynamics contact's visibility column (the public website's source) holds."""
    from portal_sync_dev.local.seed import DEMO_MENTOR_CONTACT_ID, VISIBILITY_COLUMN

    contact = system.dynamics.contact(DEMO_MENTOR_CONTACT_ID)
    return contact.get(VISIBILITY_COLUMN) if contact else None
