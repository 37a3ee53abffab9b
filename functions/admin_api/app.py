"""Admin API (`/functions/v1/admin-api/...`; docs/admin-api.md).

Powertools resolves the routes (portal_sync/entrypoints/admin_api/, one Router per concern)
behind a middleware that authenticates the Supabase JWT first (`authenticated_api`); the admin
logic's errors become `{"code", "message"}` answers here.
"""

from __future__ import annotations

import gc

# Cold start: while the modules below are imported, the cyclic garbage collector walks the growing
# heap of module objects again and again and frees nothing (~10 % of the import). It is paused
# until the end of this module, which freezes what the import built (gc.freeze: never scanned
# again, so later collections are cheaper too) and turns it back on.
gc.disable()

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.access.authority import Forbidden
from portal_sync.admin.errors import Conflict, InvalidCursor, InvalidSettings, NotFound
from portal_sync.bootstrap.admin_api import verifier
from portal_sync.entrypoints.admin_api import health, integration, organizations, sync
from portal_sync.entrypoints.admin_api import openapi as document
from portal_sync.entrypoints.admin_api.openapi import OPENAPI_PATH, PREFIX
from portal_sync.entrypoints.http.authentication import authenticated_api
from portal_sync.entrypoints.http.responses import (
    INVALID_REQUEST,
    error_response,
    install_api_error_handlers,
    install_error_handlers,
    parse_json_body,
    supabase_cors,
)
from portal_sync.entrypoints.http.supabase_jwt import Unauthenticated
from portal_sync.observability import logger, tracer

# Validation is registered after authentication (`authenticated_api`), not with
# `enable_validation`, which would run it before the token is checked.
app = APIGatewayHttpResolver(
    cors=supabase_cors(), strip_prefixes=[PREFIX], json_body_deserializer=parse_json_body
)
install_error_handlers(app)
app.use(middlewares=authenticated_api(verifier, public_paths=(OPENAPI_PATH, PREFIX + OPENAPI_PATH)))
# In this order: the OpenAPI document lists the paths as they were included.
for concern in (document, integration, sync, health, organizations):
    app.include_router(concern.router)

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
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
