"""The Dataverse stand-in behaves like the real Web API and Entra ID (docs/website-visibility.md, "The Dynamics connection")."""

from __future__ import annotations

from collections.abc import Iterator
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


def test_the_web_api_requires_a_valid_token_or_api_key(
    http: httpx.Client, standin: DataverseStandIn
) -> None:
    url = f"/api/data/v9.2/contacts({CONTACT})"
    for headers in ({}, {"Authorization": "Bearer forged"}, {"x-api-key": "unknown"}):
        answer = http.patch(url, json={"firstname": "Ola"}, headers={**ODATA, **headers})
        assert answer.status_code == 401
        assert set(answer.json()["error"]) == {"code", "message"}

    standin.add_api_key("apim-key")
    answer = http.patch(url, json={"firstname": "Ola"}, headers={**ODATA, "x-api-key": "apim-key"})
    assert answer.status_code == 204
    assert row(standin, CONTACT)["firstname"] == "Ola"

    answer = http.patch(url, json={"firstname": "Per"}, headers=authorised(http, standin))
    assert answer.status_code == 204
    assert answer.headers["OData-EntityId"].endswith(f"/api/data/v9.2/contacts({CONTACT})")


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
