"""PostgreSQL side of mentor website visibility: the mentors' status rows, the outbox, the sync
log, and the organisations' Dynamics settings and Retry-After block (the VisibilityRepository of
visibility/ports.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.adapters.postgres.audit_entries import write_audit
from portal_sync.adapters.postgres.cursors import decode_cursor, encode_cursor
from portal_sync.adapters.postgres.outage_store import join_outage
from portal_sync.dataverse.connection import DynamicsConnection
from portal_sync.observability import tracer
from portal_sync.visibility.ports import (
    Change,
    DynamicsSettings,
    HistoryEntry,
    HistoryPage,
    MentorStatus,
    OutOfStep,
)

MENTOR_ROLE = "peer_mentor"
# A pending delivery with no news for this long has no execution left (each attempt of one
# writes the mentor's row, and retries are at most 15 minutes apart): the sweep delivers again.
STALLED_DELIVERY_SECONDS = 3600


class PostgresVisibilityRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self._conn.execute(sql, params).fetchone()
        return row

    @tracer.capture_method
    def history(
        self, organization_id: UUID, profile_id: UUID, limit: int, cursor: str | None
    ) -> HistoryPage:
        after = decode_cursor(cursor) if cursor else None  # ValueError: not one of ours
        rows = self._conn.execute(
            """
            select id, action, actor, message, desired, applied, created_at
              from peer_mentor_sync_log
             where organization_id = %(org)s and profile_id = %(profile)s
               and (%(at)s::timestamptz is null or (created_at, id) < (%(at)s, %(id)s))
             order by created_at desc, id desc
             limit %(limit)s
            """,
            {
                "org": organization_id,
                "profile": profile_id,
                "at": after[0] if after else None,
                "id": after[1] if after else None,
                "limit": limit + 1,
            },
        ).fetchall()
        entries = [HistoryEntry(**row) for row in rows[:limit]]
        more = len(rows) > limit
        last = entries[-1] if entries else None
        return HistoryPage(
            entries, encode_cursor(last.created_at, last.id) if more and last else None
        )

    def mentor_organizations(self, profile_id: UUID) -> list[UUID]:
        rows = self._conn.execute(
            "select organization_id from organization_memberships"
            " where profile_id = %s and role = %s order by organization_id",
            (profile_id, MENTOR_ROLE),
        ).fetchall()
        return [row["organization_id"] for row in rows]

    @tracer.capture_method
    def lock_mentor(self, organization_id: UUID, profile_id: UUID) -> MentorStatus | None:
        # A peer mentor gets a status row the first time anything concerns them.
        self._conn.execute(
            """
            insert into peer_mentor_status (organization_id, profile_id)
            select organization_id, profile_id from organization_memberships
             where organization_id = %s and profile_id = %s and role = %s
            on conflict do nothing
            """,
            (organization_id, profile_id, MENTOR_ROLE),
        )
        row = self._one(
            """
            select s.*, p.dynamics_contact_id, coalesce(m.status = 'active', false) as active
              from peer_mentor_status s
              join profiles p on p.id = s.profile_id
              left join organization_memberships m
                on m.organization_id = s.organization_id and m.profile_id = s.profile_id
             where s.organization_id = %s and s.profile_id = %s
               for update of s
            """,
            (organization_id, profile_id),
        )
        if row is None:
            return None
        return MentorStatus(
            organization_id=row["organization_id"],
            profile_id=row["profile_id"],
            contact_id=row["dynamics_contact_id"],
            membership_active=row["active"],
            paused=row["paused"],
            hidden_manually=row["hidden_manually"],
            certified_until=row["certified_until"],
            desired=row["website_visible_desired"],
            applied=row["website_visible_applied"],
            sync_state=row["sync_state"],
            current_change_id=row["current_change_id"],
            attempts=row["attempts"],
            last_synced_at=row["last_synced_at"],
            last_error=row["last_error"],
            next_attempt_at=row["next_attempt_at"],
            redeliveries=row["redeliveries"],
        )

    @tracer.capture_method
    def save_mentor(self, status: MentorStatus) -> None:
        self._conn.execute(
            """
            update peer_mentor_status set
                paused = %(paused)s, hidden_manually = %(hidden)s,
                certified_until = %(certified_until)s,
                website_visible_desired = %(desired)s, website_visible_applied = %(applied)s,
                sync_state = %(state)s, current_change_id = %(change)s, attempts = %(attempts)s,
                last_synced_at = %(synced)s, last_error = %(error)s,
                next_attempt_at = %(next_attempt)s, redeliveries = %(redeliveries)s,
                updated_at = now()
             where organization_id = %(org)s and profile_id = %(profile)s
            """,
            {
                "paused": status.paused,
                "hidden": status.hidden_manually,
                "certified_until": status.certified_until,
                "desired": status.desired,
                "applied": status.applied,
                "state": status.sync_state,
                "change": status.current_change_id,
                "attempts": status.attempts,
                "synced": status.last_synced_at,
                "error": status.last_error,
                "next_attempt": status.next_attempt_at,
                "redeliveries": status.redeliveries,
                "org": status.organization_id,
                "profile": status.profile_id,
            },
        )

    @tracer.capture_method
    def add_change(
        self, organization_id: UUID, profile_id: UUID, desired: bool, reason: str
    ) -> UUID:
        row = self._one(
            "insert into website_visibility_outbox (organization_id, profile_id, desired, reason)"
            " values (%s, %s, %s, %s) returning id",
            (organization_id, profile_id, desired, reason),
        )
        assert row is not None
        change_id: UUID = row["id"]
        return change_id

    @tracer.capture_method
    def change(self, change_id: UUID) -> Change | None:
        row = self._one("select * from website_visibility_outbox where id = %s", (change_id,))
        return _change(row) if row else None

    @tracer.capture_method
    def log(
        self,
        status: MentorStatus,
        action: str,
        message: str,
        actor: str,
        change_id: UUID | None = None,
    ) -> None:
        self._conn.execute(
            """
            insert into peer_mentor_sync_log
                (organization_id, profile_id, action, desired, applied, message, actor, change_id)
            values (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                status.organization_id,
                status.profile_id,
                action,
                status.desired,
                status.applied,
                message,
                actor,
                change_id,
            ),
        )

    @tracer.capture_method
    def undispatched_changes(self, limit: int, older_than_seconds: float) -> list[Change]:
        # SKIP LOCKED: concurrent dispatchers share the rows instead of starting them twice
        # (a second start would be refused anyway: executions are named after the row).
        rows = self._conn.execute(
            """
            select * from website_visibility_outbox
             where dispatched_at is null
               and created_at <= now() - make_interval(secs => %s)
             order by created_at limit %s
               for update skip locked
            """,
            (older_than_seconds, limit),
        ).fetchall()
        return [_change(row) for row in rows]

    @tracer.capture_method
    def mark_dispatched(
        self, change_id: UUID, execution_arn: str | None, error: str | None
    ) -> None:
        self._conn.execute(
            """
            update website_visibility_outbox set
                dispatched_at = case when %(arn)s::text is null then null else now() end,
                execution_arn = %(arn)s,
                dispatch_attempts = dispatch_attempts + 1,
                last_dispatch_error = %(error)s
             where id = %(id)s
            """,
            {"arn": execution_arn, "error": error, "id": change_id},
        )

    @tracer.capture_method
    def audit(
        self, organization_id: UUID, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        write_audit(self._conn, organization_id, actor, action, details)

    def failed_mentors(self, organization_id: UUID, limit: int) -> list[UUID]:
        rows = self._conn.execute(
            "select profile_id from peer_mentor_status"
            " where organization_id = %s and sync_state = 'failed' order by updated_at limit %s",
            (organization_id, limit),
        ).fetchall()
        return [row["profile_id"] for row in rows]

    def due_redeliveries(self, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        rows = self._conn.execute(
            """
            select s.organization_id, s.profile_id
              from peer_mentor_status s
              join integration_configs c on c.organization_id = s.organization_id
             where s.next_attempt_at <= %s and s.sync_state <> 'in_sync'
               and c.dynamics_base_url is not null
               and c.dynamics_credentials_fingerprint is not null
             order by s.next_attempt_at
             limit %s
            """,
            (now, limit),
        ).fetchall()
        return [(row["organization_id"], row["profile_id"]) for row in rows]

    def take_reconsiderations(self, limit: int) -> list[tuple[UUID, UUID]]:
        # Taken in the caller's transaction: a request is gone only once its reconsideration
        # committed; SKIP LOCKED lets two schedules share the work.
        rows = self._conn.execute(
            """
            delete from visibility_reconsiderations
             where (organization_id, profile_id) in (
                   select organization_id, profile_id from visibility_reconsiderations
                    order by requested_at limit %s for update skip locked)
            returning organization_id, profile_id, requested_at
            """,
            (limit,),
        ).fetchall()
        rows.sort(key=lambda row: row["requested_at"])
        return [(row["organization_id"], row["profile_id"]) for row in rows]

    @tracer.capture_method
    def mentors_out_of_step(self, today: date, limit: int) -> list[OutOfStep]:
        # `wanted` is visibility/rules.py's rule, written set-wise so that only the mentors
        # out of step are read (tests/integration/test_visibility_sweep.py checks that both
        # agree on every combination of facts). Organisations take turns (row_number per
        # organisation), so a large one cannot crowd out another's expiries.
        rows = self._conn.execute(
            """
            with mentors as (
                select s.organization_id, s.profile_id, s.updated_at,
                       s.website_visible_desired as desired,
                       coalesce(m.status = 'active', false) and not s.paused
                           and not s.hidden_manually
                           and coalesce(s.certified_until >= %(today)s, false) as wanted,
                       s.sync_state = 'in_sync'
                           and s.website_visible_applied is distinct from s.website_visible_desired
                       or s.sync_state = 'pending' and s.next_attempt_at is null
                           and s.updated_at < now() - make_interval(secs => %(stalled)s)
                           and not exists (
                               select 1 from website_visibility_outbox o
                                where o.id = s.current_change_id and o.dispatched_at is null)
                           as undelivered
                  from peer_mentor_status s
                  left join organization_memberships m
                    on m.organization_id = s.organization_id and m.profile_id = s.profile_id
            ), out_of_step as (
                select organization_id, profile_id, updated_at,
                       case when wanted <> desired then 'facts' else 'undelivered' end as reason,
                       row_number() over (partition by organization_id order by updated_at)
                           as turn
                  from mentors
                 where wanted <> desired or undelivered
            )
            select organization_id, profile_id, reason from out_of_step
             order by turn, updated_at
             limit %(limit)s
            """,
            {"today": today, "limit": limit, "stalled": STALLED_DELIVERY_SECONDS},
        ).fetchall()
        return [OutOfStep(row["organization_id"], row["profile_id"], row["reason"]) for row in rows]

    @tracer.capture_method
    def join_outage(self, organization_id: UUID, profile_id: UUID, cause: str) -> None:
        join_outage(self._conn, organization_id, profile_id, cause)

    @tracer.capture_method
    def blocked_until(self, organization_id: UUID) -> datetime | None:
        row = self._one(
            "select dynamics_blocked_until from integration_configs where organization_id = %s",
            (organization_id,),
        )
        return row["dynamics_blocked_until"] if row else None

    @tracer.capture_method
    def block_until(self, organization_id: UUID, moment: datetime) -> None:
        self._conn.execute(
            "update integration_configs set dynamics_blocked_until ="
            " greatest(dynamics_blocked_until, %s) where organization_id = %s",
            (moment, organization_id),
        )

    @tracer.capture_method
    def dynamics_settings(self, organization_id: UUID) -> DynamicsSettings | None:
        row = self._one(
            """
            select dynamics_base_url, dynamics_auth_type, dynamics_tenant_id, dynamics_client_id,
                   website_visibility_column, dynamics_api_key_header,
                   dynamics_application_user_id
              from integration_configs where organization_id = %s
            """,
            (organization_id,),
        )
        if not row or not row["dynamics_base_url"]:
            return None
        return DynamicsSettings(
            base_url=row["dynamics_base_url"],
            auth_type=row["dynamics_auth_type"],
            tenant_id=row["dynamics_tenant_id"],
            client_id=row["dynamics_client_id"],
            visibility_column=row["website_visibility_column"],
            api_key_header=row["dynamics_api_key_header"],
            application_user_id=(
                str(row["dynamics_application_user_id"])
                if row["dynamics_application_user_id"]
                else None
            ),
        )

    @tracer.capture_method
    def learn_application_user(
        self, organization_id: UUID, connection: DynamicsConnection, user_id: str
    ) -> None:
        # Only for the connection it was asked with: an admin may have changed it meanwhile.
        self._conn.execute(
            """
            update integration_configs
               set dynamics_application_user_id = %s,
                   dynamics_application_user_learned_at = now()
             where organization_id = %s and dynamics_base_url = %s and dynamics_auth_type = %s
               and dynamics_client_id is not distinct from %s
            """,
            (
                user_id,
                organization_id,
                connection.base_url,
                connection.auth_type,
                connection.client_id,
            ),
        )


def _change(row: dict[str, Any]) -> Change:
    return Change(
        row["id"], row["organization_id"], row["profile_id"], row["desired"], row["reason"]
    )
