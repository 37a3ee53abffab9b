"""The admin API's WebhookSender (admin/ports.py) over httpx: sends the secret test's
delivery and reports what came back."""

from __future__ import annotations

from portal_sync.admin.ports import DeliveryAttempt
from portal_sync.observability import tracer


class HttpxWebhookSender:
    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._timeout = timeout_seconds

    @tracer.capture_method
    def post(self, url: str, headers: dict[str, str], body: bytes) -> DeliveryAttempt:
        # Imported here: httpx (with anyio, httpcore, h11, idna, certifi) is ~40 ms of a cold
        # start, and only the secret test sends anything.
        import httpx

        try:
            response = httpx.post(url, headers=headers, content=body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            # The kind of failure only (timeout, refused...): never a body or a header.
            return DeliveryAttempt(status_code=None, error=type(exc).__name__)
        return DeliveryAttempt(status_code=response.status_code, error=None)
