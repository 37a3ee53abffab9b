"""Peer mentors for tests: the Dynamics stand-in as each test starts it (the demo mentor shown,
no failures), and many more mentors, certified, shown on the website and in sync, each with a
contact in the stand-in (unless told otherwise), written set-wise."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from conftest import Database
from portal_sync_dev.local.seed import DEMO_MENTOR_CONTACT_ID, VISIBILITY_COLUMN

A_YEAR_FROM_TODAY = date.today() + timedelta(days=365)


def calm_standin(system: Any) -> Any:
    """The stand-in without planned failures or limits, showing the demo mentor, its request
    log empty; returned."""
    standin = system.dynamics
    standin.clear_failures()
    standin.limit_rate(None)
    standin.add_contact(DEMO_MENTOR_CONTACT_ID, **{VISIBILITY_COLUMN: True})
    standin.reset_log()
    return standin


@dataclass(frozen=True)
class Mentor:
    id: str
    contact: str


def add_mentors(
    db: Database,
    system: Any,
    count: int,
    in_dynamics: bool = True,
    *,
    organization_id: Any = None,
    certified_until: date | None = A_YEAR_FROM_TODAY,
    desired: bool = True,
    active: bool = True,
    paused: bool = False,
    hidden: bool = False,
) -> list[Mentor]:
    """`count` peer mentors of the demo organisation (or `organization_id`) with these facts,
    `desired` as stored and in sync with it."""
    contacts = [str(uuid.uuid4()) for _ in range(count)]
    org = organization_id or system.seed.org_id
    with db.connect() as conn:
        profiles = conn.execute(
            "insert into profiles (dynamics_contact_id, first_name, last_name)"
            " select c, 'Test', 'Mentor' from unnest(%s::text[]) as c"
            " returning id, dynamics_contact_id",
            (contacts,),
        ).fetchall()
        ids = [p["id"] for p in profiles]
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status)"
            " select %s, p, 'peer_mentor', %s from unnest(%s::uuid[]) as p",
            (org, "active" if active else "inactive", ids),
        )
        conn.execute(
            "insert into peer_mentor_status (organization_id, profile_id, certified_until,"
            " paused, hidden_manually, website_visible_desired, website_visible_applied,"
            " sync_state, last_synced_at)"
            " select %s, p, %s, %s, %s, %s, %s, 'in_sync', now() from unnest(%s::uuid[]) as p",
            (org, certified_until, paused, hidden, desired, desired, ids),
        )
    if in_dynamics:
        for contact in contacts:
            system.dynamics.add_contact(contact, **{VISIBILITY_COLUMN: desired})
    return [Mentor(str(p["id"]), p["dynamics_contact_id"]) for p in profiles]
