"""Full imports and reconciliations as administrators use them, end to end: the admin API starts
a run, the sync-run state machine (moto executes it) calls the reconcile function page by page
against the Dataverse stand-in, and sync/status follows it (docs/inbound.md, "Import and
reconciliation"; docs/admin-api.md)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from conftest import Database, eventually
from portal_sync_dev.local.dataverse_standin import LoadedMember
from portal_sync_dev.local.seed import DEMO_DYNAMICS_MEMBERS

TIMEOUT = 60.0  # "every member is in the app within a minute"


def admin_api(system: Any, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{system.base_url}/functions/v1/admin-api{path}",
        headers={"authorization": f"Bearer {token}"},
        timeout=15,
        **kwargs,
    )


def connection(system: Any) -> dict[str, Any]:
    client = system.run_info()["dynamics_sandbox_client"]
    return {
        "base_url": system.dynamics.url,
        "auth_type": "oauth_client_credentials",
        "tenant_id": client["tenant_id"],
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }


def status(system: Any, org_id: Any, token: str) -> dict[str, Any]:
    response = admin_api(system, "GET", f"/orgs/{org_id}/sync/status", token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ended(system: Any, org_id: Any, token: str, kind: str) -> dict[str, Any]:
    """The run's view once it ended, with every status seen on the way."""
    key = "full_import" if kind == "import" else "reconciliation"

    def check() -> dict[str, Any] | None:
        run = status(system, org_id, token)[key]
        return run if run and run["phase"] != "running" else None

    run: dict[str, Any] = eventually(check, timeout=TIMEOUT, interval=0.2)
    return run


def app_members(db: Database, org_id: Any) -> dict[str, tuple[str, str, str | None]]:
    rows = db.rows(
        """
        select p.dynamics_contact_id, m.role, m.status, p.first_name
          from organization_memberships m join profiles p on p.id = m.profile_id
         where m.organization_id = %s and p.dynamics_contact_id is not null
        """,
        org_id,
    )
    return {r["dynamics_contact_id"]: (r["role"], r["status"], r["first_name"]) for r in rows}


ROLES = {
    100000000: "member",
    100000001: "peer_mentor",
    100000002: "coordinator",
    100000003: "admin",
}


@pytest.fixture(autouse=True)
def demo_environment(system: Any) -> list[LoadedMember]:
    """The demo environment's 1,000 members as seeded (another test may have edited them)."""
    members: list[LoadedMember] = system.dynamics.load_members(DEMO_DYNAMICS_MEMBERS)
    return members


def expected_members(system: Any) -> dict[str, tuple[str, str, str | None]]:
    contacts = {c["contactid"]: c for c in system.dynamics.rows("contacts")}
    members = {}
    for m in system.dynamics.rows("hlf_memberships"):
        contact = contacts[m["_hlf_contactid_value"]]
        members[contact["contactid"]] = (
            ROLES[m["hlf_role"]],
            "inactive" if m["statecode"] else "active",
            contact.get("firstname"),
        )
    return members


def test_onboarding_with_a_connection_imports_every_member_within_a_minute(
    system: Any, db: Database
) -> None:
    admin = system.seed.admin_token
    started = time.monotonic()
    created = admin_api(
        system,
        "POST",
        "/orgs",
        admin,
        json={"name": "Import chapter", "dynamics": connection(system)},
    )
    assert created.status_code == 201, created.text
    org_id = created.json()["id"]

    # Progress is there from the start: the import is running or done, never missing.
    first = status(system, org_id, admin)["full_import"]
    assert first is not None and first["trigger"] == "onboarding"
    assert first["phase"] in ("running", "succeeded")

    run = ended(system, org_id, admin, "import")
    elapsed = time.monotonic() - started

    assert run["phase"] == "succeeded", run
    expected = expected_members(system)
    assert len(expected) >= 1000
    assert app_members(db, org_id) == expected
    assert elapsed < TIMEOUT
    assert run["rows_failed"] == 0 and run["rows_changed"] >= 2 * len(expected)
    assert run["rows_read"] == run["rows_changed"] + run["rows_unchanged"] + run["rows_failed"]
    assert run["finished_at"] is not None and run["current_table"] is None
    # The creations are in the sync log like a webhook's, and the start in the audit log.
    created_log = db.rows(
        "select count(*) as n from portal_sync_events where organization_id = %s"
        " and status = 'success'",
        org_id,
    )[0]["n"]
    assert created_log == run["rows_changed"]
    audit = admin_api(system, "GET", f"/orgs/{org_id}/audit-log", admin).json()
    assert any(entry["details"].get("import_started") == run["id"] for entry in audit["items"]), (
        audit
    )
    # The schedule takes over: the next reconciliation is an interval after the import.
    assert status(system, org_id, admin)["next_reconciliation_at"] is not None


def test_a_reconciliation_heals_lost_webhooks_and_deletions_and_counts_the_drift(
    system: Any, db: Database, demo_environment: list[LoadedMember]
) -> None:
    admin, org = system.seed.org_admin_token, system.seed.org_id
    assert admin_api(system, "POST", f"/orgs/{org}/sync/import", admin).status_code == 202
    assert ended(system, org, admin, "import")["phase"] == "succeeded"
    promoted, leaving, deleted, renamed = demo_environment[1:5]
    # Edits in Dynamics whose webhooks never arrived (the stand-in posts none in tests):
    system.dynamics.update_row("hlf_memberships", promoted.membership_id, hlf_role=100000002)
    system.dynamics.update_row("hlf_memberships", leaving.membership_id, statecode=1)
    system.dynamics.delete_row("hlf_memberships", deleted.membership_id)
    system.dynamics.update_row("contacts", renamed.contact_id, firstname="Kari")

    answer = admin_api(system, "POST", f"/orgs/{org}/sync/reconcile", admin)
    assert answer.status_code == 202, answer.text
    assert answer.json()["kind"] == "reconcile" and answer.json()["phase"] == "running"
    run = ended(system, org, admin, "reconcile")

    assert run["phase"] == "succeeded" and not run["full_read"], run
    members = app_members(db, org)
    assert members[promoted.contact_id][0] == "coordinator"
    assert members[leaving.contact_id][1] == "inactive"
    assert members[deleted.contact_id][1] == "inactive"
    assert members[renamed.contact_id][2] == "Kari"
    # Only the changes since the import were read (the mentors' website visibility that the
    # import wrote to Dynamics among them, in step); the four lost ones were drift.
    assert (run["rows_changed"], run["rows_drift"], run["rows_failed"]) == (4, 4, 0)
    assert run["rows_read"] == 4 + run["rows_unchanged"] < 200


def test_an_expired_delta_link_leads_to_a_full_read_not_an_error(
    system: Any, db: Database, demo_environment: list[LoadedMember]
) -> None:
    admin, org = system.seed.org_admin_token, system.seed.org_id
    admin_api(system, "POST", f"/orgs/{org}/sync/import", admin)
    assert ended(system, org, admin, "import")["phase"] == "succeeded"
    leaving = demo_environment[5]
    system.dynamics.update_row("hlf_memberships", leaving.membership_id, statecode=1)
    system.dynamics.expire_delta_tokens()

    admin_api(system, "POST", f"/orgs/{org}/sync/reconcile", admin)
    run = ended(system, org, admin, "reconcile")

    assert run["phase"] == "succeeded" and run["full_read"] and run["error"] is None, run
    assert app_members(db, org)[leaving.contact_id][1] == "inactive"
    assert run["rows_changed"] == 1 and run["rows_unchanged"] == run["rows_read"] - 1


def test_a_second_run_is_refused_while_one_runs_and_runs_need_a_connection(
    system: Any, db: Database
) -> None:
    admin, org = system.seed.org_admin_token, system.seed.org_id
    first = admin_api(system, "POST", f"/orgs/{org}/sync/import", admin)
    second = admin_api(system, "POST", f"/orgs/{org}/sync/reconcile", admin)
    if status(system, org, admin)["full_import"]["phase"] == "running":
        assert second.status_code == 409, second.text
        assert first.json()["id"] in second.json()["message"]
    ended(system, org, admin, "import")

    with db.connect() as conn:
        conn.execute(
            "update integration_configs set dynamics_base_url = null where organization_id = %s",
            (org,),
        )
    refused = admin_api(system, "POST", f"/orgs/{org}/sync/import", admin)
    assert refused.status_code == 409
    assert "No Dynamics connection" in refused.json()["message"]


def test_the_schedule_reconciles_organisations_that_are_due_and_only_those(
    system: Any, db: Database
) -> None:
    admin, org = system.seed.org_admin_token, system.seed.org_id
    assert system.run_reconcile_schedule() == {"started": 1, "resumed": 0}  # never ran
    # Never read: nothing to reconcile with, so the run is the organisation's import.
    run = ended(system, org, admin, "import")
    assert run["trigger"] == "schedule" and run["phase"] == "succeeded"
    assert run["rows_drift"] == 0
    assert app_members(db, org) == expected_members(system)

    # Within the interval nothing starts; the interval is the organisation's setting.
    assert system.run_reconcile_schedule() == {"started": 0, "resumed": 0}
    answer = admin_api(
        system, "PUT", f"/orgs/{org}/integration", admin, json={"reconcile_interval_minutes": 4}
    )
    assert answer.status_code == 422 and "reconcile_interval_minutes" in answer.text
    answer = admin_api(
        system, "PUT", f"/orgs/{org}/integration", admin, json={"reconcile_interval_minutes": 5}
    )
    assert answer.status_code == 200 and answer.json()["reconcile_interval_minutes"] == 5
    with db.connect() as conn:  # five minutes pass
        conn.execute(
            "update portal_sync_runs set started_at = started_at - interval '5 minutes'"
            " where organization_id = %s",
            (org,),
        )
    assert system.run_reconcile_schedule()["started"] == 1
    assert ended(system, org, admin, "reconcile")["rows_changed"] == 0  # nothing changed since


def test_a_run_whose_execution_was_lost_is_resumed_by_the_schedule(
    system: Any, db: Database
) -> None:
    """A worker killed between pages: the run stays running without progress, and the
    schedule gives it a new execution that resumes at its checkpoint."""
    admin, org = system.seed.org_admin_token, system.seed.org_id
    run_id = uuid.uuid4()
    with db.connect() as conn:
        # Stored, but its execution never started (the admin API died after the commit).
        conn.execute(
            "insert into portal_sync_runs (id, organization_id, kind, tables, current_table,"
            " updated_at) values (%s, %s, 'import',"
            " array['contact', 'hlf_membership', 'hlf_courseenrollment'], 'contact',"
            " now() - interval '11 minutes')",
            (run_id, org),
        )
    assert system.run_reconcile_schedule() == {"started": 0, "resumed": 1}
    run = ended(system, org, admin, "import")
    assert run["id"] == str(run_id) and run["phase"] == "succeeded"
    assert app_members(db, org) == expected_members(system)


@pytest.mark.parametrize("enabled_first", [False])
def test_enabling_an_integration_imports_its_members(
    system: Any, db: Database, enabled_first: bool
) -> None:
    admin, org = system.seed.org_admin_token, system.seed.org_id
    path = f"/orgs/{org}/integration"
    assert admin_api(system, "PUT", path, admin, json={"enabled": enabled_first}).status_code == 200
    assert status(system, org, admin)["full_import"] is None  # disabled: nothing starts
    assert status(system, org, admin)["next_reconciliation_at"] is None

    assert admin_api(system, "PUT", path, admin, json={"enabled": True}).status_code == 200

    run = ended(system, org, admin, "import")
    assert run["trigger"] == "enabled" and run["phase"] == "succeeded"
    assert app_members(db, org) == expected_members(system)
