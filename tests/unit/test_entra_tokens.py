"""The Entra ID token cache of the Web API client: one token per application and environment,
reused until shortly before it expires, one sign-in however many callers need it at once."""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from portal_sync.adapters.dynamics.entra_tokens import TOKEN_EXPIRY_MARGIN_SECONDS, EntraTokens
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.dataverse.failure_wording import (
    CLIENT_REFUSED_MESSAGE,
    CLIENT_UNKNOWN_MESSAGE,
    CREDENTIALS_MESSAGE,
    SCOPE_REFUSED_MESSAGE,
)
from portal_sync.observability import logger

SECRET = "Zx8~client-secret-that-must-never-leak"
ORG = "https://hlf.crm4.dynamics.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Entra:
    """A token endpoint: counts sign-ins, issues a new token each time."""

    def __init__(self, *, delay: float = 0.0, answer: httpx.Response | None = None) -> None:
        self.delay = delay
        self.answer = answer
        self.forms: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.delay)  # a slow sign-in, so that concurrent callers overlap
        with self._lock:
            self.paths.append(request.url.path)
            self.forms.append(dict(urllib.parse.parse_qsl(request.content.decode())))
            issued = len(self.forms)
        if self.answer is not None:
            return self.answer
        return httpx.Response(200, json={"access_token": f"token-{issued}", "expires_in": 3600})


def connection(**changes: Any) -> DynamicsConnection:
    values: dict[str, Any] = {
        "base_url": ORG,
        "auth_type": "oauth_client_credentials",
        "secret": SECRET,
        "tenant_id": "tenant-1",
        "client_id": "client-1",
        "authority_url": "https://login.example.com/",
        **changes,
    }
    return DynamicsConnection(**values)


def tokens(entra: Entra, clock: Clock | None = None) -> EntraTokens:
    http = httpx.Client(transport=httpx.MockTransport(entra))
    return EntraTokens(http, timeout_seconds=2.0, clock=clock or Clock())


def test_the_token_is_reused_until_the_expiry_margin_then_renewed() -> None:
    clock, entra = Clock(), Entra()
    cache = tokens(entra, clock)

    first = cache.token(connection(), ORG)
    clock.now += 3600 - TOKEN_EXPIRY_MARGIN_SECONDS - 1
    assert cache.token(connection(), ORG) == first
    assert len(entra.forms) == 1

    clock.now += 1  # now within the margin: never sent while it may expire in flight
    assert cache.token(connection(), ORG) != first
    assert len(entra.forms) == 2
    assert entra.paths[0] == "/tenant-1/oauth2/v2.0/token"
    assert entra.forms[0] == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": SECRET,
        "scope": f"{ORG}/.default",
    }


def test_concurrent_callers_share_one_sign_in() -> None:
    entra = Entra(delay=0.2)
    cache = tokens(entra)
    got: list[str] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        got.append(cache.token(connection(), ORG))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(entra.forms) == 1
    assert got == ["token-1"] * 8


def test_each_environment_and_application_has_its_own_token() -> None:
    entra = Entra()
    cache = tokens(entra)

    a = cache.token(connection(), ORG)
    b = cache.token(connection(), "https://other.crm4.dynamics.com")
    c = cache.token(connection(client_id="client-2"), ORG)

    assert len({a, b, c}) == 3
    assert [form["scope"] for form in entra.forms] == [
        f"{ORG}/.default",
        "https://other.crm4.dynamics.com/.default",
        f"{ORG}/.default",
    ]


def test_a_dropped_token_is_fetched_again() -> None:
    entra = Entra()
    cache = tokens(entra)
    first = cache.token(connection(), ORG)

    cache.drop(connection(), ORG)

    assert cache.token(connection(), ORG) != first
    assert len(entra.forms) == 2


# Entra's refusals as its token endpoint answers them: `error`, `error_description` (which starts
# with the AADSTS code and names the tenant and application), `error_codes`, trace ids.
TENANT_NAME = "hlf-tenant.onmicrosoft.com"


def refusal(status: int, error: str, code: int, text: str, *, codes: bool = True) -> httpx.Response:
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: 0000aaaa-11bb\r\n"
        "Correlation ID: aaaa0000-bb11\r\nTimestamp: 2026-12-02 01:02:12Z",
        "timestamp": "2026-12-02 01:02:12Z",
        "trace_id": "0000aaaa-11bb",
        "correlation_id": "aaaa0000-bb11",
    }
    if codes:
        body["error_codes"] = [code]
    return httpx.Response(status, json=body, headers={"x-ms-request-id": "entra-request-1"})


@pytest.mark.parametrize(
    ("answer", "message", "aadsts"),
    [
        (
            refusal(401, "invalid_client", 7000215, "Invalid client secret provided."),
            CLIENT_REFUSED_MESSAGE,
            "AADSTS7000215",
        ),
        (
            refusal(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier 'client-1' was not found in the directory "
                f"'{TENANT_NAME}'.",
            ),
            CLIENT_UNKNOWN_MESSAGE,
            "AADSTS700016",
        ),
        (
            refusal(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {ORG} was not found in the tenant named "
                f"{TENANT_NAME}.",
            ),
            SCOPE_REFUSED_MESSAGE,
            "AADSTS500011",
        ),
        (
            refusal(400, "invalid_request", 90002, "Tenant 'tenant-1' not found.", codes=False),
            CREDENTIALS_MESSAGE,
            "AADSTS90002",
        ),
    ],
)
def test_a_refused_sign_in_names_what_to_check_and_logs_only_the_codes(
    caplog: pytest.LogCaptureFixture, answer: httpx.Response, message: str, aadsts: str
) -> None:
    # A 400 may be a wrong tenant, client id or scope as well as a wrong secret: the message
    # follows Entra's documented `error` code, never its description.
    with pytest.raises(DynamicsError) as raised:
        tokens(Entra(answer=answer)).token(connection(), ORG)

    error = raised.value
    assert (error.kind, error.operation, error.retryable) == (
        FailureKind.CREDENTIALS,
        Operation.SIGN_IN,
        False,
    )
    assert error.message == message
    assert "tenant" in CREDENTIALS_MESSAGE and "scope" in CREDENTIALS_MESSAGE
    logged = "\n".join(
        logger.registered_formatter.format(r) for r in caplog.records if r.name == logger.name
    )
    assert f'"aadsts_code":"{aadsts}"' in logged
    assert f'"oauth_error":"{answer.json()["error"]}"' in logged
    assert '"entra_request_id":"entra-request-1"' in logged
    description = answer.json()["error_description"]
    assert description.split("\r\n")[0].split(": ", 1)[1] not in logged
    assert TENANT_NAME not in logged and SECRET not in logged
    assert TENANT_NAME not in error.message


def test_a_throttled_sign_in_is_retryable_after_what_entra_asked() -> None:
    entra = Entra(answer=httpx.Response(429, headers={"Retry-After": "12"}))

    with pytest.raises(DynamicsError) as raised:
        tokens(entra).token(connection(), ORG)

    assert raised.value.retryable and raised.value.retry_after == 12
    assert "Microsoft Entra ID is limiting token requests" in raised.value.message


def test_an_answer_without_a_token_is_retried_and_not_cached() -> None:
    entra = Entra(answer=httpx.Response(200, json={"token_type": "Bearer"}))
    cache = tokens(entra)

    for _ in range(2):
        with pytest.raises(DynamicsError) as raised:
            cache.token(connection(), ORG)
        assert raised.value.kind is FailureKind.UNUSABLE_ANSWER and raised.value.retryable
    assert len(entra.forms) == 2


def test_missing_credentials_never_reach_entra() -> None:
    entra = Entra()

    with pytest.raises(DynamicsError) as raised:
        tokens(entra).token(connection(tenant_id=None), ORG)

    assert raised.value.kind is FailureKind.MISSING_CREDENTIALS and not raised.value.retryable
    assert entra.forms == []
