"""Reads webhook source configurations from Secrets Manager, with a short cache.

Written over botocore rather than Powertools' SecretsProvider because the ingest must tell an
unknown source (401) from Secrets Manager being unreachable (503, so Dataverse retries), and
must bound what unknown source ids cost, so that they cannot flood Secrets Manager. Powertools
folds every failure into one GetParameterError and has no such bound.

Unknown ids: anyone can make up as many as they like, so nothing is kept per unknown id (a
negative cache per id grows with the flood and is bypassed by a new id each time). Instead
every lookup of an id not known to exist spends a token of one bucket shared by all of them
(adapters/rate_limiter.py): MISS_BURST at once, then one per refresh interval; with the bucket
empty an unknown id is answered as unknown without asking. A source created a moment ago is
thus seen on its very next webhook, except during a flood of unknown ids (then within a
refresh interval or so).
The alternative, a periodically refreshed list of the source secrets' names (ListSecrets),
would need the ingest to list every secret name of the account (ListSecrets cannot be limited
to a prefix by IAM) and would hide a new source until the next refresh.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from portal_sync.adapters.aws.secret_formats import read_source, source_secret_name
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.inbound.source_config import SourceConfig
from portal_sync.observability import logger
from portal_sync.unavailable import SourceStoreUnavailable


class SecretsClient(Protocol):
    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass
class _Entry:
    config: SourceConfig
    fetched_at: float


# Forced refreshes a source may spend at once: the first signature after a rotation always
# refreshes, even if the secret was read a moment ago.
REFRESH_BURST = 5
# Secrets Manager calls that lookups of ids not known to exist may spend at once, together.
MISS_BURST = 10
# The one key of the unknown ids' shared bucket (a source id cannot contain a space).
_UNKNOWN_IDS = "unknown ids"


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
        self._clock = clock
        # Only sources that exist are kept (their number, not the requests', bounds this).
        self._cache: dict[str, _Entry] = {}
        # One token back per refresh interval; a zero interval means no limit worth the name.
        rate = 1.0 / max(refresh_interval_seconds, 1e-9)
        self._refreshes = RateLimiter(rate, REFRESH_BURST, clock=clock)
        self._misses = RateLimiter(rate, MISS_BURST, clock=clock)
        self._misses_refused = False
        self._lock = threading.Lock()

    def get(self, source_id: str) -> SourceConfig | None:
        """The source's configuration, or None when no such source exists."""
        entry = self._cache.get(source_id)
        if entry is not None and self._clock() - entry.fetched_at < self._max_age:
            return entry.config
        if entry is None and not self._may_look_up_unknown(source_id):
            return None
        return self._fetch(source_id)

    def refresh(self, source_id: str) -> SourceConfig | None:
        """Asks Secrets Manager again (after a failed verification).

        A token bucket per source (REFRESH_BURST, one token back per refresh interval) makes a
        rotation visible on the very next webhook while a flood of bad signatures costs at most
        one Secrets Manager call per interval.
        """
        with self._lock:
            entry = self._cache.get(source_id)
        if entry is None:
            # Not known to exist: a lookup like any unknown id's.
            return self.get(source_id)
        if not self._refreshes.try_acquire(source_id):
            return entry.config
        return self._fetch(source_id)

    def forget(self, source_id: str) -> None:
        with self._lock:
            self._cache.pop(source_id, None)
        self._refreshes.forget(source_id)

    def _may_look_up_unknown(self, source_id: str) -> bool:
        if not _valid_source_id(source_id):
            return False
        allowed = self._misses.try_acquire(_UNKNOWN_IDS)
        with self._lock:
            first_refusal = not allowed and not self._misses_refused
            self._misses_refused = not allowed
        if first_refusal:
            logger.warning(
                "Many lookups of unknown webhook source ids: answering them as unknown "
                "without asking Secrets Manager until the flood eases"
            )
        return allowed

    def _fetch(self, source_id: str) -> SourceConfig | None:
        if not _valid_source_id(source_id):
            return None
        try:
            response = self._client.get_secret_value(
                SecretId=source_secret_name(self._prefix, source_id)
            )
            config: SourceConfig | None = read_source(source_id, response["SecretString"])
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
            if config is None:
                self._cache.pop(source_id, None)
            else:
                self._cache[source_id] = _Entry(config, self._clock())
        if config is None:
            self._refreshes.forget(source_id)
        return config


def _pending_deletion(exc: Exception) -> bool:
    """A secret deleted with a recovery window: its source is gone, Secrets Manager is not."""
    error = getattr(exc, "response", {}).get("Error", {})
    # AWS says "marked for deletion", moto "marked deleted".
    return error.get("Code") == "InvalidRequestException" and "marked" in error.get("Message", "")


def _valid_source_id(source_id: str) -> bool:
    # Secrets Manager names allow these characters; anything else cannot name a source.
    return 0 < len(source_id) <= 128 and all(c.isalnum() or c in "-_." for c in source_id)
