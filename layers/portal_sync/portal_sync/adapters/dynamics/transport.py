"""One HTTP request to Dynamics or Entra ID, with a transport failure (no answer at all) turned
into the DynamicsError kind it is; what an answer means is up to the caller."""

from __future__ import annotations

from typing import Any

import httpx

from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation


def send(
    http: httpx.Client,
    operation: Operation,
    method: str,
    url: str,
    *,
    timeout_seconds: float,
    **options: Any,
) -> httpx.Response:
    """`options` go to httpx (headers, json, data, params). Raises DynamicsError."""
    try:
        return http.request(method, url, timeout=timeout_seconds, **options)
    except httpx.TimeoutException:
        raise DynamicsError(
            FailureKind.TIMEOUT, operation, timeout_seconds=timeout_seconds
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise DynamicsError(FailureKind.URL_INVALID, operation) from None
    except httpx.HTTPError as exc:
        # Only the class name: the exception's text can carry the URL and its query.
        raise DynamicsError(
            FailureKind.UNREACHABLE, operation, error_name=type(exc).__name__
        ) from None
