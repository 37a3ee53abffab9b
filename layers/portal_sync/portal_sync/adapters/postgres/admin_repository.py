"""PostgreSQL side of the admin API: authority, settings, sync history, receipts, audit log.

Lists are newest first with keyset pagination: the cursor is the last row's (time, id), so a
page never repeats or skips rows while new events keep arriving.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from portal_sync.access.authority import Authority
from portal_sync.adapters.postgres import cursors, sync_log
from portal_sync.adapters.postgres.audit_entries import write_audit
from portal_sync.adapters.postgres.cursors import encode_cursor
from portal_sync.adapters.postgres.visibility_summary import website_visibility_summary
from portal_sync.admin.errors import InvalidCursor
from portal_sync.admin.ports import (
    CHANGEABLE_FIELDS,
    IntegrationChanges,
    IntegrationRecord,
    NewIntegration,
    Page,
    ReceiptCounts,
)
from portal_sync.inbound.source_config import SignatureMode
from portal_sync.observability import tracer

# The record's fields are the columns' names: these are the columns it is read from.
_INTEGRATION_SELECT = (
    f"select {', '.join(field.name for field in fields(IntegrationRecord))}"  # noqa: S608
    " from integration_configs"
)
_JSON_COLUMNS = {"field_mapping", "feature_ownership", "deep_links"}
# An organisation's members (and one of them, with `and p.id = ...`): a MemberView per row.
_MEMBERS_SELECT = """
    select p.id as profile_id, p.dynamics_contact_id, p.first_name, p.last_name, p.email,
           p.phone, m.role, m.status, m.last_synced_at, m.created_at, m.id
      from organization_memberships m join profiles p on p.id = m.profile_id
     where m.organization_id = %(org)s
"""


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        return cursors.decode_cursor(cursor)
    except ValueError as exc:
        raise InvalidCursor() from exc


def decode_name_cursor(cursor: str) -> tuple[str, UUID]:
    try:
        return cursors.decode_name_cursor(cursor)
    except ValueError as exc:
        raise InvalidCursor() from exc


class PostgresAdminRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self._conn.execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params).fetchall())

    @tracer.capture_method
    def authority(self, user_id: UUID) -> Authority:
        admin = self._one("select 1 as yes from platform_admins where user_id = %s", (user_id,))
        roles = self._all(
            """
            select m.organization_id, m.role from organization_memberships m
              join profiles p on p.id = m.profile_id
             where p.auth_user_id = %s and m.status = 'active'
            """,
            (user_id,),
        )
        return Authority(
            is_global_admin=admin is not None,
            org_roles={row["organization_id"]: row["role"] for row in roles},
        )

    @tracer.capture_method
    def organization_exists(self, organization_id: UUID) -> bool:
        return (
            self._one("select 1 as yes from organizations where id = %s", (organization_id,))
            is not None
        )

    @tracer.capture_method
    def integration(self, organization_id: UUID) -> IntegrationRecord | None:
        row = self._one(f"{_INTEGRATION_SELECT} where organization_id = %s", (organization_id,))
        if row is None:
            return None
        learned = row["dynamics_application_user_id"]  # a uuid column; ids are text here
        return IntegrationRecord(
            **{
                **row,
                "signature_mode": SignatureMode(row["signature_mode"]),
                "dynamics_application_user_id": str(learned) if learned else None,
            }
        )

    @tracer.capture_method
    def update_integration(self, organization_id: UUID, changes: IntegrationChanges) -> None:
        unknown = set(changes) - CHANGEABLE_FIELDS
        if unknown:
            raise ValueError(f"not integration columns: {sorted(unknown)}")
        # Column names come from the record's fields, never from the request.
        assignments = ", ".join(f"{column} = %({column})s" for column in changes)
        params = {
            column: Jsonb(value) if column in _JSON_COLUMNS and value is not None else value
            for column, value in changes.items()
        }
        self._conn.execute(
            f"update integration_configs set {assignments}, updated_at = now()"  # noqa: S608
            " where organization_id = %(organization_id)s",
            {**params, "organization_id": organization_id},
        )

    @tracer.capture_method
    def source_owner(self, source_id: str) -> UUID | None:
        row = self._one(
            "select organization_id from integration_configs where source_id = %s", (source_id,)
        )
        return row["organization_id"] if row else None

    @tracer.capture_method
    def create_organization(self, name: str, source_id: str, integration: NewIntegration) -> UUID:
        row = self._one("insert into organizations (name) values (%s) returning id", (name,))
        assert row is not None
        self._conn.execute(
            """
            insert into integration_configs
                (organization_id, source_id, enabled, signature_mode, field_mapping,
                 feature_ownership, deep_links, dataverse_organization_id)
            values (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                row["id"],
                source_id,
                integration.enabled,
                integration.signature_mode.value,
                Jsonb(integration.field_mapping) if integration.field_mapping else None,
                Jsonb(integration.feature_ownership),
                Jsonb(integration.deep_links),
                integration.dataverse_organization_id,
            ),
        )
        organization_id: UUID = row["id"]
        return organization_id

    @tracer.capture_method
    def audit(
        self, organization_id: UUID | None, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        write_audit(self._conn, organization_id, actor, action, details)

    @tracer.capture_method
    def audit_log(self, organization_id: UUID, limit: int, cursor: str | None) -> Page:
        return self._page(
            "select id, actor, action, details, created_at from audit_logs"
            " where organization_id = %(org)s",
            "created_at",
            {"org": organization_id},
            limit,
            cursor,
        )

    @tracer.capture_method
    def sync_summary(self, organization_id: UUID, since: datetime) -> dict[str, Any]:
        return {
            **sync_log.summary(self._conn, organization_id, since),
            "website_visibility": website_visibility_summary(self._conn, organization_id),
        }

    @tracer.capture_method
    def sync_events(
        self,
        organization_id: UUID,
        *,
        status: str | None,
        event_type: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        return self._page(
            sync_log.EVENTS_SELECT,
            sync_log.EVENTS_TIME,
            sync_log.events_params(organization_id, status, event_type),
            limit,
            cursor,
            id_column=sync_log.EVENTS_ID,
            time_key=sync_log.EVENTS_TIME_KEY,
        )

    @tracer.capture_method
    def sync_event(self, organization_id: UUID, id: UUID) -> dict[str, Any] | None:
        return sync_log.entry(self._conn, organization_id, id)

    @tracer.capture_method
    def kept_payload(self, organization_id: UUID, event_id: str) -> str | None:
        return sync_log.kept_payload(self._conn, organization_id, event_id)

    @tracer.capture_method
    def receipt_counts(self, organization_id: UUID, since: datetime) -> ReceiptCounts:
        rows = self._all(
            """
            select outcome, reason, count(*) as n from webhook_receipts
             where organization_id = %s and received_at >= %s
             group by outcome, reason
            """,
            (organization_id, since),
        )
        by_outcome: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for row in rows:
            by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + row["n"]
            if row["outcome"] == "rejected" and row["reason"]:
                by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["n"]
        return ReceiptCounts(by_outcome, by_reason)

    @tracer.capture_method
    def last_receipt_at(self, organization_id: UUID, outcomes: tuple[str, ...]) -> datetime | None:
        row = self._one(
            "select max(received_at) as at from webhook_receipts"
            " where organization_id = %s and outcome = any(%s)",
            (organization_id, list(outcomes)),
        )
        return row["at"] if row else None

    @tracer.capture_method
    def members(self, organization_id: UUID, limit: int, cursor: str | None) -> Page:
        return self._page(
            _MEMBERS_SELECT,
            "m.created_at",
            {"org": organization_id},
            limit,
            cursor,
            id_column="m.id",
            time_key="created_at",
        )

    @tracer.capture_method
    def member(self, organization_id: UUID, profile_id: UUID) -> dict[str, Any] | None:
        return self._one(
            f"{_MEMBERS_SELECT} and p.id = %(profile)s",
            {"org": organization_id, "profile": profile_id},
        )

    @tracer.capture_method
    def organizations(self, *, only: list[UUID] | None, limit: int, cursor: str | None) -> Page:
        params: dict[str, Any] = {"only": only, "limit": limit + 1, "name": None, "id": None}
        if cursor:
            params["name"], params["id"] = decode_name_cursor(cursor)
        rows = self._all(
            """
            select o.id, o.name, c.source_id, coalesce(c.enabled, false) as enabled
              from organizations o left join integration_configs c on c.organization_id = o.id
             where (%(only)s::uuid[] is null or o.id = any(%(only)s::uuid[]))
               and (%(name)s::text is null or (o.name, o.id) > (%(name)s::text, %(id)s::uuid))
             order by o.name, o.id limit %(limit)s
            """,
            params,
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = cursors.encode_name_cursor(rows[-1]["name"], rows[-1]["id"])
        return Page(rows, next_cursor)

    @tracer.capture_method
    def organization_names(self, organization_ids: list[UUID]) -> dict[UUID, str]:
        rows = self._all(
            "select id, name from organizations where id = any(%s::uuid[]) order by name, id",
            (organization_ids,),
        )
        return {row["id"]: row["name"] for row in rows}

    @tracer.capture_method
    def contact_of(self, organization_id: UUID, user_id: UUID) -> str | None:
        row = self._one(
            """
            select p.dynamics_contact_id from profiles p
              join organization_memberships m on m.profile_id = p.id and m.organization_id = %s
             where p.auth_user_id = %s
            """,
            (organization_id, user_id),
        )
        return row["dynamics_contact_id"] if row else None

    @tracer.capture_method
    def organizations_on_dataverse(self, dataverse_organization_id: str) -> list[UUID]:
        rows = self._all(
            "select organization_id from integration_configs"
            " where lower(dataverse_organization_id) = lower(%s)",
            (dataverse_organization_id,),
        )
        return [row["organization_id"] for row in rows]

    @tracer.capture_method
    def move_members(self, from_environment: str, to_environment: str) -> int:
        return self._conn.execute(
            "update profiles set dynamics_environment = %s, updated_at = now()"
            " where dynamics_environment = %s",
            (to_environment, from_environment),
        ).rowcount

    def _page(
        self,
        select: str,
        time_column: str,
        params: dict[str, Any],
        limit: int,
        cursor: str | None,
        *,
        id_column: str = "id",
        time_key: str | None = None,
    ) -> Page:
        """Newest first by (time, id); one extra row tells whether there is a next page."""
        where = ""
        if cursor:
            at, id = decode_cursor(cursor)
            where = f" and ({time_column}, {id_column}) < (%(cursor_at)s, %(cursor_id)s)"
            params = {**params, "cursor_at": at, "cursor_id": id}
        rows = self._all(
            f"{select}{where} order by {time_column} desc, {id_column} desc limit %(limit)s",
            {**params, "limit": limit + 1},
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(last[time_key or time_column], last["id"])
        return Page(rows, next_cursor)
