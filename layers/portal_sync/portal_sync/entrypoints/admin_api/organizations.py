"""Routes: who is calling and the organisations they may see; creating an organisation (and
the template it starts from); an organisation's features, members and audit log."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from portal_sync.admin.models import (
    AuditPage,
    CallerView,
    FeatureList,
    MemberPage,
    MemberView,
    OnboardingTemplate,
    OrganizationCreate,
    OrganizationCreated,
    OrganizationPage,
)
from portal_sync.entrypoints.admin_api.openapi import Cursor, Limit, answers
from portal_sync.entrypoints.admin_api.request import admin, caller

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ untyped


@router.get(
    "/me",
    tags=["organisations"],
    responses=answers(),
    summary="The caller: global administrator or not, and the organisations they administer",
)
def me() -> CallerView:
    with admin(router) as services:
        return services.organizations.me(caller(router))


@router.get(
    "/orgs",
    tags=["organisations"],
    responses=answers(),
    summary="The organisations the caller may see, by name: all of them for a global "
    "administrator, else those they administer or coordinate",
)
def organizations(limit: Limit = 50, cursor: Cursor = None) -> OrganizationPage:
    with admin(router) as services:
        return services.organizations.organizations(caller(router), limit=limit, cursor=cursor)


@router.get(
    "/onboarding-template",
    tags=["organisations"],
    responses=answers(),
    summary="The platform default template POST /orgs starts a new organisation from",
)
def onboarding_template() -> OnboardingTemplate:
    with admin(router) as services:
        return services.onboarding.template(caller(router))


@router.post("/orgs", tags=["organisations"], status_code=201, responses=answers(409, success=201))
def create_organization(request: OrganizationCreate) -> OrganizationCreated:
    with admin(router) as services:
        return services.onboarding.create_organization(caller(router), request)


@router.get("/orgs/<org_id>/features", tags=["app"], responses=answers(404))
def features(org_id: UUID) -> FeatureList:
    with admin(router) as services:
        return services.members.features(caller(router), org_id)


@router.get("/orgs/<org_id>/members", tags=["organisations"], responses=answers(404))
def members(org_id: UUID, limit: Limit = 100, cursor: Cursor = None) -> MemberPage:
    with admin(router) as services:
        return services.members.members(caller(router), org_id, limit=limit, cursor=cursor)


@router.get(
    "/orgs/<org_id>/members/<profile_id>",
    tags=["organisations"],
    responses=answers(404),
    summary="One member, as in the member list",
)
def member(org_id: UUID, profile_id: UUID) -> MemberView:
    with admin(router) as services:
        return services.members.member(caller(router), org_id, profile_id)


@router.get("/orgs/<org_id>/audit-log", tags=["organisations"], responses=answers(404))
def audit_log(org_id: UUID, limit: Limit = 50, cursor: Cursor = None) -> AuditPage:
    with admin(router) as services:
        return services.audit_log.entries(caller(router), org_id, limit=limit, cursor=cursor)
