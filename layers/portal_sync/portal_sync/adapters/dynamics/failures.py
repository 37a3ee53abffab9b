"""What a failed Web API answer means: its kind, Dataverse's error code, the log line on-call
searches by, and the DynamicsError the callers get (a 429 also blocks the environment for its
Retry-After). Shared by the Web API calls and the change-tracking reads."""

from __future__ import annotations

import httpx

from portal_sync.adapters.dynamics.retry_after import parse_retry_after
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.observability import logger


def failure_of(
    response: httpx.Response,
    operation: Operation,
    limiter: RateLimiter,
    base_url: str,
    *,
    entity_set: str | None = None,
) -> DynamicsError:
    status = response.status_code
    retry_after = None
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        limiter.block_until(base_url, limiter.now() + retry_after)
    error = DynamicsError(
        kind_of(status),
        operation,
        status_code=status,
        retry_after=retry_after,
        entity_set=entity_set,
    )
    log_failure(error, response)
    return error


def log_failure(error: DynamicsError, response: httpx.Response) -> None:
    """What on-call needs to find the request at Microsoft: its status, Dataverse's error code
    and `x-ms-service-request-id`; never the error's text (it can echo row data)."""
    logger.warning(
        "Dynamics request failed",
        extra={
            "operation": error.operation.value,
            "failure": error.kind.value,
            "status_code": response.status_code,
            "dataverse_error_code": dataverse_error_code(response),
            "service_request_id": response.headers.get("x-ms-service-request-id"),
            "retryable": error.retryable,
        },
    )


def kind_of(status: int) -> FailureKind:
    """What a Web API status other than success and 401 means."""
    if status == 429:
        return FailureKind.THROTTLED
    if status == 404:
        return FailureKind.NOT_FOUND
    if status == 403:
        return FailureKind.FORBIDDEN
    if status == 412:
        return FailureKind.CONFLICT
    if status >= 500:
        return FailureKind.UNAVAILABLE
    if status >= 400:
        return FailureKind.REJECTED
    return FailureKind.UNEXPECTED  # 1xx/3xx: redirects are not followed; Dataverse's URL has none


def dataverse_error_code(response: httpx.Response) -> str | None:
    """The `error.code` of a Dataverse error body (may be empty); never its message."""
    try:
        error = response.json().get("error")
        code = error.get("code") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        return None
    return code[:32] if isinstance(code, str) else None
