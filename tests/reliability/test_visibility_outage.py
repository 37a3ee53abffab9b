"""A Dynamics outage as on-call lives it: 50 mentors of one organisation are paused through the
Data API while every PATCH fails; the outage lasts 30 minutes (simulated: the planned
redeliveries are brought forward, each failing again); then Dynamics comes back.

On-call gets exactly one alert for the organisation, counting the 50, and one recovery notice;
every change is applied afterwards without anyone retrying anything.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import boto3
import httpx
import pytest
from conftest import Database, eventually
from peer_mentors import Mentor, add_mentors, calm_standin
from portal_sync_dev.local.seed import VISIBILITY_COLUMN
from support import on_call_alerts

MENTORS = 50
OUTAGE = timedelta(minutes=30)


def visibility_status(system: Any) -> dict[str, Any]:
    """What the organisation's administrators see (GET /orgs/{orgId}/sync/status)."""
    response = httpx.get(
        f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}/sync/status",
        headers={"authorization": f"Bearer {system.seed.org_admin_token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["website_visibility"]
    return status


def states(db: Database, mentors: list[Mentor]) -> dict[str, int]:
    rows = db.rows(
        "select sync_state, count(*) as n from peer_mentor_status"
        " where profile_id = any(%s::uuid[]) group by sync_state",
        [m.id for m in mentors],
    )
    return {r["sync_state"]: r["n"] for r in rows}


def no_execution_running(system: Any) -> bool:
    sfn = boto3.client("stepfunctions")
    running = sfn.list_executions(
        stateMachineArn=system.aws.state_machine_arn, statusFilter="RUNNING"
    )["executions"]
    return not running


def all_failed(system: Any, db: Database, mentors: list[Mentor]) -> bool:
    return states(db, mentors) == {"failed": len(mentors)} and no_execution_running(system)


def time_passes(db: Database, mentors: list[Mentor], by: timedelta) -> None:
    """The planned redeliveries come: what `by` of waiting would do, without the wait."""
    with db.connect() as conn:
        conn.execute(
            "update peer_mentor_status set next_attempt_at = now() - interval '1 second'"
            " where profile_id = any(%s::uuid[]) and next_attempt_at is not null",
            ([m.id for m in mentors],),
        )
        conn.execute("update visibility_outages set started_at = started_at - %s", (by,))


@pytest.fixture
def outage_ready(system: Any) -> Any:
    standin = calm_standin(system)
    on_call_alerts(system)
    yield standin
    standin.clear_failures()


def test_an_outage_pages_once_per_organisation_recovers_once_and_heals_by_itself(
    system: Any, db: Database, outage_ready: Any
) -> None:
    dynamics = outage_ready
    mentors = add_mentors(db, system, MENTORS)
    dynamics.fail_next("503", count=1_000_000, method="PATCH")

    # The app pauses them through the Data API: no route is called.
    with db.connect() as conn:
        conn.execute(
            "update peer_mentor_status set paused = true where profile_id = any(%s::uuid[])",
            ([m.id for m in mentors],),
        )
    # The database's announcement brings them at once (the schedule would within a minute).
    eventually(lambda: all_failed(system, db, mentors), timeout=180, interval=0.5)

    system.run_schedule()
    [alert] = on_call_alerts(system)
    org = db.one("select name from organizations where id = %s", system.seed.org_id)["name"]
    assert alert["Subject"] == f"portal sync: website visibility failing for {org}"
    assert f": {MENTORS} peer mentors affected so far" in alert["Message"]
    assert "Dynamics is unavailable" in alert["Message"]
    assert not any(m.id in alert["Message"] or m.contact in alert["Message"] for m in mentors)
    during = visibility_status(system)
    assert during["mentors"]["failed"] == MENTORS
    assert during["outage"]["mentors_affected"] == MENTORS and during["outage"]["alerted_at"]

    # The outage goes on: every planned redelivery fails again, and nobody is paged again.
    for _ in range(2):
        time_passes(db, mentors, OUTAGE / 2)
        assert system.run_schedule()["redelivered"] == MENTORS
        eventually(lambda: all_failed(system, db, mentors), timeout=180, interval=0.5)
        system.run_schedule()
        assert on_call_alerts(system) == []
    assert all(dynamics.contact(m.contact)[VISIBILITY_COLUMN] is True for m in mentors)

    # Dynamics is back; the next planned redeliveries go through, with no human action.
    dynamics.clear_failures()
    time_passes(db, mentors, timedelta(minutes=1))
    system.run_schedule()
    eventually(
        lambda: states(db, mentors) == {"in_sync": MENTORS} and no_execution_running(system),
        timeout=120,
        interval=0.5,
    )
    assert all(dynamics.contact(m.contact)[VISIBILITY_COLUMN] is False for m in mentors)

    system.run_schedule()
    [recovered] = on_call_alerts(system)
    assert recovered["Subject"] == f"portal sync: website visibility recovered for {org}"
    assert f"all {MENTORS} peer mentors affected" in recovered["Message"]
    lasted = re.search(r"after (\d+) minutes", recovered["Message"])
    assert lasted and 31 <= int(lasted.group(1)) <= 45  # 31 simulated, plus the test's own
    system.run_schedule()
    assert on_call_alerts(system) == []
    assert visibility_status(system)["outage"] is None
