"""Routes: an organisation's sync status, its sync log, reprocessing a failed event, and
starting a full import or a reconciliation with Dynamics."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from portal_sync.admin.models import ReprocessResult, SyncEventPage, SyncRunView, SyncStatus
from portal_sync.entrypoints.admin_api.openapi import Cursor, Limit, answers
from portal_sync.entrypoints.admin_api.request import admin, caller
from portal_sync.reconciliation.ports import RunKind

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ untyped


@router.get("/orgs/<org_id>/sync/status", tags=["sync"], responses=answers(404))
def sync_status(org_id: UUID) -> SyncStatus:
    with admin(router) as services:
        return services.sync_log.status(caller(router), org_id)


@router.get("/orgs/<org_id>/sync/events", tags=["sync"], responses=answers(404))
def sync_events(
    org_id: UUID,
    status: Annotated[Literal["success", "error", "skipped"] | None, Query()] = None,
    # No NUL: PostgreSQL text cannot hold it (it would be a 500, not "no such type").
    type: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SyncEventPage:
    with admin(router) as services:
        return services.sync_log.events(
            caller(router), org_id, status=status, event_type=type, limit=limit, cursor=cursor
        )


@router.post(
    "/orgs/<org_id>/sync/events/<event_id>/reprocess",
    tags=["sync"],
    status_code=202,
    responses=answers(404, 409, success=202),
)
def reprocess_event(org_id: UUID, event_id: UUID) -> ReprocessResult:
    with admin(router) as services:
        return services.sync_log.reprocess(caller(router), org_id, event_id)


@router.post(
    "/orgs/<org_id>/sync/import",
    tags=["sync"],
    status_code=202,
    responses=answers(404, 409, success=202),
    summary="Start a full import: every mapped row read from Dynamics and applied",
)
def start_import(org_id: UUID) -> SyncRunView:
    with admin(router) as services:
        return services.runs.start(caller(router), org_id, RunKind.IMPORT)


@router.post(
    "/orgs/<org_id>/sync/reconcile",
    tags=["sync"],
    status_code=202,
    responses=answers(404, 409, success=202),
    summary="Start a reconciliation: the changes since the last read applied",
)
def start_reconciliation(org_id: UUID) -> SyncRunView:
    with admin(router) as services:
        return services.runs.start(caller(router), org_id, RunKind.RECONCILE)
