"""The one access check every admin service makes before it reads or changes anything.

Authority comes from the database (access/authority.py), read once per caller per request.
A caller without the access level is Forbidden before the organisation is looked up, so a 404
tells only callers with access that it does not exist (docs/admin-api.md,
"Authentication and authority").
"""

from __future__ import annotations

from uuid import UUID

from portal_sync.access.authority import Access, Authority
from portal_sync.access.caller import Caller
from portal_sync.admin.errors import NotFound
from portal_sync.admin.ports import AccessRepository


class AdminAccess:
    def __init__(self, repo: AccessRepository) -> None:
        self._repo = repo
        self._authorities: dict[UUID, Authority] = {}

    def require(self, caller: Caller, organization_id: UUID, level: Access) -> None:
        """The caller has `level` in an organisation that exists (else Forbidden, NotFound)."""
        self._authority(caller).require(organization_id, level)
        if not self._repo.organization_exists(organization_id):
            raise NotFound("No such organisation")

    def require_platform_admin(self, caller: Caller) -> None:
        self._authority(caller).require_global_admin()

    def is_platform_admin(self, caller: Caller) -> bool:
        return self._authority(caller).is_global_admin

    def memberships(self, caller: Caller, level: Access) -> dict[UUID, str]:
        """The organisations the caller has `level` in through an active membership, with
        their role there."""
        return self._authority(caller).roles_with(level)

    def _authority(self, caller: Caller) -> Authority:
        if caller.user_id not in self._authorities:
            self._authorities[caller.user_id] = self._repo.authority(caller.user_id)
        return self._authorities[caller.user_id]
