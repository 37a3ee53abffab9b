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
from portal_sync.dataverse.failure_wording import CREDENTIALS_MESSAGE
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


def test_refused_credentials_are_permanent_and_only_the_oauth_code_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = httpx.Response(
        401,
        json={"error": "invalid_client", "error_description": "AADSTS7000215: Invalid secret"},
    )
    entra = Entra(answer=refused)

    with pytest.raises(DynamicsError) as raised:
        tokens(entra).token(connection(), ORG)

    error = raised.value
    assert (error.kind, error.operation, error.retryable) == (
        FailureKind.CREDENTIALS,
        Operation.SIGN_IN,
        False,
    )
    assert error.message == CREDENTIALS_MESSAGE
    logged = "\n".join(
        logger.registered_formatter.format(r) for r in caplog.records if r.name == logger.name
    )
    assert "invalid_client" in logged
    assert "AADSTS" not in logged and SECRET not in logged


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
