"""Routes: an organisation's integration settings and its webhook secret."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from portal_sync.admin.models import (
    IntegrationUpdate,
    IntegrationView,
    RotatedSecret,
    RotateSecretRequest,
    SecretTestResult,
)
from portal_sync.entrypoints.admin_api.openapi import answers
from portal_sync.entrypoints.admin_api.request import admin, caller

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ untyped


@router.get("/orgs/<org_id>/integration", tags=["integration"], responses=answers(404))
def get_integration(org_id: UUID) -> IntegrationView:
    with admin(router) as services:
        return services.settings.get(caller(router), org_id)


@router.put("/orgs/<org_id>/integration", tags=["integration"], responses=answers(404, 409))
def put_integration(org_id: UUID, update: IntegrationUpdate) -> IntegrationView:
    with admin(router) as services:
        return services.settings.update(caller(router), org_id, update)


@router.post(
    "/orgs/<org_id>/integration/webhook-secret", tags=["integration"], responses=answers(404)
)
def rotate_webhook_secret(
    org_id: UUID, request: RotateSecretRequest | None = None
) -> RotatedSecret:
    with admin(router) as services:
        return services.secrets.rotate(caller(router), org_id, request or RotateSecretRequest())


@router.post(
    "/orgs/<org_id>/integration/webhook-secret/test",
    tags=["integration"],
    responses=answers(404),
)
def test_webhook_secret(org_id: UUID) -> SecretTestResult:
    with admin(router) as services:
        return services.secrets.test(caller(router), org_id)
