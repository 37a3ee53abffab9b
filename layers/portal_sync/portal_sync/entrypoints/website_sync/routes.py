"""The website-sync HTTP API (docs/website-visibility.md): what coordinators see and change of a
peer mentor's website visibility, as a Powertools Router, with its answers and the status of
each visibility error.

Each route calls one VisibilityService method in one transaction. A route that may have recorded
a change starts its delivery right after the commit (if that fails, the schedule starts it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field

from portal_sync.access.authority import Forbidden
from portal_sync.access.caller import Caller
from portal_sync.bootstrap import website_sync as wiring
from portal_sync.entrypoints.http.authentication import caller_of
from portal_sync.entrypoints.http.supabase_jwt import Unauthenticated
from portal_sync.visibility.ports import HistoryEntry, MentorStatus
from portal_sync.visibility.rules import reasons_hidden
from portal_sync.visibility.service import (
    InvalidHistoryCursor,
    MentorNotFound,
    VisibilityConflict,
)

router = Router()  # type: ignore[no-untyped-call]

# For install_api_error_handlers: each error answers with its own message.
ERROR_STATUSES: dict[type[Exception], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    MentorNotFound: 404,
    VisibilityConflict: 409,
    InvalidHistoryCursor: 422,
}

OrgQuery = Annotated[
    UUID | None, Query(description="Needed only for a mentor in several of your organisations")
]


class MentorStatusView(BaseModel):
    mentor_id: UUID
    organization_id: UUID
    state: str
    desired: bool
    applied: bool | None
    last_synced_at: str | None
    last_error: str | None = Field(description="What went wrong, and what happens next")
    attempts: int
    next_attempt_at: str | None = Field(
        description="When the change is delivered again by itself (after a failure, or once a "
        "Dynamics connection is configured); null: nothing planned"
    )
    paused: bool
    hidden_manually: bool
    certified_until: date | None
    reasons_hidden: list[str]


class CertificateUpdate(BaseModel):
    certified_until: date | None


# What each logged operation came to: a delivery's result, or a change recorded for delivery.
_OUTCOMES = {"applied": "applied", "failed": "failed", "attempt_failed": "attempt_failed"}


class HistoryEntryView(BaseModel):
    operation: str = Field(
        description="What happened: hidden, restored, paused, resumed, certificate_updated, "
        "sync_requested, retry, reconsidered (something it depends on changed), applied "
        "(Dynamics was told), attempt_failed, failed"
    )
    actor: str = Field(description="The user id, or the system part that acted")
    outcome: str = Field(description="applied, attempt_failed, failed, or recorded")
    desired: bool | None
    applied: bool | None
    message: str
    error: str | None = Field(description="Why a delivery failed, in a coordinator's words")
    at: datetime


class HistoryPageView(BaseModel):
    mentor_id: UUID
    items: list[HistoryEntryView]
    next_cursor: str | None


@router.get("/<mentor_id>/status")
def status(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        return view(service.status(caller(), mentor_id, organization_id))


class RetryFailedResult(BaseModel):
    organization_id: UUID
    retried: int = Field(description="Mentors whose failed change is being delivered again")


@router.post("/retry-failed")
def retry_failed(organization_id: Annotated[UUID, Query()]) -> RetryFailedResult:
    with wiring.visibility() as service:
        retried = service.retry_failed(caller(), organization_id)
    wiring.dispatch_pending()
    return RetryFailedResult(organization_id=organization_id, retried=retried)


# The database's own call (docs/website-visibility.md, "Within seconds"): a write the trigger saw
# asks for its reconsideration at once instead of at the next schedule. The project's
# service_role key only (functions/website_sync/app.py); it names no mentor: the requests
# are read from the database.
RECONSIDERATIONS_PATH = "/reconsiderations"


class ReconsiderationsTaken(BaseModel):
    reconsidered: int = Field(description="Mentors whose requests were taken")
    dispatched: int = Field(description="Deliveries started")


@router.post(RECONSIDERATIONS_PATH)
def take_reconsiderations() -> ReconsiderationsTaken:
    with wiring.visibility() as service:
        reconsidered = service.reconsider_requested()
    return ReconsiderationsTaken(reconsidered=reconsidered, dispatched=wiring.dispatch_pending())


@router.get("/<mentor_id>/history")
def history(
    mentor_id: UUID,
    organization_id: OrgQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HistoryPageView:
    with wiring.visibility() as service:
        page = service.history(caller(), mentor_id, organization_id, limit, cursor)
    return HistoryPageView(
        mentor_id=mentor_id,
        items=[history_entry(entry) for entry in page.entries],
        next_cursor=page.next_cursor,
    )


@router.post("/<mentor_id>/sync-visibility")
def sync_visibility(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.sync_visibility(caller(), mentor_id, organization_id)
    return changed(result)


@router.post("/<mentor_id>/hide")
def hide(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.hide(caller(), mentor_id, organization_id)
    return changed(result)


@router.post("/<mentor_id>/restore")
def restore(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.restore(caller(), mentor_id, organization_id)
    return changed(result)


@router.post("/<mentor_id>/pause")
def pause(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.pause(caller(), mentor_id, organization_id, paused=True)
    return changed(result)


@router.post("/<mentor_id>/resume")
def resume(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.pause(caller(), mentor_id, organization_id, paused=False)
    return changed(result)


@router.put("/<mentor_id>/certificate")
def certificate(
    mentor_id: UUID, update: CertificateUpdate, organization_id: OrgQuery = None
) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.certify(caller(), mentor_id, organization_id, update.certified_until)
    return changed(result)


@router.post("/<mentor_id>/retry")
def retry(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with wiring.visibility() as service:
        result = service.retry(caller(), mentor_id, organization_id)
    return changed(result)


def caller() -> Caller:
    return caller_of(router)


def changed(status: MentorStatus) -> MentorStatusView:
    """The answer of a route that may have recorded a change, once it committed: its delivery
    is started first, so the mentor changes on the website within seconds."""
    wiring.dispatch_pending()
    return view(status)


def view(status: MentorStatus) -> MentorStatusView:
    return MentorStatusView(
        mentor_id=status.profile_id,
        organization_id=status.organization_id,
        state=status.sync_state,
        desired=status.desired,
        applied=status.applied,
        last_synced_at=status.last_synced_at.isoformat() if status.last_synced_at else None,
        last_error=status.last_error,
        attempts=status.attempts,
        next_attempt_at=status.next_attempt_at.isoformat() if status.next_attempt_at else None,
        paused=status.paused,
        hidden_manually=status.hidden_manually,
        certified_until=status.certified_until,
        reasons_hidden=reasons_hidden(status.facts(), datetime.now(UTC).date()),
    )


def history_entry(entry: HistoryEntry) -> HistoryEntryView:
    outcome = _OUTCOMES.get(entry.action, "recorded")
    return HistoryEntryView(
        operation=entry.action,
        actor=entry.actor,
        outcome=outcome,
        desired=entry.desired,
        applied=entry.applied,
        message=entry.message,
        error=entry.message if outcome in ("failed", "attempt_failed") else None,
        at=entry.created_at,
    )
