"""A Dynamics environment the functions call (its Web API and credentials), and how a call to
it failed: what the logic that uses the Web API client sees of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from portal_sync.dataverse.failure import RETRYABLE_KINDS, FailureKind, Operation
from portal_sync.dataverse.failure_wording import worded

# The header an API key goes in: Azure API Management's subscription key header by default, the
# usual gateway in front of Dataverse (docs/website-visibility.md, "The Dynamics connection").
DEFAULT_API_KEY_HEADER = "Ocp-Apim-Subscription-Key"
# Dataverse's own hosts (public cloud, US government clouds, China): they accept only Entra
# bearer tokens, so an API key sent there is refused, and must not be sent at all.
DATAVERSE_HOST_SUFFIXES = ("dynamics.com", "microsoftdynamics.us", "appsplatform.us", "dynamics.cn")


@dataclass(frozen=True)
class DynamicsConnection:
    base_url: str
    auth_type: Literal["oauth_client_credentials", "api_key"]
    secret: str = field(repr=False)  # client secret or API key; never printed
    tenant_id: str | None = None
    client_id: str | None = None
    authority_url: str = "https://login.microsoftonline.com"  # the stand-in's URL locally
    api_key_header: str = DEFAULT_API_KEY_HEADER  # API-key mode: the gateway's header


def is_dataverse_host(base_url: str) -> bool:
    """True when `base_url` is Dataverse itself rather than a gateway in front of it."""
    try:
        host = (urlsplit(base_url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    return any(host == suffix or host.endswith("." + suffix) for suffix in DATAVERSE_HOST_SUFFIXES)


class DynamicsError(Exception):
    """A failed Dynamics call: its kind, the operation, and the facts the client collected.

    The client only picks the kind; whether it is worth retrying (dataverse/failure.py) and its
    `message` for administrators (dataverse/failure_wording.py, also `str(error)`) follow from
    it. `retry_after` is how long Dynamics asked us to wait, in seconds.
    """

    def __init__(
        self,
        kind: FailureKind,
        operation: Operation,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        timeout_seconds: float | None = None,
        error_name: str | None = None,
        entity_set: str | None = None,
        reason: str | None = None,
        auth_type: str | None = None,
        oauth_error: str | None = None,
    ) -> None:
        self.kind = kind
        self.operation = operation
        self.status_code = status_code
        self.retry_after = retry_after
        self.timeout_seconds = timeout_seconds
        self.error_name = error_name  # the transport error's class name, e.g. ConnectError
        self.entity_set = entity_set  # as named in the field mapping
        self.reason = reason  # why the base URL is not allowed (dataverse/base_url.py's words)
        self.auth_type = auth_type
        # Entra ID's OAuth `error` code of a refused sign-in (invalid_client, invalid_scope...):
        # documented and stable, unlike its description, which is never kept.
        self.oauth_error = oauth_error
        self.message = worded(self)
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS
