"""The set-wise writes of a batch applied together: what the batch's state
(inbound/batch_state.py) says changed, each table in one statement over arrays (`unnest`), ending
with the same conflict clauses as the one-at-a-time writes (sync_clauses.py). A function given
nothing to write sends nothing. The sync log's entries are written in sync_log.py.

The arrays travel in binary (`%b`): psycopg writes a text-format array in Python, quoting each
element after a regular-expression test, about ten times slower than the binary format (an
import's page of 5,000 rows sends some 60 arrays of 5,000). sync_log.py and batch_reads.py do
the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.adapters.postgres.sync_clauses import (
    ENROLLMENT_ON_CONFLICT,
    MEMBERSHIP_ON_CONFLICT,
    profile_details_insert,
    profile_details_set,
)
from portal_sync.inbound.batch_merge import PROFILE_FIELDS, Enrollment, Membership, Profile
from portal_sync.inbound.batch_state import EnrollmentKey, MembershipKey
from portal_sync.inbound.receipts import Receipt

_INSERT_RECEIPTS = """
insert into webhook_receipts (id, source_id, organization_id, delivery_id, outcome, reason,
                              signature_mode, received_at)
select * from unnest(%b::uuid[], %b::text[], %b::uuid[], %b::text[], %b::text[], %b::text[],
                     %b::text[], %b::timestamptz[])
on conflict do nothing
returning id
"""
_INSERT_PROFILES = f"""
insert into profiles (id, dynamics_contact_id, dynamics_environment, first_name, last_name, email,
                      phone, details_modified_at)
select id, contact, environment, {profile_details_insert("{}")}, at
  from unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
              %b::text[], %b::timestamptz[])
       as u(id, contact, environment, {", ".join(PROFILE_FIELDS)}, at)
on conflict (dynamics_contact_id) do nothing
"""  # noqa: S608 - fixed column names
_UPDATE_PROFILES = f"""
update profiles p set {profile_details_set("u.{}", "p.{}")}, updated_at = now(),
       details_modified_at = greatest(p.details_modified_at, u.at)
  from unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[])
       as u(id, {", ".join(PROFILE_FIELDS)}, at)
 where p.id = u.id
"""  # noqa: S608 - fixed column names
_WRITE_MEMBERSHIPS = (
    """
    insert into organization_memberships
        (organization_id, profile_id, role, status, source_modified_at, dynamics_row_id,
         last_synced_at)
    select org, profile, role, status, at, row_id, now()
      from unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::timestamptz[],
                  %b::text[]) as u(org, profile, role, status, at, row_id)
    """  # noqa: S608 - a fixed clause
    + MEMBERSHIP_ON_CONFLICT
)
# Active while active in any organisation (the access token hook reads it); written only where
# it differs. After the memberships' write, which it reads.
_CHECK_ACTIVITY = """
update profiles p set is_active = a.active, updated_at = now()
  from (select q.id, exists (select 1 from organization_memberships m
                              where m.profile_id = q.id and m.status = 'active') as active
          from profiles q where q.id = any(%b)) as a
 where p.id = a.id and p.is_active is distinct from a.active
"""
_WRITE_ENROLLMENTS = (
    """
    insert into course_enrollments
        (organization_id, profile_id, dynamics_course_id, course_name, status,
         source_modified_at, dynamics_row_id)
    select * from unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[],
                         %b::timestamptz[], %b::text[])
    """  # noqa: S608 - a fixed clause
    + ENROLLMENT_ON_CONFLICT
)


def insert_receipts(
    conn: psycopg.Connection[Any], receipts: Sequence[Receipt]
) -> Callable[[], set[UUID]]:
    """Sends the insert of the batch's receipts and returns how to collect the ids it wrote
    (in a pipeline, once it is synced): a receipt already there is left as it is."""
    if not receipts:
        return lambda: set()
    cursor = conn.execute(
        _INSERT_RECEIPTS,
        _columns(
            [
                (
                    r.id,
                    r.source_id,
                    r.organization_id,
                    r.delivery_id,
                    r.outcome.value,
                    r.reason and str(r.reason),
                    r.signature_mode and str(r.signature_mode),
                    r.received_at,
                )
                for r in receipts
            ]
        ),
    )
    return lambda: {row["id"] for row in cursor.fetchall()}


def insert_profiles(
    conn: psycopg.Connection[Any], new: Sequence[tuple[str, Profile]]
) -> Callable[[], int]:
    """Sends the insert of the batch's new profiles, (contact, profile) each, and returns how
    to collect how many it wrote: a contact that has a profile already is skipped."""
    if not new:
        return lambda: 0
    cursor = conn.execute(
        _INSERT_PROFILES,
        _columns(
            [
                (
                    profile.id,
                    contact,
                    profile.environment,
                    *(profile.details.get(name) for name in PROFILE_FIELDS),
                    profile.details_modified_at,
                )
                for contact, profile in new
            ]
        ),
    )
    return lambda: cursor.rowcount


def update_profiles(conn: psycopg.Connection[Any], changed: Sequence[Profile]) -> None:
    if changed:
        conn.execute(
            _UPDATE_PROFILES,
            _columns(
                [
                    (p.id, *(p.details.get(name) for name in PROFILE_FIELDS), p.details_modified_at)
                    for p in changed
                ]
            ),
        )


def write_memberships(
    conn: psycopg.Connection[Any],
    changed: Sequence[tuple[MembershipKey, Membership]],
    activity_to_check: Sequence[UUID],
) -> None:
    """The changed memberships, then the `is_active` of the profiles named (those whose
    membership status changed: Members.activity_to_check)."""
    if not changed:
        return
    conn.execute(
        _WRITE_MEMBERSHIPS,
        _columns(
            [
                (org, profile, m.role, m.status, m.source_modified_at, m.dynamics_row_id)
                for (org, profile), m in changed
            ]
        ),
    )
    if activity_to_check:
        conn.execute(_CHECK_ACTIVITY, (list(activity_to_check),))


def write_enrollments(
    conn: psycopg.Connection[Any], changed: Sequence[tuple[EnrollmentKey, Enrollment]]
) -> None:
    if changed:
        conn.execute(
            _WRITE_ENROLLMENTS,
            _columns(
                [
                    (*key, e.course_name, e.status, e.source_modified_at, e.dynamics_row_id)
                    for key, e in changed
                ]
            ),
        )


def _columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows (at least one) as one list per column: the arrays `unnest` turns back into rows."""
    return tuple(list(column) for column in zip(*rows, strict=True))
