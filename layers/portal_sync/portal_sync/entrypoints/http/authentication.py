"""The Supabase JWT check the authenticated HTTP APIs (admin API, website sync) put in front of
their routes, as Powertools event handler middlewares, and the request validation behind it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    from portal_sync.access.caller import Caller
    from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier

    Middleware = Callable[[APIGatewayHttpResolver, NextMiddleware], Response[Any]]


def authenticated_api(
    verifier: Callable[[], SupabaseJwtVerifier],
    public_paths: Collection[str] = (),
    service_role_paths: Collection[str] = (),
) -> list[Middleware]:
    """The middlewares of a JWT API, for `app.use`, in the order they run: the bearer token
    (`bearer_authentication`), JSON bodies only (`json_bodies_only`), no query parameter the
    route does not declare (`known_query_parameters`), then Powertools' OpenAPI
    request validation (path, query and body into the route's typed arguments; 422) and
    response validation (the route's return value into its documented JSON).

    The resolver is built without `enable_validation`: with it, Powertools runs its request
    validation before every `app.use` middleware (`Route._build_middleware_stack`: request
    validation, router middlewares, route middlewares, response validation), so a request
    without a token would be parsed and validated, and answered 415/422 (or 500 on a body
    that breaks the parser), before its token was asked for. Registered here, authentication
    comes first: without a valid JWT every request is a 401, whatever its body.
    """
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
        OpenAPIRequestValidationMiddleware,
        OpenAPIResponseValidationMiddleware,
    )

    from portal_sync.entrypoints.http.responses import json_bodies_only, known_query_parameters

    return [
        bearer_authentication(verifier, public_paths, service_role_paths),
        json_bodies_only,
        known_query_parameters,
        OpenAPIRequestValidationMiddleware(),  # type: ignore[no-untyped-call]
        OpenAPIResponseValidationMiddleware(),
    ]


def bearer_authentication(
    verifier: Callable[[], SupabaseJwtVerifier],
    public_paths: Collection[str] = (),
    service_role_paths: Collection[str] = (),
) -> Middleware:
    """A middleware that verifies the request's bearer token with `verifier()` and puts the
    caller in the router's context (`caller_of`); it raises `Unauthenticated` otherwise.
    `service_role_paths` take only the project's service_role key (the database's own calls),
    never a user's token.

    `verifier` is asked on each request (a cached factory: it reads the settings, and tests
    rebuild it for another environment). CORS preflights and `public_paths` pass without a token.
    """

    def authenticate(
        router: APIGatewayHttpResolver, next_middleware: NextMiddleware
    ) -> Response[Any]:
        event = router.current_event
        # CORS preflights carry no token (browsers never send one); the resolver answers them.
        if event.http_method == "OPTIONS" or event.path in public_paths:
            return next_middleware(router)
        if event.path in service_role_paths:
            verifier().verify_service_role(event.headers.get("authorization"))
            return next_middleware(router)
        caller = verifier().verify(event.headers.get("authorization"))
        router.append_context(caller=caller)  # type: ignore[no-untyped-call]
        return next_middleware(router)

    return authenticate


def caller_of(router: BaseRouter) -> Caller:
    """The caller `bearer_authentication` verified for the current request (the resolver's, or
    a Router's included in it: they share the context)."""
    found: Caller = router.context["caller"]
    return found
