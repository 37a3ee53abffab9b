"""The RunStore of reconciliation/ports.py on PostgreSQL: runs (`portal_sync_runs`), their
checkpoints and the delta links (`portal_sync_delta_links`), on the transaction the page's rows
are applied in (docs/inbound.md, "Import and reconciliation").

One run per organisation at a time is the partial unique index `portal_sync_runs_one_running`:
a second insert meets it whoever tries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from portal_sync.adapters.postgres.batched_sync_repository import BatchedSyncRepository
from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.sync_repository import PostgresSyncRepository
from portal_sync.adapters.postgres.unit_of_work import PostgresUnitOfWork
from portal_sync.inbound.events import MemberDetails
from portal_sync.inbound.ports import IntegrationSettings
from portal_sync.reconciliation.ports import Phase, ReconcileSchedule, Run, RunKind, Trigger

_COLUMNS = (
    "id, organization_id, kind, phase, tables, current_table, page_link, full_read, rows_read,"
    " rows_changed, rows_unchanged, rows_failed, rows_drift, pages_read, retries, trigger,"
    " started_at, finished_at, updated_at, error"
)
_RUNNING = (
    f"select {_COLUMNS} from portal_sync_runs where organization_id = %s and phase = 'running'"  # noqa: S608 - fixed column names
)
_LOCK = f"select {_COLUMNS} from portal_sync_runs where id = %s for update"  # noqa: S608 - fixed column names
_STALLED = f"""
select {_COLUMNS} from portal_sync_runs
 where phase = 'running' and updated_at < %s order by updated_at limit %s
"""  # noqa: S608 - fixed column names
# Enabled organisations with a Dynamics connection (a base URL and stored credentials) and no
# run running, whose last run started an interval ago or never ran; the longest waiting first.
_DUE = """
select c.organization_id
  from integration_configs c
  left join lateral (
        select max(r.started_at) as last_started, bool_or(r.phase = 'running') as running
          from portal_sync_runs r where r.organization_id = c.organization_id
       ) r on true
 where c.enabled and c.dynamics_base_url is not null
   and c.dynamics_credentials_fingerprint is not null
   and not coalesce(r.running, false)
   and (r.last_started is null
        or r.last_started <= %(now)s - make_interval(mins => c.reconcile_interval_minutes))
 order by r.last_started nulls first
 limit %(limit)s
"""
_LATEST = f"""
select distinct on (kind) {_COLUMNS} from portal_sync_runs
 where organization_id = %s order by kind, started_at desc
"""  # noqa: S608 - fixed column names


class PostgresRunStore:
    def __init__(self, connections: ConnectionProvider) -> None:
        self._work = PostgresUnitOfWork(connections)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._work.transaction():
            yield

    def insert_run(self, run: Run) -> bool:
        cursor = self._conn.execute(
            """
            insert into portal_sync_runs
                (id, organization_id, kind, phase, tables, current_table, page_link, trigger,
                 started_at)
            values (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))
            on conflict (organization_id) where phase = 'running' do nothing
            """,
            (
                run.id,
                run.organization_id,
                run.kind.value,
                run.phase.value,
                run.tables,
                run.current_table,
                run.page_link,
                run.trigger.value,
                run.started_at,
            ),
        )
        return bool(cursor.rowcount == 1)

    def running(self, organization_id: UUID) -> Run | None:
        row = self._conn.execute(_RUNNING, (organization_id,)).fetchone()
        return _run(row) if row else None

    def lock_run(self, run_id: UUID) -> Run | None:
        row = self._conn.execute(_LOCK, (run_id,)).fetchone()
        return _run(row) if row else None

    def save_run(self, run: Run) -> None:
        self._conn.execute(
            """
            update portal_sync_runs set phase = %s, current_table = %s, page_link = %s,
                   full_read = %s, rows_read = %s, rows_changed = %s, rows_unchanged = %s,
                   rows_failed = %s, rows_drift = %s, pages_read = %s, retries = %s,
                   finished_at = %s, error = %s, updated_at = now()
             where id = %s
            """,
            (
                run.phase.value,
                run.current_table,
                run.page_link,
                run.full_read,
                run.rows_read,
                run.rows_changed,
                run.rows_unchanged,
                run.rows_failed,
                run.rows_drift,
                run.pages_read,
                run.retries,
                run.finished_at,
                run.error,
                run.id,
            ),
        )

    def latest_runs(self, organization_id: UUID) -> dict[RunKind, Run]:
        rows = self._conn.execute(_LATEST, (organization_id,)).fetchall()
        return {run.kind: run for run in map(_run, rows)}

    def schedule_of(self, organization_id: UUID) -> ReconcileSchedule | None:
        row = self._conn.execute(
            """
            select enabled, reconcile_interval_minutes,
                   dynamics_base_url is not null
                   and dynamics_credentials_fingerprint is not null as connected
              from integration_configs where organization_id = %s
            """,
            (organization_id,),
        ).fetchone()
        if row is None:
            return None
        return ReconcileSchedule(
            row["enabled"], row["connected"], row["reconcile_interval_minutes"]
        )

    def due_for_reconciliation(self, now: datetime, limit: int) -> list[UUID]:
        rows = self._conn.execute(_DUE, {"now": now, "limit": limit}).fetchall()
        return [row["organization_id"] for row in rows]

    def stalled_runs(self, before: datetime, limit: int) -> list[Run]:
        return [_run(row) for row in self._conn.execute(_STALLED, (before, limit)).fetchall()]

    def delta_link(self, organization_id: UUID, table: str) -> str | None:
        row = self._conn.execute(
            "select delta_link from portal_sync_delta_links"
            " where organization_id = %s and table_name = %s",
            (organization_id, table),
        ).fetchone()
        return str(row["delta_link"]) if row else None

    def save_delta_link(self, organization_id: UUID, table: str, link: str) -> None:
        self._conn.execute(
            """
            insert into portal_sync_delta_links (organization_id, table_name, delta_link)
            values (%s, %s, %s)
            on conflict (organization_id, table_name)
            do update set delta_link = excluded.delta_link, updated_at = now()
            """,
            (organization_id, table, link),
        )

    def forget_delta_links(self, organization_id: UUID) -> None:
        self._conn.execute(
            "delete from portal_sync_delta_links where organization_id = %s", (organization_id,)
        )

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        return PostgresSyncRepository(self._conn).integration(organization_id)

    def stored_row(
        self, organization_id: UUID, table: str, row_id: str
    ) -> tuple[str, str | None] | None:
        # Membership rows and enrolment rows both remember their Dynamics row id.
        row = self._conn.execute(
            """
            select p.dynamics_contact_id, null::text as course_id
              from organization_memberships m join profiles p on p.id = m.profile_id
             where m.organization_id = %(org)s and m.dynamics_row_id = %(row)s
            union all
            select p.dynamics_contact_id, c.dynamics_course_id
              from course_enrollments c join profiles p on p.id = c.profile_id
             where c.organization_id = %(org)s and c.dynamics_row_id = %(row)s
            limit 1
            """,
            {"org": organization_id, "row": row_id},
        ).fetchone()
        return (str(row["dynamics_contact_id"]), row["course_id"]) if row else None

    def stored_details(self, contact_ids: Sequence[str]) -> dict[str, MemberDetails]:
        rows = self._conn.execute(
            "select dynamics_contact_id, first_name, last_name, email, phone from profiles"
            " where dynamics_contact_id = any(%b)",
            (list(contact_ids),),
        ).fetchall()
        return {row["dynamics_contact_id"]: MemberDetails(**row) for row in rows}

    def sync_repository(self) -> BatchedSyncRepository:
        return BatchedSyncRepository(self._conn)

    @property
    def _conn(self) -> Any:
        return self._work.connection


def _run(row: dict[str, Any]) -> Run:
    return Run(
        id=row["id"],
        organization_id=row["organization_id"],
        kind=RunKind(row["kind"]),
        tables=list(row["tables"]),
        current_table=row["current_table"],
        page_link=row["page_link"],
        full_read=row["full_read"],
        phase=Phase(row["phase"]),
        rows_read=row["rows_read"],
        rows_changed=row["rows_changed"],
        rows_unchanged=row["rows_unchanged"],
        rows_failed=row["rows_failed"],
        rows_drift=row["rows_drift"],
        pages_read=row["pages_read"],
        retries=row["retries"],
        trigger=Trigger(row["trigger"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        error=row["error"],
    )
