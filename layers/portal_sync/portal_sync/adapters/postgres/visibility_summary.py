"""An organisation's website visibility at a glance, for its sync status (admin/sync_log.py):
its mentors by sync state, its open outage, and where the read-back of the Dynamics column
stands (docs/website-visibility.md)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg


def website_visibility_summary(
    conn: psycopg.Connection[Any], organization_id: UUID
) -> dict[str, Any]:
    states = conn.execute(
        "select sync_state, count(*) as n from peer_mentor_status"
        " where organization_id = %s group by sync_state",
        (organization_id,),
    ).fetchall()
    mentors = {"in_sync": 0, "pending": 0, "failed": 0}
    mentors.update({row["sync_state"]: row["n"] for row in states})
    outage = conn.execute(
        """
        select o.started_at, o.cause, o.alerted_at,
               (select count(*) from visibility_outage_mentors m where m.outage_id = o.id)
                   as mentors_affected
          from visibility_outages o
         where o.organization_id = %s and o.recovered_at is null
        """,
        (organization_id,),
    ).fetchone()
    read_back = conn.execute(
        "select pass_started_at, last_pass_finished_at, mentors_read, hand_edits_repaired,"
        " last_repaired_at from visibility_read_backs where organization_id = %s",
        (organization_id,),
    ).fetchone()
    return {"mentors": mentors, "outage": outage, "read_back": read_back}
