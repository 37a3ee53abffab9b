"""What every HTTP function shares: Supabase-style errors and CORS, raw body and headers."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from portal_sync.inbound.nesting import nested_deeper_than
from portal_sync.observability import error_facts, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

# Every header supabase-js may send (docs/security.md, "Authentication first, and never a 500"): Supabase's own four; `x-region`,
# which functions.invoke sends with a region; retries' `x-retry-count`; W3C trace context.
# template.yaml's CorsConfiguration (API Gateway answers preflights in AWS) lists the same.
SUPABASE_CORS_HEADERS = [
    "authorization",
    "x-client-info",
    "apikey",
    "content-type",
    "x-region",
    "x-retry-count",
    "traceparent",
    "tracestate",
    "baggage",
]
# Request bodies are small settings objects (five levels at most); anything much deeper is
# hostile, and would reach recursive code (validators, json.dumps) near the recursion limit.
MAX_JSON_DEPTH = 32


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


def parse_json_body(text: str) -> Any:
    """The resolver's `json_body_deserializer`: `json.loads`, with every way a body can fail to
    be JSON raised as `json.JSONDecodeError`, which Powertools' request validation turns into
    a `json_invalid` RequestValidationError (422). Without it a body nested deeper than the
    recursion limit (RecursionError) or an integer of more than 4,300 digits (ValueError)
    escapes validation as a 500."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", text, 0) from None
    except ValueError:  # Python's own message names its interpreter settings
        raise json.JSONDecodeError("a number is out of range", text, 0) from None
    if nested_deeper_than(value, MAX_JSON_DEPTH):
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", text, 0)
    return value


def known_query_parameters(
    router: APIGatewayHttpResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """A middleware: every query parameter must be one the route declares, as every body field
    must be one its model declares. Powertools ignores the others, so a misspelt filter
    (`?stauts=error`) would answer an unfiltered page as if it were the filtered one."""
    from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

    route = router.context.get("_route")
    event = router.current_event
    sent = event.query_string_parameters or {}
    # A CORS preflight is the resolver's, answered whatever its query.
    if route is None or not sent or event.http_method == "OPTIONS":
        return next_middleware(router)
    declared = {param.alias for param in route.dependant.query_params}
    unknown = sorted(name for name in sent if name not in declared)
    if unknown:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "type": "extra_forbidden", "msg": "is not a parameter"}
                for name in unknown
            ]
        )
    return next_middleware(router)


def json_bodies_only(
    router: APIGatewayHttpResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """A middleware: a request body must be JSON (`application/json`, or no content type).

    Powertools would also parse form and multipart bodies into the request models; these APIs
    take JSON only, and say so with a 415 rather than with field errors about form fields.
    """
    from aws_lambda_powertools.event_handler.openapi.exceptions import (
        RequestUnsupportedContentType,
    )

    event = router.current_event
    content_type = event.headers.get("content-type") or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    # A route that takes a body parses one even when none was sent (Powertools' multipart
    # parser fails on an empty multipart body).
    route = router.context.get("_route")
    takes_body = route is not None and bool(route.dependant.body_params)
    if (
        (event.body or takes_body)
        and event.http_method != "OPTIONS"
        and media_type not in ("", content_types.APPLICATION_JSON)
    ):
        raise RequestUnsupportedContentType(
            "Unsupported content type",
            errors=[{"loc": ("body",), "type": "unsupported_content_type", "msg": content_type}],
        )
    return next_middleware(router)


UNEXPECTED_ERROR = (500, "Internal error; the request was not completed")


def install_error_handlers(
    app: APIGatewayHttpResolver, unexpected: tuple[int, str] = UNEXPECTED_ERROR
) -> None:
    """Errors as `{"code", "message"}`, never a stack trace or a driver message. `unexpected`:
    the answer to an error nobody handled (the webhook ingest answers 503, which Dataverse
    retries, where a 500 would lose the event)."""

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return error_response(404, "Not found")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(exc: Exception) -> Response[str]:
        logger.error("Unhandled error", extra=error_facts(exc))
        return error_response(*unexpected)


def install_api_error_handlers(
    app: APIGatewayHttpResolver, statuses: dict[type[Exception], int]
) -> None:
    """The answers the JWT-authenticated APIs share, each `{"code", "message"}`:

    - each domain error class its status with its own (admin-facing) message;
    - 415 for a body that is not JSON by its content type (`json_bodies_only`, and Powertools'
      own check of the routes that take a body);
    - 422 with `errors` (field paths) for a body that fails the schema, and for one that cannot
      be read as JSON at all (malformed, not UTF-8, nested too deeply, numbers out of range:
      `parse_json_body`), the `path` then being `body`; Powertools reports malformed JSON as a
      validation error too, so every unreadable body answers alike;
    - 503 when the database or the project's JWKS is unavailable (not the caller's fault).
    """
    from aws_lambda_powertools.event_handler.openapi.exceptions import (
        RequestUnsupportedContentType,
        RequestValidationError,
    )

    for exception_class, status in statuses.items():

        def answer(exc: Exception, status: int = status) -> Response[str]:
            return error_response(status, str(exc))

        app.exception_handler(exception_class)(answer)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        errors = []
        for error in exc.errors():
            if error.get("type") == "json_invalid":
                reason = (error.get("ctx") or {}).get("error") or "malformed"
                errors.append({"path": "body", "message": f"is not valid JSON ({reason})"})
                continue
            location = [str(part) for part in error.get("loc", ())]
            # "body", "query", "path" say where; the rest is the field path one can fix.
            path = ".".join(location[1:]) if len(location) > 1 else ".".join(location)
            where = path or (location[0] if location else "body")  # a nameless one: "query"
            errors.append({"path": where, "message": error.get("msg", "is invalid")})
        return error_response(422, INVALID_REQUEST, errors=errors)

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _not_json(_: RequestUnsupportedContentType) -> Response[str]:
        return error_response(
            415,
            "The request body must be JSON",
            errors=[{"path": "body", "message": "Content-Type must be application/json"}],
        )

    @app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
    def _not_utf8(_: UnicodeDecodeError) -> Response[str]:
        # A JSON body that is not UTF-8: API Gateway passes it base64-encoded, and decoding
        # it fails before validation does.
        return error_response(
            422, INVALID_REQUEST, errors=[{"path": "body", "message": "is not UTF-8 JSON"}]
        )

    from portal_sync.entrypoints.http.supabase_jwt import AuthenticationUnavailable
    from portal_sync.unavailable import DatabaseUnavailable

    @app.exception_handler(DatabaseUnavailable)  # type: ignore[untyped-decorator]
    def _database_down(_: DatabaseUnavailable) -> Response[str]:
        return error_response(503, "The database is unavailable; try again shortly")

    @app.exception_handler(AuthenticationUnavailable)  # type: ignore[untyped-decorator]
    def _jwks_down(_: AuthenticationUnavailable) -> Response[str]:
        return error_response(503, "Tokens cannot be verified right now; try again shortly")


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
