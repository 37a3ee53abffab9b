"""The rules of a batch applied together, without a database (portal_sync/inbound/batch_state.py).

Two changes of one row in one SQS batch meet in memory before the batch is written: each rule
must leave the row as the one-at-a-time upserts would after both writes (docs/inbound.md), and a
row another consumer wrote meanwhile must send the batch back to one message at a time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from portal_sync.inbound.batch_merge import later, merge_log
from portal_sync.inbound.batch_state import (
    BatchConflict,
    Claims,
    KnownReceipt,
    LogEntries,
    Members,
)
from portal_sync.inbound.events import CourseDetails, EventType, MemberDetails, SyncEvent
from portal_sync.inbound.ports import DeliveryClaim, EnrollmentState, MemberState
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ORG = UUID("00000000-0000-4000-8000-000000000001")
CONTACT = "c0ffee00-0000-4000-8000-000000000001"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def details(**fields: str | None) -> MemberDetails:
    return MemberDetails(dynamics_contact_id=CONTACT, **fields)


def stored_member(
    members: Members,
    *,
    status: str | None = "active",
    role: str | None = "member",
    membership_at: datetime | None = T0,
    details_at: datetime | None = T0,
) -> UUID:
    """A member as the batch read them from the database; returns the profile id."""
    profile_id = uuid.uuid4()
    members.stored_member(
        ORG if status is not None else None,
        CONTACT,
        MemberState(profile_id, status, role, membership_at, details_at, "env"),
    )
    return profile_id


def receipt(delivery_id: str | None = "d-1", **changes: Any) -> Receipt:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "source_id": "source",
        "organization_id": ORG,
        "delivery_id": delivery_id,
        "outcome": Outcome.ACCEPTED,
        "received_at": T0,
        **changes,
    }
    return Receipt(**fields)


def log_entry(**changes: Any) -> SyncLogEntry:
    fields: dict[str, Any] = {
        "organization_id": ORG,
        "event_id": "e-1",
        "event_type": "membership.created",
        "status": LogStatus.SUCCESS,
        "message": "Membership created with role 'member'",
        "received_at": T0,
        **changes,
    }
    return SyncLogEntry(**fields)


# -- times -------------------------------------------------------------------------------------


def test_the_later_of_two_times_wins_whichever_comes_first() -> None:
    assert later(at(5), at(1)) == at(5)
    assert later(at(1), at(5)) == at(5)


def test_a_missing_time_is_ignored_as_greatest_ignores_null() -> None:
    assert later(None, at(1)) == at(1)
    assert later(at(1), None) == at(1)
    assert later(None, None) is None


# -- profiles ----------------------------------------------------------------------------------


def test_a_second_change_of_details_keeps_what_it_does_not_send() -> None:
    members = Members()
    profile_id = stored_member(members)
    members.update_profile(profile_id, details(first_name="Kari", email="kari@example.org"), at(1))
    members.update_profile(profile_id, details(first_name="Ola"), at(2))

    [profile] = members.changed_profiles()
    assert profile.details == {"first_name": "Ola", "email": "kari@example.org"}
    assert profile.details_modified_at == at(2)


def test_a_field_cleared_at_the_source_stays_cleared_after_a_later_change_without_it() -> None:
    """ "" is a value (it clears the field when written), unlike a field not sent."""
    members = Members()
    profile_id = stored_member(members)
    members.update_profile(profile_id, details(phone=""), at(1))
    members.update_profile(profile_id, details(first_name="Ola"), at(2))

    [profile] = members.changed_profiles()
    assert profile.details == {"phone": "", "first_name": "Ola"}


def test_details_with_no_field_sent_change_nothing_not_even_the_time() -> None:
    members = Members()
    profile_id = stored_member(members, details_at=T0)
    members.update_profile(profile_id, details(), at(9))

    assert members.changed_profiles() == []
    assert members.member(ORG, CONTACT) == MemberState(
        profile_id, "active", "member", T0, T0, "env"
    )


def test_the_details_time_does_not_move_back() -> None:
    members = Members()
    profile_id = stored_member(members, details_at=at(5))
    members.update_profile(profile_id, details(first_name="Ola"), at(1))

    state = members.member(ORG, CONTACT)
    assert state is not None and state.details_modified_at == at(5)


def test_a_profile_created_and_changed_in_one_batch_is_inserted_with_both_changes() -> None:
    members = Members()
    profile_id = members.create_profile(details(first_name="Kari", last_name="N"), at(1), "env")
    assert profile_id is not None
    members.update_profile(profile_id, details(first_name="Ola"), at(2))

    [(contact, profile)] = members.new_profiles()
    assert contact == CONTACT and profile.id == profile_id
    assert profile.details == {"first_name": "Ola", "last_name": "N"}
    assert profile.details_modified_at == at(2)
    assert members.changed_profiles() == []  # no separate update of a row not written yet


def test_a_contact_that_has_a_profile_gets_no_second_one() -> None:
    members = Members()
    first = members.create_profile(details(first_name="Kari"), T0, "env")

    assert first is not None
    assert members.create_profile(details(first_name="Ola"), T0, "env") is None
    assert len(members.new_profiles()) == 1


# -- memberships -------------------------------------------------------------------------------


def test_a_second_membership_change_takes_its_role_and_status_and_keeps_the_later_time() -> None:
    members = Members()
    profile_id = stored_member(members)
    members.upsert_membership(
        ORG,
        profile_id,
        role="mentor",
        status="inactive",
        source_modified_at=at(5),
        dynamics_row_id="row-1",
    )
    members.upsert_membership(
        ORG,
        profile_id,
        role="coordinator",
        status="active",
        source_modified_at=None,
        dynamics_row_id=None,
    )

    [(key, membership)] = members.changed_memberships()
    assert key == (ORG, profile_id)
    assert (membership.role, membership.status) == ("coordinator", "active")
    assert membership.source_modified_at == at(5)  # a change without a time keeps it
    assert membership.dynamics_row_id == "row-1"  # a row id, once known, stays


def test_a_membership_not_changed_is_not_written() -> None:
    members = Members()
    stored_member(members)

    assert members.changed_memberships() == []


def test_is_active_is_checked_where_a_stored_membership_changed_status() -> None:
    members = Members()
    profile_id = stored_member(members, status="active")
    members.upsert_membership(
        ORG,
        profile_id,
        role="member",
        status="inactive",
        source_modified_at=at(1),
        dynamics_row_id=None,
    )

    assert members.activity_to_check() == [profile_id]


def test_is_active_is_not_checked_where_the_status_ends_as_stored() -> None:
    """Deactivated and reactivated in the same batch: the stored status stands."""
    members = Members()
    profile_id = stored_member(members, status="active")
    for minutes, status in ((1, "inactive"), (2, "active")):
        members.upsert_membership(
            ORG,
            profile_id,
            role="mentor",
            status=status,
            source_modified_at=at(minutes),
            dynamics_row_id=None,
        )

    assert len(members.changed_memberships()) == 1  # the role changed: written
    assert members.activity_to_check() == []


def test_a_new_member_is_active_by_default_so_only_an_inactive_first_membership_is_checked() -> (
    None
):
    members = Members()
    active = members.create_profile(details(), T0, "env")
    inactive = members.create_profile(
        MemberDetails(dynamics_contact_id="c0ffee00-0000-4000-8000-000000000002"), T0, "env"
    )
    assert active is not None and inactive is not None
    for profile_id, status in ((active, "active"), (inactive, "inactive")):
        members.upsert_membership(
            ORG,
            profile_id,
            role="member",
            status=status,
            source_modified_at=T0,
            dynamics_row_id=None,
        )

    assert members.activity_to_check() == [inactive]


def test_a_stored_member_without_a_membership_in_this_organisation_gets_checked() -> None:
    members = Members()
    profile_id = stored_member(members, status=None, role=None, membership_at=None)
    members.upsert_membership(
        ORG,
        profile_id,
        role="member",
        status="active",
        source_modified_at=T0,
        dynamics_row_id=None,
    )

    assert members.activity_to_check() == [profile_id]


# -- enrolments --------------------------------------------------------------------------------


def test_a_second_enrolment_change_keeps_the_course_name_row_id_and_later_time() -> None:
    members = Members()
    profile_id = stored_member(members)
    key = (ORG, profile_id, "course-1")
    members.upsert_enrollment(
        key,
        CourseDetails(dynamics_course_id="course-1", name="First aid"),
        status="enrolled",
        source_modified_at=at(5),
        dynamics_row_id="row-9",
    )
    members.upsert_enrollment(
        key,
        CourseDetails(dynamics_course_id="course-1"),
        status="unenrolled",
        source_modified_at=at(2),
        dynamics_row_id=None,
    )

    [(written_key, enrollment)] = members.changed_enrollments()
    assert written_key == key
    assert enrollment.status == "unenrolled"
    assert enrollment.source_modified_at == at(5)
    assert (enrollment.course_name, enrollment.dynamics_row_id) == ("First aid", "row-9")
    assert members.enrollment(key) == EnrollmentState("unenrolled", at(5))


def test_an_enrolment_is_read_from_the_database_unless_the_member_is_new() -> None:
    members = Members()
    new_profile = members.create_profile(details(), T0, "env")
    assert new_profile is not None
    stored_profile = uuid.uuid4()

    assert members.needs_enrollment_read((ORG, new_profile, "course-1")) is False
    assert members.enrollment((ORG, new_profile, "course-1")) is None
    assert members.needs_enrollment_read((ORG, stored_profile, "course-1")) is True


# -- reading members ---------------------------------------------------------------------------


def event(contact: str, *, row_id: str | None = None, course: str | None = None) -> SyncEvent:
    return SyncEvent(
        type=EventType.COURSE_ENROLLED if course else EventType.MEMBERSHIP_CREATED,
        occurred_at=T0,
        member=MemberDetails(dynamics_contact_id=contact),
        course=CourseDetails(dynamics_course_id=course) if course else None,
        dynamics_row_id=row_id,
    )


def test_the_expected_members_are_locked_in_one_order_whatever_the_batch_order() -> None:
    """Two consumers locking the same members in the same order cannot deadlock."""
    members = Members()
    for contact in ("c-3", "c-1", "c-3", "c-2"):
        members.expect(ORG, event(contact))

    expected = members.take_expected()

    assert expected is not None
    assert expected.contacts == ["c-1", "c-2", "c-3"]
    assert members.take_expected() is None  # taken once


def test_an_expected_member_not_found_is_known_absent_without_a_second_read() -> None:
    members = Members()
    members.expect(ORG, event(CONTACT))
    members.take_expected()  # the read found nothing

    assert members.needs_member_read(ORG, CONTACT) is False
    assert members.member(ORG, CONTACT) is None


def test_a_member_the_batch_did_not_expect_is_read_once() -> None:
    members = Members()

    assert members.needs_member_read(ORG, CONTACT) is True
    members.read_member(ORG, CONTACT, MemberState(uuid.uuid4(), "active", "mentor", T0, T0, "env"))
    assert members.needs_member_read(ORG, CONTACT) is False
    state = members.member(ORG, CONTACT)
    assert state is not None and state.role == "mentor"


def test_a_member_created_by_the_batch_is_not_read_from_the_database() -> None:
    members = Members()
    members.create_profile(details(), T0, "env")

    assert members.needs_member_read(ORG, CONTACT) is False


def test_a_member_read_for_another_organisation_is_read_again_for_this_one() -> None:
    """Their membership here is not known yet; their profile's changes are kept."""
    members = Members()
    other_org = uuid.uuid4()
    profile_id = uuid.uuid4()
    members.stored_member(other_org, CONTACT, MemberState(profile_id, "active", "member", T0))
    members.update_profile(profile_id, details(first_name="Ola"), at(1))

    assert members.needs_member_read(ORG, CONTACT) is True
    members.read_member(ORG, CONTACT, MemberState(profile_id, "inactive", "mentor", at(3), T0))

    state = members.member(ORG, CONTACT)
    assert state is not None and (state.membership_status, state.role) == ("inactive", "mentor")
    assert [p.details for p in members.changed_profiles()] == [{"first_name": "Ola"}]


def test_only_enrolments_of_members_that_exist_are_read() -> None:
    members = Members()
    members.expect(ORG, event(CONTACT, course="course-1"))
    members.expect(ORG, event("c-unknown", course="course-2"))
    expected = members.take_expected()
    assert expected is not None
    profile_id = uuid.uuid4()
    members.stored_member(ORG, CONTACT, MemberState(profile_id, "active", "member", T0))

    assert members.enrollments_to_read(expected) == [(ORG, profile_id, "course-1")]
    # Not found by the read: known absent, not read again.
    assert members.needs_enrollment_read((ORG, profile_id, "course-1")) is False


def test_a_row_created_in_the_batch_resolves_to_its_contact_in_any_spelling() -> None:
    row = "AB12CD34-0000-4000-8000-000000000001"
    members = Members()
    members.expect(ORG, event(CONTACT, row_id=row))

    assert members.row_contact(ORG, row) == CONTACT
    assert members.row_contact(ORG, row.lower()) == CONTACT
    assert members.row_contact(uuid.uuid4(), row) is None  # rows are per organisation


# -- receipts ----------------------------------------------------------------------------------


def test_the_first_delivery_is_claimed_and_its_receipt_written() -> None:
    claims = Claims()
    first = receipt()

    assert claims.claim(first) is DeliveryClaim.FIRST
    assert claims.new == [first]


def test_a_redelivered_message_finds_its_own_receipt() -> None:
    claims = Claims()
    accepted = receipt()
    claims.stored([KnownReceipt(accepted.id, "source", "d-1", "accepted")])

    assert claims.claim(accepted) is DeliveryClaim.REDELIVERY
    assert claims.new == []


def test_a_redelivered_duplicate_stays_a_duplicate() -> None:
    claims = Claims()
    duplicate = receipt()
    claims.stored([KnownReceipt(duplicate.id, "source", "d-1", "duplicate")])

    assert claims.claim(duplicate) is DeliveryClaim.DUPLICATE


def test_a_delivery_accepted_earlier_makes_a_new_receipt_a_duplicate() -> None:
    claims = Claims()
    claims.stored([KnownReceipt(uuid.uuid4(), "source", "d-1", "accepted")])
    resend = receipt()

    assert claims.claim(resend) is DeliveryClaim.DUPLICATE
    [written] = claims.new
    assert (written.id, written.outcome) == (resend.id, Outcome.DUPLICATE)


def test_two_deliveries_of_one_id_in_the_same_batch_apply_once() -> None:
    claims = Claims()
    first, second = receipt(), receipt()

    assert claims.claim(first) is DeliveryClaim.FIRST
    assert claims.claim(second) is DeliveryClaim.DUPLICATE
    assert [r.outcome for r in claims.new] == [Outcome.ACCEPTED, Outcome.DUPLICATE]


def test_a_delivery_of_another_source_with_the_same_id_is_its_own() -> None:
    claims = Claims()
    claims.stored([KnownReceipt(uuid.uuid4(), "other-source", "d-1", "accepted")])

    assert claims.claim(receipt()) is DeliveryClaim.FIRST


def test_a_receipt_recorded_twice_is_written_once() -> None:
    claims = Claims()
    queued = receipt(delivery_id=None, outcome=Outcome.REJECTED)
    claims.record(queued)
    claims.record(queued)

    assert claims.new == [queued]


# -- conflicts ---------------------------------------------------------------------------------


def test_a_claimed_delivery_that_could_not_be_inserted_is_a_conflict() -> None:
    claims = Claims()
    mine, other = receipt("d-1"), receipt("d-2")
    claims.claim(mine)
    claims.claim(other)

    claims.check_written({mine.id, other.id})  # all written: no conflict
    with pytest.raises(BatchConflict):
        claims.check_written({other.id})


def test_a_duplicate_receipt_not_inserted_is_no_conflict() -> None:
    """Only the deliveries this batch claimed first matter: a duplicate's receipt that is
    there already changes nothing."""
    claims = Claims()
    claims.stored([KnownReceipt(uuid.uuid4(), "source", "d-1", "accepted")])
    claims.claim(receipt())

    claims.check_written(set())


def test_a_new_profile_that_could_not_be_inserted_is_a_conflict() -> None:
    members = Members()
    members.create_profile(details(), T0, "env")

    members.check_written(1)
    with pytest.raises(BatchConflict):
        members.check_written(0)


def test_a_batch_that_creates_no_profile_has_no_profile_conflict() -> None:
    members = Members()
    stored_member(members)

    members.check_written(0)


# -- the sync log ------------------------------------------------------------------------------


def test_two_entries_for_one_event_become_one_with_the_attempts_added() -> None:
    log = LogEntries()
    receipt_id, profile_id = uuid.uuid4(), uuid.uuid4()
    log.write(
        log_entry(
            status=LogStatus.ERROR,
            message="first",
            source_message="Update",
            source_table="contact",
            profile_id=profile_id,
            receipt_id=receipt_id,
            source_modified_at=T0,
        )
    )
    log.write(log_entry(status=LogStatus.SUCCESS, message="second", attempts=2))

    [entry] = log.entries()
    assert (entry.status, entry.message, entry.attempts) == (LogStatus.SUCCESS, "second", 3)
    # What the later entry leaves out is kept; what it cannot change stays the first's.
    assert (entry.source_message, entry.source_table) == ("Update", "contact")
    assert (entry.profile_id, entry.source_modified_at, entry.receipt_id) == (
        profile_id,
        T0,
        receipt_id,
    )
    assert log.status((ORG, "e-1")) is LogStatus.SUCCESS


def test_an_empty_source_message_is_a_value_as_in_the_log_upsert() -> None:
    merged = merge_log(log_entry(source_message="Update"), log_entry(source_message=""))

    assert merged.source_message == ""


def test_entries_of_different_events_stay_apart() -> None:
    log = LogEntries()
    log.write(log_entry(event_id="e-1"))
    log.write(log_entry(event_id="e-2"))

    assert [e.event_id for e in log.entries()] == ["e-1", "e-2"]


def test_an_event_read_without_an_entry_is_known_to_have_none() -> None:
    log = LogEntries()
    log.stored([(ORG, "e-1"), (ORG, "e-2")], {(ORG, "e-2"): LogStatus.SKIPPED})

    assert log.knows((ORG, "e-1")) and log.status((ORG, "e-1")) is None
    assert log.status((ORG, "e-2")) is LogStatus.SKIPPED
    assert not log.knows((ORG, "e-3"))
