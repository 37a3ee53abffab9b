"""What every admin route needs of its request: the authenticated caller, and the services of
one transaction (bootstrap/admin_api.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from portal_sync.bootstrap.admin_api import AdminServices, services
from portal_sync.entrypoints.http.authentication import caller_of

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.event_handler.api_gateway import Router

    from portal_sync.access.caller import Caller


def resolver(router: Router) -> APIGatewayHttpResolver:
    """The resolver the router was included in (functions/admin_api/app.py)."""
    assert router.api_resolver is not None, "the router is not included in the resolver"
    return cast("APIGatewayHttpResolver", router.api_resolver)


def caller(router: Router) -> Caller:
    return caller_of(resolver(router))


@contextmanager
def admin(router: Router) -> Iterator[AdminServices]:
    with services(request_base_url=_request_base_url(router)) as built:
        yield built


def _request_base_url(router: Router) -> str:
    domain = resolver(router).current_event.request_context.domain_name
    return f"https://{domain}" if domain else ""
