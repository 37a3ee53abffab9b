"""The console's files as the local server serves them at /console/ (docs/console.md): the
right content types, index.html for the folder, the generated config.json, and nothing outside
the folder or beside the site, however the path is spelled. No browser needed."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT
from portal_sync_dev.local.lambda_http import LocalApiServer, StaticSite

SECRET = b"outside-the-console-folder"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[int]:
    root = tmp_path / "console"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>console</title>")
    (root / "app.js").write_text("export {};")
    (root / "lib" / "dom.js").write_text("export const h = 1;")
    (root / "styles.css").write_text("body {}")
    (root / "notes.txt").write_text("not part of the site")
    (root / ".hidden.js").write_text("hidden")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "tool.js").write_text("tooling")
    (root / "package.json").write_text("{}")
    (tmp_path / "secret.js").write_bytes(SECRET)
    (tmp_path / "secret.json").write_bytes(SECRET)
    (root / "link.js").symlink_to(tmp_path / "secret.js")
    console = StaticSite(
        prefix="/console",
        root=root,
        documents={"config.json": lambda: b'{"mode": "local"}'},
        excluded=("node_modules", "package.json"),
        headers={"content-security-policy": "default-src 'self'"},
    )
    server = LocalApiServer("127.0.0.1", 0, [], sites=(console,))
    server.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def raw_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """The path exactly as written: no client normalises `..` or decodes `%2e` first."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest(method, path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    connection.close()
    return response.status, headers, body


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/lib/dom.js", "text/javascript; charset=utf-8"),
        ("/console/styles.css", "text/css; charset=utf-8"),
        ("/console/config.json", "application/json"),
    ],
)
def test_the_sites_files_are_served_with_their_content_type(
    site: int, path: str, content_type: str
) -> None:
    status, headers, body = raw_get(site, path)

    assert status == 200, body
    assert headers["content-type"] == content_type
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'self'"
    assert body


def test_the_folder_without_its_slash_redirects_and_index_html_is_the_folder(site: int) -> None:
    status, headers, _ = raw_get(site, "/console")
    assert status == 301 and headers["location"] == "/console/"

    assert raw_get(site, "/console/")[2] == raw_get(site, "/console/index.html")[2]


def test_config_json_is_the_generated_document(site: int) -> None:
    assert raw_get(site, "/console/config.json")[2] == b'{"mode": "local"}'


@pytest.mark.parametrize(
    "path",
    [
        "/console/../secret.js",
        "/console/lib/../../secret.js",
        "/console/%2e%2e/secret.js",
        "/console/%2E%2E/secret.json",
        "/console/..%2fsecret.js",
        "/console/lib%2f..%2f..%2fsecret.js",
        "/console/%2e%2e%5csecret.js",
        "/console/..\\secret.js",
        "/console//secret.js",
        "/console/%252e%252e/secret.js",
        "/console/link.js",
        "/console/lib/%00.js",
    ],
)
def test_nothing_outside_the_folder_is_served(site: int, path: str) -> None:
    status, _, body = raw_get(site, path)

    assert status == 404, (status, body)
    assert SECRET not in body


@pytest.mark.parametrize(
    "path",
    [
        "/console/node_modules/tool.js",
        "/console/package.json",
        "/console/.hidden.js",
        "/console/notes.txt",
        "/console/missing.js",
        "/console/lib/",
    ],
)
def test_tooling_hidden_files_and_unknown_types_are_not_the_site(site: int, path: str) -> None:
    assert raw_get(site, path)[0] == 404


def test_a_percent_encoding_that_is_not_utf8_is_a_bad_request(site: int) -> None:
    assert raw_get(site, "/console/%ff.js")[0] == 400


def test_the_site_is_read_only(site: int) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = raw_get(site, "/console/app.js", method)
        assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = raw_get(site, "/console/app.js", "HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len("export {};"))


def test_make_runs_console_config_lists_the_demo_identities(system: Any) -> None:
    """The local sign-in's identities are run.json's demo tokens; which organisations each may
    open is the API's answer (GET /me), not the configuration's."""
    info = system.run_info()
    page = httpx.get(info["console_url"], timeout=10)
    config = httpx.get(f"{info['console_url']}config.json", timeout=10).json()

    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert config["mode"] == "local" and config["api_base_url"] == ""
    tokens = {identity["role"]: identity["token"] for identity in config["identities"]}
    assert tokens == {
        "global_admin": info["admin_token"],
        "org_admin": info["org_admin_token"],
        "coordinator": info["coordinator_token"],
    }
    demo = {"id": info["org_id"], "name": "HLF demo chapter"}
    expected = {
        "global_admin": (True, []),
        "org_admin": (False, [{**demo, "role": "admin"}]),
        "coordinator": (False, [{**demo, "role": "coordinator"}]),
    }
    for identity in config["identities"]:
        assert "organizations" not in identity
        me = httpx.get(
            f"{info['base_url']}/functions/v1/admin-api/me",
            headers={"authorization": f"Bearer {identity['token']}"},
            timeout=10,
        ).json()
        assert (me["is_global_admin"], me["organizations"]) == expected[identity["role"]]


def test_every_string_the_console_names_is_in_the_english_strings_file() -> None:
    """A key missing from strings/en.js would show as the key itself (docs/console.md,
    "Strings and translation"); keys built from a value (`integration.mode.${mode}`) are
    checked by the browser tests, whose pages fail on the warning a missing key logs."""
    strings = (ROOT / "console" / "strings" / "en.js").read_text(encoding="utf-8")
    defined = set(re.findall(r'^\s*"?([\w.-]+)"?:', strings, re.M))
    sources = [
        path
        for path in (ROOT / "console").rglob("*.js")
        if "node_modules" not in path.parts and "strings" not in path.parts
    ]
    named = {
        key
        for path in sources
        for key in re.findall(r'\bt\(\s*"([^"]+)"', path.read_text(encoding="utf-8"))
    }

    assert len(defined) > 100 and len(named) > 100, "found too few: are the patterns still right?"
    assert named - defined == set()
