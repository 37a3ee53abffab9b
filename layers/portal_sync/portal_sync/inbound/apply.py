"""The semantics of applying one membership or course event (docs/inbound.md).

Order: an event older than the newest change already applied (the source's `modifiedon` /
`occurred_at`) is skipped as stale, so the result does not depend on delivery order. Membership
events compare with the membership's timestamp; course events with the enrolment's own; contact
details with the details' own (three Dynamics rows, three clocks).

Every event creates what it needs when it arrives first: webhooks overtake each other, and a
deactivation or unenrolment that found nothing to end and was dropped would be undone by the
earlier creation or enrolment arriving after it. So a deactivation of an unknown member records
them with an inactive membership, and an unenrolment records an `unenrolled` row; the earlier
event is then stale. A membership created on behalf of a course or contact event carries no
time, so the member's real membership event, whenever it happened, still applies.

Repetition is handled one level up (the sync log remembers every event id).
Messages are for administrators: no personal data, no driver errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from portal_sync.inbound.events import EventType, SyncEvent
from portal_sync.inbound.identity import ANOTHER_ENVIRONMENT
from portal_sync.inbound.ports import MemberState, SyncRepository
from portal_sync.inbound.sync_log import LogStatus

DEFAULT_ROLE = "member"
_COURSE_EVENTS = (EventType.COURSE_ENROLLED, EventType.COURSE_UNENROLLED)


@dataclass(frozen=True)
class Applied:
    status: LogStatus
    message: str
    profile_id: UUID | None = None


def apply_event(
    repo: SyncRepository, organization_id: UUID, event: SyncEvent, environment: str
) -> Applied:
    """Applies the organisation's event; `environment` is the organisation's Dynamics
    environment (sync/identity.py), the only one whose members it may write."""
    member = repo.lock_member(organization_id, event.member.dynamics_contact_id)
    created_profile = False
    if member is None:
        # A course event's contact details are there to create the member, not a change of
        # them: without a time, the member's own events set them whatever their order.
        details_at = None if event.type in _COURSE_EVENTS else event.occurred_at
        profile_id = repo.create_profile(event.member, details_at, environment)
        if profile_id is None:
            # Another consumer created this member a moment ago: continue with their row.
            member = repo.lock_member(organization_id, event.member.dynamics_contact_id)
            assert member is not None
        else:
            member = MemberState(profile_id, None, None, None, details_at, environment)
            created_profile = True
    if member.environment is not None and member.environment != environment:
        # Nothing is written, and the log does not point at another organisation's person.
        return Applied(LogStatus.ERROR, ANOTHER_ENVIRONMENT)

    if event.type in _COURSE_EVENTS:
        return _apply_course(repo, organization_id, event, member, created_profile)

    if event.type is EventType.MEMBER_UPDATED:
        return _apply_details(repo, organization_id, event, member, created_profile)

    if member.source_modified_at is not None and event.occurred_at < member.source_modified_at:
        return Applied(
            LogStatus.SKIPPED,
            f"Stale: a newer change (from {member.source_modified_at.isoformat()}) "
            "has already been applied to this member",
            member.profile_id,
        )

    if not created_profile and _details_are_newer(event, member):
        repo.update_profile(member.profile_id, event.member, event.occurred_at)
    had_membership = member.membership_status is not None
    role = event.role or member.role or DEFAULT_ROLE
    status = member.membership_status or "active"
    match event.type:
        case EventType.MEMBERSHIP_CREATED:
            status = "active"
            if not had_membership:
                message = f"Membership created with role '{role}'"
            elif member.role != role:
                message = (
                    f"Membership confirmed active; role changed from '{member.role}' to '{role}'"
                )
            else:
                message = f"Membership confirmed active with role '{role}'"
        case EventType.MEMBERSHIP_ROLE_UPDATED:
            message = (
                f"Role changed from '{member.role}' to '{role}'"
                if had_membership and member.role != role
                else f"Role is '{role}' (unchanged)"
                if had_membership
                else f"Member was not known yet: created with role '{role}'"
            )
        case EventType.MEMBERSHIP_DEACTIVATED:
            message = (
                "Membership deactivated; the member can no longer sign in to the app"
                if had_membership and status == "active"
                else "Membership was already inactive"
                if had_membership
                else f"Member was not known yet: recorded with an inactive membership "
                f"(role '{role}')"
            )
            status = "inactive"
        case EventType.MEMBERSHIP_REACTIVATED:
            message = (
                "Membership reactivated"
                if had_membership
                else f"Member was not known yet: created with role '{role}'"
            )
            status = "active"
        case _:  # pragma: no cover - course and detail events are handled above
            raise AssertionError(event.type)

    repo.upsert_membership(
        organization_id,
        member.profile_id,
        role=role,
        status=status,
        source_modified_at=event.occurred_at,
        dynamics_row_id=event.dynamics_row_id,
    )
    return Applied(LogStatus.SUCCESS, message, member.profile_id)


def _details_are_newer(event: SyncEvent, member: MemberState) -> bool:
    return member.details_modified_at is None or event.occurred_at >= member.details_modified_at


def _apply_details(
    repo: SyncRepository,
    organization_id: UUID,
    event: SyncEvent,
    member: MemberState,
    created_profile: bool,
) -> Applied:
    """A change to the member's own details: ordered by the details' own time, and leaving the
    membership's role, state and time alone (they have their own table and clock in Dynamics)."""
    if not created_profile:
        if not _details_are_newer(event, member):
            assert member.details_modified_at is not None
            return Applied(
                LogStatus.SKIPPED,
                f"Stale: newer member details (from {member.details_modified_at.isoformat()}) "
                "have already been applied",
                member.profile_id,
            )
        repo.update_profile(member.profile_id, event.member, event.occurred_at)
    if member.membership_status is not None:
        return Applied(LogStatus.SUCCESS, "Member details updated", member.profile_id)
    repo.upsert_membership(
        organization_id,
        member.profile_id,
        role=DEFAULT_ROLE,
        status="active",
        source_modified_at=None,
        dynamics_row_id=None,
    )
    return Applied(
        LogStatus.SUCCESS,
        f"Member was not known yet: created with role '{DEFAULT_ROLE}'"
        if created_profile
        else f"Member details updated; added to the organisation with role '{DEFAULT_ROLE}'",
        member.profile_id,
    )


def _apply_course(
    repo: SyncRepository,
    organization_id: UUID,
    event: SyncEvent,
    member: MemberState,
    created_profile: bool,
) -> Applied:
    course = event.course
    if course is None:
        return Applied(LogStatus.ERROR, "Course event without a course", member.profile_id)
    if member.membership_status is None:
        # Without a time: the membership's own event (created earlier or later) still applies.
        repo.upsert_membership(
            organization_id,
            member.profile_id,
            role=event.role or DEFAULT_ROLE,
            status="active",
            source_modified_at=None,
            dynamics_row_id=None,
        )
    enrolled = event.type is EventType.COURSE_ENROLLED
    current = repo.lock_enrollment(organization_id, member.profile_id, course.dynamics_course_id)
    if current is None and not enrolled and not created_profile:
        # Recorded all the same: the enrolment may still arrive, after its own unenrolment.
        repo.upsert_enrollment(
            organization_id,
            member.profile_id,
            course,
            status="unenrolled",
            source_modified_at=event.occurred_at,
            dynamics_row_id=event.dynamics_row_id,
        )
        return Applied(
            LogStatus.SKIPPED,
            "Member was not enrolled on this course; nothing to undo",
            member.profile_id,
        )
    if (
        current is not None
        and current.source_modified_at is not None
        and event.occurred_at < current.source_modified_at
    ):
        return Applied(
            LogStatus.SKIPPED,
            f"Stale: a newer change (from {current.source_modified_at.isoformat()}) "
            "has already been applied to this enrolment",
            member.profile_id,
        )
    repo.upsert_enrollment(
        organization_id,
        member.profile_id,
        course,
        status="enrolled" if enrolled else "unenrolled",
        source_modified_at=event.occurred_at,
        dynamics_row_id=event.dynamics_row_id,
    )
    prefix = "Member was not known yet: created and " if created_profile else "Member "
    return Applied(
        LogStatus.SUCCESS,
        prefix + ("enrolled on the course" if enrolled else "unenrolled from the course"),
        member.profile_id,
    )
