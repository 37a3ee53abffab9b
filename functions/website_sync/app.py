"""Mentor website visibility (CONTRACT.md section 6): HTTP API, state machine tasks, schedule.

One function, three kinds of event:
- API Gateway HTTP API (v2) requests under /api/v1/website-sync and /functions/v1/website-sync;
- Step Functions tasks `{"task": "apply_visibility" | "record_visibility_failure", ...}`;
- the EventBridge schedule: certificate sweep and dispatch of changes not started yet.
Each calls one VisibilityService method in one transaction. A change recorded by a request is
started right after commit; if that fails the schedule starts it.
"""

from __future__ import annotations

import gc

# Cold start: while the modules below are imported, the cyclic garbage collector walks the growing
# heap of module objects again and again and frees nothing (~10 % of the import). It is paused
# until the end of this module, which freezes what the import built (gc.freeze: never scanned
# again, so later collections are cheaper too) and turns it back on.
gc.disable()

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Any
from uuid import UUID

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.access.authority import Forbidden
from portal_sync.access.caller import Caller
from portal_sync.adapters.aws.clients import client
from portal_sync.adapters.postgres.admin_repository import PostgresAdminRepository
from portal_sync.adapters.postgres.connection import ConnectionProvider, DatabaseUnavailable
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.entrypoints.http.authentication import authenticated_api, caller_of
from portal_sync.entrypoints.http.responses import (
    install_api_error_handlers,
    install_error_handlers,
    parse_json_body,
    supabase_cors,
)
from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier, Unauthenticated
from portal_sync.observability import logger
from portal_sync.settings import get_settings
from portal_sync.visibility.ports import MentorStatus
from portal_sync.visibility.rules import reasons_hidden
from portal_sync.visibility.service import (
    TASK_ERRORS,
    MentorNotFound,
    VisibilityConflict,
    VisibilityService,
)
from pydantic import BaseModel

# Validation is registered after authentication (`authenticated_api`), not with
# `enable_validation`, which would run it before the token is checked.
app = APIGatewayHttpResolver(
    cors=supabase_cors(),
    strip_prefixes=["/api/v1/website-sync", "/functions/v1/website-sync"],
    json_body_deserializer=parse_json_body,
)
install_error_handlers(app)

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
    last_error: str | None
    attempts: int
    paused: bool
    hidden_manually: bool
    certified_until: date | None
    reasons_hidden: list[str]


class CertificateUpdate(BaseModel):
    certified_until: date | None


# One connection and one verifier per execution environment, built on first use.
connections = cache(ConnectionProvider.from_settings)


verifier = cache(SupabaseJwtVerifier.from_settings)


@cache
def web_api() -> Any:
    # Imported here: only the task path talks to Dynamics (and needs httpx).
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi

    return DataverseWebApi.from_settings()


@contextmanager
def visibility(delivering: bool = False) -> Iterator[VisibilityService]:
    """One transaction per call: the status change and its outbox row commit together.

    Only deliveries (state machine tasks) talk to Dynamics, so only they load the client.
    """
    try:
        conn = connections().get()
        with conn.transaction():
            repo = PostgresVisibilityRepository(conn)
            targets, writer = None, None
            if delivering:
                from portal_sync.adapters.aws.dynamics_targets import SecretsDynamicsTargets

                targets = SecretsDynamicsTargets.from_settings(repo)
                writer = web_api()
            yield VisibilityService(
                repo,
                authority=PostgresAdminRepository(conn).authority,
                targets=targets,
                writer=writer,
            )
    except psycopg.OperationalError as exc:
        connections().discard()
        raise DatabaseUnavailable("PostgreSQL is not reachable") from exc


def dispatch_pending(older_than: float = 0) -> int:
    """Starts the executions of recorded changes; what fails is left for the schedule."""
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter

    settings = get_settings()
    if not settings.website_state_machine_arn:
        return 0
    starter = StepFunctionsStarter(client("stepfunctions"), settings.website_state_machine_arn)
    try:
        with visibility() as service:
            return service.dispatch(starter, older_than=older_than)
    except Exception:  # the schedule retries; the change is safe in the outbox
        logger.exception("Could not dispatch visibility changes; the schedule will")
        return 0


def caller() -> Caller:
    return caller_of(app)


app.use(middlewares=authenticated_api(verifier))


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
        paused=status.paused,
        hidden_manually=status.hidden_manually,
        certified_until=status.certified_until,
        reasons_hidden=reasons_hidden(status.facts(), datetime.now(UTC).date()),
    )


def changed(status: MentorStatus) -> MentorStatusView:
    """Answer of a request that may have recorded a change: start its delivery now."""
    dispatch_pending()
    return view(status)


# -- routes ------------------------------------------------------------------------------------


@app.get("/<mentor_id>/status")
def status(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        return view(service.status(caller(), mentor_id, organization_id))


@app.post("/<mentor_id>/sync-visibility")
def sync_visibility(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        result = service.sync_visibility(caller(), mentor_id, organization_id)
    return changed(result)


@app.post("/<mentor_id>/hide")
def hide(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        result = service.hide(caller(), mentor_id, organization_id)
    return changed(result)


@app.post("/<mentor_id>/restore")
def restore(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        result = service.restore(caller(), mentor_id, organization_id)
    return changed(result)


@app.post("/<mentor_id>/pause")
def pause(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        result = service.pause(caller(), mentor_id, organization_id, paused=True)
    return changed(result)


@app.post("/<mentor_id>/resume")
def resume(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        result = service.pause(caller(), mentor_id, organization_id, paused=False)
    return changed(result)


@app.put("/<mentor_id>/certificate")
def certificate(
    mentor_id: UUID, update: CertificateUpdate, organization_id: OrgQuery = None
) -> MentorStatusView:
    with visibility() as service:
        result = service.certify(caller(), mentor_id, organization_id, update.certified_until)
    return changed(result)


@app.post("/<mentor_id>/retry")
def retry(mentor_id: UUID, organization_id: OrgQuery = None) -> MentorStatusView:
    with visibility() as service:
        result = service.retry(caller(), mentor_id, organization_id)
    return changed(result)


# -- errors ------------------------------------------------------------------------------------


install_api_error_handlers(
    app,
    {Unauthenticated: 401, Forbidden: 403, MentorNotFound: 404, VisibilityConflict: 409},
)


# -- state machine tasks and the schedule ---------------------------------------------------------


def run_task(event: dict[str, Any]) -> dict[str, Any]:
    change_id = UUID(str(event["change_id"]))
    if event["task"] == "apply_visibility":
        with visibility(delivering=True) as service:
            outcome = service.apply(change_id)
        # Raised after commit, so the attempt and its error are recorded either way.
        if outcome.error:
            raise TASK_ERRORS[outcome.error](outcome.message)
        return outcome.as_task_result()
    if event["task"] == "record_visibility_failure":
        with visibility() as service:
            return service.record_failure(change_id, _failure_message(event.get("error")))
    raise ValueError(f"unknown task {event['task']!r}")


def _failure_message(error: Any) -> str:
    """The admin-facing message of the error that ended the execution (from `Catch`)."""
    if not isinstance(error, dict):
        return "The change could not be delivered"
    try:
        cause = json.loads(error.get("Cause") or "{}")
        message = cause.get("errorMessage") if isinstance(cause, dict) else None
    except ValueError:
        message = None
    if error.get("Error") in TASK_ERRORS and message:
        return str(message)
    return f"The change could not be delivered ({error.get('Error', 'unknown error')})"


def run_schedule() -> dict[str, int]:
    with visibility() as service:
        swept = service.sweep()
    # Changes older than a minute were not started by their request: start them now.
    return {"reconsidered": swept, "dispatched": dispatch_pending()}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "task" in event:
        return run_task(event)
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return run_schedule()
    return app.resolve(event, context)


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
