"""PostgreSQL side of the organisations' website-visibility outages (visibility/outages.py):
visibility_outages and the mentors that joined each."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from portal_sync.observability import tracer
from portal_sync.visibility.outages import NoticeKind, OutageNotice


def join_outage(
    conn: psycopg.Connection[Any], organization_id: UUID, profile_id: UUID, cause: str
) -> None:
    """The mentor joins the organisation's open outage, opened with `cause` if there is none.
    Two statements: the second sees an outage another transaction opened meanwhile (the unique
    index made the first wait for it), which one statement's snapshot would not."""
    conn.execute(
        "insert into visibility_outages (organization_id, cause) values (%s, %s)"
        " on conflict (organization_id) where recovered_at is null do nothing",
        (organization_id, cause),
    )
    conn.execute(
        """
        insert into visibility_outage_mentors (outage_id, profile_id)
        select id, %s from visibility_outages
         where organization_id = %s and recovered_at is null
        on conflict (outage_id, profile_id) do update set failed_at = now()
        """,
        (profile_id, organization_id),
    )


class PostgresOutageStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @tracer.capture_method
    def close_recovered_outages(self) -> int:
        # Recovered: every mentor that joined is delivered (or no longer a mentor there).
        cursor = self._conn.execute(
            """
            update visibility_outages o set recovered_at = now()
             where o.recovered_at is null
               and not exists (
                   select 1 from visibility_outage_mentors m
                     join peer_mentor_status s
                       on s.organization_id = o.organization_id and s.profile_id = m.profile_id
                    where m.outage_id = o.id and s.sync_state <> 'in_sync')
            """
        )
        return cursor.rowcount

    @tracer.capture_method
    def unsent_outage_notices(self, limit: int) -> list[OutageNotice]:
        # An outage that recovered before its alert went out needs neither notice.
        rows = self._conn.execute(
            """
            select o.id, o.organization_id, g.name, o.started_at, o.recovered_at, o.cause,
                   case when o.alerted_at is null then 'opened' else 'recovered' end as kind,
                   (select count(*) from visibility_outage_mentors m where m.outage_id = o.id)
                       as affected,
                   (select count(*) from visibility_outage_mentors m
                      join peer_mentor_status s
                        on s.organization_id = o.organization_id
                       and s.profile_id = m.profile_id
                     where m.outage_id = o.id and s.sync_state <> 'in_sync') as waiting
              from visibility_outages o
              join organizations g on g.id = o.organization_id
             where (o.alerted_at is null and o.recovered_at is null)
                or (o.alerted_at is not null and o.recovered_at is not null
                    and o.recovery_alerted_at is null)
             order by o.started_at
             limit %s
               for update of o skip locked
            """,
            (limit,),
        ).fetchall()
        return [
            OutageNotice(
                outage_id=row["id"],
                kind=row["kind"],
                organization_id=row["organization_id"],
                organization_name=row["name"],
                started_at=row["started_at"],
                recovered_at=row["recovered_at"],
                cause=row["cause"],
                mentors_affected=row["affected"],
                mentors_waiting=row["waiting"],
            )
            for row in rows
        ]

    @tracer.capture_method
    def mark_notice_sent(self, outage_id: UUID, kind: NoticeKind) -> None:
        self._conn.execute(
            "update visibility_outages set"
            " alerted_at = case when %(opened)s then now() else alerted_at end,"
            " recovery_alerted_at = case when %(opened)s then recovery_alerted_at else now() end"
            " where id = %(id)s",
            {"opened": kind == "opened", "id": outage_id},
        )
