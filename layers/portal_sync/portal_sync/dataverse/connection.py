"""A Dynamics environment the functions call (its Web API and credentials), and how a call to
it failed: what the logic that uses the Web API client sees of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DynamicsConnection:
    base_url: str
    auth_type: Literal["oauth_client_credentials", "api_key"]
    secret: str = field(repr=False)  # client secret or API key; never printed
    tenant_id: str | None = None
    client_id: str | None = None
    authority_url: str = "https://login.microsoftonline.com"  # the stand-in's URL locally


class DynamicsError(Exception):
    """A failed Dynamics call. `str(error)` is meant for administrators."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
