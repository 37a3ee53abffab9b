"""An organisation's people: the feature list every member's app reads (who owns each feature,
and a deep link into HLF's portal for the portal's own), and the member list coordinators and
admins read (docs/admin-api.md, "Onboarding, features, members, audit log")."""

from __future__ import annotations

from uuid import UUID

from portal_sync.access.authority import Access
from portal_sync.access.caller import Caller
from portal_sync.admin import deep_links
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.errors import NotFound
from portal_sync.admin.integrations import Integrations
from portal_sync.admin.models import Feature, FeatureList, MemberPage, MemberView
from portal_sync.admin.ports import MemberDirectory
from portal_sync.observability import tracer


class Members:
    def __init__(
        self, access: AdminAccess, integrations: Integrations, directory: MemberDirectory
    ) -> None:
        self._access = access
        self._integrations = integrations
        self._directory = directory

    @tracer.capture_method
    def features(self, caller: Caller, organization_id: UUID) -> FeatureList:
        self._access.require(caller, organization_id, Access.MEMBER)
        record = self._integrations.record(organization_id)
        contact_id = self._directory.contact_of(organization_id, caller.user_id)
        links = record.deep_links or {}
        features = []
        for feature, owner in sorted((record.feature_ownership or {}).items()):
            link = None
            if owner == "portal" and feature in links:
                link = deep_links.render(
                    links[feature],
                    org_id=str(organization_id),
                    feature=feature,
                    contact_id=contact_id,
                )
            features.append(Feature(feature=feature, owner=owner, deep_link=link))
        return FeatureList(organization_id=organization_id, features=features)

    @tracer.capture_method
    def members(
        self, caller: Caller, organization_id: UUID, *, limit: int, cursor: str | None
    ) -> MemberPage:
        self._access.require(caller, organization_id, Access.COORDINATOR)
        page = self._directory.members(organization_id, limit, cursor)
        return MemberPage(
            items=[MemberView.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )

    @tracer.capture_method
    def member(self, caller: Caller, organization_id: UUID, profile_id: UUID) -> MemberView:
        """One member of the list. A profile that is not a member of this organisation is
        not found, whether it exists elsewhere or not."""
        self._access.require(caller, organization_id, Access.COORDINATOR)
        row = self._directory.member(organization_id, profile_id)
        if row is None:
            raise NotFound("No such member in this organisation")
        return MemberView.model_validate(row)
