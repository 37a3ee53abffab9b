"""Client for the Dataverse Web API: updates one contact row with one PATCH (website
visibility) and reads one row with one GET (events whose context exceeded 256 KB).

There is deliberately no retry loop here. The callers (the website visibility Step Functions
state machine, the SQS redelivery of an event) retry with exponential backoff; this module only says whether a
failure is worth retrying (`DynamicsError.retryable`) and how long Dataverse asked us to wait
(`retry_after`). The single exception is a 401 with a cached token: the token is dropped and the
PATCH is sent once more with a fresh one.

Service protection: every request to an organisation first takes a token from a `RateLimiter`
keyed by the organisation's URL, and a 429 blocks that key until its `Retry-After` has passed,
so no request reaches Dataverse before the moment it asked for.

Where requests go: only to a base URL that dataverse/base_url.py allows, and only when the host
name resolves to public addresses (checked before each connection, results kept for a minute),
so stored credentials never reach loopback, private or metadata addresses.

Error messages are for administrators: they say what to check and never contain the response
body (Dataverse's error text can echo data) or a secret. Only the Dataverse error code is
logged.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from portal_sync.dataverse.base_url import (
    LOCAL_HOSTS,
    BaseUrlNotAllowed,
    checked_base_url,
    is_public_address,
)
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.observability import logger

API_PATH = "/api/data/v9.2"
DEFAULT_RETRY_AFTER_SECONDS = 5.0
# A cached token is used until this long before it expires.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
# Dataverse allows 6,000 requests per user per web server over 5 minutes (20 a second on
# average); a Lambda container stays well under that on its own.
DEFAULT_RATE_PER_SECOND = 20.0
DEFAULT_BURST = 10

CREDENTIALS_MESSAGE = (
    "Dynamics rejected the credentials: check the client id and client secret in the "
    "integration settings"
)

_EPSILON = 1e-9

# Web API annotations asked for when reading a row (a lookup's display name and table).
FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
# How long what a host name resolves to is trusted before it is looked up again.
RESOLUTION_TTL_SECONDS = 60.0
# An entity set name goes into the URL path: nothing but a name may.
_ENTITY_SET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class _Bucket:
    tokens: float
    updated_at: float
    blocked_until: float


class RateLimiter:
    """A token bucket per key (one organisation's URL), shared by threads.

    `acquire` sleeps until a request may be sent: `rate_per_second` on average, at most `burst`
    at once. `block_until` (after a 429) holds every request for the key until `moment`; no
    tokens accrue while blocked, so the block does not end in a burst.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be positive and burst at least 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        """The limiter's clock: the time base of `block_until`."""
        return self._clock()

    def acquire(self, key: str) -> None:
        while True:
            with self._lock:
                now = self._clock()
                bucket = self._refilled(key, now)
                # The epsilon absorbs float rounding, so a wait never shrinks to nothing.
                if now < bucket.blocked_until - _EPSILON:
                    wait = bucket.blocked_until - now
                elif bucket.tokens >= 1.0 - _EPSILON:
                    bucket.tokens = max(0.0, bucket.tokens - 1.0)
                    return
                else:
                    wait = (1.0 - bucket.tokens) / self._rate
            self._sleep(wait)

    def block_until(self, key: str, moment: float) -> None:
        with self._lock:
            bucket = self._refilled(key, self._clock())
            bucket.blocked_until = max(bucket.blocked_until, moment)
            bucket.updated_at = max(bucket.updated_at, moment)

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=self._burst, updated_at=now, blocked_until=now)
            self._buckets[key] = bucket
        elif now > bucket.updated_at:
            elapsed = now - bucket.updated_at
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated_at = now
        return bucket


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER_SECONDS
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_SECONDS
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(0.0, seconds)


@dataclass
class _Token:
    value: str
    usable_until: float


class DataverseWebApi:
    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        timeout_seconds: float = 10.0,
        rate_limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
        allow_local: bool = False,
        resolve: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        """`allow_local`: plain http to this machine is allowed (`make run`'s stand-in).
        `resolve`: a host name's addresses (the system resolver by default)."""
        self._allow_local = allow_local
        self._resolve = resolve or _addresses
        self._resolved: dict[str, float] = {}  # public host -> checked until (monotonic)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_seconds)
        self._timeout = timeout_seconds
        self._clock = clock
        # One limiter per client instance (keep one instance per Lambda container). Its clock
        # is real time unless a limiter is given: `clock` only dates tokens.
        self._limiter = rate_limiter or RateLimiter(DEFAULT_RATE_PER_SECOND, DEFAULT_BURST)
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._tokens_lock = threading.Lock()
        # One token request at a time per key: concurrent callers wait for it, not send more.
        self._fetch_locks: dict[tuple[str, str, str, str], threading.Lock] = {}

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def update_contact(
        self, connection: DynamicsConnection, contact_id: str, fields: dict[str, Any]
    ) -> None:
        """Sets `fields` on an existing contact; raises DynamicsError on any failure."""
        base_url = self._checked_base_url(connection.base_url)
        contact = _guid(contact_id, "contact")
        url = f"{base_url}{API_PATH}/contacts({contact})"
        headers = {
            **_ODATA_HEADERS,
            "Content-Type": "application/json",
            # Without If-Match a PATCH is an upsert and would create a missing contact.
            "If-Match": "*",
        }

        response = self._authorised(
            connection,
            base_url,
            lambda auth: self._send(base_url, "PATCH", url, {**headers, **auth}, fields),
        )
        if response.is_success:
            return
        raise self._failure(base_url, response)

    def read_row(
        self,
        connection: DynamicsConnection,
        entity_set: str,
        row_id: str,
        select: Sequence[str] = (),
    ) -> dict[str, Any] | None:
        """One row as the Web API returns it (lookups as `_<column>_value`, with their table
        and name as annotations); None when the row does not exist. Raises DynamicsError."""
        base_url = self._checked_base_url(connection.base_url)
        row = _guid(row_id, "row")
        if not _ENTITY_SET.match(entity_set):
            raise DynamicsError(
                f"'{entity_set}' is not a Dynamics table's entity set name: check the field "
                "mapping in the integration settings",
                retryable=False,
            )
        url = f"{base_url}{API_PATH}/{entity_set}({row})"
        params = {"$select": ",".join(select)} if select else None
        headers = {
            **_ODATA_HEADERS,
            # A lookup's table and display name come only as annotations, on request.
            "Prefer": f'odata.include-annotations="{FORMATTED_VALUE},{LOOKUP_LOGICAL_NAME}"',
        }
        response = self._authorised(
            connection,
            base_url,
            lambda auth: self._send(base_url, "GET", url, {**headers, **auth}, params=params),
        )
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise DynamicsError(
                    "Dynamics answered the read with something other than a row; "
                    "it will be retried",
                    retryable=True,
                    status_code=200,
                )
            return body
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            raise DynamicsError(
                "Dynamics refused access (HTTP 403): check that the application user has a "
                f"security role that allows reading the '{entity_set}' table",
                retryable=False,
                status_code=403,
            )
        if response.status_code == 400:
            logger.warning(
                "Dynamics row read refused",
                extra={"status_code": 400, "dataverse_error_code": _dataverse_error_code(response)},
            )
            raise DynamicsError(
                f"Dynamics refused to read the row (HTTP 400): check the table '{entity_set}' "
                "and its column names in the field mapping",
                retryable=False,
                status_code=400,
            )
        raise self._failure(base_url, response)

    def _authorised(
        self,
        connection: DynamicsConnection,
        base_url: str,
        send: Callable[[dict[str, str]], httpx.Response],
    ) -> httpx.Response:
        """Sends with the connection's credentials (`send` gets the auth headers); a 401 is
        raised here, after one retry with a fresh token."""
        if connection.auth_type == "api_key":
            # Dataverse itself has no API keys: this mode is for an API-management front
            # (e.g. Azure API Management) that holds the OAuth credentials and checks this key.
            response = send({"x-api-key": connection.secret})
            if response.status_code == 401:
                raise DynamicsError(
                    "Dynamics rejected the API key: check the API key in the integration settings",
                    retryable=False,
                    status_code=401,
                )
            return response
        if connection.auth_type == "oauth_client_credentials":
            token = self._token(connection, base_url)
            response = send(_bearer(token))
            if response.status_code == 401:
                # The token may have been revoked or expired early: one fresh token, one retry.
                self._drop_token(connection, base_url)
                token = self._token(connection, base_url)
                response = send(_bearer(token))
                if response.status_code == 401:
                    raise DynamicsError(
                        f"{CREDENTIALS_MESSAGE}, and that the app registration is an application "
                        "user in the Dynamics environment",
                        retryable=False,
                        status_code=401,
                    )
            return response
        raise DynamicsError(
            "The integration settings name an unknown Dynamics authentication type",
            retryable=False,
        )

    # -- Web API ---------------------------------------------------------------------------

    def _send(
        self,
        base_url: str,
        method: str,
        url: str,
        headers: dict[str, str],
        fields: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        self._check_resolution(base_url)
        self._limiter.acquire(base_url)
        try:
            return self._http.request(
                method, url, headers=headers, json=fields, params=params, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise DynamicsError(
                f"Dynamics did not answer within {self._timeout:g} seconds; "
                "the change will be retried",
                retryable=True,
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise DynamicsError(
                "The Dynamics URL in the integration settings is not valid", retryable=False
            ) from None
        except httpx.HTTPError as exc:
            raise DynamicsError(
                f"Dynamics could not be reached ({type(exc).__name__}); the change will be retried",
                retryable=True,
            ) from None

    def _checked_base_url(self, base_url: str) -> str:
        try:
            return checked_base_url(base_url, allow_local=self._allow_local)
        except BaseUrlNotAllowed as exc:
            raise DynamicsError(
                f"The Dynamics URL in the integration settings is not allowed: it {exc}",
                retryable=False,
            ) from None

    def _check_resolution(self, base_url: str) -> None:
        """Refuses a host whose name resolves to a loopback, private or other non-public
        address (a public name can be made to point anywhere)."""
        host = urlsplit(base_url).hostname or ""
        now = self._clock()
        if self._resolved.get(host, 0.0) > now or (self._allow_local and host in LOCAL_HOSTS):
            return
        try:
            addresses = self._resolve(host)
        except OSError:
            raise DynamicsError(
                "The Dynamics host name could not be resolved; the change will be retried",
                retryable=True,
            ) from None
        if not addresses or not all(is_public_address(address) for address in addresses):
            raise DynamicsError(
                "The Dynamics URL in the integration settings is not allowed: its host name "
                "does not resolve to public addresses",
                retryable=False,
            )
        self._resolved[host] = now + RESOLUTION_TTL_SECONDS

    def _failure(self, base_url: str, response: httpx.Response) -> DynamicsError:
        status = response.status_code
        code = _dataverse_error_code(response)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._limiter.block_until(base_url, self._limiter.now() + retry_after)
            error = DynamicsError(
                "Dynamics is limiting our requests (HTTP 429, service protection limits); "
                f"the change will be retried after {retry_after:g} seconds",
                retryable=True,
                status_code=429,
                retry_after=retry_after,
            )
        elif status == 404:
            error = DynamicsError(
                "The contact does not exist in Dynamics (it may have been deleted or merged)",
                retryable=False,
                status_code=404,
            )
        elif status == 403:
            error = DynamicsError(
                "Dynamics refused access (HTTP 403): check that the application user has a "
                "security role that allows updating contacts",
                retryable=False,
                status_code=403,
            )
        elif status == 412:
            error = DynamicsError(
                "Dynamics reported a conflicting change (HTTP 412); the change will be retried",
                retryable=True,
                status_code=412,
            )
        elif status >= 500:
            error = DynamicsError(
                f"Dynamics is unavailable right now (HTTP {status}); the change will be retried",
                retryable=True,
                status_code=status,
            )
        elif status >= 400:
            error = DynamicsError(
                f"Dynamics refused the change (HTTP {status}): check the visibility column name "
                "in the integration settings",
                retryable=False,
                status_code=status,
            )
        else:  # 1xx/3xx: redirects are not followed; a Dataverse URL does not redirect
            error = DynamicsError(
                f"Dynamics answered unexpectedly (HTTP {status}): check the Dynamics URL in the "
                "integration settings",
                retryable=False,
                status_code=status,
            )
        logger.warning(
            "Dynamics request failed",
            extra={
                "status_code": status,
                "dataverse_error_code": code,
                "retryable": error.retryable,
            },
        )
        return error

    # -- tokens ----------------------------------------------------------------------------

    def _token(self, connection: DynamicsConnection, base_url: str) -> str:
        key = _token_key(connection, base_url)
        cached = self._cached_token(key)
        if cached is not None:
            return cached
        with self._tokens_lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            cached = self._cached_token(key)  # another thread may have fetched it meanwhile
            if cached is not None:
                return cached
            token = self._fetch_token(connection, key)
            with self._tokens_lock:
                self._tokens[key] = token
            return token.value

    def _cached_token(self, key: tuple[str, str, str, str]) -> str | None:
        with self._tokens_lock:
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.usable_until:
                return cached.value
            return None

    def _drop_token(self, connection: DynamicsConnection, base_url: str) -> None:
        with self._tokens_lock:
            self._tokens.pop(_token_key(connection, base_url), None)

    def _fetch_token(
        self, connection: DynamicsConnection, key: tuple[str, str, str, str]
    ) -> _Token:
        authority, tenant, client_id, scope = key
        if not tenant or not client_id or not connection.secret:
            raise DynamicsError(
                "The integration settings lack the tenant id, client id or client secret "
                "for Dynamics",
                retryable=False,
            )
        requested_at = self._clock()
        try:
            response = self._http.post(
                f"{authority}/{tenant}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": connection.secret,
                    "scope": scope,
                },
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            raise DynamicsError(
                f"Microsoft Entra ID did not issue a token within {self._timeout:g} seconds; "
                "the change will be retried",
                retryable=True,
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise DynamicsError(
                "The sign-in authority URL in the integration settings is not valid",
                retryable=False,
            ) from None
        except httpx.HTTPError as exc:
            raise DynamicsError(
                f"Microsoft Entra ID could not be reached ({type(exc).__name__}); "
                "the change will be retried",
                retryable=True,
            ) from None

        status = response.status_code
        if status in (400, 401):
            logger.warning(
                "Dynamics token request refused",
                extra={"status_code": status, "oauth_error": _oauth_error(response)},
            )
            raise DynamicsError(CREDENTIALS_MESSAGE, retryable=False, status_code=status)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise DynamicsError(
                "Microsoft Entra ID is limiting token requests (HTTP 429); the change will be "
                f"retried after {retry_after:g} seconds",
                retryable=True,
                status_code=429,
                retry_after=retry_after,
            )
        if status >= 500:
            raise DynamicsError(
                f"Microsoft Entra ID is unavailable right now (HTTP {status}); "
                "the change will be retried",
                retryable=True,
                status_code=status,
            )
        if status != 200:
            raise DynamicsError(
                f"Microsoft Entra ID refused the token request (HTTP {status}): check the tenant "
                "id and the sign-in authority URL in the integration settings",
                retryable=False,
                status_code=status,
            )
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body.get("expires_in", 3599))
            if not isinstance(value, str) or not value:
                raise ValueError("no access token")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DynamicsError(
                "Microsoft Entra ID answered the token request without a usable token; "
                "the change will be retried",
                retryable=True,
                status_code=status,
            ) from None
        return _Token(value, requested_at + expires_in - TOKEN_EXPIRY_MARGIN_SECONDS)


_ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}


def _guid(value: str, what: str) -> str:
    """A Dynamics row id in its canonical form; refuses anything else before it reaches a URL."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise DynamicsError(
            f"The {what} id is not a valid Dynamics id (a GUID)", retryable=False
        ) from None


def _addresses(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)]


def _token_key(connection: DynamicsConnection, base_url: str) -> tuple[str, str, str, str]:
    return (
        connection.authority_url.strip().rstrip("/"),
        (connection.tenant_id or "").strip(),
        (connection.client_id or "").strip(),
        f"{base_url}/.default",
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _dataverse_error_code(response: httpx.Response) -> str | None:
    """The `error.code` of a Dataverse error body (may be empty); never its message."""
    try:
        error = response.json().get("error")
        code = error.get("code") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        return None
    return code[:32] if isinstance(code, str) else None


def _oauth_error(response: httpx.Response) -> str | None:
    """The OAuth `error` (e.g. invalid_client); never the description."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error[:64] if isinstance(error, str) else None
