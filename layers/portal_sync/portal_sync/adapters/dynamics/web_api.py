"""Client for the Dataverse Web API: updates one contact row with one PATCH (website
visibility), reads one column of up to 50 contacts with one filtered GET (the read-back of the
website column), reads one row with one GET (events whose context exceeded 256 KB), and asks
`WhoAmI` who the integration's application user is (the echo check; docs/dataverse-mapping.md).

Every PATCH carries `tag=<REQUEST_TAG>` (dataverse/echo.py): Dataverse hands it to the plug-in
pipeline's SharedVariables, so the webhook our own write triggers is recognised as its echo.

Authentication: Entra ID bearer tokens, the only thing Dataverse accepts. The API-key mode is for
an API gateway in front of Dataverse (e.g. Azure API Management) that holds the OAuth
credentials itself: the key goes in the connection's header (`Ocp-Apim-Subscription-Key` by
default), and never to a Dataverse host (`*.dynamics.com`), which would refuse it anyway.

There is deliberately no retry loop here. The callers (the website visibility Step Functions
state machine, the SQS redelivery of an event) retry with exponential backoff; this module only
says which kind of failure it met (DynamicsError, dataverse/failure.py decides whether that is
worth retrying) and how long Dataverse asked us to wait (`retry_after`). The single exception
is a 401 with a cached token: the token is dropped and the request is sent once more with a
fresh one (entra_tokens.py).

Service protection: every request to an organisation first takes a token from a RateLimiter
(adapters/rate_limiter.py) keyed by the organisation's URL, and a 429 blocks that key until its
`Retry-After` has passed, so no request reaches Dataverse before the moment it asked for.

Where requests go: addresses.py (docs/security.md). What a failure says to administrators is
worded by dataverse/failure_wording.py, never from the response body (Dataverse's error text
can echo data); only the Dataverse error code and request id are logged.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from portal_sync.adapters.dynamics.addresses import Destinations, Resolve
from portal_sync.adapters.dynamics.credentials import send_authorised
from portal_sync.adapters.dynamics.entra_tokens import EntraTokens
from portal_sync.adapters.dynamics.failures import (
    failure_of,
)
from portal_sync.adapters.dynamics.transport import send
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.dataverse.annotations import FORMATTED_VALUE, LOOKUP_LOGICAL_NAME
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError
from portal_sync.dataverse.echo import REQUEST_TAG
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.observability import tracer

API_PATH = "/api/data/v9.2"
# Dataverse allows 6,000 requests per user per web server over 5 minutes (20 a second on
# average); a Lambda container stays well under that on its own.
DEFAULT_RATE_PER_SECOND = 20.0
DEFAULT_BURST = 10

# An entity set name goes into the URL path: nothing but a name may.
_ENTITY_SET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}
# What a write of ours carries, so that its webhook echo is recognised (dataverse/echo.py).
_TAGGED = {"tag": REQUEST_TAG}
# Contacts per filtered read: 50 `contactid eq <guid>` terms keep the URL near 2.7 KB, far
# below the Web API's limit, and the answer on one page.
MAX_CONTACTS_PER_READ = 50


class DataverseWebApi:
    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        timeout_seconds: float = 10.0,
        rate_limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        allow_local: bool = False,
        resolve: Resolve | None = None,
    ) -> None:
        """`allow_local`: plain http to this machine is allowed (`make run`'s stand-in).
        `resolve`: a host name's addresses (the system resolver by default). `clock` dates
        tokens and host checks; the limiter keeps its own (real time unless one is given)."""
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_seconds)
        self._timeout = timeout_seconds
        # One limiter and one token cache per client instance (keep one per Lambda container).
        self._limiter = rate_limiter or RateLimiter(DEFAULT_RATE_PER_SECOND, DEFAULT_BURST)
        self._tokens = EntraTokens(self._http, timeout_seconds=timeout_seconds, clock=clock)
        self._destinations = Destinations(allow_local=allow_local, resolve=resolve, clock=clock)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    @tracer.capture_method
    def update_contact(
        self, connection: DynamicsConnection, contact_id: str, fields: dict[str, Any]
    ) -> None:
        """Sets `fields` on an existing contact; raises DynamicsError on any failure."""
        operation = Operation.UPDATE_CONTACT
        base_url = self._destinations.base_url(connection.base_url, operation)
        url = f"{base_url}{API_PATH}/contacts({_guid(contact_id, operation)})"
        headers = {
            **_ODATA_HEADERS,
            "Content-Type": "application/json",
            # Without If-Match a PATCH is an upsert and would create a missing contact.
            "If-Match": "*",
        }
        response = send_authorised(
            connection,
            base_url,
            operation,
            self._tokens,
            lambda auth: self._send(
                base_url, operation, "PATCH", url, {**headers, **auth}, fields, params=_TAGGED
            ),
        )
        if not response.is_success:
            raise self._failure(base_url, operation, response)

    @tracer.capture_method
    def read_column(
        self, connection: DynamicsConnection, contact_ids: Sequence[str], column: str
    ) -> dict[str, bool | None]:
        """`column` (a two-option column) of up to 50 contacts in one GET, by contact id as
        given; null when the column has no value. A contact that does not exist is absent,
        as is an id that is not a GUID (it cannot name one) or a value that is not a boolean
        (the column is not a two-option one). Raises DynamicsError."""
        if len(contact_ids) > MAX_CONTACTS_PER_READ:
            raise ValueError(f"at most {MAX_CONTACTS_PER_READ} contacts per read")
        operation = Operation.READ_ROW
        base_url = self._destinations.base_url(connection.base_url, operation)
        given: dict[str, str] = {}
        for contact_id in contact_ids:
            try:
                given[str(uuid.UUID(contact_id))] = contact_id
            except (ValueError, TypeError, AttributeError):
                continue
        if not given:
            return {}
        # Spaces as %20 (not httpx's `+`): the form OData's own clients send.
        condition = " or ".join(f"contactid eq {guid}" for guid in given)
        url = (
            f"{base_url}{API_PATH}/contacts?$select={quote(f'contactid,{column}', safe=',')}"
            f"&$filter={quote(condition, safe='')}"
        )
        response = self._get(connection, base_url, operation, url, entity_set="contacts")
        if response.status_code != 200:
            raise self._failure(base_url, operation, response, entity_set="contacts")
        try:
            rows = response.json()["value"]
            found = {str(uuid.UUID(row["contactid"])): row.get(column) for row in rows}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DynamicsError(
                FailureKind.UNUSABLE_ANSWER, operation, status_code=200, entity_set="contacts"
            ) from None
        return {
            given[guid]: value
            for guid, value in found.items()
            if guid in given and (value is None or isinstance(value, bool))
        }

    @tracer.capture_method
    def application_user_id(self, connection: DynamicsConnection) -> str:
        """The `systemuserid` the connection's credentials act as in Dynamics (`WhoAmI`), in
        lower case: the user our own writes show as InitiatingUserId. Raises DynamicsError."""
        operation = Operation.WHO_AM_I
        base_url = self._destinations.base_url(connection.base_url, operation)
        url = f"{base_url}{API_PATH}/WhoAmI"
        response = self._get(connection, base_url, operation, url)
        if response.status_code != 200:
            raise self._failure(base_url, operation, response)
        try:
            body = response.json()
            return str(uuid.UUID(body["UserId"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DynamicsError(FailureKind.UNUSABLE_ANSWER, operation, status_code=200) from None

    @tracer.capture_method
    def read_row(
        self,
        connection: DynamicsConnection,
        entity_set: str,
        row_id: str,
        select: Sequence[str] = (),
    ) -> dict[str, Any] | None:
        """One row as the Web API returns it (lookups as `_<column>_value`, with their table
        and name as annotations); None when the row does not exist. Raises DynamicsError."""
        operation = Operation.READ_ROW
        base_url = self._destinations.base_url(connection.base_url, operation)
        row = _guid(row_id, operation)
        if not _ENTITY_SET.match(entity_set):
            raise DynamicsError(FailureKind.INVALID_ENTITY_SET, operation, entity_set=entity_set)
        url = f"{base_url}{API_PATH}/{entity_set}({row})"
        params = {"$select": ",".join(select)} if select else None
        headers = {
            **_ODATA_HEADERS,
            # A lookup's table and display name come only as annotations, on request.
            "Prefer": f'odata.include-annotations="{FORMATTED_VALUE},{LOOKUP_LOGICAL_NAME}"',
        }
        response = self._get(connection, base_url, operation, url, headers, params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(base_url, operation, response, entity_set=entity_set)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DynamicsError(
                FailureKind.UNUSABLE_ANSWER, operation, status_code=200, entity_set=entity_set
            )
        return body

    def _send(
        self,
        base_url: str,
        operation: Operation,
        method: str,
        url: str,
        headers: dict[str, str],
        fields: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        self._destinations.check_resolution(base_url, operation)
        self._limiter.acquire(base_url)
        return send(
            self._http,
            operation,
            method,
            url,
            timeout_seconds=self._timeout,
            headers=headers,
            json=fields,
            params=params,
        )

    def _get(
        self,
        connection: DynamicsConnection,
        base_url: str,
        operation: Operation,
        url: str,
        headers: dict[str, str] = _ODATA_HEADERS,
        params: dict[str, str] | None = None,
        *,
        entity_set: str | None = None,
    ) -> httpx.Response:
        """A GET with the connection's credentials (send_authorised: a token, asked again
        once on 401); its answer, whatever the status."""
        return send_authorised(
            connection,
            base_url,
            operation,
            self._tokens,
            lambda auth: self._send(
                base_url, operation, "GET", url, {**headers, **auth}, params=params
            ),
            entity_set=entity_set,
        )

    def _failure(
        self,
        base_url: str,
        operation: Operation,
        response: httpx.Response,
        *,
        entity_set: str | None = None,
    ) -> DynamicsError:
        return failure_of(response, operation, self._limiter, base_url, entity_set=entity_set)


def _guid(value: str, operation: Operation) -> str:
    """A Dynamics row id in its canonical form; refuses anything else before it reaches a URL."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise DynamicsError(FailureKind.INVALID_ID, operation) from None
