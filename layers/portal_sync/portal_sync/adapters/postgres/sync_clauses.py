"""How an applied event's write meets the row already there: the SQL clauses that both the
one-at-a-time repository (sync_repository.py) and the batched one (batch_writes.py) end their
statements with, defined once so that the two paths store the same rows.

The batch merges two changes of one row in memory with the same rules
(portal_sync/inbound/batch_merge.py); these clauses merge a change with what is stored.
The sync log's own clause is in sync_log.py.
"""

from __future__ import annotations

from portal_sync.inbound.batch_merge import PROFILE_FIELDS

# Role and status are the change's; the time only moves forward (the ordering rule,
# docs/inbound.md); a row id, once known, stays.
MEMBERSHIP_ON_CONFLICT = """
    on conflict (organization_id, profile_id) do update set
        role = excluded.role,
        status = excluded.status,
        source_modified_at = greatest(organization_memberships.source_modified_at,
                                      excluded.source_modified_at),
        dynamics_row_id = coalesce(excluded.dynamics_row_id,
                                   organization_memberships.dynamics_row_id),
        last_synced_at = now(),
        updated_at = now()
"""

# The status is the change's; the time only moves forward; a course name and a row id, once
# known, stay.
ENROLLMENT_ON_CONFLICT = """
    on conflict (organization_id, profile_id, dynamics_course_id) do update set
        course_name = coalesce(excluded.course_name, course_enrollments.course_name),
        status = excluded.status,
        source_modified_at = greatest(course_enrollments.source_modified_at,
                                      excluded.source_modified_at),
        dynamics_row_id = coalesce(excluded.dynamics_row_id, course_enrollments.dynamics_row_id),
        updated_at = now()
"""


def profile_details_set(new: str, current: str) -> str:
    """The `set` list of a profile-details update: a field sent as "" was cleared at the
    source, a field not sent (NULL) keeps its value. `new` and `current` name a field's new
    and stored value, with `{}` for the field's name (e.g. "u.{}", "p.{}")."""
    return ", ".join(
        f"{name} = case when {new.format(name)} is null then {current.format(name)}"
        f" else nullif({new.format(name)}, '') end"
        for name in PROFILE_FIELDS
    )


def profile_details_insert(new: str) -> str:
    """A new profile's details, in PROFILE_FIELDS order: "" and NULL both store NULL."""
    return ", ".join(f"nullif({new.format(name)}, '')" for name in PROFILE_FIELDS)
