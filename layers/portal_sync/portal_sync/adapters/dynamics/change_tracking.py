"""Reads one page of a table through Dataverse change tracking: the ChangeReader of
reconciliation/ports.py (docs/inbound.md, "Import and reconciliation").

The first page of a table is `GET <set>?$select=...` with `Prefer: odata.track-changes,
odata.maxpagesize=N`; the pages after it, and the changes since a complete read, are at the
`@odata.nextLink` / `@odata.deltaLink` Dataverse returned, followed as they are. A link is only
followed on the connection's own Web API URL and table: an answer with a link pointing anywhere
else is unusable, and a stored link for another URL (the connection changed) is never requested
but read as expired (a full read follows); a response must not choose where our credentials go.

Service protection: every request takes a token of the shared rate limiter
(adapters/rate_limiter.py) keyed by the organisation's URL. A 429 blocks that key until its
`Retry-After` and is raised as kind THROTTLED with the wait, as is a key still blocked: the
engine waits (a Step Functions Wait state), not the Lambda. An expired delta link (400, code
0x80044352) is DeltaLinkExpired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import httpx

from portal_sync.adapters.dynamics.addresses import Destinations, Resolve
from portal_sync.adapters.dynamics.credentials import send_authorised
from portal_sync.adapters.dynamics.entra_tokens import EntraTokens
from portal_sync.adapters.dynamics.failures import (
    dataverse_error_code,
    failure_of,
)
from portal_sync.adapters.dynamics.transport import send
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.dataverse.annotations import FORMATTED_VALUE, LOOKUP_LOGICAL_NAME
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.reconciliation.ports import ChangePage, DeltaLinkExpired, NoDynamicsConnection
from portal_sync.visibility.ports import DynamicsTargets

API_PATH = "/api/data/v9.2"
# Dataverse's code for a delta token past its retention ("Version stamp associated with the
# client has expired").
VERSION_EXPIRED = "0x80044352"
# How long a request may wait here for the limiter; beyond it the caller is told to wait.
MAX_LOCAL_WAIT_SECONDS = 2.0
_OPERATION = Operation.READ_ROW  # worded as a read of the mapping's table
_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}
_ANNOTATIONS = f'odata.include-annotations="{FORMATTED_VALUE},{LOOKUP_LOGICAL_NAME}"'


class ChangeTrackingReader:
    """One per Lambda container (it keeps the token cache and the limiter)."""

    def __init__(
        self,
        targets: DynamicsTargets,
        http: httpx.Client,
        rate_limiter: RateLimiter,
        *,
        timeout_seconds: float = 30.0,
        allow_local: bool = False,
        resolve: Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._targets = targets
        self._http = http
        self._limiter = rate_limiter
        self._timeout = timeout_seconds
        self._tokens = EntraTokens(http, timeout_seconds=timeout_seconds, clock=clock)
        self._destinations = Destinations(allow_local=allow_local, resolve=resolve, clock=clock)
        self._clock = clock
        self._sleep = sleep

    def read_page(
        self,
        organization_id: UUID,
        entity_set: str,
        select: Sequence[str],
        link: str | None,
        page_size: int,
    ) -> ChangePage:
        target = self._targets.target(organization_id)
        if target is None:
            raise NoDynamicsConnection()
        connection = target.connection
        base_url = self._destinations.base_url(connection.base_url, _OPERATION)
        table_url = f"{base_url}{API_PATH}/{entity_set}"
        if link is None:
            url, params = table_url, {"$select": ",".join(select)}
        elif _on(link, table_url):
            url, params = link, None
        else:
            # A link stored for another URL (the connection changed since): never requested,
            # and useless here; the table is read again in full.
            raise DeltaLinkExpired()
        headers = {
            **_HEADERS,
            "Prefer": f"odata.track-changes,odata.maxpagesize={page_size},{_ANNOTATIONS}",
        }
        response = send_authorised(
            connection,
            base_url,
            _OPERATION,
            self._tokens,
            lambda auth: self._send(base_url, url, {**headers, **auth}, params),
            entity_set=entity_set,
        )
        if response.status_code != 200:
            raise self._failure(base_url, response, entity_set)
        return _page(response, table_url, entity_set)

    def _send(
        self, base_url: str, url: str, headers: dict[str, str], params: dict[str, str] | None
    ) -> httpx.Response:
        self._destinations.check_resolution(base_url, _OPERATION)
        deadline = self._clock() + MAX_LOCAL_WAIT_SECONDS
        while not self._limiter.try_acquire(base_url):
            if self._clock() >= deadline:
                # Still blocked by a 429 (or over the rate): the engine waits, not this Lambda.
                raise DynamicsError(
                    FailureKind.THROTTLED, _OPERATION, retry_after=MAX_LOCAL_WAIT_SECONDS
                )
            self._sleep(0.05)
        return send(
            self._http,
            _OPERATION,
            "GET",
            url,
            timeout_seconds=self._timeout,
            headers=headers,
            params=params,
        )

    def _failure(self, base_url: str, response: httpx.Response, entity_set: str) -> Exception:
        code = dataverse_error_code(response)
        if response.status_code == 400 and code is not None and code.lower() == VERSION_EXPIRED:
            return DeltaLinkExpired()
        return failure_of(response, _OPERATION, self._limiter, base_url, entity_set=entity_set)


def _on(link: str, table_url: str) -> bool:
    """`link` is a query of the connection's own table URL (scheme, host, port and path)."""
    return link.startswith(table_url + "?") and "#" not in link and "@" not in link.split("?")[0]


def _page(response: httpx.Response, table_url: str, entity_set: str) -> ChangePage:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    values = body.get("value") if isinstance(body, dict) else None
    if not isinstance(values, list):
        raise DynamicsError(
            FailureKind.UNUSABLE_ANSWER, _OPERATION, status_code=200, entity_set=entity_set
        )
    rows: list[dict[str, Any]] = []
    deleted: list[str] = []
    for item in values:
        if not isinstance(item, dict):
            continue
        context = item.get("@odata.context")
        if isinstance(context, str) and context.endswith("$deletedEntity"):
            if isinstance(item.get("id"), str):
                deleted.append(item["id"])
            continue
        rows.append(item)
    links: dict[str, str | None] = {}
    for key in ("@odata.nextLink", "@odata.deltaLink"):
        value = body.get(key)
        if value is not None and not (isinstance(value, str) and _on(value, table_url)):
            # A link elsewhere is never followed (SSRF): the answer is unusable as a whole.
            raise DynamicsError(
                FailureKind.UNUSABLE_ANSWER, _OPERATION, status_code=200, entity_set=entity_set
            )
        links[key] = value
    return ChangePage(rows, deleted, links["@odata.nextLink"], links["@odata.deltaLink"])
