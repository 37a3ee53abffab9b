"""The outbound Dataverse Web API client against the local stand-in over real loopback HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from portal_sync.adapters.dynamics.web_api import DataverseWebApi
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.dataverse.base_url import checked_base_url
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.dataverse.echo import REQUEST_TAG
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.dataverse.failure_wording import (
    API_KEY_TO_DATAVERSE_MESSAGE,
    APPLICATION_USER_MESSAGE,
    CLIENT_REFUSED_MESSAGE,
)
from portal_sync.observability import logger
from portal_sync_dev.local.dataverse_standin import DataverseStandIn

TENANT = "5a1f0c9e-3b7d-4c2e-9f10-2b6a7c8d9e01"
CLIENT_ID = "9d3c5b1a-portal-sync"
SECRET = "Zx8~client-secret-that-must-never-leak"
API_KEY = "apim-key-that-must-never-leak"
CONTACT = "0f8fad5b-d9cb-469f-a165-70867728950e"
MISSING = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
COLUMN = "hlf_showonwebsite"

# Texts Dataverse / Entra put in error bodies: an administrator's message never repeats them.
RAW_TEXTS = (
    "Does Not Exist",
    "AADSTS",
    "invalid_client",
    "Number of requests exceeded",
    "not authenticated",
    "prvWriteContact",
    "Invalid property",
    "Bad Request",
    "temporarily unavailable",
    "0x8",
)


class FakeClock:
    """Monotonic time that only moves when something sleeps (or a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def standin() -> Iterator[DataverseStandIn]:
    server = DataverseStandIn(port=0, timeout_seconds=2.0).start()
    server.add_client(TENANT, CLIENT_ID, SECRET)
    server.add_api_key(API_KEY)
    server.add_contact(CONTACT, firstname="Kari", **{COLUMN: False})
    yield server
    server.stop()


def api_key(standin: DataverseStandIn, key: str = API_KEY) -> DynamicsConnection:
    """A connection to the stand-in's API gateway, entered as its base URL."""
    return DynamicsConnection(base_url=standin.gateway_url, auth_type="api_key", secret=key)


def oauth(standin: DataverseStandIn, secret: str = SECRET) -> DynamicsConnection:
    return DynamicsConnection(
        base_url=standin.url + "/",
        auth_type="oauth_client_credentials",
        secret=secret,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        authority_url=standin.url,
    )


def api_for(clock: FakeClock | None = None) -> DataverseWebApi:
    if clock is None:
        return DataverseWebApi(timeout_seconds=2.0, allow_local=True)
    limiter = RateLimiter(50, 50, clock=clock, sleep=clock.sleep)
    return DataverseWebApi(timeout_seconds=2.0, rate_limiter=limiter, clock=clock, allow_local=True)


def row(standin: DataverseStandIn, contact_id: str = CONTACT) -> dict[str, Any]:
    found = standin.contact(contact_id)
    assert found is not None
    return found


def api_requests(standin: DataverseStandIn) -> list[tuple[float, str, str, int | None]]:
    return [r for r in standin.requests if r[2].startswith("/api/")]


def token_requests(standin: DataverseStandIn) -> list[tuple[float, str, str, int | None]]:
    return [r for r in standin.requests if r[2].endswith("/oauth2/v2.0/token")]


def assert_admin_safe(error: DynamicsError) -> None:
    text = f"{error} {error.args!r} {error.message}"
    assert SECRET not in text and API_KEY not in text
    for raw in RAW_TEXTS:
        assert raw not in text, raw


def written(caplog: pytest.LogCaptureFixture) -> str:
    """The client's log lines as the function writes them (Powertools' JSON formatter)."""
    return "\n".join(
        logger.registered_formatter.format(record)
        for record in caplog.records
        if record.name == logger.name
    )


def failure(call: Callable[[], object]) -> DynamicsError:
    with pytest.raises(DynamicsError) as raised:
        call()
    assert_admin_safe(raised.value)
    return raised.value


def test_patch_sets_the_column_with_the_odata_headers_and_if_match(
    standin: DataverseStandIn,
) -> None:
    api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True})

    assert row(standin)[COLUMN] is True and row(standin)["firstname"] == "Kari"
    token, patch = standin.received
    assert token.path == f"/{TENANT}/oauth2/v2.0/token" and token.method == "POST"
    assert token.form() == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "scope": f"{standin.url}/.default",
    }
    assert patch.method == "PATCH" and patch.status == 204
    assert patch.path == f"/api/data/v9.2/contacts({CONTACT})"
    assert patch.headers["odata-maxversion"] == "4.0"
    assert patch.headers["odata-version"] == "4.0"
    assert patch.headers["content-type"] == "application/json"
    assert patch.headers["accept"] == "application/json"
    assert patch.headers["if-match"] == "*"
    assert patch.headers["authorization"].startswith("Bearer ")
    assert "ocp-apim-subscription-key" not in patch.headers
    assert patch.json() == {COLUMN: True}


def test_every_patch_is_tagged_so_its_webhook_echo_is_recognised(
    standin: DataverseStandIn,
) -> None:
    # Dataverse hands a request's `tag` to the plug-in pipeline as the shared variable `tag`,
    # which the Update webhook our PATCH triggers carries back (docs/dataverse-mapping.md).
    api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True})

    (patch,) = [r for r in standin.received if r.method == "PATCH"]
    assert patch.path == f"/api/data/v9.2/contacts({CONTACT})"
    assert dict(parse_qsl(patch.query)) == {"tag": REQUEST_TAG}


def test_the_token_is_cached_across_calls_and_refreshed_shortly_before_it_expires(
    standin: DataverseStandIn,
) -> None:
    clock = FakeClock()
    api = api_for(clock)
    for visible in (True, False, True):
        api.update_contact(oauth(standin), CONTACT, {COLUMN: visible})
    assert len(token_requests(standin)) == 1
    assert len(api_requests(standin)) == 3

    clock.now += 3599 - 60 - 1  # still inside the cache margin
    api.update_contact(oauth(standin), CONTACT, {COLUMN: False})
    assert len(token_requests(standin)) == 1

    clock.now += 2  # less than 60 s before expiry: a new token
    api.update_contact(oauth(standin), CONTACT, {COLUMN: True})
    assert len(token_requests(standin)) == 2
    bearers = [r.headers["authorization"] for r in standin.received if r.method == "PATCH"]
    assert len(set(bearers[:4])) == 1 and bearers[4] != bearers[0]


def test_a_401_from_the_api_drops_the_token_and_reauthenticates_exactly_once(
    standin: DataverseStandIn,
) -> None:
    api = api_for()
    api.update_contact(oauth(standin), CONTACT, {COLUMN: True})
    standin.expire_tokens()  # as after a revocation: the cached token is refused

    api.update_contact(oauth(standin), CONTACT, {COLUMN: False})

    assert [s for *_, s in api_requests(standin)] == [204, 401, 204]
    assert len(token_requests(standin)) == 2
    assert row(standin)[COLUMN] is False


def test_a_second_401_after_reauthentication_is_not_retried_again(
    standin: DataverseStandIn,
) -> None:
    standin.fail_next("401", count=5)
    error = failure(lambda: api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True}))

    assert not error.retryable and error.status_code == 401
    assert str(error) == APPLICATION_USER_MESSAGE
    assert len(api_requests(standin)) == 2  # the PATCH and its single re-authenticated retry
    assert len(token_requests(standin)) == 2


def test_a_wrong_client_secret_is_not_retryable_and_says_to_check_the_credentials(
    standin: DataverseStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-also-never-shown"
    error = failure(
        lambda: api_for().update_contact(oauth(standin, wrong), CONTACT, {COLUMN: True})
    )

    assert not error.retryable and error.status_code == 401
    assert str(error) == CLIENT_REFUSED_MESSAGE
    assert wrong not in str(error)
    assert api_requests(standin) == []  # nothing reached the Web API
    logged = written(caplog)
    assert "Dynamics token request refused" in logged and "invalid_client" in logged
    # The AADSTS code, for on-call; never the description (it can name tenant and app).
    assert '"aadsts_code":"AADSTS7000215"' in logged
    assert wrong not in logged and "Invalid client secret" not in logged


def test_a_missing_contact_is_a_non_retryable_404_and_is_never_created(
    standin: DataverseStandIn,
) -> None:
    error = failure(lambda: api_for().update_contact(oauth(standin), MISSING, {COLUMN: True}))

    assert not error.retryable and error.status_code == 404
    assert str(error) == "The contact does not exist in Dynamics (it may have been deleted)"
    assert standin.contact(MISSING) is None


def test_a_429_is_retryable_with_retry_after_and_blocks_the_organisation_until_then(
    standin: DataverseStandIn,
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1, clock=clock, sleep=clock.sleep)
    sent_at: list[tuple[float, str]] = []

    def record(request: httpx.Request) -> None:
        sent_at.append((clock.now, request.url.path))

    http = httpx.Client(event_hooks={"request": [record]})
    api = DataverseWebApi(
        http, timeout_seconds=2.0, rate_limiter=limiter, clock=clock, allow_local=True
    )
    standin.fail_next("429", retry_after=7)

    error = failure(lambda: api.update_contact(oauth(standin), CONTACT, {COLUMN: True}))
    assert error.retryable and error.status_code == 429 and error.retry_after == 7
    throttled_at = clock.now

    api.update_contact(oauth(standin), CONTACT, {COLUMN: True})
    patches = [t for t, path in sent_at if path.startswith("/api/")]
    assert len(patches) == 2 and patches[1] >= throttled_at + 7
    assert sum(clock.slept) >= 7
    assert [s for *_, s in api_requests(standin)] == [429, 204]

    # Other organisations are not held back.
    before = clock.now
    limiter.acquire("https://other.crm4.dynamics.com")
    assert clock.now == before
    http.close()


@pytest.mark.parametrize("kind", ["503", "500", "502", "412"])
def test_server_errors_and_conflicts_are_retryable(standin: DataverseStandIn, kind: str) -> None:
    standin.fail_next(kind)
    error = failure(lambda: api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True}))

    assert error.retryable and error.status_code == int(kind)
    assert len(api_requests(standin)) == 1  # exactly one PATCH: the state machine retries
    if kind == "503":
        assert (
            str(error) == "Dynamics is unavailable right now (HTTP 503); the change will be retried"
        )


def test_a_timeout_is_retryable(standin: DataverseStandIn) -> None:
    standin.fail_next("timeout")
    api = DataverseWebApi(timeout_seconds=0.3, allow_local=True)
    started = time.monotonic()
    error = failure(lambda: api.update_contact(oauth(standin), CONTACT, {COLUMN: True}))

    assert error.retryable and error.status_code is None
    assert "did not answer" in str(error)
    assert time.monotonic() - started < 1.5


def test_an_unreachable_dynamics_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection = DynamicsConnection(
        base_url=f"http://127.0.0.1:{port}", auth_type="api_key", secret=API_KEY
    )
    error = failure(lambda: api_for().update_contact(connection, CONTACT, {COLUMN: True}))
    assert error.retryable and "could not be reached" in str(error)


def test_an_unknown_column_is_a_non_retryable_400_naming_the_setting_to_check() -> None:
    with DataverseStandIn(port=0, columns={"firstname", COLUMN}) as strict:
        strict.add_client(TENANT, CLIENT_ID, SECRET)
        strict.add_contact(CONTACT)
        error = failure(
            lambda: api_for().update_contact(oauth(strict), CONTACT, {"hlf_visible_typo": True})
        )
    assert not error.retryable and error.status_code == 400
    assert str(error) == (
        "Dynamics refused the change (HTTP 400): check the visibility column name in the "
        "integration settings"
    )


def test_a_403_names_the_application_users_security_role(standin: DataverseStandIn) -> None:
    standin.fail_next("403")
    error = failure(lambda: api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True}))
    assert not error.retryable and error.status_code == 403
    assert "security role" in str(error)
    assert len(api_requests(standin)) == 1  # no re-authentication for 403


@pytest.mark.parametrize("kind", ["400", "401", "403", "404", "412", "429", "503"])
def test_messages_never_carry_secrets_or_dataverse_text(
    standin: DataverseStandIn, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    standin.fail_next(kind, count=3, retry_after=1)
    for connection in (oauth(standin), api_key(standin)):

        def update(c: DynamicsConnection = connection) -> None:
            api_for().update_contact(c, CONTACT, {COLUMN: True})

        failure(update)
    logged = written(caplog)
    # Each failure once, with Dataverse's request id for on-call (a refused token too).
    assert logged.count("Dynamics request failed") == 2
    assert logged.count('"service_request_id":"') == 2
    assert SECRET not in logged and API_KEY not in logged
    for raw in RAW_TEXTS:
        if raw != "0x8":  # Dataverse's error code is logged, for on-call; never its text
            assert raw not in logged, raw


def test_an_api_key_goes_to_the_gateway_in_its_header_without_a_token(
    standin: DataverseStandIn,
) -> None:
    api_for().update_contact(api_key(standin), CONTACT, {COLUMN: True})

    (patch,) = [r for r in standin.received if r.method == "PATCH"]
    assert patch.headers["host"] == urlsplit(standin.gateway_url).netloc
    assert patch.path == f"/api/data/v9.2/contacts({CONTACT})"
    assert patch.headers["ocp-apim-subscription-key"] == API_KEY
    assert "authorization" not in patch.headers
    assert row(standin)[COLUMN] is True

    wrong = api_key(standin, "nope-key")
    error = failure(lambda: api_for().update_contact(wrong, CONTACT, {COLUMN: False}))
    assert not error.retryable and error.status_code == 401 and "API key" in str(error)
    # No second attempt without a token to refresh.
    assert len([r for r in standin.received if r.method == "PATCH"]) == 2


def test_the_api_key_header_is_the_one_the_gateway_is_configured_with() -> None:
    with DataverseStandIn(port=0, gateway_header="X-Gateway-Key") as custom:
        custom.add_api_key(API_KEY)
        custom.add_contact(CONTACT, **{COLUMN: False})
        connection = DynamicsConnection(
            base_url=custom.gateway_url,
            auth_type="api_key",
            secret=API_KEY,
            api_key_header="X-Gateway-Key",
        )
        api_for().update_contact(connection, CONTACT, {COLUMN: True})
        default = api_key(custom)  # Ocp-Apim-Subscription-Key: not what this gateway reads
        error = failure(lambda: api_for().update_contact(default, CONTACT, {COLUMN: False}))
        assert custom.contact(CONTACT)[COLUMN] is True  # type: ignore[index]
    assert error.status_code == 401 and "header name" in str(error)


def test_an_admin_can_save_the_standins_gateway_as_a_base_url_under_make_run(
    standin: DataverseStandIn,
) -> None:
    # The gateway is an origin of its own, as an API-management instance is, so the URL that
    # run.json shows passes make run's base URL rule (loopback http, no path) unchanged.
    assert checked_base_url(standin.gateway_url, allow_local=True) == standin.gateway_url
    assert urlsplit(standin.gateway_url).netloc != urlsplit(standin.url).netloc

    contact = f"/api/data/v9.2/contacts({CONTACT})"
    key_only = {"Ocp-Apim-Subscription-Key": API_KEY, "OData-Version": "4.0"}
    # Dataverse itself takes no key, however valid the gateway finds it.
    refused = httpx.get(standin.url + contact, headers=key_only)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "MissingCrmAuthenticationToken"
    accepted = httpx.get(standin.gateway_url + contact, headers=key_only)
    assert accepted.status_code == 200 and accepted.json()["contactid"] == CONTACT

    api_for().update_contact(api_key(standin), CONTACT, {COLUMN: True})
    assert row(standin)[COLUMN] is True


def test_an_api_key_is_never_sent_to_dataverse_itself() -> None:
    # Dataverse accepts only Entra bearer tokens: a key for *.dynamics.com is a settings mistake,
    # refused before any request (and the key never leaves), and not worth retrying.
    seen: list[httpx.Request] = []
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
    )
    api = DataverseWebApi(http, timeout_seconds=2.0, resolve=lambda host: ["20.50.2.1"])
    connection = DynamicsConnection(
        base_url="https://hlf.crm4.dynamics.com", auth_type="api_key", secret=API_KEY
    )

    error = failure(lambda: api.update_contact(connection, CONTACT, {COLUMN: True}))

    assert error.kind is FailureKind.API_KEY_TO_DATAVERSE and not error.retryable
    assert str(error) == API_KEY_TO_DATAVERSE_MESSAGE
    read = failure(lambda: api.read_row(connection, "hlf_memberships", MISSING, SELECT))
    assert read.kind is FailureKind.API_KEY_TO_DATAVERSE
    assert seen == []


# -- who the integration is in Dynamics (WhoAmI) ---------------------------------------------


def test_who_am_i_answers_the_application_users_systemuserid_not_the_client_id(
    standin: DataverseStandIn,
) -> None:
    user_id = api_for().application_user_id(oauth(standin))

    assert user_id == standin.application_user_id(CLIENT_ID) and user_id != CLIENT_ID
    (request,) = [r for r in standin.received if r.method == "GET"]
    assert request.path == "/api/data/v9.2/WhoAmI"
    assert request.headers["authorization"].startswith("Bearer ")


def test_who_am_i_through_the_gateway_is_the_gateways_application_user(
    standin: DataverseStandIn,
) -> None:
    # The gateway holds its own credentials: its application user is whose writes echo back.
    from portal_sync_dev.local.dataverse_standin import GATEWAY_CLIENT_ID

    assert api_for().application_user_id(api_key(standin)) == standin.application_user_id(
        GATEWAY_CLIENT_ID
    )


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"BusinessUnitId": "x"}),
        httpx.Response(200, json={"UserId": "not-a-guid"}),
        httpx.Response(200, text="<html>"),
    ],
)
def test_a_who_am_i_answer_without_a_user_id_is_unusable(answer: httpx.Response) -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: answer))
    api = DataverseWebApi(http, timeout_seconds=2.0, resolve=lambda host: ["20.50.2.1"])
    connection = DynamicsConnection(
        base_url="https://gateway.hlf.no", auth_type="api_key", secret=API_KEY
    )

    error = failure(lambda: api.application_user_id(connection))
    assert error.kind is FailureKind.UNUSABLE_ANSWER and error.retryable


def test_a_contact_id_that_is_not_a_guid_is_refused_before_any_request(
    standin: DataverseStandIn,
) -> None:
    error = failure(
        lambda: api_for().update_contact(oauth(standin), f"{CONTACT})/x", {COLUMN: True})
    )
    assert not error.retryable
    assert standin.requests == []


def test_a_storm_of_429s_keeps_to_the_limiter_rate_and_obeys_retry_after(
    standin: DataverseStandIn,
) -> None:
    rate = 5
    standin.limit_rate(4, per_seconds=1.0)  # service protection: the 5th request in 1 s is 429
    api = DataverseWebApi(timeout_seconds=2.0, rate_limiter=RateLimiter(rate, 1), allow_local=True)
    connection = oauth(standin)
    deadline = time.monotonic() + 2.0
    unexpected: list[BaseException] = []

    def caller() -> None:  # an impatient caller that retries at once: only the limiter holds it
        while time.monotonic() < deadline:
            try:
                api.update_contact(connection, CONTACT, {COLUMN: True})
            except DynamicsError as error:
                if not error.retryable or error.status_code != 429:
                    unexpected.append(error)
            except BaseException as error:
                unexpected.append(error)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert unexpected == []

    log = [r for r in standin.received if r.path.startswith("/api/")]
    statuses = [r.status for r in log]
    assert len(token_requests(standin)) == 1  # concurrent callers share one token request
    assert statuses.count(429) >= 1 and statuses.count(204) >= 5
    arrivals = sorted(r.time for r in log)
    for start in arrivals:  # never more than `rate` requests within any second
        assert sum(start <= t < start + 0.95 for t in arrivals) <= rate
    for throttled in (r for r in log if r.status == 429):
        assert throttled.retry_after is not None and throttled.retry_after >= 1
        early = [
            t
            for t in arrivals
            if throttled.time + 0.05 < t < throttled.time + throttled.retry_after - 0.05
        ]
        assert early == [], "a request reached Dynamics before its Retry-After moment"


# -- reading a row (events over 256 KB) -------------------------------------------------------

MEMBERSHIP = "3b241101-e2bb-4255-8caf-4136c566a962"
SELECT = ["modifiedon", "statecode", "hlf_role", "_hlf_contactid_value"]


@pytest.fixture
def membership(standin: DataverseStandIn) -> str:
    standin.add_row(
        "hlf_memberships",
        MEMBERSHIP,
        {"hlf_role": 100000001, "statecode": 0, "hlf_notes": "not selected"},
        lookups={"hlf_contactid": ("contact", CONTACT, "Kari Nordmann")},
    )
    return MEMBERSHIP


def test_read_row_selects_columns_and_gets_lookups_with_their_annotations(
    standin: DataverseStandIn, membership: str
) -> None:
    found = api_for().read_row(oauth(standin), "hlf_memberships", membership.upper(), SELECT)

    assert found is not None
    assert found["hlf_role"] == 100000001 and found["statecode"] == 0
    assert found["_hlf_contactid_value"] == CONTACT
    assert found["_hlf_contactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    assert found["_hlf_contactid_value@OData.Community.Display.V1.FormattedValue"] == (
        "Kari Nordmann"
    )
    assert "hlf_notes" not in found
    (request,) = [r for r in standin.received if r.method == "GET"]
    assert request.path == f"/api/data/v9.2/hlf_memberships({membership})"
    assert request.headers["odata-version"] == "4.0"


def test_read_row_of_a_missing_row_is_none(standin: DataverseStandIn) -> None:
    assert api_for().read_row(oauth(standin), "hlf_memberships", MISSING, SELECT) is None


def test_read_row_with_the_api_key(standin: DataverseStandIn, membership: str) -> None:
    assert api_for().read_row(api_key(standin), "hlf_memberships", membership, SELECT) is not None


def test_read_row_renews_a_revoked_token_once(standin: DataverseStandIn, membership: str) -> None:
    api = api_for()
    api.read_row(oauth(standin), "hlf_memberships", membership, SELECT)
    standin.expire_tokens()

    assert api.read_row(oauth(standin), "hlf_memberships", membership, SELECT) is not None
    assert len(token_requests(standin)) == 2


@pytest.mark.parametrize(
    ("kind", "retryable", "says"),
    [
        ("503", True, "unavailable"),
        ("429", True, "limiting"),
        ("timeout", True, "did not answer"),
        ("403", False, "security role"),
        ("400", False, "field mapping"),
    ],
)
def test_read_row_failures_say_whether_to_retry(
    standin: DataverseStandIn, membership: str, kind: str, retryable: bool, says: str
) -> None:
    standin.fail_next(kind, retry_after=1 if kind == "429" else None)
    api = DataverseWebApi(timeout_seconds=0.5, allow_local=True)

    error = failure(lambda: api.read_row(oauth(standin), "hlf_memberships", membership, SELECT))

    assert error.retryable is retryable
    assert says in error.message


def test_read_row_with_refused_credentials_is_permanent(
    standin: DataverseStandIn, membership: str
) -> None:
    error = failure(
        lambda: api_for().read_row(
            oauth(standin, secret="wrong"), "hlf_memberships", membership, SELECT
        )
    )

    assert not error.retryable
    assert error.message == CLIENT_REFUSED_MESSAGE


def test_a_lookup_selected_by_its_own_name_is_refused_as_dataverse_does(
    standin: DataverseStandIn, membership: str
) -> None:
    error = failure(
        lambda: api_for().read_row(oauth(standin), "hlf_memberships", membership, ["hlf_contactid"])
    )

    assert (error.status_code, error.retryable) == (400, False)


def test_read_row_refuses_an_entity_set_that_is_not_a_name(standin: DataverseStandIn) -> None:
    error = failure(lambda: api_for().read_row(oauth(standin), "contacts?$top=1#", CONTACT, SELECT))

    assert not error.retryable
    assert not standin.requests


@pytest.mark.parametrize("kind", ["400", "403", "412", "429", "500", "503", "timeout"])
def test_a_failed_read_never_points_at_the_visibility_column(
    standin: DataverseStandIn, membership: str, kind: str
) -> None:
    """A read serves the field mapping: its failures say what to check there, or that the read
    is retried, never what a failed website update would say."""
    standin.fail_next(kind, retry_after=1 if kind == "429" else None)
    api = DataverseWebApi(timeout_seconds=0.5, allow_local=True)

    error = failure(lambda: api.read_row(oauth(standin), "hlf_memberships", membership, SELECT))

    assert error.operation is Operation.READ_ROW
    assert "visibility column" not in error.message
    assert "change will be retried" not in error.message
    if not error.retryable:
        assert "hlf_memberships" in error.message


def test_a_refused_write_and_a_refused_read_say_different_things_to_check(
    standin: DataverseStandIn, membership: str
) -> None:
    standin.fail_next("400")
    write = failure(lambda: api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True}))
    standin.fail_next("400")
    read = failure(lambda: api_for().read_row(oauth(standin), "hlf_memberships", membership))

    assert (write.kind, read.kind) == (FailureKind.REJECTED, FailureKind.REJECTED)
    assert "visibility column" in write.message and "field mapping" not in write.message
    assert "field mapping" in read.message and "'hlf_memberships'" in read.message


def test_a_failed_request_logs_its_kind_and_dataverse_code_but_not_the_error_text(
    standin: DataverseStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    standin.fail_next("403")
    failure(lambda: api_for().update_contact(oauth(standin), CONTACT, {COLUMN: True}))

    (line,) = [json.loads(line) for line in written(caplog).splitlines()]
    assert line["message"] == "Dynamics request failed"
    assert (line["operation"], line["failure"], line["status_code"]) == (
        "update_contact",
        "forbidden",
        403,
    )
    assert line["dataverse_error_code"] and line["retryable"] is False
    assert "prvWriteContact" not in json.dumps(line)
