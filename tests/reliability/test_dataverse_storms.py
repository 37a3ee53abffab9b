"""Mentor visibility changes through a Dataverse that times out, fails and throttles.

Real HTTP to the website-sync API, the deployed state machine executed by moto (retries 3 times
from 1 s locally), the Dataverse stand-in with its failures switched on, SNS to the on-call inbox.
The demo mentor and extra mentors (profile, `peer_mentor` membership, certified; their contacts
in the stand-in) get several changes each, interleaved:

1. a request that times out (the stand-in then serves it late, as a slow Dataverse does) is
   retried and the change applied;
2. then a storm: the stand-in allows 5 requests per second (429 with Retry-After beyond that)
   while our client is configured for 10 per second, answers two more requests 429 and two 503;
   two further mentors' contacts are missing in Dynamics (404: permanent);
3. then a flood of changes for 24 more mentors with no limit on the stand-in's side, so that
   only our client's rate limiter stands between the demand and Dataverse.

What must hold: every change ends applied in the stand-in (the permanently failed ones after the
coordinator's retry, once the cause is fixed); the Web API requests, measured over the stand-in's
own log, never exceed the configured client rate (DYNAMICS_MAX_REQUESTS_PER_SECOND, 10/s, with a
burst of 10); exactly one on-call alert per permanently failed sync, naming its mentor.

Single failures (two 503s then success, Retry-After obeyed, one permanent failure and its alert,
rejected credentials) are pinned in tests/integration/test_website_sync.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import boto3
import httpx
import pytest
from conftest import Database, eventually
from peer_mentors import Mentor, add_mentors, calm_standin
from portal_sync_dev.local.seed import DEMO_MENTOR_CONTACT_ID, VISIBILITY_COLUMN
from support import on_call_alerts

CLIENT_RATE = 10.0  # DYNAMICS_MAX_REQUESTS_PER_SECOND's default, which the system runs with
CLIENT_BURST = 10  # website_sync builds its limiter with burst = rate
STANDIN_LIMIT = (5, 1.0)  # Dataverse's service protection, made strict for the storm
FLOOD = 24  # mentors changed at once when only the client's limiter paces the requests
CLIENT_TIMEOUT = 1  # DYNAMICS_TIMEOUT_SECONDS for this test (5 s locally, 10 s by default)


@pytest.fixture
def dynamics(system: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in without failures or limits, an empty log and inbox; a short client timeout."""
    from portal_sync import bootstrap

    standin = calm_standin(system)
    boto3.client("sqs").purge_queue(QueueUrl=system.aws.on_call_inbox_url)
    served_late_after = standin.timeout_seconds
    standin.timeout_seconds = CLIENT_TIMEOUT + 1.0
    monkeypatch.setenv("DYNAMICS_TIMEOUT_SECONDS", str(CLIENT_TIMEOUT))
    bootstrap.reset()
    yield standin
    standin.clear_failures()
    standin.limit_rate(None)
    standin.timeout_seconds = served_late_after
    monkeypatch.undo()
    bootstrap.reset()


def add_mentor(db: Database, system: Any, in_dynamics: bool = True) -> Mentor:
    [mentor] = add_mentors(db, system, 1, in_dynamics)
    return mentor


def act(system: Any, mentor: Mentor, action: str) -> dict[str, Any]:
    method, body = ("POST", None)
    if action == "expire":
        method, body = "PUT", {"certified_until": (date.today() - timedelta(days=1)).isoformat()}
    path = "certificate" if action == "expire" else action
    response = httpx.request(
        method,
        f"{system.base_url}/api/v1/website-sync/{mentor.id}/{path}",
        json=body,
        headers={"authorization": f"Bearer {system.seed.org_admin_token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def status(system: Any, mentor: Mentor) -> dict[str, Any]:
    response = httpx.get(
        f"{system.base_url}/api/v1/website-sync/{mentor.id}/status",
        headers={"authorization": f"Bearer {system.seed.org_admin_token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def settled(system: Any, mentors: list[Mentor], timeout: float) -> dict[str, dict[str, Any]]:
    """Every mentor in_sync or failed, and no state machine execution still running."""
    sfn = boto3.client("stepfunctions")

    def check() -> dict[str, dict[str, Any]] | None:
        states = {m.id: status(system, m) for m in mentors}
        if any(s["state"] not in ("in_sync", "failed") for s in states.values()):
            return None
        running = sfn.list_executions(
            stateMachineArn=system.aws.state_machine_arn, statusFilter="RUNNING"
        )["executions"]
        return None if running else states

    return eventually(check, timeout=timeout, interval=0.25)


def shown(system: Any, mentor: Mentor) -> bool | None:
    row = system.dynamics.contact(mentor.contact)
    return row.get(VISIBILITY_COLUMN) if row else None


def worst_burst(times: list[float], rate: float, slack: float = 0.05) -> float:
    """The largest excess of requests over what a token bucket (rate, burst 0) lets through in
    any window of the log: max over i <= j of (j - i + 1) - rate * (t_j - t_i + slack)."""
    worst = 0.0
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            worst = max(worst, (j - i + 1) - rate * (times[j] - start + slack))
    return worst


def test_visibility_changes_survive_timeouts_503s_and_429_storms(
    system: Any, db: Database, dynamics: Any
) -> None:
    demo = Mentor(str(system.seed.mentor_id), DEMO_MENTOR_CONTACT_ID)
    mentors = [demo, *(add_mentor(db, system) for _ in range(6))]
    missing = [add_mentor(db, system, in_dynamics=False) for _ in range(2)]
    everyone = mentors + missing

    # 1. A request that times out; the stand-in serves it late, after the client gave up.
    dynamics.fail_next("timeout", count=1)
    act(system, mentors[1], "pause")
    settled(system, [mentors[1]], timeout=20)
    eventually(lambda: all(r.status is not None for r in dynamics.received), timeout=10)
    assert shown(system, mentors[1]) is False
    assert status(system, mentors[1])["state"] == "in_sync"

    # 2. The storm, and changes for everyone, interleaved.
    dynamics.limit_rate(*STANDIN_LIMIT)
    dynamics.fail_next("429", count=2, retry_after=1)
    dynamics.fail_next("503", count=2)
    plans = {
        demo.id: ["pause", "resume", "hide"],
        mentors[1].id: ["resume"],
        mentors[2].id: ["hide"],
        mentors[3].id: ["pause", "resume"],
        mentors[4].id: ["hide", "restore"],
        mentors[5].id: ["expire"],
        mentors[6].id: ["pause", "resume", "pause"],
        missing[0].id: ["pause"],
        missing[1].id: ["hide"],
    }
    by_id = {m.id: m for m in everyone}
    desired: dict[str, bool] = {}
    for step in range(3):
        for mentor_id, plan in plans.items():
            if step < len(plan):
                desired[mentor_id] = act(system, by_id[mentor_id], plan[step])["desired"]
    assert desired == {
        demo.id: False,
        mentors[1].id: True,
        mentors[2].id: False,
        mentors[3].id: True,
        mentors[4].id: True,
        mentors[5].id: False,
        mentors[6].id: False,
        missing[0].id: False,
        missing[1].id: False,
    }
    states = settled(system, everyone, timeout=60)

    # The contacts missing in Dynamics failed for good. On-call gets one alert for the
    # organisation, counting the mentors affected, not one per mentor (nor one per schedule).
    assert {m.id for m in missing} <= {i for i, s in states.items() if s["state"] == "failed"}
    system.run_schedule()
    system.run_schedule()
    [alert] = on_call_alerts(system)
    org = db.one("select name from organizations where id = %s", system.seed.org_id)
    assert alert["Subject"] == f"portal sync: website visibility failing for {org['name']}"
    affected = db.one("select count(*) as n from visibility_outage_mentors")["n"]
    assert affected >= len(missing)
    assert f": {affected} peer mentor" in alert["Message"]
    assert not any(m.id in alert["Message"] for m in everyone)  # counts, never who

    # The causes go away; a coordinator retries what failed; everything ends applied.
    dynamics.clear_failures()
    dynamics.limit_rate(None)
    for mentor in missing:
        dynamics.add_contact(mentor.contact, **{VISIBILITY_COLUMN: True})
    for mentor_id, state in states.items():
        if state["state"] == "failed":
            act(system, by_id[mentor_id], "retry")
    final = settled(system, everyone, timeout=30)

    assert {i: s["state"] for i, s in final.items()} == {m.id: "in_sync" for m in everyone}
    assert {m.id: shown(system, m) for m in everyone} == desired
    assert {i: s["applied"] for i, s in final.items()} == desired
    # Every affected mentor delivered: one recovery notice, then nothing more.
    system.run_schedule()
    [recovered] = on_call_alerts(system)
    assert recovered["Subject"] == f"portal sync: website visibility recovered for {org['name']}"
    system.run_schedule()
    assert on_call_alerts(system) == []

    # 3. A flood with no limit on Dataverse's side: only our client's limiter paces it.
    flood = [add_mentor(db, system) for _ in range(FLOOD)]
    flood_started = max(r.time for r in dynamics.received)
    for mentor in flood:
        act(system, mentor, "hide")
    settled(system, flood, timeout=30)
    assert {m.id: shown(system, m) for m in flood} == {m.id: False for m in flood}

    # The configured client rate held throughout, measured where Dataverse sees it.
    web_api = sorted(r.time for r in dynamics.received if r.path.startswith("/api/data/"))
    throttled = [r for r in dynamics.received if r.status == 429]
    peak = max(sum(1 for t in web_api if start <= t < start + 1.0) for start in web_api)
    flooded = [t for t in web_api if t > flood_started]
    print(
        f"\n{len(web_api)} Web API requests, {len(throttled)} answered 429, {affected} mentors in the outage,"
        f" at most {peak} in one second; worst burst {worst_burst(web_api, CLIENT_RATE):.2f};"
        f" flood: {len(flooded)} in {flooded[-1] - flooded[0]:.2f} s"
    )
    assert len(throttled) > 2, "the storm never reached the stand-in's own limit"
    assert worst_burst(web_api, CLIENT_RATE) <= CLIENT_BURST
