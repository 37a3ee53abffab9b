"""Reading an organisation's audit log: every change an admin made, with what changed and never
a secret value. The services write it (docs/admin-api.md, "Onboarding, features, members,
audit log")."""

from __future__ import annotations

from uuid import UUID

from portal_sync.access.authority import Access
from portal_sync.access.caller import Caller
from portal_sync.admin.access import AdminAccess
from portal_sync.admin.models import AuditEntry, AuditPage
from portal_sync.admin.ports import AuditLog
from portal_sync.observability import tracer


class AuditTrail:
    def __init__(self, access: AdminAccess, log: AuditLog) -> None:
        self._access = access
        self._log = log

    @tracer.capture_method
    def entries(
        self, caller: Caller, organization_id: UUID, *, limit: int, cursor: str | None
    ) -> AuditPage:
        self._access.require(caller, organization_id, Access.ADMIN)
        page = self._log.audit_log(organization_id, limit, cursor)
        return AuditPage(
            items=[AuditEntry.model_validate(row) for row in page.rows],
            next_cursor=page.next_cursor,
        )
