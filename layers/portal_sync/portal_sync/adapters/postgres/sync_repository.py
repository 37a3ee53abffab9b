"""PostgreSQL side of applying events (implements sync.ports.SyncRepository).

Every method runs inside the transaction the caller opened: the consumer applies a whole SQS
batch in one transaction with a savepoint per message, so a batch costs one commit.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from portal_sync.adapters.postgres.receipt_ledger import INSERT_RECEIPT, receipt_params
from portal_sync.inbound.events import CourseDetails, MemberDetails, normalize_id
from portal_sync.inbound.ports import (
    DeliveryClaim,
    EnrollmentState,
    IntegrationSettings,
    MemberState,
)
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry

# A field sent as "" was cleared at the source; a field not sent (NULL here) is kept.
PROFILE_FIELDS = ("first_name", "last_name", "email", "phone")
_KEEP_OR_SET = ", ".join(
    f"{name} = case when %({name})s::text is null then {name} else nullif(%({name})s, '') end"
    for name in PROFILE_FIELDS
)

# How a write meets the row already there; the batched repository writes with the same clauses.
# The log counts attempts: an insert carries how many writes it stands for.
LOG_ON_CONFLICT = """
    on conflict (organization_id, event_id) do update set
        event_type = excluded.event_type,
        source_message = coalesce(excluded.source_message, portal_sync_events.source_message),
        source_table = coalesce(excluded.source_table, portal_sync_events.source_table),
        status = excluded.status,
        message = excluded.message,
        profile_id = coalesce(excluded.profile_id, portal_sync_events.profile_id),
        source_modified_at = coalesce(excluded.source_modified_at,
                                      portal_sync_events.source_modified_at),
        processed_at = now(),
        attempts = portal_sync_events.attempts + excluded.attempts
"""
MEMBERSHIP_ON_CONFLICT = """
    on conflict (organization_id, profile_id) do update set
        role = excluded.role,
        status = excluded.status,
        source_modified_at = greatest(organization_memberships.source_modified_at,
                                      excluded.source_modified_at),
        dynamics_row_id = coalesce(excluded.dynamics_row_id,
                                   organization_memberships.dynamics_row_id),
        last_synced_at = now(),
        updated_at = now()
"""
ENROLLMENT_ON_CONFLICT = """
    on conflict (organization_id, profile_id, dynamics_course_id) do update set
        course_name = coalesce(excluded.course_name, course_enrollments.course_name),
        status = excluded.status,
        source_modified_at = greatest(course_enrollments.source_modified_at,
                                      excluded.source_modified_at),
        dynamics_row_id = coalesce(excluded.dynamics_row_id, course_enrollments.dynamics_row_id),
        updated_at = now()
"""


class PostgresSyncRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        row = self._conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    # -- receipts -------------------------------------------------------------------------

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

    def record_receipt(self, receipt: Receipt) -> None:
        self._conn.execute(INSERT_RECEIPT, receipt_params(receipt))

    # -- configuration and log ------------------------------------------------------------

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        row = self._one(
            "select field_mapping, application_user_ids, dataverse_organization_id"
            " from integration_configs where organization_id = %s",
            (organization_id,),
        )
        if row is None:
            return IntegrationSettings()
        return IntegrationSettings(
            field_mapping=row["field_mapping"],
            application_user_ids=frozenset(u.lower() for u in row["application_user_ids"] or ()),
            dataverse_organization_id=row["dataverse_organization_id"],
        )

    def logged_status(self, organization_id: UUID, event_id: str) -> LogStatus | None:
        row = self._one(
            "select status from portal_sync_events where organization_id = %s and event_id = %s",
            (organization_id, event_id),
        )
        return LogStatus(row["status"]) if row else None

    def write_log(self, entry: SyncLogEntry) -> None:
        self._conn.execute(
            """
            insert into portal_sync_events
                (organization_id, event_id, event_type, source_message, source_table, status,
                 message, profile_id, receipt_id, correlation_id, source_modified_at, received_at,
                 processed_at, attempts)
            values (%(organization_id)s, %(event_id)s, %(event_type)s, %(source_message)s,
                    %(source_table)s, %(status)s, %(message)s, %(profile_id)s, %(receipt_id)s,
                    %(correlation_id)s, %(source_modified_at)s, %(received_at)s, now(),
                    %(attempts)s)
            """  # noqa: S608
            + LOG_ON_CONFLICT,
            {
                "organization_id": entry.organization_id,
                "event_id": entry.event_id,
                "event_type": entry.event_type,
                "source_message": entry.source_message,
                "source_table": entry.source_table,
                "status": entry.status.value,
                "message": entry.message,
                "profile_id": entry.profile_id,
                "receipt_id": entry.receipt_id,
                "correlation_id": entry.correlation_id,
                "source_modified_at": entry.source_modified_at,
                "received_at": entry.received_at,
                "attempts": entry.attempts,
            },
        )

    def keep_payload(self, organization_id: UUID, event_id: str, message: str) -> None:
        self._conn.execute(
            "insert into portal_sync_event_payloads (organization_id, event_id, message)"
            " values (%s, %s, %s) on conflict (organization_id, event_id)"
            " do update set message = excluded.message, stored_at = now()",
            (organization_id, event_id, Jsonb(json.loads(_jsonb_safe(message)))),
        )

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

    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        row = self._one(
            """
            insert into profiles
                (dynamics_contact_id, dynamics_environment, first_name, last_name, email, phone,
                 details_modified_at)
            values (%(contact)s, %(environment)s, nullif(%(first_name)s, ''),
                    nullif(%(last_name)s, ''), nullif(%(email)s, ''), nullif(%(phone)s, ''),
                    %(at)s)
            on conflict (dynamics_contact_id) do nothing
            returning id
            """,
            {
                "contact": details.dynamics_contact_id,
                "environment": environment,
                "at": modified_at,
                **_profile_params(details),
            },
        )
        return row["id"] if row else None

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        params = _profile_params(details)
        if all(value is None for value in params.values()):
            return
        self._conn.execute(
            f"update profiles set {_KEEP_OR_SET}, updated_at = now(),"  # noqa: S608
            " details_modified_at = greatest(details_modified_at, %(at)s) where id = %(id)s",
            {**params, "at": modified_at, "id": profile_id},
        )

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


def _jsonb_safe(message: str) -> str:
    """jsonb cannot hold U+0000. The kept message's body travels base64-encoded, so a NUL can
    only be in a forwarded header: it becomes U+FFFD rather than losing the whole event."""
    return message.replace("\\u0000", "\\ufffd")


def _profile_params(details: MemberDetails) -> dict[str, str | None]:
    return {name: getattr(details, name) for name in PROFILE_FIELDS}
