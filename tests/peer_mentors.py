"""Peer mentors for tests that need many: certified, shown on the website and in sync, each with
a contact in the Dynamics stand-in (unless told otherwise), written set-wise."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from conftest import Database
from portal_sync_dev.local.seed import VISIBILITY_COLUMN


@dataclass(frozen=True)
class Mentor:
    id: str
    contact: str


def add_mentors(db: Database, system: Any, count: int, in_dynamics: bool = True) -> list[Mentor]:
    contacts = [str(uuid.uuid4()) for _ in range(count)]
    with db.connect() as conn:
        profiles = conn.execute(
            "insert into profiles (dynamics_contact_id, first_name, last_name)"
            " select c, 'Test', 'Mentor' from unnest(%s::text[]) with ordinality as t(c, n)"
            " order by n returning id, dynamics_contact_id",
            (contacts,),
        ).fetchall()
        ids = [p["id"] for p in profiles]
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role)"
            " select %s, p, 'peer_mentor' from unnest(%s::uuid[]) as p",
            (system.seed.org_id, ids),
        )
        conn.execute(
            "insert into peer_mentor_status (organization_id, profile_id, certified_until,"
            " website_visible_desired, website_visible_applied, sync_state, last_synced_at)"
            " select %s, p, current_date + 365, true, true, 'in_sync', now()"
            " from unnest(%s::uuid[]) as p",
            (system.seed.org_id, ids),
        )
    if in_dynamics:
        for contact in contacts:
            system.dynamics.add_contact(contact, **{VISIBILITY_COLUMN: True})
    return [Mentor(str(p["id"]), p["dynamics_contact_id"]) for p in profiles]
