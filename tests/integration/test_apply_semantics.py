"""Applying events against real PostgreSQL through the repository (docs/inbound.md: ordering, and events that arrive before what they change)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Database
from portal_sync.adapters.postgres.sync_repository import PostgresSyncRepository
from portal_sync.inbound.apply import apply_event
from portal_sync.inbound.events import CourseDetails, EventType, MemberDetails, SyncEvent
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.sync_log import LogStatus

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def org(db: Database) -> uuid.UUID:
    org_id = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Test chapter')", (org_id,))
    return org_id


def apply(db: Database, org: uuid.UUID, event: SyncEvent, environment: str | None = None) -> Any:
    """Applies as the organisation's events are; `environment` defaults to its own."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(db.url, row_factory=dict_row) as conn, conn.transaction():
        return apply_event(
            PostgresSyncRepository(conn), org, event, environment or member_environment(org, None)
        )


def event(kind: EventType, contact: str, minutes: int = 0, **extra: Any) -> SyncEvent:
    return SyncEvent(
        type=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        member=MemberDetails(dynamics_contact_id=contact, first_name="Ola", last_name="Nordmann"),
        **extra,
    )


def membership(db: Database, contact: str) -> dict[str, Any] | None:
    return db.one(
        "select p.is_active, p.first_name, p.email, m.* from profiles p"
        " join organization_memberships m on m.profile_id = p.id where p.dynamics_contact_id = %s",
        contact,
    )


def test_created_then_repeated_is_stable(db: Database, org: uuid.UUID) -> None:
    contact = str(uuid.uuid4())
    first = apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact))
    before = membership(db, contact)
    second = apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact))
    after = membership(db, contact)

    assert first.status is LogStatus.SUCCESS and "created" in first.message
    assert second.status is LogStatus.SUCCESS
    assert {k: v for k, v in after.items() if k not in ("updated_at", "last_synced_at")} == {
        k: v for k, v in before.items() if k not in ("updated_at", "last_synced_at")
    }
    assert db.one("select count(*) as n from profiles")["n"] == 1


def test_deactivation_of_unknown_member_records_them_inactive(db: Database, org: uuid.UUID) -> None:
    """Dropping it would let the creation, when it arrives after its own deactivation, leave an
    active member; recorded, it makes that older creation stale."""
    contact = str(uuid.uuid4())
    result = apply(db, org, event(EventType.MEMBERSHIP_DEACTIVATED, contact, 5, role="mentor"))
    late_creation = apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact, 0))

    assert result.status is LogStatus.SUCCESS and "inactive" in result.message
    assert late_creation.status is LogStatus.SKIPPED and "Stale" in late_creation.message
    row = membership(db, contact)
    assert (row["status"], row["role"], row["is_active"]) == ("inactive", "mentor", False)


def test_deactivated_then_reactivated(db: Database, org: uuid.UUID) -> None:
    contact = str(uuid.uuid4())
    apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact))
    apply(db, org, event(EventType.MEMBERSHIP_DEACTIVATED, contact, 1))
    assert membership(db, contact)["status"] == "inactive"
    assert membership(db, contact)["is_active"] is False

    apply(db, org, event(EventType.MEMBERSHIP_REACTIVATED, contact, 2))
    assert membership(db, contact)["status"] == "active"
    assert membership(db, contact)["is_active"] is True


def test_member_stays_active_while_active_in_another_organisation(
    db: Database, org: uuid.UUID
) -> None:
    other = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Other')", (other,))
    contact = str(uuid.uuid4())
    # Both organisations on one Dynamics environment: they share its members.
    shared = "7d0e6b52-1111-4c4c-9d9d-000000000001"
    apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact), shared)
    apply(db, other, event(EventType.MEMBERSHIP_CREATED, contact), shared)
    apply(db, org, event(EventType.MEMBERSHIP_DEACTIVATED, contact, 1), shared)

    profile = db.one("select is_active from profiles where dynamics_contact_id = %s", contact)
    assert profile["is_active"] is True


def test_stale_event_changes_nothing(db: Database, org: uuid.UUID) -> None:
    contact = str(uuid.uuid4())
    apply(db, org, event(EventType.MEMBERSHIP_ROLE_UPDATED, contact, 10, role="coordinator"))
    result = apply(db, org, event(EventType.MEMBERSHIP_DEACTIVATED, contact, 5))

    assert result.status is LogStatus.SKIPPED
    row = membership(db, contact)
    assert (row["status"], row["role"]) == ("active", "coordinator")
    assert row["source_modified_at"] == T0 + timedelta(minutes=10)


def test_fields_not_sent_are_kept_and_cleared_fields_are_cleared(
    db: Database, org: uuid.UUID
) -> None:
    contact = str(uuid.uuid4())
    created = event(EventType.MEMBERSHIP_CREATED, contact)
    created.member.email = "ola@example.org"
    apply(db, org, created)

    update = SyncEvent(
        type=EventType.MEMBER_UPDATED,
        occurred_at=T0 + timedelta(minutes=1),
        member=MemberDetails(dynamics_contact_id=contact, first_name="Kari", email=""),
    )
    apply(db, org, update)

    row = membership(db, contact)
    assert row["first_name"] == "Kari"
    assert row["email"] is None


def test_course_enrolment_and_its_own_staleness(db: Database, org: uuid.UUID) -> None:
    contact = str(uuid.uuid4())
    course = CourseDetails(dynamics_course_id="course-1", name="Likeperson basic")
    enrolled = apply(db, org, event(EventType.COURSE_ENROLLED, contact, 5, course=course))
    stale = apply(db, org, event(EventType.COURSE_UNENROLLED, contact, 1, course=course))
    unenrolled = apply(db, org, event(EventType.COURSE_UNENROLLED, contact, 6, course=course))

    assert enrolled.status is LogStatus.SUCCESS and "created" in enrolled.message
    assert stale.status is LogStatus.SKIPPED
    assert unenrolled.status is LogStatus.SUCCESS
    row = db.one("select * from course_enrollments")
    assert (row["status"], row["course_name"]) == ("unenrolled", "Likeperson basic")


def test_guid_contact_ids_match_whatever_their_case(db: Database, org: uuid.UUID) -> None:
    contact = str(uuid.uuid4())
    apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact.upper()))
    apply(db, org, event(EventType.MEMBERSHIP_ROLE_UPDATED, contact, 1, role="coordinator"))
    assert db.one("select count(*) as n from profiles")["n"] == 1
    assert membership(db, contact)["role"] == "coordinator"


def test_contact_edits_and_membership_changes_keep_their_own_order(
    db: Database, org: uuid.UUID
) -> None:
    """Dynamics stamps the contact and the membership row separately: a contact edit at 10:05
    must not make a role change stamped 10:03 (delivered later) look stale, and vice versa."""
    contact = str(uuid.uuid4())
    apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact, role="member"))
    edit = SyncEvent(
        type=EventType.MEMBER_UPDATED,
        occurred_at=T0 + timedelta(minutes=5),
        member=MemberDetails(dynamics_contact_id=contact, email="ola@example.org"),
    )
    assert apply(db, org, edit).status is LogStatus.SUCCESS

    late_role = apply(
        db, org, event(EventType.MEMBERSHIP_ROLE_UPDATED, contact, 3, role="peer_mentor")
    )

    assert late_role.status is LogStatus.SUCCESS
    row = membership(db, contact)
    assert (row["role"], row["email"]) == ("peer_mentor", "ola@example.org")


def test_older_contact_details_are_skipped_as_stale(db: Database, org: uuid.UUID) -> None:
    contact = str(uuid.uuid4())
    apply(db, org, event(EventType.MEMBERSHIP_CREATED, contact))
    newer = MemberDetails(dynamics_contact_id=contact, email="new@example.org")
    older = MemberDetails(dynamics_contact_id=contact, email="old@example.org")
    apply(
        db,
        org,
        SyncEvent(
            type=EventType.MEMBER_UPDATED, occurred_at=T0 + timedelta(minutes=9), member=newer
        ),
    )

    result = apply(
        db,
        org,
        SyncEvent(
            type=EventType.MEMBER_UPDATED, occurred_at=T0 + timedelta(minutes=4), member=older
        ),
    )

    assert result.status is LogStatus.SKIPPED and "Stale" in result.message
    assert membership(db, contact)["email"] == "new@example.org"


def test_details_of_a_contact_without_membership_add_them_to_the_organisation(
    db: Database, org: uuid.UUID
) -> None:
    """A contact change is the first we hear of a member: they join with the default role, and
    the membership keeps no source time, so their real membership event is never 'stale'."""
    contact = str(uuid.uuid4())
    edit = SyncEvent(
        type=EventType.MEMBER_UPDATED,
        occurred_at=T0 + timedelta(minutes=30),
        member=MemberDetails(dynamics_contact_id=contact, first_name="Kari"),
    )
    assert "created" in apply(db, org, edit).message

    result = apply(
        db, org, event(EventType.MEMBERSHIP_ROLE_UPDATED, contact, 1, role="coordinator")
    )

    assert result.status is LogStatus.SUCCESS
    assert membership(db, contact)["role"] == "coordinator"
