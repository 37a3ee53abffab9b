"""Admin API (`/functions/v1/admin-api/...`), CONTRACT.md section 5.

Thin: Powertools routes and validates, behind a middleware that authenticates the Supabase JWT
first (`authenticated_api`), each route calls one AdminService method inside one transaction,
and domain errors become the contract's `{"code", "message"}` answers.
"""

from __future__ import annotations

import gc

# Cold start: while the modules below are imported, the cyclic garbage collector walks the growing
# heap of module objects again and again and frees nothing (~10 % of the import). It is paused
# until the end of this module, which freezes what the import built (gc.freeze: never scanned
# again, so later collections are cheaper too) and turns it back on.
gc.disable()

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.access.authority import Forbidden
from portal_sync.access.caller import Caller
from portal_sync.adapters.aws.clients import client
from portal_sync.adapters.aws.event_requeue import SqsEventRequeue
from portal_sync.adapters.aws.secret_vault import SecretsManagerVault
from portal_sync.adapters.postgres.admin_repository import InvalidCursor, PostgresAdminRepository
from portal_sync.adapters.postgres.connection import ConnectionProvider, DatabaseUnavailable
from portal_sync.adapters.webhook_sender import HttpxWebhookSender
from portal_sync.admin.models import (
    ApiError,
    AuditPage,
    FeatureList,
    IntegrationUpdate,
    IntegrationView,
    MemberPage,
    OrganizationCreate,
    OrganizationCreated,
    ReprocessResult,
    RotatedSecret,
    RotateSecretRequest,
    SecretTestResult,
    SyncEventPage,
    SyncStatus,
    WebhookHealth,
)
from portal_sync.admin.service import AdminService, Conflict, InvalidSettings, NotFound
from portal_sync.entrypoints.http.authentication import authenticated_api, caller_of
from portal_sync.entrypoints.http.responses import (
    INVALID_REQUEST,
    error_response,
    install_api_error_handlers,
    install_error_handlers,
    parse_json_body,
    supabase_cors,
)
from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier, Unauthenticated
from portal_sync.observability import logger
from portal_sync.settings import get_settings

PREFIX = "/functions/v1/admin-api"
OPENAPI_PATH = "/openapi.json"

# Validation is registered after authentication (`authenticated_api`), not with
# `enable_validation`, which would run it before the token is checked.
app = APIGatewayHttpResolver(
    cors=supabase_cors(), strip_prefixes=[PREFIX], json_body_deserializer=parse_json_body
)
install_error_handlers(app)

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]

_ERROR_DESCRIPTIONS = {
    401: "Missing or invalid token",
    403: "The caller may not do this",
    404: "No such organisation (or event)",
    409: "Conflicts with the current state",
    415: "The request body is not JSON (Content-Type must be application/json)",
    422: "The request is invalid; `errors` lists the fields",
    503: "The database (or the project's JWKS) is unavailable; try again shortly",
}


def answers(*codes: int, success: int = 200) -> dict[int, Any]:
    """The answers a route documents: its success (the return type's schema) and its errors
    (every error has ApiError's shape, 422 too)."""
    documented: dict[int, Any] = {success: {"description": "Successful Response"}}
    for code in (401, 403, 415, 422, 503, *codes):
        documented[code] = {
            "description": _ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"model": ApiError}},
        }
    return documented


# One connection and one verifier per execution environment, built on first use.
connections = cache(ConnectionProvider.from_settings)


verifier = cache(SupabaseJwtVerifier.from_settings)


@contextmanager
def admin() -> Iterator[AdminService]:
    """One transaction per request: a failed change leaves nothing half-written."""
    settings = get_settings()
    try:
        conn = connections().get()
        with conn.transaction():
            yield AdminService(
                PostgresAdminRepository(conn),
                # The clients are created when a route first needs them: most read none.
                SecretsManagerVault(
                    partial(client, "secretsmanager"),
                    settings.source_secret_prefix,
                    settings.dynamics_secret_prefix,
                ),
                SqsEventRequeue(
                    partial(client, "sqs"), settings.event_queue_url, settings.dead_letter_queue_url
                ),
                HttpxWebhookSender(),
                public_base_url=settings.public_base_url or _request_base_url(),
                allow_local_dynamics=settings.allow_local_dynamics,
            )
    except psycopg.OperationalError as exc:
        connections().discard()
        raise DatabaseUnavailable("PostgreSQL is not reachable") from exc


def caller() -> Caller:
    return caller_of(app)


def _request_base_url() -> str:
    domain = app.current_event.request_context.domain_name
    return f"https://{domain}" if domain else ""


app.use(middlewares=authenticated_api(verifier, public_paths=(OPENAPI_PATH, PREFIX + OPENAPI_PATH)))


# -- routes ------------------------------------------------------------------------------------


@app.get(OPENAPI_PATH, include_in_schema=False)
def openapi() -> Response[str]:
    # Imported here: the OpenAPI document's pydantic models cost every cold start ~10 ms.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    return Response(
        status_code=200,
        content_type="application/json",
        body=app.get_openapi_json_schema(
            title="portal sync admin API",
            version="1.0.0",
            description="Organisation-scoped integration settings, sync history and webhook "
            "health. Bearer: a Supabase access token.",
            servers=[Server(url=PREFIX)],
            security_schemes={"supabase": HTTPBearer(bearerFormat="JWT")},
            security=[{"supabase": []}],
        ),
    )


@app.get("/orgs/<org_id>/integration", tags=["integration"], responses=answers(404))
def get_integration(org_id: UUID) -> IntegrationView:
    with admin() as service:
        return service.get_integration(caller(), org_id)


@app.put("/orgs/<org_id>/integration", tags=["integration"], responses=answers(404, 409))
def put_integration(org_id: UUID, update: IntegrationUpdate) -> IntegrationView:
    with admin() as service:
        return service.update_integration(caller(), org_id, update)


@app.post("/orgs/<org_id>/integration/webhook-secret", tags=["integration"], responses=answers(404))
def rotate_webhook_secret(
    org_id: UUID, request: RotateSecretRequest | None = None
) -> RotatedSecret:
    with admin() as service:
        return service.rotate_secret(caller(), org_id, request or RotateSecretRequest())


@app.post(
    "/orgs/<org_id>/integration/webhook-secret/test",
    tags=["integration"],
    responses=answers(404),
)
def test_webhook_secret(org_id: UUID) -> SecretTestResult:
    with admin() as service:
        return service.test_secret(caller(), org_id)


@app.get("/orgs/<org_id>/sync/status", tags=["sync"], responses=answers(404))
def sync_status(org_id: UUID) -> SyncStatus:
    with admin() as service:
        return service.sync_status(caller(), org_id)


@app.get("/orgs/<org_id>/sync/events", tags=["sync"], responses=answers(404))
def sync_events(
    org_id: UUID,
    status: Annotated[Literal["success", "error", "skipped"] | None, Query()] = None,
    # No NUL: PostgreSQL text cannot hold it (it would be a 500, not "no such type").
    type: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SyncEventPage:
    with admin() as service:
        return service.sync_events(
            caller(), org_id, status=status, event_type=type, limit=limit, cursor=cursor
        )


@app.post(
    "/orgs/<org_id>/sync/events/<event_id>/reprocess",
    tags=["sync"],
    status_code=202,
    responses=answers(404, 409, success=202),
)
def reprocess_event(org_id: UUID, event_id: UUID) -> ReprocessResult:
    with admin() as service:
        return service.reprocess(caller(), org_id, event_id)


@app.get("/orgs/<org_id>/webhook-health", tags=["health"], responses=answers(404))
def webhook_health(org_id: UUID) -> WebhookHealth:
    with admin() as service:
        return service.webhook_health(caller(), org_id)


@app.post("/orgs", tags=["organisations"], status_code=201, responses=answers(409, success=201))
def create_organization(request: OrganizationCreate) -> OrganizationCreated:
    with admin() as service:
        return service.create_organization(caller(), request)


@app.get("/orgs/<org_id>/features", tags=["app"], responses=answers(404))
def features(org_id: UUID) -> FeatureList:
    with admin() as service:
        return service.features(caller(), org_id)


@app.get("/orgs/<org_id>/members", tags=["organisations"], responses=answers(404))
def members(org_id: UUID, limit: Limit = 100, cursor: Cursor = None) -> MemberPage:
    with admin() as service:
        return service.members(caller(), org_id, limit=limit, cursor=cursor)


@app.get("/orgs/<org_id>/audit-log", tags=["organisations"], responses=answers(404))
def audit_log(org_id: UUID, limit: Limit = 50, cursor: Cursor = None) -> AuditPage:
    with admin() as service:
        return service.audit_log(caller(), org_id, limit=limit, cursor=cursor)


# -- errors ------------------------------------------------------------------------------------


install_api_error_handlers(
    app,
    {Unauthenticated: 401, Forbidden: 403, NotFound: 404, Conflict: 409},
)


@app.exception_handler(InvalidSettings)  # type: ignore[untyped-decorator]
def _invalid_settings(exc: InvalidSettings) -> Response[str]:
    errors = [{"path": path, "message": message} for path, message in exc.errors]
    return error_response(422, INVALID_REQUEST, errors=errors)


@app.exception_handler(InvalidCursor)  # type: ignore[untyped-decorator]
def _invalid_cursor(exc: InvalidCursor) -> Response[str]:
    errors = [{"path": "cursor", "message": str(exc)}]
    return error_response(422, INVALID_REQUEST, errors=errors)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
