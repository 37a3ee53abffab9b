"""Mentor website visibility, as coordinators and the system use it (docs/website-visibility.md).

What a coordinator or the system changes is worked out by the rules (rules.py), recorded with
its outbox row (outbox.py) and delivered to Dynamics by one Step Functions execution per row
(delivery.py). VisibilityService is the one door to the three; it decides who may change which
mentor. Each call is meant to run in one transaction (the entry point's).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from portal_sync.access.authority import Access, Forbidden
from portal_sync.observability import tracer
from portal_sync.visibility.delivery import (
    ApplyOutcome,
    Delivery,
    ExecutionFailure,
    RecordedFailure,
    RetryPolicy,
)
from portal_sync.visibility.outbox import Outbox
from portal_sync.visibility.ports import (
    ApplicationUsers,
    AuthorityOf,
    ContactWriter,
    DynamicsTargets,
    ExecutionStarter,
    HistoryPage,
    MentorStatus,
    VisibilityRepository,
)
from portal_sync.visibility.rules import reasons_restore_is_refused

if TYPE_CHECKING:
    # Annotations only: importing it imports PyJWT and cryptography (~40 ms of every cold
    # start), which the queue consumer, a user of this module, never needs.
    from portal_sync.access.caller import Caller

SWEEP_ACTOR = "system:visibility-sweep"
# Who reconsiders after a write the database trigger saw (the app's, through the Data API).
DATABASE_ACTOR = "system:data-change"
REDELIVERY_ACTOR = "system:redelivery"


class MentorNotFound(Exception):
    """No such peer mentor in the caller's organisations (404)."""


class VisibilityConflict(Exception):
    """The request contradicts the mentor's state (409)."""


class InvalidHistoryCursor(Exception):
    """A history cursor that no page gave (422)."""


class VisibilityService:
    def __init__(
        self,
        repo: VisibilityRepository,
        *,
        authority: AuthorityOf | None = None,
        targets: DynamicsTargets | None = None,
        writer: ContactWriter | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        users: ApplicationUsers | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """`authority` is needed by what coordinators do; `targets`, `writer`, `users` (who
        the connection acts as in Dynamics) and `retry` (an execution's attempts) by `apply`."""
        self._repo = repo
        self._authority = authority
        self._today = today
        self._now = now
        self._outbox = Outbox(repo, today)
        self._delivery = Delivery(repo, targets, writer, now, users, retry)

    # -- what coordinators do -------------------------------------------------------------------

    @tracer.capture_method
    def status(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        return self._mentor(caller, mentor_id, org)

    @tracer.capture_method
    def history(
        self, caller: Caller, mentor_id: UUID, org: UUID | None, limit: int, cursor: str | None
    ) -> HistoryPage:
        """The mentor's visibility log, newest first, for whoever may see its status."""
        status = self._mentor(caller, mentor_id, org)
        try:
            return self._repo.history(status.organization_id, mentor_id, limit, cursor)
        except ValueError:
            raise InvalidHistoryCursor("The cursor is not one this history gave") from None

    @tracer.capture_method
    def sync_visibility(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        return self._by_coordinator(caller, status, "sync_requested", force=True)

    @tracer.capture_method
    def hide(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        status.hidden_manually = True
        return self._by_coordinator(caller, status, "hidden")

    @tracer.capture_method
    def restore(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        blocking = reasons_restore_is_refused(status.facts(), self._today())
        if blocking:
            raise VisibilityConflict(
                "The mentor cannot be shown on the website: " + "; ".join(blocking)
            )
        status.hidden_manually = False
        return self._by_coordinator(caller, status, "restored")

    @tracer.capture_method
    def pause(
        self, caller: Caller, mentor_id: UUID, org: UUID | None, paused: bool
    ) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        status.paused = paused
        return self._by_coordinator(caller, status, "paused" if paused else "resumed")

    @tracer.capture_method
    def certify(
        self, caller: Caller, mentor_id: UUID, org: UUID | None, certified_until: date | None
    ) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        status.certified_until = certified_until
        return self._by_coordinator(caller, status, "certificate_updated")

    @tracer.capture_method
    def retry(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        status = self._mentor(caller, mentor_id, org)
        if status.sync_state == "in_sync":
            raise VisibilityConflict("The website already shows the desired state")
        return self._by_coordinator(caller, status, "retry", force=True)

    @tracer.capture_method
    def retry_failed(self, caller: Caller, organization_id: UUID, limit: int = 1000) -> int:
        """Every failed mentor of the organisation delivered again now (after an outage, rather
        than one `retry` per mentor); returns how many."""
        assert self._authority is not None, "what coordinators do needs the access rules"
        access = self._authority(caller.user_id).access(organization_id)
        if access is None:
            raise MentorNotFound("No such organisation among yours")
        if access < Access.COORDINATOR:
            raise Forbidden("Only coordinators and administrators may retry deliveries")
        retried = 0
        for profile_id in self._repo.failed_mentors(organization_id, limit):
            status = self._repo.lock_mentor(organization_id, profile_id)
            if status is not None and status.sync_state == "failed":
                self._by_coordinator(caller, status, "retry", force=True)
                retried += 1
        return retried

    # -- what the system does -------------------------------------------------------------------

    def reconsider(self, organization_id: UUID, profile_id: UUID, actor: str) -> None:
        """Something the desired state depends on changed (membership, certificate date, a
        pause written through the Data API): a change is recorded when the desired state
        changed; nothing is written when it did not."""
        status = self._repo.lock_mentor(organization_id, profile_id)
        if status is not None:
            self._outbox.record(status, "reconsidered", actor, quiet=True)

    @tracer.capture_method
    def reconsider_requested(self, limit: int = 500) -> int:
        """The mentors whose facts a write changed (the database trigger's requests), oldest
        first; returns how many were reconsidered."""
        mentors = self._repo.take_reconsiderations(limit)
        for organization_id, profile_id in mentors:
            self.reconsider(organization_id, profile_id, DATABASE_ACTOR)
        return len(mentors)

    @tracer.capture_method
    def redeliver_due(self, limit: int = 200) -> int:
        """Delivers again the mentors whose planned retry has come (a change the state machine
        gave up on, or one that waited for a connection): a new change of their current state,
        started by the next dispatch; returns how many."""
        mentors = self._repo.due_redeliveries(self._now(), limit)
        for organization_id, profile_id in mentors:
            status = self._repo.lock_mentor(organization_id, profile_id)
            if status is None or status.sync_state == "in_sync":
                continue
            status.redeliveries += 1
            self._outbox.record(status, "redelivery", REDELIVERY_ACTOR, force=True)
        return len(mentors)

    @tracer.capture_method
    def sweep(self, limit: int = 500) -> int:
        """The reconciling sweep: desired against applied for every mentor, in both directions
        (a certificate that expired today, a delivery that was lost), organisations taking
        turns, oldest first; writes nothing for a mentor in step. Returns how many it found."""
        found = self._repo.mentors_out_of_step(self._today(), limit)
        for mentor in found:
            if mentor.reason == "facts":
                self.reconsider(mentor.organization_id, mentor.profile_id, SWEEP_ACTOR)
                continue
            status = self._repo.lock_mentor(mentor.organization_id, mentor.profile_id)
            if status is None or (
                status.sync_state == "in_sync" and status.applied == status.desired
            ):
                continue  # delivered meanwhile
            self._outbox.record(status, "reconciled", SWEEP_ACTOR, force=True)
        return len(found)

    def dispatch(self, starter: ExecutionStarter, limit: int = 50, older_than: float = 0) -> int:
        """Starts the delivery of changes not started yet; returns how many were started."""
        return self._outbox.dispatch(starter, limit, older_than)

    def apply(self, change_id: UUID) -> ApplyOutcome:
        """One attempt of an execution: delivers the change unless a newer one superseded it."""
        return self._delivery.apply(change_id)

    def record_failure(self, change_id: UUID, failure: ExecutionFailure | None) -> RecordedFailure:
        """The execution gave up: the sync is failed and redelivered later, unless superseded;
        the organisation's outage tells on-call (outages.py)."""
        return self._delivery.record_failure(change_id, failure)

    # -- internals --------------------------------------------------------------------------------

    def _by_coordinator(
        self, caller: Caller, status: MentorStatus, action: str, *, force: bool = False
    ) -> MentorStatus:
        """A coordinator's change: recorded (outbox, mentor log) and in the organisation's
        audit log (who, what, which mentor; no personal data beyond the id)."""
        recorded = self._outbox.record(status, action, caller.actor, force=force)
        self._repo.audit(
            status.organization_id,
            caller.actor,
            f"website_visibility.{action}",
            {"mentor_id": str(status.profile_id)},
        )
        return recorded

    def _mentor(self, caller: Caller, mentor_id: UUID, org: UUID | None) -> MentorStatus:
        """The mentor's status, locked, in the one organisation the caller coordinates."""
        assert self._authority is not None, "what coordinators do needs the access rules"
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
