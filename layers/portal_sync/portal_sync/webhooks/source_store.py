"""Reads webhook source configurations from Secrets Manager, with a short cache.

Written over botocore rather than Powertools' SecretsProvider because the ingest must tell an
unknown source (401) from Secrets Manager being unreachable (503, so Dataverse retries), and
must cache "not found" too, so unknown source ids cannot flood Secrets Manager. Powertools
folds every failure into one GetParameterError and never caches a miss.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from portal_sync.webhooks.source_config import SourceConfig


class SourceStoreUnavailable(Exception):
    """The secret store could not be asked; the request should be answered 503."""


class SecretsClient(Protocol):
    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass
class _Entry:
    config: SourceConfig | None
    fetched_at: float


@dataclass
class _RefreshBudget:
    tokens: float
    updated_at: float


# Forced refreshes a source may spend at once: the first signature after a rotation always
# refreshes, even if the secret was read a moment ago.
REFRESH_BURST = 5


def secret_name(prefix: str, source_id: str) -> str:
    return f"{prefix}{source_id}"


class SourceStore:
    def __init__(
        self,
        client: SecretsClient,
        prefix: str,
        max_age_seconds: float,
        refresh_interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._max_age = max_age_seconds
        self._refresh_interval = refresh_interval_seconds
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._refresh_budgets: dict[str, _RefreshBudget] = {}
        self._lock = threading.Lock()

    def get(self, source_id: str) -> SourceConfig | None:
        """The source's configuration, or None when no such source exists."""
        entry = self._cache.get(source_id)
        if entry is not None and self._clock() - entry.fetched_at < self._max_age:
            return entry.config
        return self._fetch(source_id)

    def refresh(self, source_id: str) -> SourceConfig | None:
        """Asks Secrets Manager again (after a failed verification).

        A token bucket per source (REFRESH_BURST, one token back per refresh interval) makes a
        rotation visible on the very next webhook while a flood of bad signatures costs at most
        one Secrets Manager call per interval.
        """
        now = self._clock()
        with self._lock:
            budget = self._refresh_budgets.setdefault(source_id, _RefreshBudget(REFRESH_BURST, now))
            budget.tokens = min(
                REFRESH_BURST,
                budget.tokens + (now - budget.updated_at) / max(self._refresh_interval, 1e-9),
            )
            budget.updated_at = now
            allowed = budget.tokens >= 1
            if allowed:
                budget.tokens -= 1
        if not allowed:
            entry = self._cache.get(source_id)
            return entry.config if entry is not None else None
        return self._fetch(source_id)

    def forget(self, source_id: str) -> None:
        with self._lock:
            self._cache.pop(source_id, None)

    def _fetch(self, source_id: str) -> SourceConfig | None:
        if not _valid_source_id(source_id):
            return None
        try:
            response = self._client.get_secret_value(SecretId=secret_name(self._prefix, source_id))
            config: SourceConfig | None = SourceConfig.model_validate(
                {**json.loads(response["SecretString"]), "source_id": source_id}
            )
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException" or _pending_deletion(exc):
                config = None
            elif isinstance(exc, ValidationError | json.JSONDecodeError | KeyError):
                # A malformed secret cannot verify anything: treat it as not configured.
                config = None
            else:
                raise SourceStoreUnavailable("the webhook source store is unavailable") from exc
        with self._lock:
            self._cache[source_id] = _Entry(config, self._clock())
        return config


def _pending_deletion(exc: Exception) -> bool:
    """A secret deleted with a recovery window: its source is gone, Secrets Manager is not."""
    error = getattr(exc, "response", {}).get("Error", {})
    # AWS says "marked for deletion", moto "marked deleted".
    return error.get("Code") == "InvalidRequestException" and "marked" in error.get("Message", "")


def _valid_source_id(source_id: str) -> bool:
    # Secrets Manager names allow these characters; anything else cannot name a source.
    return 0 < len(source_id) <= 128 and all(c.isalnum() or c in "-_." for c in source_id)
