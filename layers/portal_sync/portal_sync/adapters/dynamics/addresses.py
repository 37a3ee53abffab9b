"""Where the Web API client may connect (docs/security.md): only to a base URL that
dataverse/base_url.py allows, and only while its host name resolves to public addresses.

The name rule alone is not enough: a public name can be made to point at loopback, a private
network or a metadata service, and stored credentials must never reach those. So the host is
looked up before each connection; what it resolved to is trusted for a minute.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from portal_sync.dataverse.base_url import (
    LOCAL_HOSTS,
    BaseUrlNotAllowed,
    checked_base_url,
    is_public_address,
)
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation

# How long what a host name resolves to is trusted before it is looked up again.
RESOLUTION_TTL_SECONDS = 60.0

Resolve = Callable[[str], Sequence[str]]


class Destinations:
    """The base URL check and the resolution check of one Web API client."""

    def __init__(
        self,
        *,
        allow_local: bool = False,
        resolve: Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`allow_local`: plain http to this machine is allowed (`make run`'s stand-in).
        `resolve`: a host name's addresses (the system resolver by default)."""
        self._allow_local = allow_local
        self._resolve = resolve or system_addresses
        self._clock = clock
        self._checked_until: dict[str, float] = {}  # public host -> checked until (monotonic)
        self._lock = threading.Lock()

    def base_url(self, base_url: str, operation: Operation) -> str:
        """The base URL in its canonical form; DynamicsError when it may not be called."""
        try:
            return checked_base_url(base_url, allow_local=self._allow_local)
        except BaseUrlNotAllowed as exc:
            raise DynamicsError(FailureKind.URL_NOT_ALLOWED, operation, reason=str(exc)) from None

    def check_resolution(self, base_url: str, operation: Operation) -> None:
        """Refuses a host whose name resolves to a loopback, private or other non-public
        address; `base_url` has passed `base_url()`."""
        host = urlsplit(base_url).hostname or ""
        now = self._clock()
        with self._lock:
            if self._checked_until.get(host, 0.0) > now:
                return
        if self._allow_local and host in LOCAL_HOSTS:
            return
        try:
            addresses = self._resolve(host)
        except OSError:
            raise DynamicsError(FailureKind.UNRESOLVED, operation) from None
        if not addresses or not all(is_public_address(address) for address in addresses):
            raise DynamicsError(FailureKind.HOST_NOT_PUBLIC, operation)
        with self._lock:
            self._checked_until[host] = now + RESOLUTION_TTL_SECONDS


def system_addresses(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)]
