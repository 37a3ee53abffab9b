"""The Dataverse stand-in behaves like the real Web API and Entra ID (docs/website-visibility.md, "The Dynamics connection")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from portal_sync_dev.local.dataverse_standin import DataverseStandIn

TENANT = "tenant-1"
CLIENT_ID = "client-1"
SECRET = "secret-1"
CONTACT = "0f8fad5b-d9cb-469f-a165-70867728950e"
NEW = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
ODATA = {
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Content-Type": "application/json",
    "Accept": "application/json",
}


@pytest.fixture
def standin() -> Iterator[DataverseStandIn]:
    server = DataverseStandIn(port=0).start()
    server.add_client(TENANT, CLIENT_ID, SECRET)
    server.add_contact(CONTACT, firstname="Kari")
    yield server
    server.stop()


@pytest.fixture
def http(standin: DataverseStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, timeout=5) as client:
        yield client


def row(standin: DataverseStandIn, contact_id: str) -> dict[str, Any]:
    found = standin.contact(contact_id)
    assert found is not None
    return found


def token(http: httpx.Client, standin: DataverseStandIn, secret: str = SECRET) -> httpx.Response:
    return http.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "scope": f"{standin.url}/.default",
        },
    )


def authorised(http: httpx.Client, standin: DataverseStandIn) -> dict[str, str]:
    return {**ODATA, "Authorization": f"Bearer {token(http, standin).json()['access_token']}"}


def test_the_token_endpoint_issues_bearer_tokens_for_known_clients_only(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    issued = token(http, standin)
    assert issued.status_code == 200
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["access_token"]

    refused = token(http, standin, secret="wrong")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert refused.json()["error_description"].startswith("AADSTS7000215")


def test_the_web_api_accepts_only_entra_bearer_tokens(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    """Dataverse has no API keys: a key is 401 at the Web API itself, however valid it is at
    a gateway in front of it."""
    standin.add_api_key("apim-key")
    url = f"/api/data/v9.2/contacts({CONTACT})"
    for headers in (
        {},
        {"x-api-key": "apim-key"},
        {"Ocp-Apim-Subscription-Key": "apim-key"},
        {"Authorization": "Bearer forged"},
    ):
        answer = http.patch(url, json={"firstname": "Ola"}, headers={**ODATA, **headers})
        assert answer.status_code == 401
        assert set(answer.json()["error"]) == {"code", "message"}
        assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    missing = http.patch(url, json={"firstname": "Ola"}, headers=ODATA)
    assert missing.json()["error"]["code"] == "MissingCrmAuthenticationToken"
    assert row(standin, CONTACT)["firstname"] == "Kari"

    answer = http.patch(url, json={"firstname": "Per"}, headers=authorised(http, standin))
    assert answer.status_code == 204
    assert answer.headers["OData-EntityId"].endswith(f"/api/data/v9.2/contacts({CONTACT})")
    assert answer.headers["x-ms-service-request-id"]


def test_the_gateway_front_checks_a_subscription_key_and_forwards_to_the_web_api(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.add_api_key("apim-key")
    url = f"{standin.gateway_url}/api/data/v9.2/contacts({CONTACT})"
    for headers in ({}, {"Ocp-Apim-Subscription-Key": "wrong"}, {"x-api-key": "apim-key"}):
        refused = http.patch(url, json={"firstname": "Ola"}, headers={**ODATA, **headers})
        assert refused.status_code == 401 and refused.json()["statusCode"] == 401

    answer = http.patch(
        url, json={"firstname": "Ola"}, headers={**ODATA, "Ocp-Apim-Subscription-Key": "apim-key"}
    )
    assert answer.status_code == 204
    assert row(standin, CONTACT)["firstname"] == "Ola"
    assert (
        answer.headers["OData-EntityId"]
        == f"{standin.gateway_url}/api/data/v9.2/contacts({CONTACT})"
    )


def test_the_gateway_and_the_web_api_are_separate_origins_each_serving_only_its_own_part(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    """As an API-management instance and the environment are different hosts: the gateway
    publishes the Web API only, and the environment has no gateway under a path."""
    standin.add_api_key("apim-key")
    key = {**ODATA, "Ocp-Apim-Subscription-Key": "apim-key"}
    gateway = httpx.Client(base_url=standin.gateway_url, timeout=5)
    with gateway:
        token_at_gateway = gateway.post(
            f"/{TENANT}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "scope": f"{standin.url}/.default",
            },
        )
        assert token_at_gateway.status_code == 404
        assert token_at_gateway.json() == {"statusCode": 404, "message": "Resource not found"}
        assert gateway.get("/_standin/webhooks", headers=key).status_code == 404
        assert gateway.post("/_standin/failures", json={"kind": "503"}).status_code == 404
        assert standin.pending_failures() == []
        # A token is no credential at the gateway: it wants its key.
        bearer = gateway.get(
            f"/api/data/v9.2/contacts({CONTACT})", headers=authorised(http, standin)
        )
        assert bearer.status_code == 401 and bearer.json()["statusCode"] == 401

    assert http.get(f"/gateway/api/data/v9.2/contacts({CONTACT})", headers=key).status_code == 404


def test_the_gateway_header_name_is_configurable() -> None:
    with DataverseStandIn(port=0, gateway_header="X-Gateway-Key") as standin:
        standin.add_api_key("k-1")
        standin.add_contact(CONTACT, firstname="Kari")
        url = f"{standin.gateway_url}/api/data/v9.2/contacts({CONTACT})"
        assert httpx.get(url, headers={"X-Gateway-Key": "k-1"}).status_code == 200
        assert httpx.get(url, headers={"Ocp-Apim-Subscription-Key": "k-1"}).status_code == 401


def test_who_am_i_names_the_callers_application_user_not_its_client_id(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    answer = http.get("/api/data/v9.2/WhoAmI", headers=authorised(http, standin))

    assert answer.status_code == 200
    body = answer.json()
    assert body["UserId"] == standin.application_user_id(CLIENT_ID) != CLIENT_ID
    assert body["OrganizationId"] == standin.organization_id
    assert body["BusinessUnitId"] == standin.business_unit_id
    assert http.get("/api/data/v9.2/WhoAmI").status_code == 401


def test_patch_without_if_match_upserts_and_with_if_match_star_404s(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = authorised(http, standin)
    missing = http.patch(
        f"/api/data/v9.2/contacts({NEW})",
        json={"firstname": "Ny"},
        headers={**headers, "If-Match": "*"},
    )
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "0x80040217", "message": f"contact With Id = {NEW} Does Not Exist"}
    }
    assert standin.contact(NEW) is None

    created = http.patch(
        f"/api/data/v9.2/contacts({NEW})", json={"firstname": "Ny"}, headers=headers
    )
    assert created.status_code == 204
    assert row(standin, NEW)["firstname"] == "Ny"

    updated = http.patch(
        f"/api/data/v9.2/contacts({CONTACT})",
        json={"hlf_showonwebsite": True},
        headers={**headers, "If-Match": "*"},
    )
    assert updated.status_code == 204
    shown = http.get(f"/_standin/contacts/{CONTACT}").json()
    assert shown["hlf_showonwebsite"] is True and shown["firstname"] == "Kari"


def test_patch_requires_the_odata_headers(http: httpx.Client, standin: DataverseStandIn) -> None:
    headers = authorised(http, standin)
    del headers["OData-Version"]
    answer = http.patch(
        f"/api/data/v9.2/contacts({CONTACT})", json={"firstname": "X"}, headers=headers
    )
    assert answer.status_code == 400
    assert row(standin, CONTACT)["firstname"] == "Kari"


def test_failures_switch_on_and_off_over_http(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = {**authorised(http, standin), "If-Match": "*"}
    url = f"/api/data/v9.2/contacts({CONTACT})"

    assert http.post("/_standin/failures", json={"kind": "503", "count": 2}).status_code == 201
    assert (
        http.post("/_standin/failures", json={"kind": "429", "retry_after": 3}).status_code == 201
    )
    assert [http.patch(url, json={}, headers=headers).status_code for _ in range(2)] == [503, 503]
    throttled = http.patch(url, json={}, headers=headers)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert throttled.json()["error"] == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    }
    assert http.patch(url, json={}, headers=headers).status_code == 204

    http.post("/_standin/failures", json={"kind": "404", "count": 5})
    assert http.patch(url, json={}, headers=headers).status_code == 404
    assert http.delete("/_standin/failures").status_code == 204
    assert http.patch(url, json={}, headers=headers).status_code == 204
    assert http.post("/_standin/failures", json={"kind": "418"}).status_code == 400

    statuses = [status for _, method, _, status in standin.requests if method == "PATCH"]
    assert statuses == [503, 503, 429, 204, 404, 204]


def test_a_timeout_failure_holds_the_answer_longer_than_the_client_waits(
    standin: DataverseStandIn,
) -> None:
    standin.timeout_seconds = 1.0
    standin.fail_next("timeout")
    with httpx.Client(base_url=standin.url, timeout=0.2) as impatient:
        headers = authorised(impatient, standin)
        with pytest.raises(httpx.ReadTimeout):
            impatient.patch(f"/api/data/v9.2/contacts({CONTACT})", json={}, headers=headers)


def test_service_protection_limit_answers_429_with_retry_after(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.limit_rate(3, per_seconds=60)
    headers = {**authorised(http, standin), "If-Match": "*"}
    answers = [
        http.patch(f"/api/data/v9.2/contacts({CONTACT})", json={}, headers=headers)
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [204, 204, 204, 429]
    assert 59 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert answers[-1].json()["error"]["code"] == "0x80072322"


# -- reading tables: paging and change tracking --------------------------------------------

MEMBERSHIPS = "/api/data/v9.2/hlf_memberships?$select=hlf_role,statecode,_hlf_contactid_value"
TRACKED = 'odata.track-changes, odata.maxpagesize=4, odata.include-annotations="*"'


def read_all(
    http: httpx.Client, headers: dict[str, str], url: str
) -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    """Follows `@odata.nextLink` as a client must, as it is; all rows and every page."""
    rows: list[dict[str, Any]] = []
    pages: list[httpx.Response] = []
    next_url: str | None = url
    while next_url:
        page = http.get(next_url, headers=headers)
        assert page.status_code == 200, page.text
        pages.append(page)
        rows += page.json()["value"]
        next_url = page.json().get("@odata.nextLink")
    return rows, pages


def test_a_tracked_read_pages_through_the_table_and_ends_with_a_delta_link(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    members = standin.load_members(10)
    headers = {**authorised(http, standin), "Prefer": TRACKED}

    rows, pages = read_all(http, headers, MEMBERSHIPS)

    assert [len(p.json()["value"]) for p in pages] == [4, 4, 2]
    assert pages[0].headers["Preference-Applied"].split(",")[:2] == [
        "odata.maxpagesize=4",
        "odata.track-changes",
    ]
    first = pages[0].json()
    assert first["@odata.nextLink"].startswith(f"{standin.url}/api/data/v9.2/hlf_memberships?")
    assert "$skiptoken=" in first["@odata.nextLink"]
    assert "@odata.deltaLink" not in first
    last = pages[-1].json()
    assert "@odata.nextLink" not in last
    assert last["@odata.deltaLink"].startswith(
        f"{standin.url}/api/data/v9.2/hlf_memberships?$select=hlf_role,statecode,"
        "_hlf_contactid_value&$deltatoken="
    )
    assert {r["hlf_membershipid"] for r in rows} == {m.membership_id for m in members}
    by_id = {r["hlf_membershipid"]: r for r in rows}
    sample = members[9]
    assert by_id[sample.membership_id]["hlf_role"] == sample.role == 100000001
    assert by_id[sample.membership_id]["_hlf_contactid_value"] == sample.contact_id
    assert (
        by_id[sample.membership_id]["_hlf_contactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"]
        == "contact"
    )
    assert set(by_id[sample.membership_id]) == {
        "@odata.etag",
        "hlf_membershipid",
        "hlf_role",
        "statecode",
        "_hlf_contactid_value",
        "_hlf_contactid_value@Microsoft.Dynamics.CRM.lookuplogicalname",
        "_hlf_contactid_value@OData.Community.Display.V1.FormattedValue",
    }


def test_a_delta_link_returns_only_changes_since_and_deletions(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    members = standin.load_members(10)
    headers = {**authorised(http, standin), "Prefer": TRACKED}
    _, pages = read_all(http, headers, MEMBERSHIPS)
    delta_link = pages[-1].json()["@odata.deltaLink"]

    standin.update_row("hlf_memberships", members[0].membership_id, statecode=1)
    standin.delete_row("hlf_memberships", members[1].membership_id)
    created = "5a0c3a8e-1d2f-4b6a-9c7e-2f1e0d3c4b5a"
    standin.add_row(
        "hlf_memberships",
        created,
        {"hlf_role": 100000002},
        lookups={"hlf_contactid": ("contact", CONTACT, "Kari")},
    )

    changes, delta_pages = read_all(http, headers, delta_link)

    assert delta_pages[0].json()["@odata.context"].endswith("/$delta")
    changed = {r["hlf_membershipid"]: r for r in changes if "hlf_membershipid" in r}
    assert set(changed) == {members[0].membership_id, created}
    assert changed[members[0].membership_id]["statecode"] == 1
    assert changed[created]["hlf_role"] == 100000002
    deleted = [r for r in changes if "reason" in r]
    assert deleted == [
        {
            "@odata.context": f"{standin.url}/api/data/v9.2/$metadata#hlf_memberships/$deletedEntity",
            "id": members[1].membership_id,
            "reason": "deleted",
        }
    ]
    # The next delta link starts where this one ended: nothing has changed since.
    again, _ = read_all(http, headers, delta_pages[-1].json()["@odata.deltaLink"])
    assert again == []


def test_a_row_changed_during_a_read_comes_in_the_next_delta(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    members = standin.load_members(8)
    headers = {**authorised(http, standin), "Prefer": TRACKED}
    first = http.get(MEMBERSHIPS, headers=headers).json()
    standin.update_row("hlf_memberships", members[0].membership_id, hlf_role=100000003)
    rest, pages = read_all(http, headers, first["@odata.nextLink"])
    changes, _ = read_all(http, headers, pages[-1].json()["@odata.deltaLink"])

    # Every row is read (none is skipped because another moved), the changed one current.
    read = first["value"] + rest
    assert {r["hlf_membershipid"] for r in read} == {m.membership_id for m in members}
    assert read[-1]["hlf_role"] == 100000003

    assert [r["hlf_membershipid"] for r in changes] == [members[0].membership_id]
    assert changes[0]["hlf_role"] == 100000003


def test_an_expired_delta_token_asks_for_a_full_sync(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.load_members(3)
    headers = {**authorised(http, standin), "Prefer": TRACKED}
    _, pages = read_all(http, headers, MEMBERSHIPS)
    delta_link = pages[-1].json()["@odata.deltaLink"]
    assert http.get(delta_link, headers=headers).status_code == 200

    standin.expire_delta_tokens()
    expired = http.get(delta_link, headers=headers)

    assert expired.status_code == 400
    assert expired.json() == {
        "error": {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. "
            "Please perform a full sync.",
        }
    }
    unknown = http.get(delta_link.rsplit("=", 1)[0] + "=from-before-a-restart", headers=headers)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "0x80044352"


def test_delta_tokens_expire_with_age() -> None:
    with DataverseStandIn(port=0, delta_token_max_age_seconds=0.2) as standin:
        standin.add_client(TENANT, CLIENT_ID, SECRET)
        with httpx.Client(base_url=standin.url, timeout=5) as http:
            headers = {**authorised(http, standin), "Prefer": "odata.track-changes"}
            link = http.get("/api/data/v9.2/contacts", headers=headers).json()["@odata.deltaLink"]
            time.sleep(0.3)
            assert http.get(link, headers=headers).json()["error"]["code"] == "0x80044352"


def test_without_change_tracking_a_read_has_no_delta_link(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.set_change_tracking("contacts", False)
    headers = {**authorised(http, standin), "Prefer": "odata.track-changes"}

    page = http.get("/api/data/v9.2/contacts?$select=firstname", headers=headers)

    assert page.status_code == 200
    assert page.json()["value"][0]["firstname"] == "Kari"
    assert "@odata.deltaLink" not in page.json()
    assert "odata.track-changes" not in page.headers.get("Preference-Applied", "")


def test_an_untracked_read_pages_with_the_largest_page_by_default(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.load_members(5001)
    headers = authorised(http, standin)

    rows, pages = read_all(http, headers, "/api/data/v9.2/contacts?$select=firstname,lastname")

    assert [len(p.json()["value"]) for p in pages] == [5000, 2]  # the fixture's contact too
    assert "@odata.deltaLink" not in pages[-1].json()
    assert len({r["contactid"] for r in rows}) == 5002


def test_reads_are_subject_to_service_protection_limits(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.load_members(6)
    headers = {**authorised(http, standin), "Prefer": TRACKED}
    first = http.get(MEMBERSHIPS, headers=headers).json()
    standin.fail_next("429", retry_after=2)

    throttled = http.get(first["@odata.nextLink"], headers=headers)

    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    retried = http.get(first["@odata.nextLink"], headers=headers)
    assert retried.status_code == 200 and len(retried.json()["value"]) == 2


def test_loading_100000_members_takes_seconds() -> None:
    standin = DataverseStandIn(port=0)  # not started: loading needs no server
    started = time.monotonic()
    members = standin.load_members(100_000)
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert len(standin.rows("contacts")) == len(standin.rows("hlf_memberships")) == 100_000
    roles = {m.role for m in members}
    assert roles == {100000000, 100000001, 100000002, 100000003}
    assert sum(m.statecode for m in members) == 5000
    assert standin.load_members(1)[0] == members[0]  # ids follow from the index


# -- Dataverse refuses what it does not know ---------------------------------------------------


def test_selecting_a_column_the_table_does_not_have_is_400(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = authorised(http, standin)
    for url in (
        f"/api/data/v9.2/contacts({CONTACT})?$select=firstname,hlf_nosuchcolumn",
        "/api/data/v9.2/contacts?$select=hlf_nosuchcolumn",
        "/api/data/v9.2/hlf_memberships?$select=hlf_contactid",  # a lookup by its own name
    ):
        refused = http.get(url, headers=headers)
        assert refused.status_code == 400, url
        assert refused.json()["error"]["code"] == "0x80060888"
        assert "Could not find a property named" in refused.json()["error"]["message"]
    known = http.get(
        f"/api/data/v9.2/contacts({CONTACT})?$select=firstname,emailaddress1", headers=headers
    )
    assert known.status_code == 200 and known.json()["emailaddress1"] is None


def test_a_patch_value_of_the_wrong_type_is_400(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = authorised(http, standin)
    url = f"/api/data/v9.2/contacts({CONTACT})"
    for columns in ({"hlf_showonwebsite": "true"}, {"firstname": 7}, {"statecode": True}):
        refused = http.patch(url, json=columns, headers=headers)
        assert refused.status_code == 400, columns
        assert refused.json()["error"]["code"] == "0x80048d19"
        assert (
            "Cannot convert a primitive value to the expected type"
            in refused.json()["error"]["message"]
        )
    assert row(standin, CONTACT).get("hlf_showonwebsite") is None

    accepted = http.patch(url, json={"hlf_showonwebsite": True}, headers=headers)
    assert accepted.status_code == 204 and row(standin, CONTACT)["hlf_showonwebsite"] is True


def test_a_patch_is_a_new_version_that_a_delta_read_returns(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = {**authorised(http, standin), "Prefer": "odata.track-changes"}
    link = http.get("/api/data/v9.2/contacts?$select=firstname", headers=headers).json()[
        "@odata.deltaLink"
    ]
    before = row(standin, CONTACT)["versionnumber"]

    http.patch(
        f"/api/data/v9.2/contacts({CONTACT})", json={"firstname": "Kari Ny"}, headers=headers
    )

    (changed,) = http.get(link, headers=headers).json()["value"]
    assert changed["firstname"] == "Kari Ny"
    assert changed["@odata.etag"] == f'W/"{row(standin, CONTACT)["versionnumber"]}"'
    assert row(standin, CONTACT)["versionnumber"] > before


# -- webhooks the registered steps post ----------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    """A webhook endpoint on loopback that keeps what it receives."""
    got: list[tuple[dict[str, str], Any]] = []

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def attributes(entity: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in entity["Attributes"]}


def test_a_web_api_change_posts_the_webhook_dataverse_would(
    http: httpx.Client,
    standin: DataverseStandIn,
    receiver: tuple[str, list[tuple[dict[str, str], Any]]],
) -> None:
    url, got = receiver
    standin.post_webhooks(url, {"x-hlf-dynamics-key": "hook-key"})
    headers = authorised(http, standin)

    answer = http.patch(
        f"/api/data/v9.2/contacts({CONTACT})?tag=portal-sync",
        json={"hlf_showonwebsite": True},
        headers={**headers, "If-Match": "*"},
    )
    standin.wait_for_webhooks()

    assert answer.status_code == 204
    ((sent_headers, context),) = got
    assert sent_headers["x-hlf-dynamics-key"] == "hook-key"
    assert sent_headers["x-ms-dynamics-entity-name"] == "contact"
    assert sent_headers["x-ms-dynamics-request-name"] == "Update"
    assert context["MessageName"] == "Update" and context["PrimaryEntityId"] == CONTACT
    assert context["InitiatingUserId"] == standin.application_user_id(CLIENT_ID)
    assert context["OrganizationId"] == standin.organization_id
    assert context["SharedVariables"] == [{"key": "tag", "value": "portal-sync"}]
    (target,) = [p["value"] for p in context["InputParameters"] if p["key"] == "Target"]
    # The Target holds what was sent; the images hold the row before and after.
    assert set(attributes(target)) == {"hlf_showonwebsite", "contactid", "modifiedon"}
    assert attributes(target)["modifiedon"].startswith("/Date(")
    (pre,) = context["PreEntityImages"]
    (post,) = context["PostEntityImages"]
    assert attributes(pre["value"])["firstname"] == attributes(post["value"])["firstname"] == "Kari"
    assert "hlf_showonwebsite" not in attributes(pre["value"])
    assert attributes(post["value"])["hlf_showonwebsite"] is True
    assert attributes(post["value"])["statecode"] == {
        "__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts",
        "Value": 0,
    }


def test_a_share_of_webhooks_can_be_dropped_and_an_edit_in_dynamics_posts_one(
    standin: DataverseStandIn, receiver: tuple[str, list[tuple[dict[str, str], Any]]]
) -> None:
    url, got = receiver
    members = standin.load_members(4)  # loading is not an edit: no webhooks
    standin.post_webhooks(url, drop_share=0.5)

    for member in members:
        standin.update_row("hlf_memberships", member.membership_id, statecode=1)
    standin.delete_row("hlf_memberships", members[0].membership_id)
    standin.wait_for_webhooks()

    assert standin.webhook_stats() == {
        "enabled": True,
        "drop_share": 0.5,
        "posted": 3,
        "dropped": 2,
        "failed": 0,
    }
    messages = [context["MessageName"] for _, context in got]
    assert messages == ["Update", "Update", "Delete"]
    update = got[0][1]
    assert update["InitiatingUserId"] != standin.application_user_id(CLIENT_ID)
    (target,) = [p["value"] for p in update["InputParameters"]]
    assert attributes(target)["statecode"]["Value"] == 1
    pre = attributes(update["PreEntityImages"][0]["value"])
    assert pre["statecode"]["Value"] == 0
    assert pre["hlf_contactid"]["LogicalName"] == "contact"


def test_paging_links_through_the_gateway_stay_on_the_gateway(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.add_api_key("apim-key")
    standin.load_members(3)
    headers = {
        **ODATA,
        "Ocp-Apim-Subscription-Key": "apim-key",
        "Prefer": "odata.track-changes, odata.maxpagesize=2",
    }

    rows, pages = read_all(http, headers, f"{standin.gateway_url}/api/data/v9.2/contacts")

    assert len(rows) == 4  # the fixture's contact and three members
    assert pages[0].json()["@odata.nextLink"].startswith(f"{standin.gateway_url}/api/data/v9.2/")
    assert pages[-1].json()["@odata.deltaLink"].startswith(f"{standin.gateway_url}/api/data/v9.2/")
    assert standin.served_seconds > 0


# -- filtered reads: the read-back of the website column ------------------------------------------

MISSING = "3b241101-e2bb-4255-8caf-4136c566a962"


def by_ids(*ids: str) -> str:
    return " or ".join(f"contactid eq {contact_id}" for contact_id in ids)


def test_a_filtered_read_returns_the_named_contacts_that_exist(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.add_contact(NEW, firstname="Ola", hlf_showonwebsite=True)
    headers = authorised(http, standin)

    answer = http.get(
        "/api/data/v9.2/contacts",
        params={
            "$select": "contactid,hlf_showonwebsite",
            "$filter": by_ids(NEW, MISSING, CONTACT.upper()),
        },
        headers=headers,
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["@odata.context"].endswith("$metadata#contacts(contactid,hlf_showonwebsite)")
    assert sorted(body["value"], key=lambda r: r["contactid"]) == [
        {
            "@odata.etag": f'W/"{row(standin, CONTACT)["versionnumber"]}"',
            "contactid": CONTACT,
            "hlf_showonwebsite": None,  # never set: null, as Dataverse shows it
        },
        {
            "@odata.etag": f'W/"{row(standin, NEW)["versionnumber"]}"',
            "contactid": NEW,
            "hlf_showonwebsite": True,
        },
    ]


def test_a_hand_edit_in_dynamics_is_what_the_next_filtered_read_shows(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    standin.add_contact(NEW, hlf_showonwebsite=False)
    before = row(standin, NEW)

    standin.update_row("contacts", NEW, hlf_showonwebsite=True)

    (read,) = http.get(
        "/api/data/v9.2/contacts",
        params={"$select": "hlf_showonwebsite", "$filter": by_ids(NEW)},
        headers=authorised(http, standin),
    ).json()["value"]
    assert read["hlf_showonwebsite"] is True
    assert row(standin, NEW)["versionnumber"] > before["versionnumber"]
    assert read["@odata.etag"] == f'W/"{row(standin, NEW)["versionnumber"]}"'


def test_only_an_or_chain_of_primary_key_equalities_is_a_supported_filter(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = authorised(http, standin)
    for condition in (
        f"contactid eq '{CONTACT}'",  # a quoted GUID is a string, not an Edm.Guid
        "firstname eq 'Kari'",
        f"contactid eq {CONTACT} and contactid eq {NEW}",
        f"(contactid eq {CONTACT})",
        f"contactid ne {CONTACT}",
        f"contactid eq {CONTACT} or",
        "contactid eq not-a-guid",
    ):
        refused = http.get(
            "/api/data/v9.2/contacts",
            params={"$select": "firstname", "$filter": condition},
            headers=headers,
        )
        assert refused.status_code == 400, condition
        assert refused.json()["error"]["code"] == "0x80060888"
    for params in (
        {"$select": "hlf_nosuchcolumn", "$filter": by_ids(CONTACT)},
        {"$select": "firstname", "$filter": by_ids(CONTACT), "$top": "1"},
    ):
        assert (
            http.get("/api/data/v9.2/contacts", params=params, headers=headers).status_code == 400
        )


def test_filtered_reads_meet_injected_failures_and_service_protection(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    headers = authorised(http, standin)
    params = {"$select": "firstname", "$filter": by_ids(CONTACT)}
    standin.fail_next("503")

    assert http.get("/api/data/v9.2/contacts", params=params, headers=headers).status_code == 503
    standin.limit_rate(1, per_seconds=60)
    assert http.get("/api/data/v9.2/contacts", params=params, headers=headers).status_code == 200
    throttled = http.get("/api/data/v9.2/contacts", params=params, headers=headers)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
