"""A token bucket per key, with a per-key block: the one rate limiter of the functions.

Used by the Dataverse Web API client (one key per organisation's URL: it waits for a token, and
a 429 blocks the key until its Retry-After) and by the webhook source store (one key per
source for forced refreshes, one shared key for unknown source ids: it never waits, a call
without a token is simply not made).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# Absorbs float rounding, so that a wait never shrinks to nothing and a refilled token counts.
_EPSILON = 1e-9


@dataclass
class _Bucket:
    tokens: float
    updated_at: float
    blocked_until: float


class RateLimiter:
    """`rate_per_second` on average, at most `burst` at once, per key; shared by threads.

    A key's bucket starts full. `block_until` (after a 429) holds every request for the key
    until `moment`; no tokens accrue while blocked, so the block does not end in a burst.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be positive and burst at least 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        """The limiter's clock: the time base of `block_until`."""
        return self._clock()

    def acquire(self, key: str) -> None:
        """Takes a token for `key`, sleeping until one is there and the key is not blocked."""
        while True:
            wait = self._take_or_wait(key)
            if wait is None:
                return
            self._sleep(wait)

    def try_acquire(self, key: str) -> bool:
        """Takes a token for `key` if one is there now; never waits."""
        return self._take_or_wait(key) is None

    def block_until(self, key: str, moment: float) -> None:
        with self._lock:
            bucket = self._refilled(key, self._clock())
            bucket.blocked_until = max(bucket.blocked_until, moment)
            bucket.updated_at = max(bucket.updated_at, moment)

    def forget(self, key: str) -> None:
        """Drops the key's bucket (what it costs to keep is then the number of live keys)."""
        with self._lock:
            self._buckets.pop(key, None)

    def _take_or_wait(self, key: str) -> float | None:
        """None when a token was taken, else how long to wait for one."""
        with self._lock:
            now = self._clock()
            bucket = self._refilled(key, now)
            if now < bucket.blocked_until - _EPSILON:
                return bucket.blocked_until - now
            if bucket.tokens >= 1.0 - _EPSILON:
                bucket.tokens = max(0.0, bucket.tokens - 1.0)
                return None
            return (1.0 - bucket.tokens) / self._rate

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=self._burst, updated_at=now, blocked_until=now)
            self._buckets[key] = bucket
        elif now > bucket.updated_at:
            elapsed = now - bucket.updated_at
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated_at = now
        return bucket
