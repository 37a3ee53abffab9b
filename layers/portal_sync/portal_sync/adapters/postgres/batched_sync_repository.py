"""The sync repository for one SQS batch: a few set-wise reads, changes kept, one write per table.

Applying an event one statement at a time costs about nine round trips, each statement parsed
and planned again (the connection cannot keep prepared statements behind a transaction-mode
pooler). Here a batch costs a fixed handful of statements whatever its size (docs/inbound.md):

    prepare()          receipts already recorded, and the sync-log statuses of the batch's events
    prepare_members()  the batch's members, locked in one statement, their memberships and
                       enrolments (expect_member() names them, as the batch's messages are parsed)
    (apply)            the same apply logic, reading and changing the batch's state
                       (inbound/batch_state.py; inbound/batch_merge.py merges its changes)
    flush()            receipts, new profiles, profile changes, memberships, enrolments and log
                       entries, each table in one statement (batch_writes.py, sync_log.py)

It implements `BatchSyncRepository` with the semantics of `PostgresSyncRepository`, which stays
the reference (and the path for a batch that fails: the consumer then applies one message at a
time in savepoints, so a bad message fails alone). What the batch did not prepare is read from
the database on demand, through the reference. A member created concurrently by another
consumer, or a delivery claimed by one, makes flush() raise `BatchConflict`; the transaction is
then rolled back and retried one message at a time, where the row locks order the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.adapters.postgres import batch_reads, batch_writes, sync_log
from portal_sync.adapters.postgres.sync_repository import PostgresSyncRepository
from portal_sync.inbound.batch_state import BatchConflict, BatchState
from portal_sync.inbound.events import CourseDetails, MemberDetails, SyncEvent
from portal_sync.inbound.ports import (
    DeliveryClaim,
    EnrollmentState,
    IntegrationSettings,
    MemberState,
)
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.receipts import Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry
from portal_sync.observability import tracer

__all__ = ["BatchConflict", "BatchedSyncRepository"]


class BatchedSyncRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._db = PostgresSyncRepository(conn)
        self._state = BatchState()
        self._settings: dict[UUID, IntegrationSettings] = {}

    # -- preparing ---------------------------------------------------------------------------

    @tracer.capture_method
    def prepare(self, messages: Sequence[QueuedEvent | QueuedReceipt]) -> None:
        events = [m for m in messages if isinstance(m, QueuedEvent)]
        if not events:
            return
        keys = list(dict.fromkeys((m.organization_id, m.event_id) for m in events))
        with self._conn.pipeline():  # both reads in one round trip
            receipts = batch_reads.known_receipts(self._conn, [m.receipt for m in events])
            statuses = sync_log.statuses(self._conn, keys)
        self._state.claims.stored(receipts())
        self._state.log.stored(keys, statuses())

    def expect_member(self, organization_id: UUID, event: SyncEvent) -> None:
        self._state.members.expect(organization_id, event)

    @tracer.capture_method
    def prepare_members(self) -> None:
        """Locks and reads the expected members, with their memberships and enrolments."""
        members = self._state.members
        expected = members.take_expected()
        if expected is None:
            return
        for organization_id, contact, member in batch_reads.lock_members(
            self._conn, expected.contacts, expected.organizations
        ):
            members.stored_member(organization_id, contact, member)
        for key, enrollment in batch_reads.lock_enrollments(
            self._conn, members.enrollments_to_read(expected)
        ):
            members.stored_enrollment(key, enrollment)

    # -- receipts ------------------------------------------------------------------------------

    def claim_delivery(self, receipt: Receipt) -> DeliveryClaim:
        return self._state.claims.claim(receipt)

    def record_receipt(self, receipt: Receipt) -> None:
        self._state.claims.record(receipt)

    # -- configuration and log ----------------------------------------------------------------

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        if organization_id not in self._settings:
            self._settings[organization_id] = self._db.integration(organization_id)
        return self._settings[organization_id]

    def logged_status(self, organization_id: UUID, event_id: str) -> LogStatus | None:
        key = (organization_id, event_id)
        log = self._state.log
        if not log.knows(key):
            status = self._db.logged_status(organization_id, event_id)
            log.stored([key], {key: status} if status else {})
        return log.status(key)

    def write_log(self, entry: SyncLogEntry) -> None:
        self._state.log.write(entry)

    def keep_payload(self, organization_id: UUID, event_id: str, message: str) -> None:
        self._db.keep_payload(organization_id, event_id, message)  # rare: written at once

    def resolve_contact(self, organization_id: UUID, table: str, row_id: str) -> str | None:
        in_batch = self._state.members.row_contact(organization_id, row_id)
        return in_batch or self._db.resolve_contact(organization_id, table, row_id)

    # -- members -------------------------------------------------------------------------------

    def lock_member(self, organization_id: UUID, contact_id: str) -> MemberState | None:
        members = self._state.members
        if members.needs_member_read(organization_id, contact_id):
            # A member the batch did not prepare (found while applying): read as the
            # reference does.
            stored = self._db.lock_member(organization_id, contact_id)
            members.read_member(organization_id, contact_id, stored)
        return members.member(organization_id, contact_id)

    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        return self._state.members.create_profile(details, modified_at, environment)

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        self._state.members.update_profile(profile_id, details, modified_at)

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
        self._state.members.upsert_membership(
            organization_id,
            profile_id,
            role=role,
            status=status,
            source_modified_at=source_modified_at,
            dynamics_row_id=dynamics_row_id,
        )

    def lock_enrollment(
        self, organization_id: UUID, profile_id: UUID, course_id: str
    ) -> EnrollmentState | None:
        key = (organization_id, profile_id, course_id)
        members = self._state.members
        if members.needs_enrollment_read(key):
            stored = self._db.lock_enrollment(organization_id, profile_id, course_id)
            members.stored_enrollment(key, stored)
        return members.enrollment(key)

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
        self._state.members.upsert_enrollment(
            (organization_id, profile_id, course.dynamics_course_id),
            course,
            status=status,
            source_modified_at=source_modified_at,
            dynamics_row_id=dynamics_row_id,
        )

    # -- writing -------------------------------------------------------------------------------

    @tracer.capture_method
    def flush(self) -> None:
        """Writes what the batch changed, one statement per table, in foreign-key order and in
        two round trips (pipelines): the inserts that may meet another consumer's rows first,
        checked, then the rest."""
        claims, members = self._state.claims, self._state.members
        with self._conn.pipeline():
            receipts = batch_writes.insert_receipts(self._conn, claims.new)
            profiles = batch_writes.insert_profiles(self._conn, members.new_profiles())
        claims.check_written(receipts())
        members.check_written(profiles())
        with self._conn.pipeline():
            batch_writes.update_profiles(self._conn, members.changed_profiles())
            batch_writes.write_memberships(
                self._conn, members.changed_memberships(), members.activity_to_check()
            )
            batch_writes.write_enrollments(self._conn, members.changed_enrollments())
            sync_log.write_many(self._conn, self._state.log.entries())
