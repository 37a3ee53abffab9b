"""The reconciling sweep of the website-sync schedule (docs/website-visibility.md, "The
reconciling sweep"): desired against applied for every mentor, only the ones out of step read
and written, organisations taking turns."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from typing import Any

from conftest import Database, eventually
from peer_mentors import add_mentors
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.visibility.rules import MentorFacts, desired_visibility
from portal_sync_dev.local.seed import VISIBILITY_COLUMN

TODAY = date.today()
CERTIFICATES = {
    "none": None,
    "expired yesterday": TODAY - timedelta(days=1),
    "valid through today": TODAY,
    "valid next year": TODAY + timedelta(days=365),
}


def organization(db: Database, name: str) -> uuid.UUID:
    row = db.one("insert into organizations (name) values (%s) returning id", name)
    return row["id"]


def test_the_sql_sweep_and_the_python_rules_agree_on_every_combination_of_facts(
    system: Any, db: Database
) -> None:
    org = organization(db, "Every combination")
    for active, paused, hidden, certificate in itertools.product(
        (True, False), (True, False), (True, False), CERTIFICATES
    ):
        facts = MentorFacts(active, paused, hidden, CERTIFICATES[certificate])
        wanted = desired_visibility(facts, TODAY)
        facts_of = {"active": active, "paused": paused, "hidden": hidden}
        for desired in (wanted, not wanted):
            add_mentors(
                db,
                system,
                1,
                in_dynamics=False,
                organization_id=org,
                certified_until=facts.certified_until,
                desired=desired,
                **facts_of,
            )

    with db.connect() as conn:
        found = PostgresVisibilityRepository(conn).mentors_out_of_step(TODAY, 1000)

    # Exactly the 32 mentors stored with the opposite of what the rules say, all for their facts.
    assert len(found) == 32 and {f.reason for f in found} == {"facts"}
    stored = db.rows(
        "select s.profile_id, s.website_visible_desired as desired, s.paused, s.hidden_manually,"
        " s.certified_until, m.status = 'active' as active from peer_mentor_status s"
        " join organization_memberships m using (organization_id, profile_id)"
    )
    wrong = {
        r["profile_id"]
        for r in stored
        if desired_visibility(
            MentorFacts(r["active"], r["paused"], r["hidden_manually"], r["certified_until"]),
            TODAY,
        )
        != r["desired"]
    }
    assert {f.profile_id for f in found} == wrong


def test_a_sweep_over_10000_mentors_writes_nothing_for_those_in_step_and_reaches_the_rest(
    system: Any, db: Database
) -> None:
    add_mentors(db, system, 9_990, in_dynamics=False)  # certified, shown, in sync: nothing to do
    add_mentors(db, system, 1, False, certified_until=None, desired=False)  # hidden, rightly
    expired = add_mentors(db, system, 9, certified_until=TODAY - timedelta(days=1))
    logged = db.one("select count(*) as n from peer_mentor_sync_log")["n"]
    outbox = db.one("select count(*) as n from website_visibility_outbox")["n"]

    swept = system.run_schedule()

    assert swept["reconsidered"] == 9  # the 9 expired, in the first run
    log = db.rows("select profile_id, actor from peer_mentor_sync_log")
    assert len(log) - logged == 9
    assert {str(r["profile_id"]) for r in log} <= {m.id for m in expired} | {
        str(system.seed.mentor_id)
    }
    assert db.one("select count(*) as n from website_visibility_outbox")["n"] - outbox == 9
    assert system.run_schedule()["reconsidered"] == 0  # in step now: the next run finds none


def test_organisations_take_turns_so_a_large_backlog_crowds_out_no_one(
    system: Any, db: Database
) -> None:
    large = organization(db, "Large backlog")
    small = organization(db, "Small")
    expired = TODAY - timedelta(days=1)
    add_mentors(db, system, 600, False, organization_id=large, certified_until=expired)
    late = add_mentors(db, system, 5, False, organization_id=small, certified_until=expired)

    with db.connect() as conn:
        found = PostgresVisibilityRepository(conn).mentors_out_of_step(TODAY, 500)

    assert len(found) == 500
    assert {m.id for m in late} <= {str(f.profile_id) for f in found}


def test_a_delivery_lost_with_the_mentor_marked_in_step_is_delivered_again(
    system: Any, db: Database
) -> None:
    [mentor] = add_mentors(db, system, 1)
    system.dynamics.add_contact(mentor.contact, **{VISIBILITY_COLUMN: False})
    with db.connect() as conn:  # Dynamics was last told "hidden", yet the row says in sync
        conn.execute(
            "update peer_mentor_status set website_visible_applied = false where profile_id = %s",
            (mentor.id,),
        )

    assert system.run_schedule()["reconsidered"] == 1

    eventually(
        lambda: system.dynamics.contact(mentor.contact)[VISIBILITY_COLUMN] is True,
        timeout=20,
    )
    [entry] = db.rows(
        "select action, actor from peer_mentor_sync_log where profile_id = %s and action <> 'applied'",
        mentor.id,
    )
    assert entry == {"action": "reconciled", "actor": "system:visibility-sweep"}
