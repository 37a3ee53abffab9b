"""Who the caller is and which organisations they may see: what an admin console needs before it
opens any organisation (docs/admin-api.md, "Who is calling, and their organisations"). Both come
from the caller's authority in the database, as every other route's access check does."""

from __future__ import annotations

from portal_sync.access.authority import Access
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.models import (
    CallerOrganization,
    CallerView,
    OrganizationPage,
    OrganizationSummary,
)
from portal_sync.admin.ports import OrganizationDirectory
from portal_sync.observability import tracer


class Organizations:
    def __init__(self, access: AdminAccess, directory: OrganizationDirectory) -> None:
        self._access = access
        self._directory = directory

    @tracer.capture_method
    def me(self, caller: Caller) -> CallerView:
        """Any signed-in caller (a plain member learns that they administer nothing)."""
        roles = self._access.memberships(caller, Access.COORDINATOR)
        names = self._directory.organization_names(list(roles)) if roles else {}
        return CallerView(
            user_id=caller.user_id,
            is_global_admin=self._access.is_platform_admin(caller),
            # By name, as GET /orgs lists them.
            organizations=[
                CallerOrganization(id=organization_id, name=name, role=roles[organization_id])
                for organization_id, name in names.items()
            ],
        )

    @tracer.capture_method
    def organizations(self, caller: Caller, *, limit: int, cursor: str | None) -> OrganizationPage:
        """A global administrator's: all of them; anyone else's: those they administer or
        coordinate (none: an empty page, not a refusal)."""
        only = (
            None
            if self._access.is_platform_admin(caller)
            else list(self._access.memberships(caller, Access.COORDINATOR))
        )
        page = self._directory.organizations(only=only, limit=limit, cursor=cursor)
        return OrganizationPage(
            items=[OrganizationSummary.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )
