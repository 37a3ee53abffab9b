"""PostgreSQL side of the admin API: authority, settings, sync history, receipts, audit log.

Lists are newest first with keyset pagination: the cursor is the last row's (time, id), so a
page never repeats or skips rows while new events keep arriving.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from portal_sync.access.authority import Authority
from portal_sync.admin.ports import Page, ReceiptCounts

_INTEGRATION_COLUMNS = {
    "enabled",
    "source_id",
    "signature_mode",
    "header_name",
    "dataverse_organization_id",
    "application_user_ids",
    "field_mapping",
    "feature_ownership",
    "deep_links",
    "dynamics_base_url",
    "dynamics_auth_type",
    "dynamics_tenant_id",
    "dynamics_client_id",
    "dynamics_credentials_fingerprint",
    "dynamics_credentials_updated_at",
    "website_visibility_column",
}
_JSON_COLUMNS = {"field_mapping", "feature_ownership", "deep_links"}


class InvalidCursor(ValueError):
    pass


def encode_cursor(at: datetime, id: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id = json.loads(raw)
        return datetime.fromisoformat(at), UUID(id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("cursor is not one this API handed out") from exc


class PostgresAdminRepository:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self._conn.execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params).fetchall())

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

    def organization_exists(self, organization_id: UUID) -> bool:
        return (
            self._one("select 1 as yes from organizations where id = %s", (organization_id,))
            is not None
        )

    def integration(self, organization_id: UUID) -> dict[str, Any] | None:
        return self._one(
            "select * from integration_configs where organization_id = %s", (organization_id,)
        )

    def update_integration(self, organization_id: UUID, changes: dict[str, Any]) -> None:
        unknown = set(changes) - _INTEGRATION_COLUMNS
        if unknown:
            raise ValueError(f"not integration columns: {sorted(unknown)}")
        # Column names come from the fixed set above, never from the request.
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

    def source_owner(self, source_id: str) -> UUID | None:
        row = self._one(
            "select organization_id from integration_configs where source_id = %s", (source_id,)
        )
        return row["organization_id"] if row else None

    def create_organization(self, name: str, source_id: str, integration: dict[str, Any]) -> UUID:
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
                integration["enabled"],
                integration["signature_mode"],
                Jsonb(integration["field_mapping"]) if integration["field_mapping"] else None,
                Jsonb(integration["feature_ownership"]),
                Jsonb(integration["deep_links"]),
                integration.get("dataverse_organization_id"),
            ),
        )
        organization_id: UUID = row["id"]
        return organization_id

    def audit(
        self, organization_id: UUID | None, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        self._conn.execute(
            "insert into audit_logs (organization_id, actor, action, details)"
            " values (%s, %s, %s, %s)",
            (organization_id, actor, action, Jsonb(details)),
        )

    def audit_log(self, organization_id: UUID, limit: int, cursor: str | None) -> Page:
        return self._page(
            "select id, actor, action, details, created_at from audit_logs"
            " where organization_id = %(org)s",
            "created_at",
            {"org": organization_id},
            limit,
            cursor,
        )

    def sync_summary(self, organization_id: UUID, since: datetime) -> dict[str, Any]:
        # pending: accepted receipts (the ingest writes them) not yet in the sync log, over
        # the queue's retention (14 days; an older one can no longer be on the queue). The
        # partial index webhook_receipts_accepted_org covers the scan.
        row = self._one(
            """
            select max(processed_at) as last_processed_at,
                   max(processed_at) filter (where status = 'success') as last_success_at,
                   count(*) filter (where status = 'error') as failed,
                   (select count(*) from webhook_receipts r
                     where r.organization_id = %(org)s and r.outcome = 'accepted'
                       and r.received_at > now() - interval '14 days'
                       and not exists (select from portal_sync_events l
                                        where l.organization_id = r.organization_id
                                          and l.event_id = r.delivery_id)) as pending
              from portal_sync_events where organization_id = %(org)s
            """,
            {"org": organization_id},
        )
        assert row is not None
        recent = self._all(
            "select status, count(*) as n from portal_sync_events"
            " where organization_id = %s and processed_at >= %s group by status",
            (organization_id, since),
        )
        counts = {"success": 0, "error": 0, "skipped": 0}
        counts.update({r["status"]: r["n"] for r in recent})
        return {**row, "last_24h": counts}

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
            """
            select e.id, e.event_id, e.event_type, e.source_message, e.source_table, e.status,
                   e.message, e.received_at, e.processed_at, e.attempts,
                   (e.status = 'error' and p.event_id is not null) as can_reprocess
              from portal_sync_events e
              left join portal_sync_event_payloads p
                on p.organization_id = e.organization_id and p.event_id = e.event_id
             where e.organization_id = %(org)s
               and (%(status)s::text is null or e.status = %(status)s)
               and (%(type)s::text is null or e.event_type = %(type)s)
            """,
            "e.received_at",
            {"org": organization_id, "status": status, "type": event_type},
            limit,
            cursor,
            id_column="e.id",
            time_key="received_at",
        )

    def sync_event(self, organization_id: UUID, id: UUID) -> dict[str, Any] | None:
        return self._one(
            "select * from portal_sync_events where organization_id = %s and id = %s",
            (organization_id, id),
        )

    def kept_payload(self, organization_id: UUID, event_id: str) -> str | None:
        row = self._one(
            "select message from portal_sync_event_payloads"
            " where organization_id = %s and event_id = %s",
            (organization_id, event_id),
        )
        if row is None:
            return None
        message = row["message"]
        return message if isinstance(message, str) else json.dumps(message)

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

    def last_receipt_at(self, organization_id: UUID, outcomes: tuple[str, ...]) -> datetime | None:
        row = self._one(
            "select max(received_at) as at from webhook_receipts"
            " where organization_id = %s and outcome = any(%s)",
            (organization_id, list(outcomes)),
        )
        return row["at"] if row else None

    def members(self, organization_id: UUID, limit: int, cursor: str | None) -> Page:
        return self._page(
            """
            select p.id as profile_id, p.dynamics_contact_id, p.first_name, p.last_name, p.email,
                   p.phone, m.role, m.status, m.last_synced_at, m.created_at, m.id
              from organization_memberships m join profiles p on p.id = m.profile_id
             where m.organization_id = %(org)s
            """,
            "m.created_at",
            {"org": organization_id},
            limit,
            cursor,
            id_column="m.id",
            time_key="created_at",
        )

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

    def organizations_on_dataverse(self, dataverse_organization_id: str) -> list[UUID]:
        rows = self._all(
            "select organization_id from integration_configs"
            " where lower(dataverse_organization_id) = lower(%s)",
            (dataverse_organization_id,),
        )
        return [row["organization_id"] for row in rows]

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
