"""The sync repository for one SQS batch: a few set-wise reads, changes kept, one write per table.

Applying an event one statement at a time costs about nine round trips, each statement parsed
and planned again (the connection cannot keep prepared statements behind a transaction-mode
pooler). Here a batch costs a fixed handful of statements whatever its size:

    prepare()          receipts already recorded, and the sync-log statuses of the batch's events
    prepare_members()  the batch's members, locked in one statement (in id order, so two
                       consumers cannot deadlock on each other), their memberships and enrolments
                       (expect_member() names them, as the batch's messages are parsed)
    (apply)            the same apply logic, reading and changing the state held here
    flush()            receipts, new profiles, profile changes, memberships, enrolments and log
                       entries, each table in one statement over arrays (`unnest`)

It implements `SyncRepository` with the semantics of `PostgresSyncRepository`, which stays the
reference (and the path for a batch that fails: the consumer then applies one message at a time
in savepoints, so a bad message fails alone). What the batch did not prepare is read from the
database on demand. A member created concurrently by another consumer, or a delivery claimed by
one, makes flush() raise `BatchConflict`; the transaction is then rolled back and retried one
message at a time, where the row locks order the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.adapters.postgres.sync_repository import (
    ENROLLMENT_ON_CONFLICT,
    LOG_ON_CONFLICT,
    MEMBERSHIP_ON_CONFLICT,
    PROFILE_FIELDS,
    PostgresSyncRepository,
)
from portal_sync.inbound.events import CourseDetails, MemberDetails, SyncEvent, normalize_id
from portal_sync.inbound.ports import (
    DeliveryClaim,
    EnrollmentState,
    IntegrationSettings,
    MemberState,
)
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry


class BatchConflict(Exception):
    """Another consumer changed a row this batch assumed absent; apply one message at a time."""


@dataclass
class _Membership:
    role: str
    status: str
    source_modified_at: datetime | None
    dynamics_row_id: str | None = None
    changed: bool = False
    # As read from the database (None: no membership there yet).
    stored_status: str | None = None

    @classmethod
    def read(cls, role: str, status: str, source_modified_at: datetime | None) -> _Membership:
        return cls(role, status, source_modified_at, stored_status=status)


@dataclass
class _Profile:
    id: UUID
    details_modified_at: datetime | None
    environment: str | None = None
    new: bool = False
    # Field -> value to write: None = not sent (kept), "" = cleared at the source.
    details: dict[str, str | None] = field(default_factory=dict)
    details_changed: bool = False


@dataclass
class _Enrollment:
    status: str
    source_modified_at: datetime | None
    course_name: str | None = None
    dynamics_row_id: str | None = None


def _later(current: datetime | None, new: datetime | None) -> datetime | None:
    """PostgreSQL's greatest(): NULLs are ignored."""
    if current is None or new is None:
        return current or new
    return max(current, new)


def _merge_details(into: dict[str, str | None], details: MemberDetails) -> None:
    for name in PROFILE_FIELDS:
        value = getattr(details, name)
        if value is not None:
            into[name] = value


class BatchedSyncRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._db = PostgresSyncRepository(conn)
        self._receipt_outcomes: dict[UUID, str] = {}
        self._accepted: set[tuple[str, str]] = set()
        self._claimed_first: set[UUID] = set()
        self._new_receipts: list[Receipt] = []
        self._logged: dict[tuple[UUID, str], LogStatus | None] = {}
        self._log: dict[tuple[UUID, str], tuple[SyncLogEntry, int]] = {}
        self._settings: dict[UUID, IntegrationSettings] = {}
        # contact -> profile (None: looked up, not there); memberships by (org, profile).
        self._profiles: dict[str, _Profile | None] = {}
        self._memberships: dict[tuple[UUID, UUID], _Membership] = {}
        self._members_read: set[tuple[UUID, str]] = set()
        self._enrollments: dict[tuple[UUID, UUID, str], _Enrollment | None] = {}
        self._changed_enrollments: set[tuple[UUID, UUID, str]] = set()
        self._contacts: dict[UUID, str] = {}  # profile id -> contact
        self._expected: list[tuple[UUID, SyncEvent]] = []
        # Dynamics row id of a membership or enrolment -> contact, for rows of this batch.
        self._row_contacts: dict[tuple[UUID, str], str] = {}

    # -- preparing ---------------------------------------------------------------------------

    def prepare(self, messages: Sequence[QueuedEvent | QueuedReceipt]) -> None:
        events = [m for m in messages if isinstance(m, QueuedEvent)]
        if not events:
            return
        receipts = [m.receipt for m in events]
        deliveries = [r for r in receipts if r.delivery_id is not None]
        keys = {(m.organization_id, m.event_id) for m in events}
        self._logged.update(dict.fromkeys(keys))
        # Both reads in one round trip (a pipeline).
        with self._conn.pipeline():
            known_receipts = self._conn.execute(
                # Two index lookups (an OR of both would scan the whole table).
                """
                select id, source_id, delivery_id, outcome from webhook_receipts
                 where id = any(%s)
                union
                select r.id, r.source_id, r.delivery_id, r.outcome
                  from unnest(%s::text[], %s::text[]) as u(source_id, delivery_id)
                  join webhook_receipts r
                    on r.source_id = u.source_id and r.delivery_id = u.delivery_id
                   and r.outcome = 'accepted'
                """,
                (
                    [r.id for r in receipts],
                    [r.source_id for r in deliveries],
                    [r.delivery_id for r in deliveries],
                ),
            )
            logged = self._conn.execute(
                "select organization_id, event_id, status from portal_sync_events"
                " where (organization_id, event_id) in"
                " (select * from unnest(%s::uuid[], %s::text[]))",
                ([org for org, _ in keys], [event_id for _, event_id in keys]),
            )
        for row in known_receipts.fetchall():
            self._receipt_outcomes[row["id"]] = row["outcome"]
            if row["outcome"] == Outcome.ACCEPTED and row["delivery_id"] is not None:
                self._accepted.add((row["source_id"], row["delivery_id"]))
        for row in logged.fetchall():
            self._logged[(row["organization_id"], row["event_id"])] = LogStatus(row["status"])

    def expect_member(self, organization_id: UUID, event: SyncEvent) -> None:
        self._expected.append((organization_id, event))
        if event.dynamics_row_id is not None:
            key = (organization_id, normalize_id(event.dynamics_row_id))
            self._row_contacts[key] = event.member.dynamics_contact_id

    def prepare_members(self) -> None:
        """Locks and reads the expected members, with their memberships and enrolments."""
        wanted, self._expected = self._expected, []
        if not wanted:
            return
        contacts = sorted({event.member.dynamics_contact_id for _, event in wanted})
        organizations = sorted({org for org, _ in wanted})
        for contact in contacts:
            self._profiles.setdefault(contact, None)
        self._members_read.update((org, e.member.dynamics_contact_id) for org, e in wanted)
        for row in self._conn.execute(
            """
            select p.id, p.dynamics_contact_id, p.details_modified_at, p.dynamics_environment,
                   m.organization_id, m.status, m.role, m.source_modified_at
              from profiles p
              left join organization_memberships m
                on m.profile_id = p.id and m.organization_id = any(%s)
             where p.dynamics_contact_id = any(%s)
             order by p.id
               for no key update of p
            """,
            (organizations, contacts),
        ):
            self._known_profile(
                row["dynamics_contact_id"],
                _Profile(row["id"], row["details_modified_at"], row["dynamics_environment"]),
            )
            if row["organization_id"] is not None:
                self._memberships[(row["organization_id"], row["id"])] = _Membership.read(
                    row["role"], row["status"], row["source_modified_at"]
                )
        courses = [
            (org, profile.id, event.course.dynamics_course_id)
            for org, event in wanted
            if event.course is not None
            and (profile := self._profiles[event.member.dynamics_contact_id]) is not None
        ]
        if not courses:
            return
        self._enrollments.update(dict.fromkeys(courses))
        for row in self._conn.execute(
            "select organization_id, profile_id, dynamics_course_id, status, source_modified_at"
            " from course_enrollments where (organization_id, profile_id, dynamics_course_id) in"
            " (select * from unnest(%s::uuid[], %s::uuid[], %s::text[])) order by id for update",
            tuple(map(list, zip(*courses, strict=True))),
        ):
            key = (row["organization_id"], row["profile_id"], row["dynamics_course_id"])
            self._enrollments[key] = _Enrollment(row["status"], row["source_modified_at"])

    # -- receipts ------------------------------------------------------------------------------

    def claim_delivery(self, receipt: Receipt) -> DeliveryClaim:
        known = self._receipt_outcomes.get(receipt.id)
        if known is not None:
            return (
                DeliveryClaim.REDELIVERY if known == Outcome.ACCEPTED else DeliveryClaim.DUPLICATE
            )
        delivery = (receipt.source_id, receipt.delivery_id)
        if receipt.delivery_id is not None and delivery in self._accepted:
            self.record_receipt(receipt.model_copy(update={"outcome": Outcome.DUPLICATE}))
            return DeliveryClaim.DUPLICATE
        self.record_receipt(receipt)
        if receipt.outcome == Outcome.ACCEPTED:
            self._claimed_first.add(receipt.id)
            if receipt.delivery_id is not None:
                self._accepted.add((receipt.source_id, receipt.delivery_id))
        return DeliveryClaim.FIRST

    def record_receipt(self, receipt: Receipt) -> None:
        if receipt.id not in self._receipt_outcomes:
            self._receipt_outcomes[receipt.id] = receipt.outcome
            self._new_receipts.append(receipt)

    # -- configuration and log ----------------------------------------------------------------

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        if organization_id not in self._settings:
            self._settings[organization_id] = self._db.integration(organization_id)
        return self._settings[organization_id]

    def logged_status(self, organization_id: UUID, event_id: str) -> LogStatus | None:
        key = (organization_id, event_id)
        if key not in self._logged:
            self._logged[key] = self._db.logged_status(organization_id, event_id)
        return self._logged[key]

    def write_log(self, entry: SyncLogEntry) -> None:
        key = (entry.organization_id, entry.event_id)
        self._logged[key] = entry.status
        earlier = self._log.get(key)
        if earlier is None:
            self._log[key] = (replace(entry), entry.attempts)
            return
        first, writes = earlier
        # As the upsert of write_log() would leave it after both writes.
        self._log[key] = (
            replace(
                first,
                event_type=entry.event_type,
                status=entry.status,
                message=entry.message,
                source_message=entry.source_message or first.source_message,
                source_table=entry.source_table or first.source_table,
                profile_id=entry.profile_id or first.profile_id,
                source_modified_at=entry.source_modified_at or first.source_modified_at,
            ),
            writes + entry.attempts,
        )

    def keep_payload(self, organization_id: UUID, event_id: str, message: str) -> None:
        self._db.keep_payload(organization_id, event_id, message)  # rare: written at once

    def resolve_contact(self, organization_id: UUID, table: str, row_id: str) -> str | None:
        in_batch = self._row_contacts.get((organization_id, normalize_id(row_id)))
        return in_batch or self._db.resolve_contact(organization_id, table, row_id)

    # -- members -------------------------------------------------------------------------------

    def lock_member(self, organization_id: UUID, contact_id: str) -> MemberState | None:
        if (organization_id, contact_id) not in self._members_read:
            self._read_member(organization_id, contact_id)
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

    def _read_member(self, organization_id: UUID, contact_id: str) -> None:
        """A member the batch did not prepare (found while applying): read as the reference does."""
        self._members_read.add((organization_id, contact_id))
        known = self._profiles.get(contact_id)
        if known is not None and (known.new or (organization_id, known.id) in self._memberships):
            return  # created by this batch (nothing to read yet), or read already
        state = self._db.lock_member(organization_id, contact_id)
        if state is None:
            self._profiles[contact_id] = None
            return
        if known is None:
            self._known_profile(
                contact_id,
                _Profile(state.profile_id, state.details_modified_at, state.environment),
            )
        if state.membership_status is not None:
            assert state.role is not None
            self._memberships[(organization_id, state.profile_id)] = _Membership.read(
                state.role, state.membership_status, state.source_modified_at
            )

    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        if self._profiles.get(details.dynamics_contact_id) is not None:
            return None
        profile = _Profile(uuid.uuid4(), modified_at, environment, new=True)
        _merge_details(profile.details, details)
        self._known_profile(details.dynamics_contact_id, profile)
        return profile.id

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        if all(getattr(details, name) is None for name in PROFILE_FIELDS):
            return
        profile = self._profiles[self._contacts[profile_id]]
        assert profile is not None
        _merge_details(profile.details, details)
        profile.details_modified_at = _later(profile.details_modified_at, modified_at)
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
        current = self._memberships.get(key)
        self._memberships[key] = _Membership(
            role,
            status,
            _later(current.source_modified_at if current else None, source_modified_at),
            dynamics_row_id or (current.dynamics_row_id if current else None),
            changed=True,
            stored_status=current.stored_status if current else None,
        )

    def lock_enrollment(
        self, organization_id: UUID, profile_id: UUID, course_id: str
    ) -> EnrollmentState | None:
        key = (organization_id, profile_id, course_id)
        if key not in self._enrollments and self._is_new(profile_id):
            self._enrollments[key] = None
        if key not in self._enrollments:
            state = self._db.lock_enrollment(organization_id, profile_id, course_id)
            self._enrollments[key] = (
                _Enrollment(state.status, state.source_modified_at) if state else None
            )
        known = self._enrollments[key]
        return EnrollmentState(known.status, known.source_modified_at) if known else None

    def upsert_enrollment(
        self,
        organization_id: UUID,
        profile_id: UUID,
        course: CourseDetails,
        *,
        status: str,
        source_modified_at: datetime,
        dynamics_row_id: str | None,
    ) -> None:
        key = (organization_id, profile_id, course.dynamics_course_id)
        current = self._enrollments.get(key)
        self._enrollments[key] = _Enrollment(
            status,
            _later(current.source_modified_at if current else None, source_modified_at),
            course.name or (current.course_name if current else None),
            dynamics_row_id or (current.dynamics_row_id if current else None),
        )
        self._changed_enrollments.add(key)

    def _is_new(self, profile_id: UUID) -> bool:
        profile = self._profiles.get(self._contacts.get(profile_id, ""))
        return profile is not None and profile.new

    def _known_profile(self, contact_id: str, profile: _Profile) -> None:
        self._profiles[contact_id] = profile
        self._contacts[profile.id] = contact_id

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Writes what the batch changed, one statement per table, in foreign-key order and in
        two round trips (pipelines): the inserts that may meet another consumer's rows first,
        checked, then the rest."""
        with self._conn.pipeline():
            receipts = self._insert_receipts()
            profiles = self._insert_profiles()
        if receipts is not None and not self._claimed_first <= {
            row["id"] for row in receipts.fetchall()
        }:
            # A concurrent consumer accepted the same delivery between prepare() and now.
            raise BatchConflict("a delivery of this batch was claimed concurrently")
        if profiles is not None and profiles.rowcount != self._new_profile_count():
            raise BatchConflict("a member of this batch was created concurrently")
        with self._conn.pipeline():
            self._update_profiles()
            self._write_memberships()
            self._write_enrollments()
            self._write_log()

    def _new_profile_count(self) -> int:
        return sum(1 for p in self._profiles.values() if p is not None and p.new)

    def _insert_receipts(self) -> psycopg.Cursor[Any] | None:
        if not self._new_receipts:
            return None
        columns = _columns(
            [
                (
                    r.id,
                    r.source_id,
                    r.organization_id,
                    r.delivery_id,
                    r.outcome.value,
                    r.reason and str(r.reason),
                    r.signature_mode and str(r.signature_mode),
                    r.received_at,
                )
                for r in self._new_receipts
            ],
            8,
        )
        return self._conn.execute(
            """
            insert into webhook_receipts (id, source_id, organization_id, delivery_id,
                                          outcome, reason, signature_mode, received_at)
            select * from unnest(%s::uuid[], %s::text[], %s::uuid[], %s::text[], %s::text[],
                                 %s::text[], %s::text[], %s::timestamptz[])
            on conflict do nothing
            returning id
            """,
            columns,
        )

    def _insert_profiles(self) -> psycopg.Cursor[Any] | None:
        new = [(c, p) for c, p in self._profiles.items() if p is not None and p.new]
        if not new:
            return None
        return self._conn.execute(
            """
            insert into profiles (id, dynamics_contact_id, dynamics_environment, first_name,
                                  last_name, email, phone, details_modified_at)
            select id, contact, environment, nullif(first_name, ''), nullif(last_name, ''),
                   nullif(email, ''), nullif(phone, ''), at
              from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                          %s::text[], %s::timestamptz[])
                   as u(id, contact, environment, first_name, last_name, email, phone, at)
            on conflict (dynamics_contact_id) do nothing
            """,
            _columns(
                [
                    (
                        p.id,
                        c,
                        p.environment,
                        *(p.details.get(f) for f in PROFILE_FIELDS),
                        p.details_modified_at,
                    )
                    for c, p in new
                ],
                8,
            ),
        )

    def _update_profiles(self) -> None:
        changed = [
            p for p in self._profiles.values() if p is not None and p.details_changed and not p.new
        ]
        if changed:
            keep_or_set = ", ".join(
                f"{name} = case when u.{name} is null then p.{name} else nullif(u.{name}, '') end"
                for name in PROFILE_FIELDS
            )
            self._conn.execute(
                f"update profiles p set {keep_or_set}, updated_at = now(),"  # noqa: S608
                " details_modified_at = greatest(p.details_modified_at, u.at)"
                " from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::timestamptz[]) as u(id, first_name, last_name, email, phone, at)"
                " where p.id = u.id",
                _columns(
                    [
                        (p.id, *(p.details.get(f) for f in PROFILE_FIELDS), p.details_modified_at)
                        for p in changed
                    ],
                    6,
                ),
            )

    def _write_memberships(self) -> None:
        changed = [(key, m) for key, m in self._memberships.items() if m.changed]
        if not changed:
            return
        self._conn.execute(
            """
            insert into organization_memberships
                (organization_id, profile_id, role, status, source_modified_at, dynamics_row_id,
                 last_synced_at)
            select org, profile, role, status, at, row_id, now()
              from unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::timestamptz[],
                          %s::text[]) as u(org, profile, role, status, at, row_id)
            """  # noqa: S608
            + MEMBERSHIP_ON_CONFLICT,
            _columns(
                [
                    (org, profile, m.role, m.status, m.source_modified_at, m.dynamics_row_id)
                    for (org, profile), m in changed
                ],
                6,
            ),
        )
        # Active while active in any organisation (the access token hook reads it). Only
        # where a status changed: a new profile is active by default.
        flagged = sorted(
            {
                profile
                for (_, profile), m in changed
                if m.status != m.stored_status
                and (m.status != "active" or not self._is_new(profile))
            }
        )
        if not flagged:
            return
        self._conn.execute(
            "update profiles p set is_active = a.active, updated_at = now()"
            " from (select q.id, exists (select 1 from organization_memberships m"
            " where m.profile_id = q.id and m.status = 'active') as active"
            " from profiles q where q.id = any(%s)) as a"
            " where p.id = a.id and p.is_active is distinct from a.active",
            (flagged,),
        )

    def _write_enrollments(self) -> None:
        if not self._changed_enrollments:
            return
        rows = []
        for key in sorted(self._changed_enrollments):
            enrollment = self._enrollments[key]
            assert enrollment is not None
            rows.append(
                (
                    *key,
                    enrollment.course_name,
                    enrollment.status,
                    enrollment.source_modified_at,
                    enrollment.dynamics_row_id,
                )
            )
        self._conn.execute(
            """
            insert into course_enrollments
                (organization_id, profile_id, dynamics_course_id, course_name, status,
                 source_modified_at, dynamics_row_id)
            select * from unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[],
                                 %s::timestamptz[], %s::text[])
            """  # noqa: S608
            + ENROLLMENT_ON_CONFLICT,
            _columns(rows, 7),
        )

    def _write_log(self) -> None:
        if not self._log:
            return
        self._conn.execute(
            """
            insert into portal_sync_events
                (organization_id, event_id, event_type, source_message, source_table, status,
                 message, profile_id, receipt_id, correlation_id, source_modified_at, received_at,
                 processed_at, attempts)
            select org, event_id, event_type, source_message, source_table, status, message,
                   profile_id, receipt_id, correlation_id, source_modified_at, received_at,
                   now(), attempts
              from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                          %s::text[], %s::uuid[], %s::uuid[], %s::text[], %s::timestamptz[],
                          %s::timestamptz[], %s::int[])
                   as u(org, event_id, event_type, source_message, source_table, status, message,
                        profile_id, receipt_id, correlation_id, source_modified_at, received_at,
                        attempts)
            """  # noqa: S608
            + LOG_ON_CONFLICT,
            _columns(
                [
                    (
                        e.organization_id,
                        e.event_id,
                        e.event_type,
                        e.source_message,
                        e.source_table,
                        e.status.value,
                        e.message,
                        e.profile_id,
                        e.receipt_id,
                        e.correlation_id,
                        e.source_modified_at,
                        e.received_at,
                        writes,
                    )
                    for e, writes in self._log.values()
                ],
                13,
            ),
        )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    """Rows as one list per column: the arrays `unnest` turns back into rows."""
    if not rows:
        return tuple([] for _ in range(width))
    return tuple(list(column) for column in zip(*rows, strict=True))
