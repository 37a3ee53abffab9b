"""PostgreSQL side of the read-back of the website column: each organisation's pass
(`visibility_read_backs`) and the batches of in-sync mentors it walks (the ReadBackStore of
visibility/read_back.py). One query per batch of mentors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.observability import tracer
from portal_sync.visibility.read_back import AppliedMentor, ReadBackPass

_COLUMNS = (
    "organization_id, pass_started_at, after_profile_id, last_pass_finished_at, mentors_read,"
    " hand_edits_repaired, last_repaired_at"
)


class PostgresReadBackStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @tracer.capture_method
    def waiting(self, now: datetime, interval: timedelta, limit: int) -> list[UUID]:
        # The pass rule of ReadBackPass (under way, or due), in SQL. Waiting since: a pass
        # under way its last batch, a due one the moment it became due; an organisation never
        # read has waited longest of all.
        rows = self._conn.execute(
            """
            select c.organization_id
              from integration_configs c
              left join visibility_read_backs r on r.organization_id = c.organization_id
             where c.dynamics_base_url is not null
               and c.dynamics_credentials_fingerprint is not null
               and (c.dynamics_blocked_until is null or c.dynamics_blocked_until <= %(now)s)
               and (r.pass_started_at is null
                    or r.last_pass_finished_at is null
                    or r.last_pass_finished_at < r.pass_started_at
                    or r.pass_started_at <= %(now)s - %(interval)s)
             order by case when r.pass_started_at is null then '-infinity'::timestamptz
                           when r.last_pass_finished_at is null
                             or r.last_pass_finished_at < r.pass_started_at then r.updated_at
                           else r.pass_started_at + %(interval)s end,
                      c.organization_id
             limit %(limit)s
            """,
            {"now": now, "interval": interval, "limit": limit},
        ).fetchall()
        return [row["organization_id"] for row in rows]

    @tracer.capture_method
    def claim(self, organization_id: UUID) -> ReadBackPass | None:
        self._conn.execute(
            "insert into visibility_read_backs (organization_id) values (%s)"
            " on conflict (organization_id) do nothing",
            (organization_id,),
        )
        row = self._conn.execute(
            f"select {_COLUMNS} from visibility_read_backs"  # noqa: S608 - constant columns
            " where organization_id = %s for update skip locked",
            (organization_id,),
        ).fetchone()
        return ReadBackPass(**row) if row else None

    @tracer.capture_method
    def mentors(
        self, organization_id: UUID, after_profile_id: UUID | None, limit: int
    ) -> list[AppliedMentor]:
        rows = self._conn.execute(
            """
            select s.profile_id, p.dynamics_contact_id, s.website_visible_applied
              from peer_mentor_status s
              join profiles p on p.id = s.profile_id
             where s.organization_id = %(org)s
               and (%(after)s::uuid is null or s.profile_id > %(after)s)
               and s.sync_state = 'in_sync'
               and s.website_visible_applied is not null
               and p.dynamics_contact_id is not null
             order by s.profile_id
             limit %(limit)s
            """,
            {"org": organization_id, "after": after_profile_id, "limit": limit},
        ).fetchall()
        return [
            AppliedMentor(
                row["profile_id"], row["dynamics_contact_id"], row["website_visible_applied"]
            )
            for row in rows
        ]

    @tracer.capture_method
    def save(self, progress: ReadBackPass) -> None:
        self._conn.execute(
            """
            update visibility_read_backs set
                pass_started_at = %(started)s, after_profile_id = %(after)s,
                last_pass_finished_at = %(finished)s, mentors_read = %(read)s,
                hand_edits_repaired = %(repaired)s, last_repaired_at = %(repaired_at)s,
                updated_at = now()
             where organization_id = %(org)s
            """,
            {
                "started": progress.pass_started_at,
                "after": progress.after_profile_id,
                "finished": progress.last_pass_finished_at,
                "read": progress.mentors_read,
                "repaired": progress.hand_edits_repaired,
                "repaired_at": progress.last_repaired_at,
                "org": progress.organization_id,
            },
        )
