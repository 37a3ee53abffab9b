"""What a caller may do, from the database (never from claims a user could edit).

Global administrators are listed in `platform_admins`; an organisation administrator is a member
with an active `admin` membership; coordinators may read their organisation's members; any
active member may read its feature list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from uuid import UUID


class Access(IntEnum):
    """Ordered: each level includes the ones below it."""

    MEMBER = 1
    COORDINATOR = 2
    ADMIN = 3


_ROLE_ACCESS = {"admin": Access.ADMIN, "coordinator": Access.COORDINATOR}


class Forbidden(Exception):
    pass


@dataclass(frozen=True)
class Authority:
    is_global_admin: bool = False
    # Active memberships only: organisation id -> role.
    org_roles: dict[UUID, str] = field(default_factory=dict)

    def access(self, organization_id: UUID) -> Access | None:
        if self.is_global_admin:
            return Access.ADMIN
        role = self.org_roles.get(organization_id)
        if role is None:
            return None
        return _ROLE_ACCESS.get(role, Access.MEMBER)

    def require(self, organization_id: UUID, level: Access) -> None:
        access = self.access(organization_id)
        if access is None or access < level:
            raise Forbidden("You do not have access to this organisation")

    def roles_with(self, level: Access) -> dict[UUID, str]:
        """The organisations whose active membership gives `level` or more, with the role
        (memberships only: a global administrator's authority elsewhere is not one)."""
        return {
            organization_id: role
            for organization_id, role in self.org_roles.items()
            if _ROLE_ACCESS.get(role, Access.MEMBER) >= level
        }

    def require_global_admin(self) -> None:
        if not self.is_global_admin:
            raise Forbidden("Only platform administrators may do this")
