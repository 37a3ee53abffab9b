"""The change-tracking reader (adapters/dynamics/change_tracking.py) on answers Dataverse gives:
pages and links, deleted rows, a 429, an expired delta token, and links pointing elsewhere."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
from portal_sync.adapters.dynamics.change_tracking import ChangeTrackingReader
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.dataverse.failure import FailureKind
from portal_sync.reconciliation.ports import DeltaLinkExpired, NoDynamicsConnection
from portal_sync.visibility.ports import DynamicsTarget

BASE = "http://127.0.0.1:8999"
SET_URL = f"{BASE}/api/data/v9.2/hlf_memberships"
ORG = uuid.UUID("6f1c2a9e-3b7d-4c1e-9a2f-5d8e7b6c4a30")
ROW = "3e000000-0000-0000-0000-000000000001"
# A delta page as Dataverse returns it ("Use change tracking to synchronize data").
DELTA_PAGE = {
    "@odata.context": f"{BASE}/api/data/v9.2/$metadata#hlf_memberships(hlf_role,statecode)/$delta",
    "value": [
        {"@odata.etag": 'W/"1001"', "hlf_membershipid": ROW, "hlf_role": 100000001, "statecode": 0},
        {
            "@odata.context": f"{BASE}/api/data/v9.2/$metadata#hlf_memberships/$deletedEntity",
            "id": "3e000000-0000-0000-0000-000000000002",
            "reason": "deleted",
        },
    ],
    "@odata.deltaLink": f"{SET_URL}?$select=hlf_role,statecode&$deltatoken=919042%2108%2f22%2f2017",
}


class Targets:
    def __init__(self, connected: bool = True) -> None:
        self.connected = connected

    def target(self, organization_id: UUID) -> DynamicsTarget | None:
        if not self.connected:
            return None
        connection = DynamicsConnection(base_url=BASE, auth_type="api_key", secret="gateway-key")
        return DynamicsTarget(connection, visibility_column="hlf_visible")


def reader(
    answer: Callable[[httpx.Request], httpx.Response],
    seen: list[httpx.Request],
    *,
    connected: bool = True,
    limiter: RateLimiter | None = None,
) -> ChangeTrackingReader:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return ChangeTrackingReader(
        Targets(connected),
        httpx.Client(transport=httpx.MockTransport(handler)),
        limiter or RateLimiter(100.0, 10),
        allow_local=True,
        resolve=lambda host: ["127.0.0.1"],
        sleep=lambda seconds: None,
    )


def json_answer(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=json.dumps(body), headers=headers)


def test_the_first_page_asks_for_change_tracking_and_pages_of_the_asked_size() -> None:
    seen: list[httpx.Request] = []
    page = {"value": [], "@odata.nextLink": f"{SET_URL}?$select=hlf_role&$skiptoken=abc"}
    result = reader(json_answer(200, page), seen).read_page(
        ORG, "hlf_memberships", ["hlf_role", "statecode"], None, 500
    )

    prefer = seen[0].headers["prefer"]
    assert "odata.track-changes" in prefer and "odata.maxpagesize=500" in prefer
    assert seen[0].url.params["$select"] == "hlf_role,statecode"
    assert seen[0].headers["Ocp-Apim-Subscription-Key"] == "gateway-key"
    assert result.next_link == page["@odata.nextLink"] and result.delta_link is None


def test_a_delta_page_gives_changed_rows_deleted_ids_and_the_next_delta_link() -> None:
    seen: list[httpx.Request] = []
    link = f"{SET_URL}?$select=hlf_role,statecode&$deltatoken=1"
    result = reader(json_answer(200, DELTA_PAGE), seen).read_page(
        ORG, "hlf_memberships", ["hlf_role"], link, 500
    )

    assert str(seen[0].url) == link  # followed as it is
    assert [r["hlf_membershipid"] for r in result.rows] == [ROW]
    assert result.deleted_ids == ["3e000000-0000-0000-0000-000000000002"]
    assert result.delta_link == DELTA_PAGE["@odata.deltaLink"]


@pytest.mark.parametrize(
    "elsewhere",
    [
        "http://169.254.169.254/latest/meta-data?x=1",
        "https://attacker.example/api/data/v9.2/hlf_memberships?$skiptoken=1",
        f"{BASE}/api/data/v9.2/systemusers?$skiptoken=1",
        f"{BASE}.attacker.example/api/data/v9.2/hlf_memberships?$skiptoken=1",
    ],
)
def test_a_link_pointing_anywhere_but_the_connections_table_is_never_followed(
    elsewhere: str,
) -> None:
    seen: list[httpx.Request] = []
    page = {"value": [], "@odata.nextLink": elsewhere}
    with pytest.raises(DynamicsError) as answer:
        reader(json_answer(200, page), seen).read_page(
            ORG, "hlf_memberships", ["hlf_role"], None, 5
        )
    assert answer.value.kind is FailureKind.UNUSABLE_ANSWER
    # Nor is a stored link for another URL ever requested: the table is read again in full.
    seen.clear()
    with pytest.raises(DeltaLinkExpired):
        reader(json_answer(200, page), seen).read_page(ORG, "hlf_memberships", [], elsewhere, 5)
    assert seen == []


def test_an_expired_delta_token_is_delta_link_expired() -> None:
    seen: list[httpx.Request] = []
    body = {
        "error": {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. "
            "Please perform a full sync.",
        }
    }
    link = f"{SET_URL}?$select=hlf_role&$deltatoken=old"
    with pytest.raises(DeltaLinkExpired):
        reader(json_answer(400, body), seen).read_page(ORG, "hlf_memberships", [], link, 5)


def test_a_429_is_throttled_with_its_retry_after_and_holds_the_next_request() -> None:
    seen: list[httpx.Request] = []
    limiter = RateLimiter(100.0, 10)
    throttled = reader(
        json_answer(429, {"error": {"code": "0x80072321"}}, {"Retry-After": "30"}),
        seen,
        limiter=limiter,
    )
    with pytest.raises(DynamicsError) as answer:
        throttled.read_page(ORG, "hlf_memberships", ["hlf_role"], None, 5)
    assert answer.value.kind is FailureKind.THROTTLED and answer.value.retry_after == 30

    # The next page is not sent before Dynamics' time: the engine is told to wait instead.
    with pytest.raises(DynamicsError) as waiting:
        throttled.read_page(ORG, "hlf_memberships", ["hlf_role"], None, 5)
    assert waiting.value.kind is FailureKind.THROTTLED
    assert len(seen) == 1


def test_an_organisation_without_a_connection_is_told_so() -> None:
    with pytest.raises(NoDynamicsConnection):
        reader(json_answer(200, DELTA_PAGE), [], connected=False).read_page(
            ORG, "hlf_memberships", [], None, 5
        )
