"""PostgreSQL side of applying events, one event at a time (implements inbound.ports.SyncRepository).

Every method runs inside the transaction the caller opened: the consumer applies a whole SQS
batch in one transaction with a savepoint per message, so a batch costs one commit. This is the
reference the batched repository (batched_sync_repository.py) follows, and the consumer's path
when a batch applied together fails (docs/inbound.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.adapters.postgres import sync_log
from portal_sync.adapters.postgres.receipt_ledger import INSERT_RECEIPT, receipt_params
from portal_sync.adapters.postgres.sync_clauses import (
    ENROLLMENT_ON_CONFLICT,
    MEMBERSHIP_ON_CONFLICT,
    profile_details_insert,
    profile_details_set,
)
from portal_sync.inbound.batch_merge import PROFILE_FIELDS
from portal_sync.inbound.events import CourseDetails, MemberDetails, normalize_id
from portal_sync.inbound.ports import (
    DeliveryClaim,
    EnrollmentState,
    IntegrationSettings,
    MemberState,
)
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry
from portal_sync.observability import tracer

_CREATE_PROFILE = f"""
insert into profiles
    (dynamics_contact_id, dynamics_environment, {", ".join(PROFILE_FIELDS)}, details_modified_at)
values (%(contact)s, %(environment)s, {profile_details_insert("%({})s")}, %(at)s)
on conflict (dynamics_contact_id) do nothing
returning id
"""  # noqa: S608 - fixed column names
_UPDATE_PROFILE = f"""
update profiles set {profile_details_set("%({})s::text", "{}")}, updated_at = now(),
       details_modified_at = greatest(details_modified_at, %(at)s)
 where id = %(id)s
"""  # noqa: S608 - fixed column names


class PostgresSyncRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        row = self._conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    # -- receipts -------------------------------------------------------------------------

    @tracer.capture_method
    def claim_delivery(self, receipt: Receipt) -> DeliveryClaim:
        existing = self._one(
            "select id, outcome from webhook_receipts"
            " where id = %(id)s or (source_id = %(source_id)s and delivery_id = %(delivery_id)s"
            " and outcome = 'accepted') order by (id = %(id)s) desc limit 1",
            {"id": receipt.id, "source_id": receipt.source_id, "delivery_id": receipt.delivery_id},
        )
        if existing is not None:
            if existing["id"] == receipt.id:
                return (
                    DeliveryClaim.REDELIVERY
                    if existing["outcome"] == Outcome.ACCEPTED
                    else DeliveryClaim.DUPLICATE
                )
            self.record_receipt(receipt.model_copy(update={"outcome": Outcome.DUPLICATE}))
            return DeliveryClaim.DUPLICATE
        self.record_receipt(receipt)
        return DeliveryClaim.FIRST

    @tracer.capture_method
    def record_receipt(self, receipt: Receipt) -> None:
        self._conn.execute(INSERT_RECEIPT, receipt_params(receipt))

    # -- configuration and log ------------------------------------------------------------

    @tracer.capture_method
    def integration(self, organization_id: UUID) -> IntegrationSettings:
        row = self._one(
            "select field_mapping, application_user_ids, dataverse_organization_id,"
            " dynamics_application_user_id"
            " from integration_configs where organization_id = %s",
            (organization_id,),
        )
        if row is None:
            return IntegrationSettings()
        # Our application users: those an administrator entered, and the one the website
        # delivery learned through WhoAmI (docs/dataverse-mapping.md, echoes).
        users = {u.lower() for u in row["application_user_ids"] or ()}
        if row["dynamics_application_user_id"] is not None:
            users.add(str(row["dynamics_application_user_id"]).lower())
        return IntegrationSettings(
            field_mapping=row["field_mapping"],
            application_user_ids=frozenset(users),
            dataverse_organization_id=row["dataverse_organization_id"],
        )

    @tracer.capture_method
    def logged_status(self, organization_id: UUID, event_id: str) -> LogStatus | None:
        return sync_log.status(self._conn, organization_id, event_id)

    @tracer.capture_method
    def write_log(self, entry: SyncLogEntry) -> None:
        sync_log.write(self._conn, entry)

    @tracer.capture_method
    def keep_payload(self, organization_id: UUID, event_id: str, message: str) -> None:
        sync_log.keep_payload(self._conn, organization_id, event_id, message)

    @tracer.capture_method
    def resolve_contact(self, organization_id: UUID, table: str, row_id: str) -> str | None:
        # Membership rows and enrolment rows both remember their Dynamics row id.
        row = self._one(
            """
            select p.dynamics_contact_id from organization_memberships m
                join profiles p on p.id = m.profile_id
             where m.organization_id = %(org)s and m.dynamics_row_id = %(row)s
            union all
            select p.dynamics_contact_id from course_enrollments c
                join profiles p on p.id = c.profile_id
             where c.organization_id = %(org)s and c.dynamics_row_id = %(row)s
            limit 1
            """,
            {"org": organization_id, "row": normalize_id(row_id)},
        )
        return row["dynamics_contact_id"] if row else None

    # -- members --------------------------------------------------------------------------

    @tracer.capture_method
    def lock_member(self, organization_id: UUID, contact_id: str) -> MemberState | None:
        # Locking the profile row serialises concurrent events for one member. NO KEY UPDATE:
        # rows that reference the profile (logs, statuses) can still be inserted meanwhile.
        row = self._one(
            """
            select p.id, m.status, m.role, m.source_modified_at, p.details_modified_at,
                   p.dynamics_environment
              from profiles p
              left join organization_memberships m
                on m.profile_id = p.id and m.organization_id = %s
             where p.dynamics_contact_id = %s
               for no key update of p
            """,
            (organization_id, contact_id),
        )
        if row is None:
            return None
        return MemberState(
            row["id"],
            row["status"],
            row["role"],
            row["source_modified_at"],
            row["details_modified_at"],
            row["dynamics_environment"],
        )

    @tracer.capture_method
    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        row = self._one(
            _CREATE_PROFILE,
            {
                "contact": details.dynamics_contact_id,
                "environment": environment,
                "at": modified_at,
                **_profile_params(details),
            },
        )
        return row["id"] if row else None

    @tracer.capture_method
    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        params = _profile_params(details)
        if all(value is None for value in params.values()):
            return
        self._conn.execute(_UPDATE_PROFILE, {**params, "at": modified_at, "id": profile_id})

    @tracer.capture_method
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
        self._conn.execute(
            f"""
            with membership as (
                insert into organization_memberships
                    (organization_id, profile_id, role, status, source_modified_at,
                     dynamics_row_id, last_synced_at)
                values (%(org)s, %(profile)s, %(role)s, %(status)s, %(at)s, %(row)s, now())
                {MEMBERSHIP_ON_CONFLICT}
                returning profile_id
            )
            -- Active while active in any organisation (the access token hook reads it).
            -- This statement cannot see its own insert: this organisation's status is the
            -- parameter, the others' are read.
            update profiles p set
                is_active = %(status)s = 'active' or exists (
                    select 1 from organization_memberships m
                     where m.profile_id = p.id and m.status = 'active'
                       and m.organization_id <> %(org)s),
                updated_at = now()
              from membership where p.id = membership.profile_id
            """,  # noqa: S608
            {
                "org": organization_id,
                "profile": profile_id,
                "role": role,
                "status": status,
                "at": source_modified_at,
                "row": dynamics_row_id,
            },
        )

    # -- courses --------------------------------------------------------------------------

    @tracer.capture_method
    def lock_enrollment(
        self, organization_id: UUID, profile_id: UUID, course_id: str
    ) -> EnrollmentState | None:
        row = self._one(
            "select status, source_modified_at from course_enrollments"
            " where organization_id = %s and profile_id = %s and dynamics_course_id = %s"
            " for update",
            (organization_id, profile_id, course_id),
        )
        return EnrollmentState(row["status"], row["source_modified_at"]) if row else None

    @tracer.capture_method
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
        self._conn.execute(
            """
            insert into course_enrollments
                (organization_id, profile_id, dynamics_course_id, course_name, status,
                 source_modified_at, dynamics_row_id)
            values (%(org)s, %(profile)s, %(course)s, %(name)s, %(status)s, %(at)s, %(row)s)
            """  # noqa: S608
            + ENROLLMENT_ON_CONFLICT,
            {
                "org": organization_id,
                "profile": profile_id,
                "course": course.dynamics_course_id,
                "name": course.name,
                "status": status,
                "at": source_modified_at,
                "row": dynamics_row_id,
            },
        )


def _profile_params(details: MemberDetails) -> dict[str, str | None]:
    return {name: getattr(details, name) for name in PROFILE_FIELDS}
