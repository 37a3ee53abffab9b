"""How two changes of one row in one batch merge: the rules a batch applied together follows
in memory (inbound/batch_state.py) where the one-at-a-time path lets PostgreSQL's upserts merge
them (adapters/postgres/sync_clauses.py, sync_log.py).

Each rule leaves the row as those upserts would after both writes, so that a batch applied
together and the same batch applied one message at a time (the fallback) store the same rows
(docs/inbound.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from portal_sync.inbound.events import CourseDetails, MemberDetails
from portal_sync.inbound.sync_log import SyncLogEntry

# The member details an event may carry. Not sent (None): kept; sent as "": cleared at the source.
PROFILE_FIELDS = ("first_name", "last_name", "email", "phone")

T = TypeVar("T")


def later(current: datetime | None, new: datetime | None) -> datetime | None:
    """PostgreSQL's greatest(): the later of two times, a missing one ignored."""
    if current is None or new is None:
        return current or new
    return max(current, new)


def coalesce(new: T | None, current: T | None) -> T | None:
    """PostgreSQL's coalesce(): the new value unless it is missing ("" is a value)."""
    return new if new is not None else current


def merge_details(into: dict[str, str | None], details: MemberDetails) -> None:
    """The fields sent replace what is there (including "", which clears the field when
    written); the fields not sent keep their earlier value."""
    for name in PROFILE_FIELDS:
        value = getattr(details, name)
        if value is not None:
            into[name] = value


def merge_log(first: SyncLogEntry, then: SyncLogEntry) -> SyncLogEntry:
    """A second log entry for the same event: the later one says what happened, what it leaves
    out is kept, and the attempts add up (the log's upsert)."""
    return replace(
        first,
        event_type=then.event_type,
        status=then.status,
        message=then.message,
        source_message=coalesce(then.source_message, first.source_message),
        source_table=coalesce(then.source_table, first.source_table),
        profile_id=coalesce(then.profile_id, first.profile_id),
        source_modified_at=coalesce(then.source_modified_at, first.source_modified_at),
        attempts=first.attempts + then.attempts,
    )


@dataclass
class Profile:
    """A member's profile as the batch holds it."""

    id: UUID
    details_modified_at: datetime | None
    environment: str | None = None
    new: bool = False  # created by this batch (inserted when the batch is written)
    # The details to write (see PROFILE_FIELDS).
    details: dict[str, str | None] = field(default_factory=dict)
    details_changed: bool = False


@dataclass
class Membership:
    """A membership as the batch holds it (`changed`: to be written)."""

    role: str
    status: str
    source_modified_at: datetime | None
    dynamics_row_id: str | None = None
    changed: bool = False
    # As stored before the batch (None: no membership there yet).
    stored_status: str | None = None

    @classmethod
    def stored(cls, role: str, status: str, source_modified_at: datetime | None) -> Membership:
        return cls(role, status, source_modified_at, stored_status=status)


@dataclass
class Enrollment:
    """An enrolment as the batch holds it."""

    status: str
    source_modified_at: datetime | None
    course_name: str | None = None
    dynamics_row_id: str | None = None


def membership_after(
    current: Membership | None,
    *,
    role: str,
    status: str,
    source_modified_at: datetime | None,
    dynamics_row_id: str | None,
) -> Membership:
    """A membership after a change (`current` None: there was none). Role and status are the
    change's; the time only moves forward; a row id, once known, stays."""
    return Membership(
        role,
        status,
        later(current.source_modified_at if current else None, source_modified_at),
        coalesce(dynamics_row_id, current.dynamics_row_id if current else None),
        changed=True,
        stored_status=current.stored_status if current else None,
    )


def enrollment_after(
    current: Enrollment | None,
    course: CourseDetails,
    *,
    status: str,
    source_modified_at: datetime | None,
    dynamics_row_id: str | None,
) -> Enrollment:
    """An enrolment after a change (`current` None: there was none). The status is the
    change's; the time only moves forward; a course name and a row id, once known, stay."""
    return Enrollment(
        status,
        later(current.source_modified_at if current else None, source_modified_at),
        coalesce(course.name, current.course_name if current else None),
        coalesce(dynamics_row_id, current.dynamics_row_id if current else None),
    )
