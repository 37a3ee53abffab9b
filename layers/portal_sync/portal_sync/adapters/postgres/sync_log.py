"""The sync log in PostgreSQL: every statement on portal_sync_events and on the payloads kept
for reprocessing (portal_sync_event_payloads).

The consumer writes it (one entry at a time, or a whole batch's entries in one statement) and
the admin API reads it (summary, history, one entry, the kept payload): docs/inbound.md,
docs/admin-api.md. Every function runs in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from portal_sync.inbound.sync_log import LogKey, LogStatus, SyncLogEntry

# The columns an entry writes, with their types (for the batch's arrays); processed_at is now().
_COLUMNS = (
    ("organization_id", "uuid"),
    ("event_id", "text"),
    ("event_type", "text"),
    ("source_message", "text"),
    ("source_table", "text"),
    ("status", "text"),
    ("message", "text"),
    ("profile_id", "uuid"),
    ("receipt_id", "uuid"),
    ("correlation_id", "text"),
    ("source_modified_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("attempts", "int"),
)
_INSERT = (
    f"insert into portal_sync_events ({', '.join(name for name, _ in _COLUMNS)}, processed_at)"
)

# A retried event keeps one entry: the later write says what happened, what it leaves out is
# kept, and the attempts add up (an insert carries how many attempts it stands for). The batch
# merges two writes of one batch with the same rule (inbound/batch_merge.py, merge_log).
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
_WRITE = f"{_INSERT} values ({', '.join('%s' for _ in _COLUMNS)}, now())" + LOG_ON_CONFLICT
_WRITE_MANY = (
    f"{_INSERT} select *, now() from unnest("  # noqa: S608
    + ", ".join(f"%b::{kind}[]" for _, kind in _COLUMNS)
    + ")"
    + LOG_ON_CONFLICT
)


def _values(entry: SyncLogEntry) -> tuple[Any, ...]:
    return (
        entry.organization_id,
        entry.event_id,
        entry.event_type,
        entry.source_message,
        entry.source_table,
        entry.status.value,
        entry.message,
        entry.profile_id,
        entry.receipt_id,
        entry.correlation_id,
        entry.source_modified_at,
        entry.received_at,
        entry.attempts,
    )


# -- the consumer ------------------------------------------------------------------------------


def status(conn: psycopg.Connection[Any], organization_id: UUID, event_id: str) -> LogStatus | None:
    row = conn.execute(
        "select status from portal_sync_events where organization_id = %s and event_id = %s",
        (organization_id, event_id),
    ).fetchone()
    return LogStatus(row["status"]) if row else None


def statuses(
    conn: psycopg.Connection[Any], keys: Sequence[LogKey]
) -> Callable[[], dict[LogKey, LogStatus]]:
    """Sends the read of the logged events among `keys` and returns how to collect it: in a
    pipeline, the rows arrive once it is synced."""
    cursor = conn.execute(
        "select organization_id, event_id, status from portal_sync_events"
        " where (organization_id, event_id) in (select * from unnest(%b::uuid[], %b::text[]))",
        ([org for org, _ in keys], [event_id for _, event_id in keys]),
    )
    return lambda: {
        (row["organization_id"], row["event_id"]): LogStatus(row["status"])
        for row in cursor.fetchall()
    }


def write(conn: psycopg.Connection[Any], entry: SyncLogEntry) -> None:
    conn.execute(_WRITE, _values(entry))


def write_many(conn: psycopg.Connection[Any], entries: Sequence[SyncLogEntry]) -> None:
    """The batch's entries in one statement (one entry per event: see merge_log)."""
    if entries:
        conn.execute(
            _WRITE_MANY, [list(column) for column in zip(*map(_values, entries), strict=True)]
        )


def keep_payload(
    conn: psycopg.Connection[Any], organization_id: UUID, event_id: str, message: str
) -> None:
    """Keeps a failed event's queue message, so that an admin can reprocess it."""
    conn.execute(
        "insert into portal_sync_event_payloads (organization_id, event_id, message)"
        " values (%s, %s, %s) on conflict (organization_id, event_id)"
        " do update set message = excluded.message, stored_at = now()",
        (organization_id, event_id, Jsonb(json.loads(_jsonb_safe(message)))),
    )


def _jsonb_safe(message: str) -> str:
    """jsonb cannot hold U+0000. The kept message's body travels base64-encoded, so a NUL can
    only be in a forwarded header: it becomes U+FFFD rather than losing the whole event."""
    return message.replace("\\u0000", "\\ufffd")


# -- the admin API -----------------------------------------------------------------------------


def summary(
    conn: psycopg.Connection[Any], organization_id: UUID, since: datetime
) -> dict[str, Any]:
    """The last processing times, the failures, the events waiting, and the counts since
    `since` by status."""
    # pending: accepted receipts (the ingest writes them) not yet in the sync log, over the
    # queue's retention (14 days; an older one can no longer be on the queue). The partial
    # index webhook_receipts_accepted_org covers the scan.
    row = conn.execute(
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
    ).fetchone()
    assert row is not None
    recent = conn.execute(
        "select status, count(*) as n from portal_sync_events"
        " where organization_id = %s and processed_at >= %s group by status",
        (organization_id, since),
    ).fetchall()
    counts = {"success": 0, "error": 0, "skipped": 0}
    counts.update({r["status"]: r["n"] for r in recent})
    return {**row, "last_24h": counts}


# The history, filtered by status and type: the admin repository pages it newest first by
# (EVENTS_TIME, EVENTS_ID), with events_params().
EVENTS_SELECT = """
    select e.id, e.event_id, e.event_type, e.source_message, e.source_table, e.status,
           e.message, e.received_at, e.processed_at, e.attempts,
           (e.status = 'error' and p.event_id is not null) as can_reprocess
      from portal_sync_events e
      left join portal_sync_event_payloads p
        on p.organization_id = e.organization_id and p.event_id = e.event_id
     where e.organization_id = %(org)s
       and (%(status)s::text is null or e.status = %(status)s)
       and (%(type)s::text is null or e.event_type = %(type)s)
"""
EVENTS_TIME = "e.received_at"
EVENTS_ID = "e.id"
EVENTS_TIME_KEY = "received_at"  # the time's key in a row, for the cursor


def events_params(
    organization_id: UUID, status: str | None, event_type: str | None
) -> dict[str, Any]:
    return {"org": organization_id, "status": status, "type": event_type}


def entry(conn: psycopg.Connection[Any], organization_id: UUID, id: UUID) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "select * from portal_sync_events where organization_id = %s and id = %s",
        (organization_id, id),
    ).fetchone()
    return row


def kept_payload(conn: psycopg.Connection[Any], organization_id: UUID, event_id: str) -> str | None:
    """The kept queue message of a failed event, as JSON text; None when none is kept."""
    row = conn.execute(
        "select message from portal_sync_event_payloads"
        " where organization_id = %s and event_id = %s",
        (organization_id, event_id),
    ).fetchone()
    if row is None:
        return None
    message = row["message"]
    return message if isinstance(message, str) else json.dumps(message)
