"""Route: an organisation's webhook health (platform administrators)."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from portal_sync.admin.models import WebhookHealth
from portal_sync.entrypoints.admin_api.openapi import answers
from portal_sync.entrypoints.admin_api.request import admin, caller

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ untyped


@router.get("/orgs/<org_id>/webhook-health", tags=["health"], responses=answers(404))
def webhook_health(org_id: UUID) -> WebhookHealth:
    with admin(router) as services:
        return services.health.report(caller(router), org_id)
