"""Mentor website visibility end to end (docs/website-visibility.md).

Real HTTP on loopback, real PostgreSQL, the deployed state machine definition executed by moto
(its Lambda tasks run our website_sync handler), SNS to an inbox queue, and the Dataverse
stand-in with switchable failures. Locally the state machine retries 3 times from 1 s.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import httpx
import jwt
import psycopg
import pytest
from conftest import Database, eventually
from peer_mentors import calm_standin
from portal_sync_dev.local.seed import DEMO_MENTOR_CONTACT_ID, VISIBILITY_COLUMN

PATCH_PATH = f"/api/data/v9.2/contacts({DEMO_MENTOR_CONTACT_ID})"


@pytest.fixture
def mentor(system: Any) -> str:
    """The seeded demo mentor: certified, visible, in sync; the stand-in shows them."""
    calm_standin(system)
    boto3.client("sqs").purge_queue(QueueUrl=system.aws.on_call_inbox_url)
    return str(system.seed.mentor_id)


def call(
    system: Any, method: str, path: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    token = token if token is not None else system.seed.org_admin_token
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.request(
        method,
        f"{system.base_url}/api/v1/website-sync{path}",
        headers=headers,
        timeout=30,
        **kwargs,
    )


def shown(system: Any) -> bool | None:
    row = system.dynamics.contact(DEMO_MENTOR_CONTACT_ID)
    return row.get(VISIBILITY_COLUMN) if row else None


def status(system: Any, mentor: str) -> dict[str, Any]:
    response = call(system, "GET", f"/{mentor}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def settled(system: Any, mentor: str, state: str, timeout: float = 20) -> dict[str, Any]:
    return eventually(
        lambda: (s := status(system, mentor))["state"] == state and s, timeout=timeout
    )


def org_name(system: Any) -> str:
    with psycopg.connect(system.database_url) as conn:
        row = conn.execute(
            "select name from organizations where id = %s", (system.seed.org_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def alerts(system: Any) -> list[dict[str, Any]]:
    messages = (
        boto3.client("sqs")
        .receive_message(
            QueueUrl=system.aws.on_call_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def patches(system: Any) -> list[Any]:
    return [r for r in system.dynamics.received if r.method == "PATCH"]


def test_pausing_hides_the_mentor_within_seconds_and_resuming_restores(
    system: Any, db: Database, mentor: str
) -> None:
    started = time.monotonic()
    paused = call(system, "POST", f"/{mentor}/pause")

    assert paused.status_code == 200
    assert paused.json()["desired"] is False
    assert paused.json()["reasons_hidden"] == ["the mentor is paused"]
    eventually(lambda: shown(system) is False, timeout=10)
    hidden_after = time.monotonic() - started
    assert settled(system, mentor, "in_sync")["applied"] is False

    resumed = call(system, "POST", f"/{mentor}/resume")

    assert resumed.json()["desired"] is True
    eventually(lambda: shown(system) is True, timeout=10)
    final = settled(system, mentor, "in_sync")
    assert final["applied"] is True and final["last_error"] is None
    assert hidden_after < 10  # the product promises minutes; locally it takes well under that
    [request] = [r for r in patches(system) if r.json() == {VISIBILITY_COLUMN: False}]
    assert request.headers["if-match"] == "*"  # never creates a missing contact
    log = db.rows(
        "select action, actor from peer_mentor_sync_log where profile_id = %s order by created_at",
        mentor,
    )
    assert [entry["action"] for entry in log] == ["paused", "applied", "resumed", "applied"]


def test_restore_is_refused_while_paused_or_uncertified(
    system: Any, db: Database, mentor: str
) -> None:
    call(system, "POST", f"/{mentor}/pause")
    refused = call(system, "POST", f"/{mentor}/restore")
    assert refused.status_code == 409
    assert refused.json()["message"] == (
        "The mentor cannot be shown on the website: the mentor is paused"
    )

    call(system, "POST", f"/{mentor}/resume")
    expired = call(
        system,
        "PUT",
        f"/{mentor}/certificate",
        json={"certified_until": (date.today() - timedelta(days=1)).isoformat()},
    )
    assert expired.json()["desired"] is False
    refused = call(system, "POST", f"/{mentor}/restore")
    assert refused.status_code == 409
    assert "the certificate expired on" in refused.json()["message"]


def test_hide_and_restore_by_a_coordinator(system: Any, mentor: str) -> None:
    assert call(system, "POST", f"/{mentor}/hide").json()["hidden_manually"] is True
    eventually(lambda: shown(system) is False, timeout=10)

    restored = call(system, "POST", f"/{mentor}/restore")

    assert restored.status_code == 200 and restored.json()["desired"] is True
    eventually(lambda: shown(system) is True, timeout=10)
    # Both are in the organisation's audit log: who, what, which mentor.
    audit = httpx.get(
        f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}/audit-log",
        headers={"authorization": f"Bearer {system.seed.org_admin_token}"},
        timeout=15,
    ).json()["items"]
    visibility = [e for e in audit if e["action"].startswith("website_visibility.")]
    assert [e["action"] for e in visibility] == [
        "website_visibility.restored",
        "website_visibility.hidden",
    ]
    assert all(e["details"] == {"mentor_id": mentor} for e in visibility)


def test_transient_failures_are_retried_until_they_succeed(system: Any, mentor: str) -> None:
    system.dynamics.fail_next("503", count=2, method="PATCH")

    call(system, "POST", f"/{mentor}/pause")

    final = settled(system, mentor, "in_sync", timeout=30)
    assert shown(system) is False
    assert final["attempts"] == 3
    assert [r.status for r in patches(system)] == [503, 503, 204]
    assert alerts(system) == []


def test_permanent_failure_stops_alerts_once_marks_failed_and_retry_succeeds(
    system: Any, db: Database, mentor: str
) -> None:
    system.dynamics.fail_next("503", count=50, method="PATCH")

    call(system, "POST", f"/{mentor}/pause")

    failed = settled(system, mentor, "failed", timeout=40)
    assert failed["attempts"] == 4  # 1 + 3 retries (VISIBILITY_MAX_RETRIES locally)
    assert "Dynamics is unavailable" in failed["last_error"]
    assert len(patches(system)) == 4
    assert alerts(system) == []  # on-call hears of the organisation's outage from the schedule
    system.run_schedule()
    [alert] = alerts(system)
    assert alert["Subject"] == f"portal sync: website visibility failing for {org_name(system)}"
    # What a person running `make run` reads at run.json's oncall_alerts_url.
    listed = eventually(
        lambda: [
            a
            for a in httpx.get(system.run_info()["oncall_alerts_url"], timeout=5).json()
            if a["message"] == alert["Message"]
        ]
    )
    assert listed[0]["subject"] == alert["Subject"] and listed[0]["published_at"]
    assert (
        ": 1 peer mentor affected" in alert["Message"]
        and "Dynamics is unavailable" in alert["Message"]
    )
    assert mentor not in alert["Message"] and "retry-failed" in alert["Message"]
    assert shown(system) is True  # still visible: that is why on-call must know
    system.run_schedule()
    assert alerts(system) == []  # once per outage

    system.dynamics.clear_failures()
    retried = call(system, "POST", f"/{mentor}/retry")

    assert retried.status_code == 200
    # A new delivery: the last one's error and planned retry are not shown as this one's.
    answered = retried.json()
    assert answered["attempts"] == 0 and answered["last_error"] is None
    assert answered["next_attempt_at"] is None and answered["state"] == "pending"
    assert settled(system, mentor, "in_sync", timeout=20)["applied"] is False
    assert shown(system) is False
    system.run_schedule()
    [recovered] = alerts(system)
    assert (
        recovered["Subject"] == f"portal sync: website visibility recovered for {org_name(system)}"
    )
    assert "all 1 peer mentor affected" in recovered["Message"]


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Sets a variable of the functions' environment for one test; their cached services are
    rebuilt with it, and again with the usual environment afterwards, pass or fail."""
    from portal_sync import bootstrap

    def setenv(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        bootstrap.reset()

    yield setenv
    monkeypatch.undo()
    bootstrap.reset()


def execution_status(arn: str) -> str:
    status: str = boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"]
    return status


def test_a_change_superseded_during_its_last_attempt_pages_nobody_the_newer_one_does(
    system: Any, db: Database, mentor: str, function_env: Callable[[str, str], None]
) -> None:
    """Dynamics deactivates the mentor (change A: hide); A fails 3 times, and while its last
    attempt is in flight Dynamics reactivates them (change B: show). A's failure is recorded
    but pages nobody: B is the mentor's current change, and when B fails too it alerts once."""
    import threading

    from support import portal_event, signed_headers

    # A's last attempt is held by the stand-in until B waits for the mentor's row, however
    # slow the machine: the client's timeout (5 s locally) must not end it first.
    function_env("DYNAMICS_TIMEOUT_SECONDS", "60")
    release = threading.Event()
    # The PATCHes only: no other request (a WhoAmI) may take one of the planned answers.
    system.dynamics.fail_next("503", count=3, method="PATCH")
    system.dynamics.fail_next("503", count=1, method="PATCH", hold=release)
    system.dynamics.fail_next("404", count=1, method="PATCH")  # B: refused for good
    webhook = f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    now = datetime.now(UTC)

    def inbound(event_type: str, occurred_at: datetime) -> None:
        body = portal_event(event_type, DEMO_MENTOR_CONTACT_ID, occurred_at=occurred_at.isoformat())
        response = httpx.post(
            webhook, content=body, headers=signed_headers(system.seed.webhook_secret, body)
        )
        assert response.status_code == 202, response.text

    try:
        inbound("membership.deactivated", now)
        eventually(lambda: len(patches(system)) == 4, timeout=30)  # A's last attempt is held
        inbound("membership.reactivated", now + timedelta(seconds=1))
        # The consumer's transaction waits for A's attempt to release the mentor's row (to
        # lock it, or for the foreign key of its reconsideration request), so B is committed
        # before A records its failure (which queues for the same row).
        eventually(
            lambda: db.one(
                "select 1 from pg_stat_activity where datname = current_database()"
                " and wait_event_type = 'Lock'"
                " and (query ilike '%peer_mentor_status%' or query ilike '%organization_memberships%')"
            ),
            timeout=30,
        )
    finally:
        release.set()

    first, second = eventually(
        lambda: (
            len(
                rows := db.rows(
                    "select id, desired, execution_arn from website_visibility_outbox"
                    " where profile_id = %s and execution_arn is not null order by created_at",
                    mentor,
                )
            )
            == 2
            and rows
        ),
        timeout=10,
    )
    assert (first["desired"], second["desired"]) == (False, True)
    ended = eventually(
        lambda: (
            (states := [execution_status(c["execution_arn"]) for c in (first, second)])
            and "RUNNING" not in states
            and states
        ),
        timeout=20,
    )

    system.run_schedule()
    [alert] = alerts(system)  # for B, the current change: A's failure joined no outage
    assert ": 1 peer mentor affected" in alert["Message"]
    assert "The contact does not exist in Dynamics" in alert["Message"]  # B's cause, not A's
    # Neither counts as a failed execution (the ExecutionsFailed alarm): both are recorded.
    assert ended == ["SUCCEEDED", "SUCCEEDED"]
    final = status(system, mentor)
    assert final["state"] == "failed" and final["desired"] is True
    failures = db.rows(
        "select change_id, message from peer_mentor_sync_log"
        " where profile_id = %s and action = 'failed' order by created_at",
        mentor,
    )
    assert {f["change_id"] for f in failures} == {first["id"], second["id"]}
    [superseded] = [f for f in failures if f["change_id"] == first["id"]]
    assert "superseded by a newer change" in superseded["message"]


def test_rejected_credentials_fail_at_once_with_an_actionable_message(
    system: Any, mentor: str
) -> None:
    system.dynamics.expire_tokens()
    system.dynamics.add_client("demo-tenant", "portal-sync-local", "rotated-elsewhere")

    call(system, "POST", f"/{mentor}/pause")

    failed = settled(system, mentor, "failed", timeout=20)
    assert failed["attempts"] == 1  # never retried: retrying cannot fix a wrong secret
    assert "credentials" in failed["last_error"]
    system.run_schedule()
    [alert] = alerts(system)
    assert "credentials" in alert["Message"]


def test_retry_after_is_obeyed(system: Any, mentor: str) -> None:
    system.dynamics.fail_next("429", count=1, retry_after=2, method="PATCH")

    call(system, "POST", f"/{mentor}/pause")

    settled(system, mentor, "in_sync", timeout=30)
    throttled, applied = patches(system)
    assert throttled.status == 429 and applied.status == 204
    assert applied.time - throttled.time >= 2.0


def test_a_crash_before_the_execution_started_loses_nothing(
    system: Any, db: Database, mentor: str, function_env: Callable[[str, str], None]
) -> None:
    """The status change and its outbox row commit together; starting the execution fails
    (as if the Lambda died right after commit); the scheduled dispatcher delivers it."""
    function_env(
        "WEBSITE_STATE_MACHINE_ARN",
        system.aws.state_machine_arn.replace("website-visibility", "gone"),
    )
    call(system, "POST", f"/{mentor}/pause")
    time.sleep(1)
    assert shown(system) is True
    pending = status(system, mentor)
    assert pending["state"] == "pending"
    outbox = db.one("select * from website_visibility_outbox where profile_id = %s", mentor)
    assert outbox["dispatched_at"] is None and outbox["last_dispatch_error"]
    function_env("WEBSITE_STATE_MACHINE_ARN", system.aws.state_machine_arn)

    assert system.run_schedule()["dispatched"] == 1

    eventually(lambda: shown(system) is False, timeout=10)
    assert settled(system, mentor, "in_sync")["applied"] is False


def test_certificate_expiry_is_swept_and_renewal_reinstates(
    system: Any, db: Database, mentor: str
) -> None:
    with db.connect() as conn:
        conn.execute(
            "update peer_mentor_status set certified_until = current_date - 1 where profile_id = %s",
            (mentor,),
        )
        # Expired as the date passed, not by a write: no request to reconsider it waits.
        conn.execute("delete from visibility_reconsiderations")

    assert system.run_schedule()["reconsidered"] == 1
    eventually(lambda: shown(system) is False, timeout=10)
    assert "the certificate expired on" in status(system, mentor)["reasons_hidden"][0]

    renewed = call(
        system,
        "PUT",
        f"/{mentor}/certificate",
        json={"certified_until": (date.today() + timedelta(days=365)).isoformat()},
    )
    assert renewed.json()["desired"] is True
    eventually(lambda: shown(system) is True, timeout=10)
    assert system.run_schedule()["reconsidered"] == 0  # nothing left to sweep


def test_membership_deactivated_in_dynamics_hides_the_mentor(
    system: Any, db: Database, mentor: str
) -> None:
    from support import portal_event, signed_headers

    body = portal_event(
        "membership.deactivated",
        DEMO_MENTOR_CONTACT_ID,
        occurred_at=datetime.now(UTC).isoformat(),
    )
    response = httpx.post(
        f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}",
        content=body,
        headers=signed_headers(system.seed.webhook_secret, body),
    )

    assert response.status_code == 202
    eventually(lambda: shown(system) is False, timeout=15)
    final = settled(system, mentor, "in_sync")
    assert final["reasons_hidden"] == ["the membership is inactive"]
    actors = [r["actor"] for r in db.rows("select actor from peer_mentor_sync_log")]
    assert "system:inbound" in actors


def test_our_own_write_back_echo_is_skipped(system: Any, db: Database, mentor: str) -> None:
    """Our PATCH makes Dynamics fire its Update webhook at us, made by our application user."""
    from dataverse_payloads import dataverse_context

    app_user = str(uuid.uuid4())
    with db.connect() as conn:
        conn.execute("update integration_configs set application_user_ids = %s", ([app_user],))
    body = json.dumps(
        dataverse_context(
            "Update",
            "contact",
            DEMO_MENTOR_CONTACT_ID,
            {VISIBILITY_COLUMN: False, "firstname": "Changed"},
            modified_on=datetime.now(UTC),
            user_id=app_user,
            initiating_user_id=app_user,
        )
    ).encode()
    echo_is_skipped(system, db, mentor, body)


def echo_is_skipped(system: Any, db: Database, mentor: str, body: bytes) -> None:
    """The webhook `body` of our own write comes back: logged as a skipped echo, and the
    contact's other columns in it change nothing."""
    from support import signed_headers

    response = httpx.post(
        f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}",
        content=body,
        headers=signed_headers(system.seed.webhook_secret, body),
    )
    entry = eventually(
        lambda: db.one(
            "select * from portal_sync_events where event_id = %s", response.json()["id"]
        )
    )
    assert entry["status"] == "skipped" and "Echo" in entry["message"]
    assert db.one("select first_name from profiles where id = %s", mentor)["first_name"] == "Demo"


def test_the_application_user_is_learned_through_who_am_i_and_its_echo_skipped(
    system: Any, db: Database, mentor: str
) -> None:
    """Nobody types the application user's id: the delivery asks WhoAmI with the integration's
    own credentials, and the consumer then takes that user's changes for our echoes."""
    from urllib.parse import parse_qsl

    from dataverse_payloads import dataverse_context
    from portal_sync.dataverse.echo import REQUEST_TAG

    with db.connect() as conn:
        conn.execute(
            "update integration_configs set application_user_ids = '{}',"
            " dynamics_application_user_id = null where organization_id = %s",
            (system.seed.org_id,),
        )

    call(system, "POST", f"/{mentor}/pause")
    settled(system, mentor, "in_sync")

    (patch,) = patches(system)
    assert dict(parse_qsl(patch.query)) == {"tag": REQUEST_TAG}
    learned = eventually(
        lambda: db.one(
            "select dynamics_application_user_id from integration_configs"
            " where organization_id = %s",
            system.seed.org_id,
        )["dynamics_application_user_id"]
    )
    assert str(learned) == system.dynamics.application_user_id("portal-sync-local")
    (who,) = [r for r in system.dynamics.received if r.path.endswith("/WhoAmI")]
    assert who.headers["authorization"].startswith("Bearer ")

    # Its write comes back as a webhook from a step that runs as some other user.
    body = json.dumps(
        dataverse_context(
            "Update",
            "contact",
            DEMO_MENTOR_CONTACT_ID,
            {VISIBILITY_COLUMN: False, "firstname": "Changed"},
            modified_on=datetime.now(UTC),
            user_id=str(uuid.uuid4()),
            initiating_user_id=str(learned),
        )
    ).encode()
    echo_is_skipped(system, db, mentor, body)

    # A second change does not ask again.
    call(system, "POST", f"/{mentor}/resume")
    settled(system, mentor, "in_sync")
    assert len([r for r in system.dynamics.received if r.path.endswith("/WhoAmI")]) == 1


def test_only_coordinators_of_the_mentors_organisation(
    system: Any, db: Database, mentor: str
) -> None:
    from test_admin_api import add_member, add_org, token

    other_admin = token(system, add_member(db, add_org(db), "admin"))
    plain_member = token(system, add_member(db, system.seed.org_id, "member"))
    coordinator = token(system, add_member(db, system.seed.org_id, "coordinator"))

    assert call(system, "GET", f"/{mentor}/status", token="").status_code == 401
    assert call(system, "GET", f"/{mentor}/status", token=other_admin).status_code == 404
    assert call(system, "POST", f"/{mentor}/pause", token=plain_member).status_code == 403
    assert call(system, "POST", f"/{mentor}/pause", token=coordinator).status_code == 200
    # The Supabase Edge path reaches the same function.
    edge = httpx.get(
        f"{system.base_url}/functions/v1/website-sync/{mentor}/status",
        headers={"authorization": f"Bearer {coordinator}"},
    )
    assert edge.status_code == 200 and edge.json()["paused"] is True
    assert call(system, "GET", f"/{uuid.uuid4()}/status").status_code == 404


def test_the_history_lists_operations_newest_first_with_actor_outcome_and_paging(
    system: Any, mentor: str
) -> None:
    system.dynamics.fail_next("503", count=1, method="PATCH")
    call(system, "POST", f"/{mentor}/hide")
    settled(system, mentor, "in_sync")
    call(system, "POST", f"/{mentor}/restore")
    settled(system, mentor, "in_sync")

    page = call(system, "GET", f"/{mentor}/history", params={"limit": 3})

    assert page.status_code == 200, page.text
    body = page.json()
    items = body["items"]
    assert [i["operation"] for i in items] == ["applied", "restored", "applied"]
    assert [i["outcome"] for i in items] == ["applied", "recorded", "applied"]
    assert items[0]["at"] >= items[1]["at"] >= items[2]["at"]
    assert items[1]["desired"] is True and items[1]["error"] is None
    org_admin = jwt.decode(system.seed.org_admin_token, options={"verify_signature": False})
    assert items[1]["actor"] == org_admin["sub"]
    rest = call(
        system, "GET", f"/{mentor}/history", params={"limit": 50, "cursor": body["next_cursor"]}
    ).json()
    operations = [i["operation"] for i in rest["items"]]
    assert operations[:2] == ["attempt_failed", "hidden"]
    failed = rest["items"][0]
    assert failed["outcome"] == "attempt_failed" and "unavailable" in failed["error"]
    assert rest["next_cursor"] is None

    bad = call(system, "GET", f"/{mentor}/history", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    outsider = call(system, "GET", f"/{uuid.uuid4()}/history")
    assert outsider.status_code == 404


def pause_through_the_data_api(system: Any, db: Database, mentor: str, paused: bool) -> None:
    """What the app does: PostgREST runs the coordinator's update as `authenticated` with the
    verified claims, under row-level security; no route of ours is called."""
    admin = jwt.decode(system.seed.org_admin_token, options={"verify_signature": False})
    with psycopg.connect(db.url) as conn:
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": admin["sub"], "role": "authenticated"}),),
        )
        updated = conn.execute(
            "update peer_mentor_status set paused = %s where profile_id = %s",
            (paused, mentor),
        ).rowcount
        assert updated == 1  # the policy let the organisation's administrator change it


@pytest.fixture
def push_lost(system: Any) -> Iterator[None]:
    """The database's announcements are lost (pg_net's post never arrives): the schedule's
    turn."""
    system.push.pause()
    yield
    system.push.pause(False)


def test_a_pause_written_through_the_data_api_hides_the_mentor_within_seconds(
    system: Any, db: Database, mentor: str
) -> None:
    posted = system.push.posted

    pause_through_the_data_api(system, db, mentor, True)

    # No route called and no schedule run: the database's announcement brought it.
    eventually(lambda: shown(system) is False, timeout=10)
    assert system.push.posted > posted
    hidden = settled(system, mentor, "in_sync")
    assert hidden["desired"] is False and "the mentor is paused" in hidden["reasons_hidden"]
    history = call(system, "GET", f"/{mentor}/history").json()["items"]
    assert [i["operation"] for i in history[:2]] == ["applied", "reconsidered"]
    assert history[1]["actor"] == "system:data-change"

    pause_through_the_data_api(system, db, mentor, False)
    eventually(lambda: shown(system) is True, timeout=10)


def test_a_pause_whose_announcement_is_lost_is_hidden_by_the_next_schedule(
    system: Any, db: Database, mentor: str, push_lost: None
) -> None:
    pause_through_the_data_api(system, db, mentor, True)
    # The write asked, in its own transaction, for the mentor to be reconsidered.
    assert db.one("select cause from visibility_reconsiderations where profile_id = %s", mentor)
    time.sleep(1)
    assert shown(system) is True

    assert system.run_schedule()["requested"] == 1
    eventually(lambda: shown(system) is False, timeout=10)
    assert settled(system, mentor, "in_sync")["desired"] is False


def test_a_pause_whose_delivery_start_is_lost_is_hidden_by_the_next_schedule(
    system: Any, db: Database, mentor: str, function_env: Callable[[str, str], None]
) -> None:
    function_env(
        "WEBSITE_STATE_MACHINE_ARN",
        system.aws.state_machine_arn.replace("website-visibility", "gone"),
    )
    pause_through_the_data_api(system, db, mentor, True)
    # The announcement took the request and recorded the change; its start failed.
    eventually(
        lambda: db.one(
            "select 1 from website_visibility_outbox where profile_id = %s"
            " and dispatched_at is null and last_dispatch_error is not null",
            mentor,
        ),
        timeout=10,
    )
    assert shown(system) is True
    function_env("WEBSITE_STATE_MACHINE_ARN", system.aws.state_machine_arn)

    assert system.run_schedule()["dispatched"] == 1
    eventually(lambda: shown(system) is False, timeout=10)


def test_the_announcement_takes_only_the_project_service_role_key(system: Any, mentor: str) -> None:
    url = f"{system.base_url}/functions/v1/website-sync/reconsiderations"
    user = {"authorization": f"Bearer {system.seed.org_admin_token}"}
    forged = jwt.encode(
        {"role": "service_role", "exp": int(time.time()) + 60},
        "not-the-project-secret-but-long-enough",
        "HS256",
    )

    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers=user).status_code == 401  # a user's token: no
    assert (
        httpx.post(url, json={}, headers={"authorization": f"Bearer {forged}"}).status_code == 401
    )
    anon = jwt.encode({"role": "anon", "exp": int(time.time()) + 60}, system.jwt_secret, "HS256")
    assert httpx.post(url, json={}, headers={"authorization": f"Bearer {anon}"}).status_code == 401
    service = jwt.encode(
        {"role": "service_role", "exp": int(time.time()) + 60}, system.jwt_secret, "HS256"
    )
    answer = httpx.post(url, json={}, headers={"authorization": f"Bearer {service}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"reconsidered": 0, "dispatched": 0}


def test_reconsidering_a_mentor_in_step_writes_nothing(
    system: Any, db: Database, mentor: str, push_lost: None
) -> None:
    logged = db.one("select count(*) as n from peer_mentor_sync_log")["n"]
    with db.connect() as conn:  # a write that changes nothing the visibility depends on
        conn.execute(
            "update organization_memberships set role = 'peer_mentor' where profile_id = %s",
            (mentor,),
        )
        conn.execute(
            "update peer_mentor_status set certified_until = certified_until + 1"
            " where profile_id = %s",
            (mentor,),
        )
    assert system.run_schedule()["requested"] == 1

    assert db.one("select count(*) as n from peer_mentor_sync_log")["n"] == logged
    assert (
        db.one(
            "select count(*) as n from website_visibility_outbox where profile_id = %s"
            " and dispatched_at is null",
            mentor,
        )["n"]
        == 0
    )
    assert db.one("select count(*) as n from visibility_reconsiderations")["n"] == 0


def the_planned_retry_comes(db: Database, mentor: str) -> None:
    """The time passes until the mentor's next_attempt_at (a minute, at first)."""
    with db.connect() as conn:
        conn.execute(
            "update peer_mentor_status set next_attempt_at = now() - interval '1 second'"
            " where profile_id = %s",
            (mentor,),
        )


def test_without_a_dynamics_connection_changes_wait_and_page_nobody(
    system: Any, db: Database, mentor: str
) -> None:
    org = system.seed.org_id
    base_url = db.one(
        "select dynamics_base_url from integration_configs where organization_id = %s", org
    )["dynamics_base_url"]
    with db.connect() as conn:  # a newly onboarded organisation: no connection yet
        conn.execute(
            "update integration_configs set dynamics_base_url = null where organization_id = %s",
            (org,),
        )

    call(system, "POST", f"/{mentor}/pause")

    waiting = eventually(lambda: (s := status(system, mentor))["last_error"] and s, timeout=15)
    assert waiting["state"] == "pending" and waiting["next_attempt_at"]
    assert waiting["last_error"].startswith("Waiting for a Dynamics connection")
    assert system.run_schedule()["redelivered"] == 0  # still none: nothing is started
    assert alerts(system) == [] and shown(system) is True

    with db.connect() as conn:  # the administrator configures the connection
        conn.execute(
            "update integration_configs set dynamics_base_url = %s where organization_id = %s",
            (base_url, org),
        )
    the_planned_retry_comes(db, mentor)
    assert system.run_schedule()["redelivered"] == 1
    eventually(lambda: shown(system) is False, timeout=15)
    done = settled(system, mentor, "in_sync")
    assert done["last_error"] is None and done["next_attempt_at"] is None
    assert alerts(system) == []


def test_a_change_the_state_machine_gave_up_on_is_delivered_again_by_itself(
    system: Any, db: Database, mentor: str
) -> None:
    system.dynamics.fail_next("503", count=4, method="PATCH")  # 1 + 3 retries: all fail
    call(system, "POST", f"/{mentor}/pause")
    failed = settled(system, mentor, "failed", timeout=40)
    assert "Tried again automatically from" in failed["last_error"]
    assert failed["next_attempt_at"] is not None
    assert system.run_schedule()["redelivered"] == 0  # within a minute, not yet

    the_planned_retry_comes(db, mentor)  # and Dynamics is back
    assert system.run_schedule()["redelivered"] == 1

    eventually(lambda: shown(system) is False, timeout=15)
    done = settled(system, mentor, "in_sync")
    assert done["next_attempt_at"] is None and done["last_error"] is None
    history = call(system, "GET", f"/{mentor}/history").json()["items"]
    assert [i["operation"] for i in history[:2]] == ["applied", "redelivery"]


def test_retry_failed_delivers_every_failed_mentor_of_the_organisation_again(
    system: Any, db: Database, mentor: str
) -> None:
    system.dynamics.fail_next("503", count=4, method="PATCH")
    call(system, "POST", f"/{mentor}/pause")
    settled(system, mentor, "failed", timeout=40)
    org = str(system.seed.org_id)

    answer = call(system, "POST", "/retry-failed", params={"organization_id": org})

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"organization_id": org, "retried": 1}
    eventually(lambda: shown(system) is False, timeout=15)
    settled(system, mentor, "in_sync")
    again = call(system, "POST", "/retry-failed", params={"organization_id": org})
    assert again.json()["retried"] == 0  # nothing failed any more
    # Another organisation's mentors are none of this caller's business.
    other = call(system, "POST", "/retry-failed", params={"organization_id": str(uuid.uuid4())})
    assert other.status_code == 404
    assert call(system, "POST", "/retry-failed").status_code == 422  # which organisation?
