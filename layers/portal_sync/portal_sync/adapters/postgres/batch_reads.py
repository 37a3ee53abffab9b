"""The set-wise reads of a batch applied together: each one statement for the whole batch,
whatever its size, returning what the batch's state (inbound/batch_state.py) is built from.
The sync-log statuses are read in sync_log.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg

from portal_sync.inbound.batch_state import EnrollmentKey, KnownReceipt
from portal_sync.inbound.ports import EnrollmentState, MemberState
from portal_sync.inbound.receipts import Receipt


def known_receipts(
    conn: psycopg.Connection[Any], receipts: Sequence[Receipt]
) -> Callable[[], list[KnownReceipt]]:
    """Sends the read of the receipts recorded already, by id, and of the accepted ones of the
    same deliveries; returns how to collect it (in a pipeline, once it is synced)."""
    deliveries = [r for r in receipts if r.delivery_id is not None]
    cursor = conn.execute(
        # Two index lookups (an OR of both would scan the whole table).
        """
        select id, source_id, delivery_id, outcome from webhook_receipts
         where id = any(%b)
        union
        select r.id, r.source_id, r.delivery_id, r.outcome
          from unnest(%b::text[], %b::text[]) as u(source_id, delivery_id)
          join webhook_receipts r
            on r.source_id = u.source_id and r.delivery_id = u.delivery_id
           and r.outcome = 'accepted'
        """,
        (
            [r.id for r in receipts],
            [r.source_id for r in deliveries],
            [r.delivery_id for r in deliveries],
        ),
    )
    return lambda: [
        KnownReceipt(row["id"], row["source_id"], row["delivery_id"], row["outcome"])
        for row in cursor.fetchall()
    ]


def lock_members(
    conn: psycopg.Connection[Any], contacts: Sequence[str], organizations: Sequence[UUID]
) -> list[tuple[UUID | None, str, MemberState]]:
    """Locks the contacts' profiles and reads them with their memberships of `organizations`:
    (organisation, contact, member) per membership, organisation None for a profile with none.

    The locks are taken in profile id order (two consumers cannot deadlock on each other), and
    are NO KEY UPDATE locks, as the one-at-a-time repository takes them."""
    return [
        (
            row["organization_id"],
            row["dynamics_contact_id"],
            MemberState(
                row["id"],
                row["status"],
                row["role"],
                row["source_modified_at"],
                row["details_modified_at"],
                row["dynamics_environment"],
            ),
        )
        for row in conn.execute(
            """
            select p.id, p.dynamics_contact_id, p.details_modified_at, p.dynamics_environment,
                   m.organization_id, m.status, m.role, m.source_modified_at
              from profiles p
              left join organization_memberships m
                on m.profile_id = p.id and m.organization_id = any(%b)
             where p.dynamics_contact_id = any(%b)
             order by p.id
               for no key update of p
            """,
            (list(organizations), list(contacts)),
        )
    ]


def lock_enrollments(
    conn: psycopg.Connection[Any], keys: Sequence[EnrollmentKey]
) -> list[tuple[EnrollmentKey, EnrollmentState]]:
    """Locks and reads the stored enrolments among `keys` (in id order, as above)."""
    if not keys:
        return []
    return [
        (
            (row["organization_id"], row["profile_id"], row["dynamics_course_id"]),
            EnrollmentState(row["status"], row["source_modified_at"]),
        )
        for row in conn.execute(
            "select organization_id, profile_id, dynamics_course_id, status, source_modified_at"
            " from course_enrollments where (organization_id, profile_id, dynamics_course_id) in"
            " (select * from unnest(%b::uuid[], %b::uuid[], %b::text[])) order by id for update",
            tuple(map(list, zip(*keys, strict=True))),
        )
    ]
