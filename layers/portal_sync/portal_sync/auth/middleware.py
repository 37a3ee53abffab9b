"""The Supabase JWT check the authenticated HTTP APIs (admin API, website sync) put in front of
their routes, as a Powertools event handler middleware."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    from portal_sync.auth.supabase_jwt import Caller, SupabaseJwtVerifier

    Middleware = Callable[[APIGatewayHttpResolver, NextMiddleware], Response[Any]]


def bearer_authentication(
    verifier: Callable[[], SupabaseJwtVerifier], public_paths: Collection[str] = ()
) -> Middleware:
    """A middleware that verifies the request's bearer token with `verifier()` and puts the
    caller in the router's context (`caller_of`); it raises `Unauthenticated` otherwise.

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
        caller = verifier().verify(event.headers.get("authorization"))
        router.append_context(caller=caller)  # type: ignore[no-untyped-call]
        return next_middleware(router)

    return authenticate


def caller_of(router: APIGatewayHttpResolver) -> Caller:
    """The caller `bearer_authentication` verified for the current request."""
    found: Caller = router.context["caller"]
    return found
