"""A Web API request sent with a connection's credentials: an Entra bearer token (one retry with a
fresh token after a 401) or, for an API gateway in front of Dataverse, its API key. Shared by the
Web API calls and the change-tracking reads."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from portal_sync.adapters.dynamics.entra_tokens import EntraTokens
from portal_sync.adapters.dynamics.failures import log_failure
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError, is_dataverse_host
from portal_sync.dataverse.failure import FailureKind, Operation

# Sends the request with the given authentication headers added.
Send = Callable[[dict[str, str]], httpx.Response]


def send_authorised(
    connection: DynamicsConnection,
    base_url: str,
    operation: Operation,
    tokens: EntraTokens,
    send_with: Send,
    *,
    entity_set: str | None = None,
) -> httpx.Response:
    """The answer of `send_with`; a 401 is raised here (CREDENTIALS), after one retry with a
    fresh token."""
    if connection.auth_type == "api_key":
        # Dataverse itself has no API keys: this mode is for an API-management front (e.g. Azure
        # API Management) that holds the OAuth credentials and checks this key. Never sent to
        # Dataverse itself, which would only refuse it (and log it).
        if is_dataverse_host(base_url):
            raise DynamicsError(
                FailureKind.API_KEY_TO_DATAVERSE, operation, auth_type=connection.auth_type
            )
        response = send_with({connection.api_key_header: connection.secret})
    elif connection.auth_type == "oauth_client_credentials":
        response = send_with(_bearer(tokens.token(connection, base_url)))
        if response.status_code == 401:
            # The token may have been revoked or expired early: one fresh token, one retry.
            tokens.drop(connection, base_url)
            response = send_with(_bearer(tokens.token(connection, base_url)))
    else:
        raise DynamicsError(FailureKind.UNKNOWN_AUTH_TYPE, operation)
    if response.status_code == 401:
        error = DynamicsError(
            FailureKind.CREDENTIALS,
            operation,
            status_code=401,
            auth_type=connection.auth_type,
            entity_set=entity_set,
        )
        log_failure(error, response)
        raise error
    return response


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
