"""The one rate limiter: the Web API client's pacing per organisation (it waits) and the
webhook source store's refresh budget (it never waits)."""

from __future__ import annotations

import threading
import time

import pytest
from portal_sync.adapters.rate_limiter import RateLimiter


class FakeClock:
    """Monotonic time that only moves when something sleeps (or a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_limiter_allows_a_burst_then_the_rate_and_holds_a_blocked_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, 2, clock=clock, sleep=clock.sleep)
    start = clock.now
    times = []
    for _ in range(6):
        limiter.acquire("org")
        times.append(round(clock.now - start, 6))
    assert times == [0, 0, 0.2, 0.4, 0.6, 0.8]

    limiter.block_until("org", clock.now + 3)
    limiter.acquire("org")
    assert clock.now - start >= 3.8
    # No tokens accrued while blocked: the block does not end in a burst.
    released = clock.now
    limiter.acquire("org")
    assert clock.now > released


def test_a_blocked_organisation_does_not_hold_back_another() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 1, clock=clock, sleep=clock.sleep)
    limiter.block_until("https://throttled.crm4.dynamics.com", clock.now + 60)

    limiter.acquire("https://other.crm4.dynamics.com")

    assert clock.slept == []


def test_try_acquire_spends_the_burst_then_one_per_interval_without_waiting() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 5, clock=clock, sleep=clock.sleep)

    assert [limiter.try_acquire("src") for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 3
    assert [limiter.try_acquire("src") for _ in range(5)] == [True] * 3 + [False] * 2
    clock.now += 1000  # a long quiet spell refills the burst, not more
    assert sum(limiter.try_acquire("src") for _ in range(10)) == 5
    assert clock.slept == []


def test_try_acquire_on_a_blocked_key_is_refused_until_the_block_ends() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 3, clock=clock, sleep=clock.sleep)
    limiter.block_until("org", clock.now + 2)

    assert not limiter.try_acquire("org")
    clock.now += 2
    assert limiter.try_acquire("org")


def test_a_forgotten_key_starts_again_with_a_full_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 2, clock=clock)
    assert limiter.try_acquire("src") and limiter.try_acquire("src")
    assert not limiter.try_acquire("src")

    limiter.forget("src")

    assert limiter.try_acquire("src") and limiter.try_acquire("src")


def test_threads_sharing_a_key_never_exceed_the_burst_and_rate() -> None:
    limiter = RateLimiter(50, 5)
    taken: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            limiter.acquire("org")
            with lock:
                taken.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(taken) == 30
    # 5 at once, then 25 more at 50 a second: at least half a second (less scheduling slack).
    assert max(taken) - started >= 0.45


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_limiter_that_would_never_let_a_request_through_is_refused(
    rate: float, burst: int
) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)
