"""Access tokens for the Dataverse Web API from Microsoft Entra ID (OAuth 2.0 client
credentials), cached per application and environment until shortly before they expire.

One token request at a time per key: callers that need the same token meanwhile wait for it
instead of sending more (a burst of website changes must not become a burst of sign-ins).
A refused request is read for its OAuth `error` (which setting the administrator's message
points at: dataverse/failure_wording.py) and its AADSTS code (for on-call, who can look it up at
https://login.microsoftonline.com/error); only those two are logged, never the description
(it names the tenant and the application) or the secret.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from portal_sync.adapters.dynamics.retry_after import parse_retry_after
from portal_sync.adapters.dynamics.transport import send
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.observability import logger, tracer

# A cached token is used until this long before it expires, so it never expires in flight.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
# What Entra ID issues when its answer leaves `expires_in` out (one hour, less a second).
DEFAULT_EXPIRES_IN_SECONDS = 3599.0

# Entra's `error_description` starts with the code, e.g. "AADSTS7000215: Invalid client secret".
_AADSTS = re.compile(r"AADSTS(\d{1,10})\b")
_OAUTH_ERROR = re.compile(r"^[a-z_]{1,64}$")

# (authority, tenant, client id, scope): one token each.
TokenKey = tuple[str, str, str, str]


@dataclass
class _Token:
    value: str
    usable_until: float


class EntraTokens:
    """The token cache of one Web API client (one per Lambda container), shared by threads."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._timeout = timeout_seconds
        self._clock = clock
        self._tokens: dict[TokenKey, _Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}

    @tracer.capture_method
    def token(self, connection: DynamicsConnection, base_url: str) -> str:
        """A usable access token for `base_url` with the connection's credentials."""
        key = token_key(connection, base_url)
        cached = self._cached(key)
        if cached is not None:
            return cached
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            cached = self._cached(key)  # another thread may have fetched it meanwhile
            if cached is not None:
                return cached
            token = self._fetch(connection, key)
            with self._lock:
                self._tokens[key] = token
            return token.value

    def drop(self, connection: DynamicsConnection, base_url: str) -> None:
        """Forgets the cached token (the Web API refused it: revoked, or expired early)."""
        with self._lock:
            self._tokens.pop(token_key(connection, base_url), None)

    def _cached(self, key: TokenKey) -> str | None:
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.usable_until:
                return cached.value
            return None

    def _fetch(self, connection: DynamicsConnection, key: TokenKey) -> _Token:
        authority, tenant, client_id, scope = key
        if not tenant or not client_id or not connection.secret:
            raise DynamicsError(FailureKind.MISSING_CREDENTIALS, Operation.SIGN_IN)
        requested_at = self._clock()  # the lifetime counts from the request, not the answer
        response = send(
            self._http,
            Operation.SIGN_IN,
            "POST",
            f"{authority}/{tenant}/oauth2/v2.0/token",
            timeout_seconds=self._timeout,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": connection.secret,
                "scope": scope,
            },
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status in (400, 401):
            # Entra refuses with 400 (a wrong tenant, client id or scope: invalid_request,
            # unauthorized_client, invalid_scope...) as well as 401 (invalid_client).
            oauth_error, aadsts = _refusal(response)
            logger.warning(
                "Dynamics token request refused",
                extra={
                    "status_code": status,
                    "oauth_error": oauth_error,
                    "aadsts_code": aadsts,
                    "entra_request_id": response.headers.get("x-ms-request-id"),
                },
            )
            raise DynamicsError(
                FailureKind.CREDENTIALS,
                Operation.SIGN_IN,
                status_code=status,
                oauth_error=oauth_error,
            )
        if status == 429:
            raise DynamicsError(
                FailureKind.THROTTLED,
                Operation.SIGN_IN,
                status_code=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status >= 500:
            raise DynamicsError(FailureKind.UNAVAILABLE, Operation.SIGN_IN, status_code=status)
        if status != 200:
            raise DynamicsError(FailureKind.REJECTED, Operation.SIGN_IN, status_code=status)
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body.get("expires_in", DEFAULT_EXPIRES_IN_SECONDS))
            if not isinstance(value, str) or not value:
                raise ValueError("no access token")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DynamicsError(
                FailureKind.UNUSABLE_ANSWER, Operation.SIGN_IN, status_code=status
            ) from None
        return _Token(value, requested_at + expires_in - TOKEN_EXPIRY_MARGIN_SECONDS)


def token_key(connection: DynamicsConnection, base_url: str) -> TokenKey:
    return (
        connection.authority_url.strip().rstrip("/"),
        (connection.tenant_id or "").strip(),
        (connection.client_id or "").strip(),
        f"{base_url}/.default",
    )


def _refusal(response: httpx.Response) -> tuple[str | None, str | None]:
    """The OAuth `error` (e.g. invalid_client) and the AADSTS code (e.g. AADSTS7000215) of a
    refused token request; nothing else of its description."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    oauth_error = error if isinstance(error, str) and _OAUTH_ERROR.match(error) else None
    codes = body.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int) and codes[0] >= 0:
        return oauth_error, f"AADSTS{codes[0]}"
    description = body.get("error_description")
    found = _AADSTS.search(description) if isinstance(description, str) else None
    return oauth_error, f"AADSTS{found.group(1)}" if found else None
