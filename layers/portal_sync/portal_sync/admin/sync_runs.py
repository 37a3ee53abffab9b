"""Imports and reconciliations as administrators start and follow them (docs/admin-api.md,
"Import and reconciliation"): `POST /orgs/{orgId}/sync/import` and `/sync/reconcile`, the import
that onboarding, enabling and a new Dynamics connection start, and what `sync/status` shows.

A run is stored in the request's transaction; its execution is started once that committed
(the runs to start are kept in `started`; bootstrap/admin_api.py starts them). If that start
fails, the schedule gives the run an execution later (reconciliation/schedule.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from portal_sync.access.authority import Access
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.errors import Conflict, NotFound
from portal_sync.admin.models import SyncRunView
from portal_sync.admin.ports import AuditLog, IntegrationRecord, IntegrationRepository
from portal_sync.observability import tracer
from portal_sync.reconciliation.ports import (
    NO_CONNECTION,
    Run,
    RunActive,
    RunKind,
    RunStore,
    Trigger,
)
from portal_sync.reconciliation.runs import start_run
from portal_sync.reconciliation.schedule import RunTimes, run_times

DISABLED = (
    "The integration is disabled: enable it in the integration settings (which starts an import)"
)


class SyncRuns:
    def __init__(
        self,
        access: AdminAccess,
        repo: IntegrationRepository,
        store: RunStore,
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._access = access
        self._repo = repo
        self._store = store
        self._audit = audit
        self._clock = clock
        # Runs stored in this request, whose executions start after it committed.
        self.started: list[Run] = []

    @tracer.capture_method
    def start(self, caller: Caller, organization_id: UUID, kind: RunKind) -> SyncRunView:
        """An administrator's run; 409 while one is running, or when the integration cannot
        read from Dynamics."""
        self._access.require(caller, organization_id, Access.ADMIN)
        record = self._repo.integration(organization_id)
        if record is None:
            raise NotFound("The organisation has no integration")
        if not record.enabled:
            raise Conflict(DISABLED)
        if not record.connected:
            raise Conflict(NO_CONNECTION)
        try:
            run = self._start(organization_id, kind, Trigger.ADMIN)
        except RunActive as exc:
            running = exc.run
            raise Conflict(
                f"A {'reconciliation' if running.kind is RunKind.RECONCILE else 'full import'} "
                f"of this organisation is running (run {running.id}); wait for it to end"
            ) from None
        # The run's own kind: a reconciliation of an organisation never read is its import.
        self._audit.audit(
            organization_id,
            caller.actor,
            f"sync.{run.kind.value}.started",
            {"run_id": str(run.id)},
        )
        return view(run)

    def import_after(
        self, record: IntegrationRecord, trigger: Trigger, *, connection_changed: bool = False
    ) -> Run | None:
        """The full import that onboarding, enabling or a new connection starts, when the
        integration can read from Dynamics (in the caller's transaction, which audits it).
        Another connection's delta links are forgotten whether or not an import starts."""
        organization_id = record.organization_id
        if connection_changed:
            with self._store.transaction():
                self._store.forget_delta_links(organization_id)
        if not (record.enabled and record.connected):
            return None
        try:
            return self._start(organization_id, RunKind.IMPORT, trigger)
        except RunActive:
            return None  # the running one reads the new settings page by page

    def times(self, organization_id: UUID) -> RunTimes:
        """The latest run of each kind and the next reconciliation (sync/status); the caller
        checked the access."""
        with self._store.transaction():
            return run_times(self._store, organization_id, self._clock())

    def _start(self, organization_id: UUID, kind: RunKind, trigger: Trigger) -> Run:
        with self._store.transaction():
            run = start_run(self._store, organization_id, kind, trigger, self._clock())
        self.started.append(run)
        return run


def view(run: Run) -> SyncRunView:
    return SyncRunView(
        id=run.id,
        kind=run.kind.value,
        phase=run.phase.value,
        trigger=run.trigger.value,
        current_table=run.current_table,
        full_read=run.kind is RunKind.IMPORT or run.full_read,
        pages_read=run.pages_read,
        rows_read=run.rows_read,
        rows_changed=run.rows_changed,
        rows_unchanged=run.rows_unchanged,
        rows_failed=run.rows_failed,
        rows_drift=run.rows_drift,
        started_at=run.started_at,
        finished_at=run.finished_at,
        updated_at=run.updated_at,
        error=run.error,
    )
