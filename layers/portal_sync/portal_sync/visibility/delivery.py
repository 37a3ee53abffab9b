"""The last step of the visibility flow (rules → outbox → delivery; docs/website-visibility.md):
one execution of the state machine per outbox row delivers the change to Dynamics.

The execution calls `apply`: one Dynamics PATCH per attempt, with the mentor's current desired
state (so deliveries converge); the first delivery of a connection then asks Dynamics who the
application user is (WhoAmI), so the consumer recognises that user's changes as our echoes. An
attempt that failed for a passing reason answers `retry` with the wait (RetryPolicy: jittered
exponential back-off, Dynamics' Retry-After when longer), which the state machine's Wait state
waits: a routine retry is a status, never a Lambda error (errors page on-call). When it gives
up it calls `record_failure`, which marks the sync failed, plans its redelivery and joins the
organisation's outage (outages.py: on-call is told once per organisation, by the schedule),
unless a newer change superseded this one meanwhile: that change's own execution delivers (or
fails in its turn).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from portal_sync.dataverse.connection import DynamicsError
from portal_sync.observability import logger, tracer
from portal_sync.visibility.ports import (
    ApplicationUsers,
    ContactWriter,
    DynamicsTarget,
    DynamicsTargets,
    MentorStatus,
    VisibilityRepository,
)

# How an attempt failed: the first two are retried (within the RetryPolicy), the last is not.
RETRYABLE_ERROR, THROTTLED_ERROR, REJECTED_ERROR = (
    "DynamicsUnavailable",
    "DynamicsThrottled",
    "DynamicsRejected",
)
ATTEMPT_ERRORS = (RETRYABLE_ERROR, THROTTLED_ERROR, REJECTED_ERROR)
# Step Functions' own cap on a Retry's delay, kept for the Wait state's back-off.
MAX_BACKOFF_SECONDS = 900.0
SLOW_DOWN = "Dynamics asked us to slow down; waiting before trying again"
ACTOR = "system:website-sync"
WAITING_FOR_CONNECTION = (
    "Waiting for a Dynamics connection: configure it in the integration settings, and the "
    "change is delivered then"
)
# After the state machine gave up: the first redelivery a minute later, then twice as long
# each time, up to hourly (a day-long outage is outlasted: the schedule never stops trying).
REDELIVERY_BASE_SECONDS = 60.0
REDELIVERY_MAX_SECONDS = 3600.0


def redelivery_delay(redeliveries: int) -> timedelta:
    """The wait before the next redelivery: growing, jittered (half to all of it), so that
    mentors that failed together in an outage do not all try again at once."""
    ceiling = min(REDELIVERY_BASE_SECONDS * 2 ** min(redeliveries, 12), REDELIVERY_MAX_SECONDS)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter


@dataclass(frozen=True)
class RetryPolicy:
    """How one execution retries: up to 1 + `max_retries` attempts, each failed one followed by
    a full-jitter exponential back-off (`interval_seconds` * 2^n, at most 15 minutes), or by
    Dynamics' Retry-After when that is longer. Locally a second, deployed the template's
    VisibilityMaxRetries and VisibilityRetryIntervalSeconds."""

    max_retries: int = 5
    interval_seconds: float = 30.0

    def wait_after(self, attempts: int, retry_after: float | None = None) -> int:
        ceiling = min(self.interval_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
        backoff = random.uniform(0, ceiling)  # noqa: S311 - jitter
        return max(1, math.ceil(max(backoff, retry_after or 0.0)))


@dataclass(frozen=True)
class ApplyOutcome:
    """What an attempt came to; `error` (one of ATTEMPT_ERRORS) when it failed, and the seconds
    to wait before the next attempt when it is `retry`."""

    status: str  # applied | superseded | waiting (for a connection) | retry | failed
    message: str
    error: str | None = None
    wait_seconds: int | None = None


@dataclass(frozen=True)
class ExecutionFailure:
    """What ended an execution, as the state machine caught it: the error's name, and its
    message when the task raised one."""

    error: str | None
    message: str | None = None


@dataclass(frozen=True)
class RecordedFailure:
    """A delivery that gave up, as recorded; `current` is false when a newer change of the
    mentor superseded it (its own execution delivers the mentor's state)."""

    message: str
    current: bool


def failure_message(failure: ExecutionFailure | None) -> str:
    """The administrators' words for what ended an execution: our own message when one of our
    attempts failed (it says what to fix), otherwise the name of what failed."""
    if failure is None:
        return "The change could not be delivered"
    if failure.error in ATTEMPT_ERRORS and failure.message:
        return failure.message
    return f"The change could not be delivered ({failure.error or 'unknown error'})"


class Delivery:
    def __init__(
        self,
        repo: VisibilityRepository,
        targets: DynamicsTargets | None,
        writer: ContactWriter | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        users: ApplicationUsers | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """`users`: who a connection acts as in Dynamics (WhoAmI), learned when not yet known."""
        self._repo = repo
        self._targets = targets
        self._writer = writer
        self._now = now
        self._users = users
        self._retry = retry or RetryPolicy()

    @tracer.capture_method
    def apply(self, change_id: UUID) -> ApplyOutcome:
        """One attempt to deliver a change; only the mentor's current change is delivered."""
        change = self._repo.change(change_id)
        status = (
            self._repo.lock_mentor(change.organization_id, change.profile_id) if change else None
        )
        if change is None or status is None or status.current_change_id != change.id:
            return ApplyOutcome("superseded", "A newer change of this mentor is being delivered")
        # After a 429, nothing goes to that Dynamics environment before its Retry-After,
        # whichever execution sends it (Dataverse's service protection).
        blocked = self._repo.blocked_until(change.organization_id)
        if blocked is not None and blocked > self._now():
            # Not an attempt: nothing was sent. Jittered, so that the executions the block
            # held do not all try again in the same second.
            wait = (blocked - self._now()).total_seconds()
            jitter = random.uniform(0, min(wait, 10.0))  # noqa: S311 - jitter
            return ApplyOutcome("retry", SLOW_DOWN, THROTTLED_ERROR, math.ceil(wait + jitter))
        target = self._targets.target(change.organization_id) if self._targets else None
        if target is None:
            # Not a failure to page anyone about (a new organisation has no connection yet):
            # the change waits, and the schedule delivers it once there is one.
            # Looked at again on the redeliveries' growing schedule, and only once the
            # organisation has a connection (a connection whose secret is missing would
            # otherwise start an execution per mentor every minute).
            status.sync_state, status.last_error = "pending", WAITING_FOR_CONNECTION
            status.next_attempt_at = self._now() + redelivery_delay(status.redeliveries)
            self._repo.save_mentor(status)
            self._repo.log(status, "waiting", WAITING_FOR_CONNECTION, ACTOR, change.id)
            return ApplyOutcome("waiting", WAITING_FOR_CONNECTION)
        if not status.contact_id:
            return self._attempt_failed(
                status,
                "The mentor has no Dynamics contact id, so the website cannot be updated",
                REJECTED_ERROR,
            )
        assert self._writer is not None, "a delivery needs the Dynamics writer"
        status.attempts += 1
        try:
            self._writer.update_contact(
                target.connection, status.contact_id, {target.visibility_column: status.desired}
            )
        except DynamicsError as exc:
            if exc.retry_after is not None:
                self._repo.block_until(
                    change.organization_id, self._now() + timedelta(seconds=exc.retry_after)
                )
                return self._attempt_failed(status, exc.message, THROTTLED_ERROR, exc.retry_after)
            return self._attempt_failed(
                status, exc.message, RETRYABLE_ERROR if exc.retryable else REJECTED_ERROR
            )
        self._learn_application_user(change.organization_id, target)
        status.applied = status.desired
        status.sync_state = "in_sync"
        status.last_synced_at = self._now()
        status.last_error = None
        status.next_attempt_at, status.redeliveries = None, 0
        self._repo.save_mentor(status)
        shown = "shown on" if status.desired else "hidden from"
        self._repo.log(status, "applied", f"Mentor {shown} the website", ACTOR, change.id)
        return ApplyOutcome("applied", f"Mentor {shown} the website")

    @tracer.capture_method
    def record_failure(self, change_id: UUID, failure: ExecutionFailure | None) -> RecordedFailure:
        """The execution gave up: the sync is failed, its redelivery planned, and the mentor
        joins the organisation's outage (one alert per outage, sent by the schedule).

        A superseded change (`current` false) is only logged: the newer change's own execution
        sends the mentor's current state, and fails in its turn if Dynamics is still down.
        """
        message = failure_message(failure)
        change = self._repo.change(change_id)
        status = (
            self._repo.lock_mentor(change.organization_id, change.profile_id) if change else None
        )
        if change is None or status is None:
            return RecordedFailure(message, current=False)  # the mentor is gone
        current = status.current_change_id == change.id
        if current:
            retry_at = self._now() + redelivery_delay(status.redeliveries)
            status.sync_state = "failed"
            status.next_attempt_at = retry_at
            status.last_error = (
                f"{message}. Tried again automatically from {retry_at:%Y-%m-%d %H:%M} UTC "
                "(then at growing intervals, up to hourly, until it succeeds); retry to try now"
            )
            self._repo.save_mentor(status)
            self._repo.join_outage(status.organization_id, status.profile_id, message)
            logged = status.last_error
        else:
            logged = f"{message} (superseded by a newer change, which is delivered instead)"
        self._repo.log(status, "failed", logged, ACTOR, change.id)
        return RecordedFailure(message, current)

    def _learn_application_user(self, organization_id: UUID, target: DynamicsTarget) -> None:
        """Asks WhoAmI once per connection, after its first write went through (so a wrong
        setting is told by the write, in its words). A failure is only logged: the next
        delivery asks again, and our writes' tag marks their echoes meanwhile; a Retry-After
        holds the organisation's next writes as a throttled write does."""
        if self._users is None or target.application_user_id is not None:
            return
        try:
            user_id = self._users.application_user_id(target.connection)
        except DynamicsError as exc:
            if exc.retry_after is not None:
                self._repo.block_until(
                    organization_id, self._now() + timedelta(seconds=exc.retry_after)
                )
            logger.warning(
                "Could not learn the Dynamics application user; asked again next time",
                extra={"failure": exc.kind.value, "status_code": exc.status_code},
            )
            return
        self._repo.learn_application_user(organization_id, target.connection, user_id)

    def _attempt_failed(
        self, status: MentorStatus, message: str, error: str, retry_after: float | None = None
    ) -> ApplyOutcome:
        """The attempt is logged; another follows after a wait while the policy allows one
        and retrying can help, otherwise the execution records the failure."""
        status.last_error = message
        self._repo.save_mentor(status)
        self._repo.log(status, "attempt_failed", message, ACTOR, status.current_change_id)
        if error != REJECTED_ERROR and status.attempts <= self._retry.max_retries:
            wait = self._retry.wait_after(status.attempts, retry_after)
            return ApplyOutcome("retry", message, error, wait)
        return ApplyOutcome("failed", message, error)
