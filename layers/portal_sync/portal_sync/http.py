"""What every HTTP function shares: Supabase-style errors and CORS, raw body and headers."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from portal_sync.observability import error_facts, logger

# The headers supabase-js sends; Supabase Edge Functions allow exactly these in preflight.
SUPABASE_CORS_HEADERS = ["authorization", "x-client-info", "apikey", "content-type"]


def supabase_cors() -> CORSConfig:
    return CORSConfig(allow_origin="*", allow_headers=SUPABASE_CORS_HEADERS, max_age=86400)


def json_response(status_code: int, body: Any) -> Response[str]:
    return Response(
        status_code=status_code,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, default=str),
    )


def error_response(status_code: int, message: str, **extra: Any) -> Response[str]:
    return json_response(status_code, {"code": status_code, "message": message, **extra})


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Errors as `{"code", "message"}`, never a stack trace or a driver message."""

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return error_response(404, "Not found")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(exc: Exception) -> Response[str]:
        logger.error("Unhandled error", extra=error_facts(exc))
        return error_response(500, "Internal error; the request was not completed")


def install_api_error_handlers(
    app: APIGatewayHttpResolver, statuses: dict[type[Exception], int]
) -> None:
    """The answers the JWT-authenticated APIs share: each domain error class its status with
    its own (admin-facing) message, request validation as 422 with field paths, non-UTF-8
    bodies as 422, and the database being down as 503."""
    from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

    for exception_class, status in statuses.items():

        def answer(exc: Exception, status: int = status) -> Response[str]:
            return error_response(status, str(exc))

        app.exception_handler(exception_class)(answer)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ())]
            # "body", "query", "path" say where; the rest is the field path one can fix.
            path = ".".join(location[1:]) if len(location) > 1 else ".".join(location)
            errors.append({"path": path or "body", "message": error.get("msg", "is invalid")})
        return error_response(422, INVALID_REQUEST, errors=errors)

    @app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
    def _not_utf8(_: UnicodeDecodeError) -> Response[str]:
        # A JSON body that is not UTF-8: API Gateway passes it base64-encoded, and decoding
        # it fails before validation does.
        return error_response(
            422, INVALID_REQUEST, errors=[{"path": "body", "message": "is not UTF-8 JSON"}]
        )

    from portal_sync.db.connection import DatabaseUnavailable

    @app.exception_handler(DatabaseUnavailable)  # type: ignore[untyped-decorator]
    def _database_down(_: DatabaseUnavailable) -> Response[str]:
        return error_response(503, "The database is unavailable; try again shortly")


INVALID_REQUEST = "The request is invalid"


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    """The body exactly as the sender sent it (signatures are computed over these bytes)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def lower_headers(event: APIGatewayProxyEventV2) -> dict[str, str]:
    # HTTP APIs (payload v2) already lower-case names and join repeated headers with commas.
    return {k.lower(): v for k, v in (event.get("headers") or {}).items()}
