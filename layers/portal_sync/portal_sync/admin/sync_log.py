"""What an organisation's admins see of the sync: its status, the sync log (filtered, newest
first), and reprocessing an event that ended in error from its kept original
(docs/admin-api.md, "Sync status and log"; the log itself: docs/inbound.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from portal_sync.access.authority import Access
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.errors import Conflict, NotFound
from portal_sync.admin.models import (
    ReprocessResult,
    SyncEventPage,
    SyncEventView,
    SyncStatus,
    WebsiteVisibilityStatus,
)
from portal_sync.admin.ports import AuditLog, EventRequeue, SyncLogReader
from portal_sync.admin.sync_runs import SyncRuns, view
from portal_sync.observability import tracer
from portal_sync.reconciliation.ports import RunKind


class SyncLog:
    def __init__(
        self,
        access: AdminAccess,
        log: SyncLogReader,
        audit: AuditLog,
        requeue: EventRequeue,
        runs: SyncRuns,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._access = access
        self._log = log
        self._audit = audit
        self._requeue = requeue
        self._runs = runs
        self._clock = clock

    @tracer.capture_method
    def status(self, caller: Caller, organization_id: UUID) -> SyncStatus:
        self._access.require(caller, organization_id, Access.ADMIN)
        summary = self._log.sync_summary(organization_id, self._clock() - timedelta(hours=24))
        times = self._runs.times(organization_id)
        return SyncStatus(
            organization_id=organization_id,
            last_processed_at=summary["last_processed_at"],
            last_success_at=summary["last_success_at"],
            pending=summary["pending"],
            failed=summary["failed"],
            last_24h=summary["last_24h"],
            full_import=view(imported) if (imported := times.latest.get(RunKind.IMPORT)) else None,
            reconciliation=(
                view(reconciled) if (reconciled := times.latest.get(RunKind.RECONCILE)) else None
            ),
            next_reconciliation_at=times.next_reconciliation_at,
            website_visibility=(
                WebsiteVisibilityStatus.model_validate(visibility)
                if (visibility := summary.get("website_visibility"))
                else None
            ),
        )

    @tracer.capture_method
    def events(
        self,
        caller: Caller,
        organization_id: UUID,
        *,
        status: str | None,
        event_type: str | None,
        limit: int,
        cursor: str | None,
    ) -> SyncEventPage:
        self._access.require(caller, organization_id, Access.ADMIN)
        page = self._log.sync_events(
            organization_id, status=status, event_type=event_type, limit=limit, cursor=cursor
        )
        return SyncEventPage(
            items=[SyncEventView.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )

    @tracer.capture_method
    def reprocess(self, caller: Caller, organization_id: UUID, id: UUID) -> ReprocessResult:
        """Queues the kept original again and takes its copies out of the dead-letter queue,
        so that a later redrive of that queue does not apply it a second time."""
        self._access.require(caller, organization_id, Access.ADMIN)
        entry = self._log.sync_event(organization_id, id)
        if entry is None:
            raise NotFound("No such event in this organisation")
        if entry["status"] != "error":
            raise Conflict(
                f"Only events that ended in error can be reprocessed; this one is {entry['status']}"
            )
        event_id: str = entry["event_id"]
        message = self._log.kept_payload(organization_id, event_id)
        if message is None:
            raise Conflict("The original event was not kept, so it cannot be reprocessed")
        self._requeue.send(message)
        removed = self._requeue.remove_parked(organization_id, event_id)
        self._audit.audit(
            organization_id,
            caller.actor,
            "sync_event.reprocessed",
            {"event_id": event_id, "removed_from_dead_letter_queue": removed},
        )
        return ReprocessResult(
            event_id=event_id, status="queued", removed_from_dead_letter_queue=removed
        )
