"""Mentor website visibility: state changes with their outbox rows, delivery, failure, sweep.

A change of the desired state is recorded in the same transaction as the status change (the
outbox row); `dispatch` starts one Step Functions execution per row, named after it, so a
retried start never delivers twice and a failed start is picked up by the next dispatch. The
execution calls `apply` (one Dynamics PATCH per attempt; Step Functions retries with back-off
and jitter) and, when it gives up, `record_failure` before alerting on-call (unless a newer
change superseded the failed one meanwhile: its own execution delivers or alerts).

Only the newest change of a mentor is delivered: an older execution finds it was superseded.
`apply` always sends the mentor's current desired state, so deliveries converge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from portal_sync.access.authority import Access, Authority, Forbidden
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.visibility.ports import (
    ContactWriter,
    DynamicsTargets,
    ExecutionStarter,
    MentorStatus,
    VisibilityRepository,
)
from portal_sync.visibility.rules import desired_visibility, reasons_hidden

if TYPE_CHECKING:
    # Annotations only: importing it imports PyJWT and cryptography (~40 ms of every cold
    # start), which the queue consumer, a user of this module, never needs.
    from portal_sync.access.caller import Caller

# Step Functions retries these (the state machine's Retry names them); anything else is final.
RETRYABLE_ERROR, THROTTLED_ERROR, REJECTED_ERROR = (
    "DynamicsUnavailable",
    "DynamicsThrottled",
    "DynamicsRejected",
)
# An attempt that would start within this long of Dynamics' Retry-After waits for it inline.
MAX_INLINE_WAIT_SECONDS = 20.0


class MentorNotFound(Exception):
    pass


# The Lambda errors the state machine sees (their class names are the Step Functions errors).
class DynamicsUnavailable(Exception):
    pass


class DynamicsThrottled(Exception):
    pass


class DynamicsRejected(Exception):
    pass


TASK_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (DynamicsUnavailable, DynamicsThrottled, DynamicsRejected)
}


class VisibilityConflict(Exception):
    """The request contradicts the mentor's state (409)."""


@dataclass(frozen=True)
class ApplyOutcome:
    """What an attempt came to; `error` names the Step Functions error to raise after commit."""

    status: str  # applied | superseded | failed
    message: str
    error: str | None = None

    def as_task_result(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message}


class VisibilityService:
    def __init__(
        self,
        repo: VisibilityRepository,
        *,
        authority: Callable[[UUID], Authority] | None = None,
        targets: DynamicsTargets | None = None,
        writer: ContactWriter | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._repo = repo
        self._authority = authority
        self._targets = targets
        self._writer = writer
        self._today = today
        self._now = now
        self._sleep = sleep

    # -- what coordinators do -------------------------------------------------------------------

    def status(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        return self._mentor(caller, mentor_id, org)

    def sync_visibility(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        return self._update(status, "sync_requested", caller.actor, force=True)

    def hide(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        status.hidden_manually = True
        return self._update(status, "hidden", caller.actor)

    def restore(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        blocking = [
            reason
            for reason in reasons_hidden(status.facts(), self._today())
            if reason != "a coordinator hid the mentor"
        ]
        if blocking:
            raise VisibilityConflict(
                "The mentor cannot be shown on the website: " + "; ".join(blocking)
            )
        status.hidden_manually = False
        return self._update(status, "restored", caller.actor)

    def pause(
        self, caller: Caller, mentor_id: UUID, org: UUID | None, paused: bool
    ) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        status.paused = paused
        return self._update(status, "paused" if paused else "resumed", caller.actor)

    def certify(
        self, caller: Caller, mentor_id: UUID, org: UUID | None, certified_until: date | None
    ) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        status.certified_until = certified_until
        return self._update(status, "certificate_updated", caller.actor)

    def retry(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        if status.sync_state == "in_sync":
            raise VisibilityConflict("The website already shows the desired state")
        return self._update(status, "retry", caller.actor, force=True)

    # -- what the system does -------------------------------------------------------------------

    def reconsider(self, organization_id: UUID, profile_id: UUID, actor: str) -> None:
        """Something the desired state depends on changed (membership, certificate date)."""
        status = self._repo.lock_mentor(organization_id, profile_id)
        if status is not None:
            self._update(status, "reconsidered", actor)

    def sweep(self, limit: int = 500) -> int:
        """Certificates that expired (and renewed ones): the scheduled reconsideration."""
        mentors = self._repo.mentors_to_reconsider(self._today(), limit)
        for organization_id, profile_id in mentors:
            self.reconsider(organization_id, profile_id, "system:certificate-sweep")
        return len(mentors)

    def dispatch(self, starter: ExecutionStarter, limit: int = 50, older_than: float = 0) -> int:
        """Starts the delivery of changes not started yet; returns how many were started."""
        started = 0
        for change in self._repo.undispatched_changes(limit, older_than):
            try:
                arn = starter.start(change)
            except Exception as exc:  # any failure leaves the row for the next dispatch
                self._repo.mark_dispatched(change.id, None, type(exc).__name__)
                continue
            self._repo.mark_dispatched(change.id, arn, None)
            started += 1
        return started

    def apply(self, change_id: UUID) -> ApplyOutcome:
        change = self._repo.change(change_id)
        status = (
            self._repo.lock_mentor(change.organization_id, change.profile_id) if change else None
        )
        if change is None or status is None or status.current_change_id != change.id:
            return ApplyOutcome("superseded", "A newer change of this mentor is being delivered")
        blocked = self._repo.blocked_until(change.organization_id)
        if blocked is not None and blocked > self._now():
            wait = (blocked - self._now()).total_seconds()
            if wait > MAX_INLINE_WAIT_SECONDS:
                return ApplyOutcome(
                    "failed",
                    "Dynamics asked us to slow down; waiting before trying again",
                    THROTTLED_ERROR,
                )
            self._sleep(wait)
        target = self._targets.target(change.organization_id) if self._targets else None
        if target is None:
            return self._attempt_failed(
                status,
                "No Dynamics connection is configured: add it in the integration settings",
                REJECTED_ERROR,
            )
        if not status.contact_id:
            return self._attempt_failed(
                status,
                "The mentor has no Dynamics contact id, so the website cannot be updated",
                REJECTED_ERROR,
            )
        assert self._writer is not None
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
                return self._attempt_failed(status, exc.message, THROTTLED_ERROR)
            return self._attempt_failed(
                status, exc.message, RETRYABLE_ERROR if exc.retryable else REJECTED_ERROR
            )
        status.applied = status.desired
        status.sync_state = "in_sync"
        status.last_synced_at = self._now()
        status.last_error = None
        self._repo.save_mentor(status)
        shown = "shown on" if status.desired else "hidden from"
        self._repo.log(
            status, "applied", f"Mentor {shown} the website", "system:website-sync", change.id
        )
        return ApplyOutcome("applied", f"Mentor {shown} the website")

    def record_failure(self, change_id: UUID, message: str) -> dict[str, Any]:
        """The execution gave up: mark the sync failed and word the on-call alert.

        `current` is false when a newer change of the mentor superseded this one: that change's
        own execution sends the mentor's current state (and alerts if it fails too), so the
        state machine records this failure without paging on-call.
        """
        change = self._repo.change(change_id)
        status = (
            self._repo.lock_mentor(change.organization_id, change.profile_id) if change else None
        )
        if change is None or status is None:
            # Nothing tells whether a newer change exists: page rather than stay silent.
            return {
                "subject": "Website visibility sync failed",
                "message": message,
                "current": True,
            }
        current = status.current_change_id == change.id
        if current:
            status.sync_state = "failed"
            status.last_error = message
            self._repo.save_mentor(status)
            logged = message
        else:
            logged = f"{message} (superseded by a newer change; on-call not alerted)"
        self._repo.log(status, "failed", logged, "system:website-sync", change.id)
        wanted = "show" if change.desired else "hide"
        return {
            "subject": "portal sync: website visibility change failed",
            "message": (
                f"Could not {wanted} peer mentor {change.profile_id} (organisation "
                f"{change.organization_id}) on the public website after {status.attempts} "
                f"attempt(s): {message}. Retry from the coordinator view or "
                f"POST /functions/v1/website-sync/{change.profile_id}/retry once the cause is fixed."
            ),
            "current": current,
        }

    # -- internals --------------------------------------------------------------------------------

    def _mentor(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        assert self._authority is not None
        organizations = [org] if org else self._repo.mentor_organizations(mentor_id)
        authority = self._authority(caller.user_id)
        # Only organisations the caller coordinates count: others must not learn of the mentor.
        visible = [
            o
            for o in organizations
            if (access := authority.access(o)) is not None and access >= Access.COORDINATOR
        ]
        if not visible:
            if any(authority.access(o) is not None for o in organizations):
                raise Forbidden("Only coordinators and administrators may change a mentor")
            raise MentorNotFound("No such peer mentor in your organisations")
        if len(visible) > 1:
            raise VisibilityConflict(
                "The mentor belongs to several of your organisations: add ?organization_id="
            )
        status = self._repo.lock_mentor(visible[0], mentor_id)
        if status is None:
            raise MentorNotFound("No such peer mentor in your organisations")
        return status

    def _update(
        self, status: MentorStatus, action: str, actor: str, force: bool = False
    ) -> MentorStatus:
        reasons = reasons_hidden(status.facts(), self._today())
        desired = desired_visibility(status.facts(), self._today())
        changed = desired != status.desired
        status.desired = desired
        change_id = None
        if (
            changed
            or force
            or (status.sync_state == "pending" and status.current_change_id is None)
        ):
            change_id = self._repo.add_change(
                status.organization_id, status.profile_id, desired, action
            )
            status.current_change_id = change_id
            status.sync_state = "pending"
            status.attempts = 0
        self._repo.save_mentor(status)
        wording = "visible" if desired else "hidden (" + "; ".join(reasons) + ")"
        self._repo.log(status, action, f"Desired state: {wording}", actor, change_id)
        return status

    def _attempt_failed(self, status: MentorStatus, message: str, error: str) -> ApplyOutcome:
        status.last_error = message
        self._repo.save_mentor(status)
        self._repo.log(
            status, "attempt_failed", message, "system:website-sync", status.current_change_id
        )
        return ApplyOutcome("failed", message, error)
