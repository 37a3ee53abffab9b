"""The state of one SQS batch applied together: what its reads found, what its messages changed.

The batched repository (adapters/postgres/batched_sync_repository.py) reads the batch's rows into
this state, the apply logic reads and changes them here as it would in the database, and the
repository writes what changed, one statement per table (docs/inbound.md). Two changes of one row
in the same batch therefore meet here, merged by the rules of inbound/batch_merge.py; a change
meeting a row already stored is merged by PostgreSQL, with the same rules. Here too: what a
second delivery in the batch is, what must still be read, and what counts as a conflict with
another consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from portal_sync.inbound.batch_merge import (
    PROFILE_FIELDS,
    Enrollment,
    Membership,
    Profile,
    enrollment_after,
    later,
    membership_after,
    merge_details,
    merge_log,
)
from portal_sync.inbound.events import CourseDetails, MemberDetails, SyncEvent, normalize_id
from portal_sync.inbound.ports import DeliveryClaim, EnrollmentState, MemberState
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.sync_log import LogKey, LogStatus, SyncLogEntry

MembershipKey = tuple[UUID, UUID]  # (organisation, profile)
EnrollmentKey = tuple[UUID, UUID, str]  # (organisation, profile, Dynamics course id)


class BatchConflict(Exception):
    """Another consumer wrote a row this batch assumed absent: apply it one message at a time,
    where the row locks order the two consumers."""


class KnownReceipt(NamedTuple):
    """A receipt already recorded, as read before the batch is applied."""

    id: UUID
    source_id: str
    delivery_id: str | None
    outcome: str


class Claims:
    """The batch's receipts: which are recorded already, which deliveries are accepted, and
    which receipts the batch adds."""

    def __init__(self) -> None:
        self._outcomes: dict[UUID, str] = {}
        self._accepted: set[tuple[str, str]] = set()
        self._claimed_first: set[UUID] = set()
        self.new: list[Receipt] = []

    def stored(self, receipts: Iterable[KnownReceipt]) -> None:
        for receipt in receipts:
            self._outcomes[receipt.id] = receipt.outcome
            if receipt.outcome == Outcome.ACCEPTED and receipt.delivery_id is not None:
                self._accepted.add((receipt.source_id, receipt.delivery_id))

    def claim(self, receipt: Receipt) -> DeliveryClaim:
        """As PostgresSyncRepository.claim_delivery decides it, from what the batch knows."""
        known = self._outcomes.get(receipt.id)
        if known is not None:
            return (
                DeliveryClaim.REDELIVERY if known == Outcome.ACCEPTED else DeliveryClaim.DUPLICATE
            )
        if receipt.delivery_id is not None and (
            (receipt.source_id, receipt.delivery_id) in self._accepted
        ):
            self.record(receipt.model_copy(update={"outcome": Outcome.DUPLICATE}))
            return DeliveryClaim.DUPLICATE
        self.record(receipt)
        if receipt.outcome == Outcome.ACCEPTED:
            self._claimed_first.add(receipt.id)
            if receipt.delivery_id is not None:
                self._accepted.add((receipt.source_id, receipt.delivery_id))
        return DeliveryClaim.FIRST

    def record(self, receipt: Receipt) -> None:
        """A receipt is written once: a second one with the same id is dropped, as the
        insert's `on conflict do nothing` would."""
        if receipt.id not in self._outcomes:
            self._outcomes[receipt.id] = receipt.outcome
            self.new.append(receipt)

    def check_written(self, inserted: set[UUID]) -> None:
        """`inserted`: the ids of the batch's receipts that the insert wrote. A delivery this
        batch claimed first but could not insert was accepted by another consumer meanwhile."""
        if not self._claimed_first <= inserted:
            raise BatchConflict("a delivery of this batch was claimed concurrently")


class LogEntries:
    """The sync-log status of the batch's events, and the entries the batch writes."""

    def __init__(self) -> None:
        self._statuses: dict[LogKey, LogStatus | None] = {}
        self._entries: dict[LogKey, SyncLogEntry] = {}

    def stored(self, keys: Iterable[LogKey], statuses: Mapping[LogKey, LogStatus]) -> None:
        """`statuses` as read for `keys`: a key without one has no entry yet."""
        for key in keys:
            self._statuses[key] = statuses.get(key)

    def knows(self, key: LogKey) -> bool:
        return key in self._statuses

    def status(self, key: LogKey) -> LogStatus | None:
        return self._statuses[key]

    def write(self, entry: SyncLogEntry) -> None:
        """`entry` is the batch's from here (its callers build one per write and leave it):
        kept as it is, not copied, which an import would pay for each of its rows."""
        key = (entry.organization_id, entry.event_id)
        self._statuses[key] = entry.status
        earlier = self._entries.get(key)
        self._entries[key] = entry if earlier is None else merge_log(earlier, entry)

    def entries(self) -> list[SyncLogEntry]:
        return list(self._entries.values())


class Expected:
    """The members the batch's events name, to read (and lock) before applying them."""

    def __init__(self, events: list[tuple[UUID, SyncEvent]]) -> None:
        self.events = events
        # Sorted: two consumers lock the same members in the same order, so that neither
        # waits for the other in a cycle.
        self.contacts = sorted({event.member.dynamics_contact_id for _, event in events})
        self.organizations = sorted({organization_id for organization_id, _ in events})


class Members:
    """The batch's profiles, memberships and enrolments: as stored, then as changed."""

    def __init__(self, new_id: Callable[[], UUID] = uuid.uuid4) -> None:
        self._new_id = new_id
        # Contact -> profile (None: looked up, not there).
        self._profiles: dict[str, Profile | None] = {}
        self._contacts: dict[UUID, str] = {}  # profile id -> contact
        self._memberships: dict[MembershipKey, Membership] = {}
        # (organisation, contact) whose member and membership are read (or need no read).
        self._read: set[tuple[UUID, str]] = set()
        self._enrollments: dict[EnrollmentKey, Enrollment | None] = {}
        self._changed_enrollments: set[EnrollmentKey] = set()
        self._expected: list[tuple[UUID, SyncEvent]] = []
        # Dynamics row id of a membership or enrolment -> contact, for rows of this batch.
        self._row_contacts: dict[tuple[UUID, str], str] = {}

    # -- reading ---------------------------------------------------------------------------

    def expect(self, organization_id: UUID, event: SyncEvent) -> None:
        self._expected.append((organization_id, event))
        if event.dynamics_row_id is not None:
            key = (organization_id, normalize_id(event.dynamics_row_id))
            self._row_contacts[key] = event.member.dynamics_contact_id

    def take_expected(self) -> Expected | None:
        """The members expected since the last call, now counted as read: what the read does
        not find is not there."""
        events, self._expected = self._expected, []
        if not events:
            return None
        expected = Expected(events)
        for contact in expected.contacts:
            self._profiles.setdefault(contact, None)
        self._read.update((org, e.member.dynamics_contact_id) for org, e in events)
        return expected

    def stored_member(
        self, organization_id: UUID | None, contact_id: str, member: MemberState
    ) -> None:
        """A member as read (`organization_id` None: read without a membership)."""
        if self._profiles.get(contact_id) is None:
            self._known(
                contact_id,
                Profile(member.profile_id, member.details_modified_at, member.environment),
            )
        if organization_id is not None and member.membership_status is not None:
            assert member.role is not None
            self._memberships[(organization_id, member.profile_id)] = Membership.stored(
                member.role, member.membership_status, member.source_modified_at
            )

    def enrollments_to_read(self, expected: Expected) -> list[EnrollmentKey]:
        """The enrolments of the expected course events whose member exists, counted as read:
        what the read does not find is not there."""
        keys = [
            (org, profile.id, event.course.dynamics_course_id)
            for org, event in expected.events
            if event.course is not None
            and (profile := self._profiles.get(event.member.dynamics_contact_id)) is not None
        ]
        self._enrollments.update(dict.fromkeys(keys))
        return keys

    def stored_enrollment(self, key: EnrollmentKey, enrollment: EnrollmentState | None) -> None:
        self._enrollments[key] = (
            Enrollment(enrollment.status, enrollment.source_modified_at) if enrollment else None
        )

    def needs_member_read(self, organization_id: UUID, contact_id: str) -> bool:
        """Whether a member the batch did not prepare must be read from the database; asked
        once per organisation and contact (the answer is then held here)."""
        key = (organization_id, contact_id)
        if key in self._read:
            return False
        self._read.add(key)
        known = self._profiles.get(contact_id)
        # Created by this batch (nothing stored yet), or read already with this membership.
        return not (
            known is not None and (known.new or (organization_id, known.id) in self._memberships)
        )

    def read_member(
        self, organization_id: UUID, contact_id: str, member: MemberState | None
    ) -> None:
        """The answer to needs_member_read(): the member as stored, or None (no such contact)."""
        if member is None:
            self._profiles[contact_id] = None
        else:
            self.stored_member(organization_id, contact_id, member)

    def needs_enrollment_read(self, key: EnrollmentKey) -> bool:
        if key in self._enrollments:
            return False
        if self._is_new(key[1]):
            self._enrollments[key] = None  # a new member has no enrolment stored
            return False
        return True

    def row_contact(self, organization_id: UUID, row_id: str) -> str | None:
        """The contact of a membership or enrolment row created by this batch."""
        return self._row_contacts.get((organization_id, normalize_id(row_id)))

    # -- the apply logic's view --------------------------------------------------------------

    def member(self, organization_id: UUID, contact_id: str) -> MemberState | None:
        profile = self._profiles.get(contact_id)
        if profile is None:
            return None
        membership = self._memberships.get((organization_id, profile.id))
        return MemberState(
            profile.id,
            membership.status if membership else None,
            membership.role if membership else None,
            membership.source_modified_at if membership else None,
            profile.details_modified_at,
            profile.environment,
        )

    def enrollment(self, key: EnrollmentKey) -> EnrollmentState | None:
        known = self._enrollments[key]
        return EnrollmentState(known.status, known.source_modified_at) if known else None

    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        """A new profile's id; None when the contact has one already (as the insert's
        `on conflict do nothing` would)."""
        if self._profiles.get(details.dynamics_contact_id) is not None:
            return None
        profile = Profile(self._new_id(), modified_at, environment, new=True)
        merge_details(profile.details, details)
        self._known(details.dynamics_contact_id, profile)
        return profile.id

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        """Details with no field sent change nothing, not even the details' time."""
        if all(getattr(details, name) is None for name in PROFILE_FIELDS):
            return
        profile = self._profiles[self._contacts[profile_id]]
        assert profile is not None
        merge_details(profile.details, details)
        profile.details_modified_at = later(profile.details_modified_at, modified_at)
        profile.details_changed = True

    def upsert_membership(
        self,
        organization_id: UUID,
        profile_id: UUID,
        *,
        role: str,
        status: str,
        source_modified_at: datetime | None,
        dynamics_row_id: str | None,
    ) -> None:
        key = (organization_id, profile_id)
        self._memberships[key] = membership_after(
            self._memberships.get(key),
            role=role,
            status=status,
            source_modified_at=source_modified_at,
            dynamics_row_id=dynamics_row_id,
        )

    def upsert_enrollment(
        self,
        key: EnrollmentKey,
        course: CourseDetails,
        *,
        status: str,
        source_modified_at: datetime,
        dynamics_row_id: str | None,
    ) -> None:
        self._enrollments[key] = enrollment_after(
            self._enrollments.get(key),
            course,
            status=status,
            source_modified_at=source_modified_at,
            dynamics_row_id=dynamics_row_id,
        )
        self._changed_enrollments.add(key)

    # -- writing -----------------------------------------------------------------------------

    def new_profiles(self) -> list[tuple[str, Profile]]:
        """(contact, profile) of every profile this batch creates."""
        return [(c, p) for c, p in self._profiles.items() if p is not None and p.new]

    def changed_profiles(self) -> list[Profile]:
        """Stored profiles whose details changed (a new profile is inserted with its own)."""
        return [
            p for p in self._profiles.values() if p is not None and p.details_changed and not p.new
        ]

    def changed_memberships(self) -> list[tuple[MembershipKey, Membership]]:
        return [(key, m) for key, m in self._memberships.items() if m.changed]

    def activity_to_check(self) -> list[UUID]:
        """The profiles whose `is_active` (active while active in any organisation; the access
        token hook reads it) may have changed: those with a membership whose status changed.
        A new profile is active by default, so only an inactive first membership counts."""
        return sorted(
            {
                profile
                for (_, profile), m in self.changed_memberships()
                if m.status != m.stored_status
                and (m.status != "active" or not self._is_new(profile))
            }
        )

    def changed_enrollments(self) -> list[tuple[EnrollmentKey, Enrollment]]:
        rows = []
        for key in sorted(self._changed_enrollments):
            enrollment = self._enrollments[key]
            assert enrollment is not None
            rows.append((key, enrollment))
        return rows

    def check_written(self, inserted_profiles: int) -> None:
        """`inserted_profiles`: how many of the batch's new profiles the insert wrote. One it
        skipped was created by another consumer since the batch read it as absent."""
        if inserted_profiles != len(self.new_profiles()):
            raise BatchConflict("a member of this batch was created concurrently")

    def _is_new(self, profile_id: UUID) -> bool:
        profile = self._profiles.get(self._contacts.get(profile_id, ""))
        return profile is not None and profile.new

    def _known(self, contact_id: str, profile: Profile) -> None:
        self._profiles[contact_id] = profile
        self._contacts[profile.id] = contact_id


class BatchState:
    """Everything one batch applied together holds between its reads and its writes."""

    # Plain classes rather than dataclasses here: each dataclass costs the consumer's cold
    # start about half a millisecond.
    def __init__(self) -> None:
        self.claims = Claims()
        self.log = LogEntries()
        self.members = Members()
