"""The read-back of the website column (docs/website-visibility.md, "Read-back of the Dynamics
column"), against the running local system: real PostgreSQL, the state machine under moto and
the Dataverse stand-in, where a test edits a contact by hand as a person in Dynamics would.

The read-back runs in this process (`portal_sync.entrypoints.website_sync.read_back.run`, with
the environment the `system` fixture gives the functions); the schedule starts the deliveries
its repairs record.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from conftest import Database, eventually
from integration.test_website_sync import call, patches, settled, shown
from peer_mentors import calm_standin
from portal_sync.entrypoints.website_sync import read_back
from portal_sync_dev.local.seed import DEMO_MENTOR_CONTACT_ID, VISIBILITY_COLUMN

HAND_EDIT_FOUND = (
    "Dynamics showed the mentor as visible, changed there by hand; the website is set back to "
    "hidden"
)


@pytest.fixture
def mentor(system: Any) -> str:
    """The seeded demo mentor, visible and in sync; the stand-in shows them; no failures."""
    calm_standin(system)
    return str(system.seed.mentor_id)


@pytest.fixture
def hidden_mentor(system: Any, mentor: str) -> str:
    """The demo mentor paused by a coordinator: hidden in Dynamics, in sync."""
    assert call(system, "POST", f"/{mentor}/pause").status_code == 200
    eventually(lambda: shown(system) is False, timeout=15)
    assert settled(system, mentor, "in_sync")["applied"] is False
    system.dynamics.reset_log()
    return mentor


def edit_by_hand(system: Any, visible: bool) -> None:
    """A person changes the column in Dynamics (a new version; its webhook names them, with
    no tag of ours)."""
    system.dynamics.update_row("contacts", DEMO_MENTOR_CONTACT_ID, **{VISIBILITY_COLUMN: visible})


def filtered_reads(system: Any) -> list[Any]:
    return [
        r
        for r in system.dynamics.received
        if r.method == "GET" and r.path.endswith("/contacts") and "filter" in r.query
    ]


def log_of(db: Database, mentor: str) -> list[dict[str, Any]]:
    return db.rows(
        "select action, actor, message from peer_mentor_sync_log where profile_id = %s"
        " order by created_at, action",
        mentor,
    )


def progress(db: Database, org: Any) -> dict[str, Any]:
    row = db.one("select * from visibility_read_backs where organization_id = %s", org)
    assert row is not None
    return row


def test_a_mentor_reshown_by_hand_in_dynamics_is_hidden_again(
    system: Any, db: Database, hidden_mentor: str
) -> None:
    edit_by_hand(system, visible=True)
    logged_before = len(log_of(db, hidden_mentor))

    swept = system.run_schedule()  # the read-back is a step of the schedule

    assert swept["hand_edits_repaired"] == 1
    assert swept["dispatched"] == 1  # the repair's delivery, started by the same run
    eventually(lambda: shown(system) is False, timeout=15)
    final = settled(system, hidden_mentor, "in_sync")
    assert final["applied"] is False and final["desired"] is False
    entries = log_of(db, hidden_mentor)[logged_before:]
    found = [e for e in entries if e["action"] == "hand_edit_found"]
    assert [(e["actor"], e["message"]) for e in found] == [("system:read-back", HAND_EDIT_FOUND)]
    assert "read_back_repair" in [e["action"] for e in entries]
    assert [r.json() for r in patches(system)] == [{VISIBILITY_COLUMN: False}]
    recorded = progress(db, system.seed.org_id)
    assert recorded["hand_edits_repaired"] == 1 and recorded["last_repaired_at"] is not None
    # What the organisation's administrators see of it (GET /orgs/{orgId}/sync/status).
    status = httpx.get(
        f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}/sync/status",
        headers={"authorization": f"Bearer {system.seed.org_admin_token}"},
        timeout=30,
    ).json()["website_visibility"]
    assert status["read_back"]["hand_edits_repaired"] == 1
    assert status["mentors"]["in_sync"] >= 1 and status["outage"] is None


def test_nothing_is_written_when_dynamics_shows_what_was_applied(
    system: Any, db: Database, mentor: str
) -> None:
    result = read_back.run()

    assert result == {
        "read_back_mentors": 1,
        "hand_edits_repaired": 0,
        "read_back_organizations": 1,
    }
    assert len(filtered_reads(system)) == 1
    assert patches(system) == []
    assert log_of(db, mentor) == []
    assert db.one("select count(*) as n from website_visibility_outbox")["n"] == 0


def test_dynamics_unavailable_during_the_read_repairs_nothing_and_the_next_run_does(
    system: Any, db: Database, hidden_mentor: str
) -> None:
    edit_by_hand(system, visible=True)
    system.dynamics.fail_next("503", method="GET")

    unavailable = read_back.run()

    assert unavailable["hand_edits_repaired"] == 0
    assert [r.status for r in filtered_reads(system)] == [503]
    assert "hand_edit_found" not in [e["action"] for e in log_of(db, hidden_mentor)]
    assert progress(db, system.seed.org_id)["last_pass_finished_at"] is None

    retried = read_back.run()

    assert retried["hand_edits_repaired"] == 1
    assert [r.status for r in filtered_reads(system)] == [503, 200]
    system.run_schedule()
    eventually(lambda: shown(system) is False, timeout=15)


def seed_mentors(db: Database, system: Any, count: int) -> list[str]:
    """`count` more peer mentors of the demo organisation, visible and in sync, each with a
    contact the stand-in shows as visible; written set-wise."""
    contact_ids = [str(uuid.uuid4()) for _ in range(count)]
    with db.connect() as conn:
        conn.execute(
            """
            with created as (
                insert into profiles (dynamics_contact_id, first_name, last_name)
                select contact_id, 'Mentor', 'Read Back' from unnest(%(contacts)s::text[]) contact_id
                returning id
            ), joined as (
                insert into organization_memberships (organization_id, profile_id, role)
                select %(org)s, id, 'peer_mentor' from created
                returning profile_id
            )
            insert into peer_mentor_status (organization_id, profile_id, certified_until,
                website_visible_desired, website_visible_applied, sync_state, last_synced_at)
            select %(org)s, profile_id, current_date + 365, true, true, 'in_sync', now()
              from joined
            """,
            {"contacts": contact_ids, "org": system.seed.org_id},
        )
    for contact_id in contact_ids:
        system.dynamics.add_contact(contact_id, **{VISIBILITY_COLUMN: True})
    return contact_ids


def test_a_pass_reads_every_mentor_in_batches_over_runs_and_then_waits(
    system: Any, db: Database, mentor: str
) -> None:
    seed_mentors(db, system, 220)  # with the demo mentor, 221: five batches of 50

    first = read_back.run()

    assert first["read_back_mentors"] == 200  # four batches a run at most
    assert len(filtered_reads(system)) == 4
    under_way = progress(db, system.seed.org_id)
    assert under_way["last_pass_finished_at"] is None and under_way["after_profile_id"]

    second = read_back.run()

    assert second["read_back_mentors"] == 21
    finished = progress(db, system.seed.org_id)
    assert finished["last_pass_finished_at"] is not None
    assert finished["mentors_read"] == 221 and finished["hand_edits_repaired"] == 0
    assert finished["after_profile_id"] is None

    again = read_back.run()

    assert again["read_back_mentors"] == 0  # the next pass starts 12 hours after this one
    assert len(filtered_reads(system)) == 5
    assert progress(db, system.seed.org_id)["pass_started_at"] == finished["pass_started_at"]
    assert patches(system) == []
