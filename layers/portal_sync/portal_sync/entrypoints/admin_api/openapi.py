"""The admin API's OpenAPI document (served at /openapi.json without a token) and what its
routes share in it: the answers each documents, the paging parameters."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from portal_sync.admin.models import ApiError
from portal_sync.entrypoints.admin_api.request import resolver

PREFIX = "/functions/v1/admin-api"
OPENAPI_PATH = "/openapi.json"

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]

_ERROR_DESCRIPTIONS = {
    401: "Missing or invalid token",
    403: "The caller may not do this",
    404: "No such organisation (or event, or member)",
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


router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ untyped


@router.get(OPENAPI_PATH, include_in_schema=False)
def openapi() -> Response[str]:
    # Imported here: the OpenAPI document's pydantic models cost every cold start ~10 ms.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    return Response(
        status_code=200,
        content_type="application/json",
        body=resolver(router).get_openapi_json_schema(
            title="portal sync admin API",
            version="1.0.0",
            description="Organisation-scoped integration settings, sync history and webhook "
            "health. Bearer: a Supabase access token.",
            servers=[Server(url=PREFIX)],
            security_schemes={"supabase": HTTPBearer(bearerFormat="JWT")},
            security=[{"supabase": []}],
        ),
    )
