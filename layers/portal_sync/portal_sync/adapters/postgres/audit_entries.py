"""Writing the organisations' audit log (audit_logs): the admin API's changes and coordinators'
website-visibility changes alike, in the caller's transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


def write_audit(
    conn: psycopg.Connection[Any],
    organization_id: UUID | None,
    actor: str,
    action: str,
    details: dict[str, Any],
) -> None:
    conn.execute(
        "insert into audit_logs (organization_id, actor, action, details) values (%s, %s, %s, %s)",
        (organization_id, actor, action, Jsonb(details)),
    )
