"""A new organisation, for platform administrators: its integration starts from the platform's
template and its webhook source is written for the ingest, without a secret yet; its admin
rotates one in (docs/admin-api.md, "Onboarding, features, members, audit log")."""

from __future__ import annotations

import re
import secrets
from typing import TypedDict

from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.errors import Conflict
from portal_sync.admin.integration_settings import IntegrationSettings
from portal_sync.admin.integrations import Integrations
from portal_sync.admin.models import (
    IntegrationUpdate,
    OnboardingTemplate,
    OrganizationCreate,
    OrganizationCreated,
)
from portal_sync.admin.ports import AuditLog, IntegrationRepository, NewIntegration, SecretVault
from portal_sync.inbound.dataverse.mapping import DEFAULT_FIELD_MAPPING
from portal_sync.inbound.source_config import SignatureMode, SourceConfig
from portal_sync.observability import tracer
from portal_sync.reconciliation.ports import Trigger


class IntegrationTemplate(TypedDict):
    enabled: bool
    signature_mode: str
    field_mapping: dict[str, object] | None
    feature_ownership: dict[str, str]
    deep_links: dict[str, str]


# What a new organisation starts with (POST /orgs). Which features the portal owns and where
# their pages are is HLF's decision: these links are the starting point an admin adjusts.
PLATFORM_DEFAULT_TEMPLATE: IntegrationTemplate = {
    "enabled": True,
    "signature_mode": SignatureMode.STANDARD_WEBHOOKS.value,
    "field_mapping": None,  # the default mapping (contact, hlf_membership, hlf_courseenrollment)
    "feature_ownership": {
        "membership": "portal",
        "courses": "portal",
        "events": "app",
        "peer_mentoring": "app",
        "expenses": "app",
    },
    "deep_links": {
        "membership": "https://minside.hlf.no/medlemskap",
        "courses": "https://minside.hlf.no/kurs",
    },
}


class Onboarding:
    def __init__(
        self,
        access: AdminAccess,
        integrations: Integrations,
        repo: IntegrationRepository,
        audit: AuditLog,
        vault: SecretVault,
        settings: IntegrationSettings,
    ) -> None:
        self._access = access
        self._settings = settings
        self._integrations = integrations
        self._repo = repo
        self._audit = audit
        self._vault = vault

    @tracer.capture_method
    def template(self, caller: Caller) -> OnboardingTemplate:
        """What create_organization starts a new organisation from, for an administrator to
        review first: the one template, its default mapping spelled out."""
        self._access.require_platform_admin(caller)
        mapping = PLATFORM_DEFAULT_TEMPLATE["field_mapping"]
        return OnboardingTemplate.model_validate(
            {
                **PLATFORM_DEFAULT_TEMPLATE,
                "field_mapping": mapping or DEFAULT_FIELD_MAPPING,
                "field_mapping_is_default": not mapping,
            }
        )

    @tracer.capture_method
    def create_organization(
        self, caller: Caller, request: OrganizationCreate
    ) -> OrganizationCreated:
        self._access.require_platform_admin(caller)
        source_id = request.source_id or _source_id_for(request.name)
        if self._repo.source_owner(source_id) is not None:
            raise Conflict(f"The source id '{source_id}' is already in use")
        template = PLATFORM_DEFAULT_TEMPLATE
        integration = NewIntegration(
            enabled=template["enabled"],
            signature_mode=SignatureMode(template["signature_mode"]),
            field_mapping=template["field_mapping"],
            feature_ownership=template["feature_ownership"],
            deep_links=template["deep_links"],
            dataverse_organization_id=(
                str(request.dataverse_organization_id)
                if request.dataverse_organization_id
                else None
            ),
        )
        organization_id = self._repo.create_organization(request.name, source_id, integration)
        self._vault.write_source(
            SourceConfig(
                source_id=source_id,
                organization_id=organization_id,
                enabled=integration.enabled,
                mode=integration.signature_mode,
            )
        )
        self._audit.audit(
            organization_id,
            caller.actor,
            "organization.created",
            {"name": request.name, "source_id": source_id, "template": "platform-default"},
        )
        if request.dynamics is not None:
            # As an admin's first change would: validated, credentials stored, audited, and
            # the organisation's members imported.
            view = self._settings.update(
                caller,
                organization_id,
                IntegrationUpdate(dynamics=request.dynamics),
                import_trigger=Trigger.ONBOARDING,
            )
        else:
            view = self._integrations.view(organization_id)
        return OrganizationCreated(id=organization_id, name=request.name, integration=view)


def _source_id_for(name: str) -> str:
    """A readable, unguessable default: the name's slug and a random suffix."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "org"
    return f"{slug}-{secrets.token_hex(3)}"
