"""Who a member is: one Dynamics contact of one Dynamics environment (docs/security.md, "Identity").

Contact ids are GUIDs Dataverse hands out per environment; a copy of an environment (a sandbox)
keeps them, and a sender can put any id in a portal event. So an organisation's events only ever
write members of its own environment: its Dataverse OrganizationId, which a platform
administrator sets (organisations that share an environment share its members). An organisation
without one is an environment of its own.
"""

from __future__ import annotations

from uuid import UUID


def member_environment(organization_id: UUID, dataverse_organization_id: str | None) -> str:
    """The environment whose contacts the organisation's events may write. The migration
    20261201000002_member_environment.sql applies the same rule to the profiles before it."""
    if dataverse_organization_id and dataverse_organization_id.strip():
        return dataverse_organization_id.strip().lower()
    return f"organization:{organization_id}"


ANOTHER_ENVIRONMENT = (
    "This contact is a member of another Dynamics environment, so this organisation's events "
    "cannot change them. If both organisations use the same Dynamics environment, a platform "
    "administrator sets the same Dataverse organization id in both integrations; then "
    "reprocess the event"
)
