"""`portal-sync`, the command line, against the whole local system over loopback HTTP.

Options are passed explicitly (each test runs in an empty temporary directory, so a developer's
own `.local/run.json` is never picked up), except in the test of that very fallback.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import Result
from conftest import ROOT, Database, eventually
from portal_sync_dev.cli import app
from typer.testing import CliRunner

CAPTURES = ROOT / "tests" / "fixtures" / "dataverse"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No run.json and no PORTAL_SYNC_* settings from the developer's environment."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "PORTAL_SYNC_BASE_URL",
        "PORTAL_SYNC_TOKEN",
        "PORTAL_SYNC_ORG",
        "PORTAL_SYNC_SOURCE",
        "PORTAL_SYNC_WEBHOOK_SECRET",
        "PORTAL_SYNC_HEADER_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def cli(system: Any, *args: str, token: str | None = None) -> Result:
    """Runs an admin command as the demo global administrator, options given explicitly."""
    token = token or system.seed.admin_token
    result = runner.invoke(
        app,
        ["--base-url", system.base_url, "--token", token, "--org", str(system.seed.org_id), *args],
    )
    # Whatever the command and its outcome, the token is never printed.
    assert token not in result.output
    assert system.seed.admin_token not in result.output
    return result


def send(system: Any, *args: str, url: str | None = None) -> Result:
    endpoint = url or f"{system.base_url}/functions/v1/portal-webhook/{system.seed.source_id}"
    result = runner.invoke(app, ["send", "--url", endpoint, *args])
    assert system.seed.admin_token not in result.output
    return result


def answer(result: Result) -> dict[str, Any]:
    """The JSON answer `send` prints (indented) after its status line; anything the in-process
    functions printed before it (a metrics line) is skipped."""
    return json.loads(result.stdout[result.stdout.rindex("{\n") :])


def logged(db: Database, event_id: str) -> dict[str, Any] | None:
    return db.one("select * from portal_sync_events where event_id = %s", event_id)


def test_send_sample_signs_with_the_secret_and_the_member_is_applied(
    system: Any, db: Database
) -> None:
    contact = str(uuid.uuid4())

    result = send(
        system,
        "--secret",
        system.seed.webhook_secret,
        "--sample",
        "membership.created",
        "--contact-id",
        contact,
        "--role",
        "peer_mentor",
    )

    assert result.exit_code == 0, result.output
    assert "202" in result.stdout
    body = answer(result)
    assert body["status"] == "accepted" and body["id"].startswith("msg_")
    assert system.seed.webhook_secret not in result.output
    membership = eventually(
        lambda: db.one(
            "select m.role, m.status, m.organization_id from organization_memberships m"
            " join profiles p on p.id = m.profile_id where p.dynamics_contact_id = %s",
            contact,
        )
    )
    assert membership == {
        "role": "peer_mentor",
        "status": "active",
        "organization_id": system.seed.org_id,
    }
    assert logged(db, body["id"])["status"] == "success"


def test_send_a_dataverse_capture_with_a_header_key(system: Any, db: Database) -> None:
    from portal_sync_dev.local.aws_local import put_source_secret

    source_id = "cli-dataverse"
    put_source_secret(
        source_id,
        {
            "organization_id": str(system.seed.org_id),
            "mode": "header-key",
            "header_name": "x-key",
            "keys": [{"value": "k"}],
        },
    )
    url = f"{system.base_url}/functions/v1/portal-webhook/{source_id}"

    result = send(
        system,
        "--file",
        str(CAPTURES / "membership-create.json"),
        "--header-key",
        "x-key=k",
        url=url,
    )

    assert result.exit_code == 0, result.output
    event_id = answer(result)["id"]
    assert event_id.startswith("dataverse:")
    entry = eventually(lambda: logged(db, event_id))
    assert entry["status"] == "success" and entry["source_table"] == "hlf_membership"

    refused = send(
        system,
        "--file",
        str(CAPTURES / "membership-create.json"),
        "--header-key",
        "x-key=wrong",
        url=url,
    )
    assert refused.exit_code == 1
    assert "401" in refused.stdout


def test_send_refused_without_the_right_secret_exits_1(system: Any) -> None:
    result = send(system, "--secret", "whsec_" + "A" * 44)

    assert result.exit_code == 1
    assert "401" in result.stdout
    assert answer(result)["code"] == 401


def test_status_and_events_show_the_event(system: Any, db: Database) -> None:
    sent = send(system, "--secret", system.seed.webhook_secret, "--sample", "membership.created")
    event_id = answer(sent)["id"]
    eventually(lambda: logged(db, event_id))

    status = cli(system, "status", "--json")
    events = cli(system, "events", "--json")
    table = cli(system, "events", "--type", "membership.created", "--status", "success")
    status_table = cli(system, "status")

    assert status.exit_code == 0, status.output
    body = json.loads(status.stdout)
    assert body["organization_id"] == str(system.seed.org_id)
    assert body["last_24h"]["success"] == 1 and body["failed"] == 0
    assert body["last_success_at"] is not None
    assert events.exit_code == 0, events.output
    [item] = json.loads(events.stdout)["items"]
    assert item["event_id"] == event_id and item["status"] == "success"
    assert table.exit_code == 0, table.output
    assert "membership.created" in table.stdout and item["id"] in table.stdout
    assert status_table.exit_code == 0 and "last 24 h: success" in status_table.stdout
    # The demo mentor on the public website, in sync.
    assert body["website_visibility"]["mentors"] == {"in_sync": 1, "pending": 0, "failed": 0}
    assert "website: mentors" in status_table.stdout and "1 in sync" in status_table.stdout


def test_status_shows_a_website_visibility_outage(system: Any, db: Database) -> None:
    with db.connect() as conn:
        conn.execute(
            "update peer_mentor_status set sync_state = 'failed' where organization_id = %s",
            (system.seed.org_id,),
        )
        conn.execute(
            "insert into visibility_outages (organization_id, cause, alerted_at)"
            " values (%s, 'Dynamics is unavailable right now (HTTP 503)', now())",
            (system.seed.org_id,),
        )

    shown = cli(system, "status")

    assert shown.exit_code == 0, shown.output
    assert "1 failed" in shown.stdout
    assert "website: outage" in shown.stdout and "HTTP 503" in shown.stdout


def test_events_pages_with_the_printed_cursor(system: Any, db: Database) -> None:
    for _ in range(3):
        send(system, "--secret", system.seed.webhook_secret)
    eventually(lambda: db.one("select count(*) as n from portal_sync_events")["n"] == 3)

    first = cli(system, "events", "--limit", "2")
    cursor = re.search(r"next cursor: (\S+)", first.stdout)
    assert cursor, first.stdout
    second = cli(system, "events", "--limit", "2", "--cursor", cursor.group(1), "--json")

    assert len(json.loads(second.stdout)["items"]) == 1
    assert json.loads(second.stdout)["next_cursor"] is None


def test_rotated_secret_is_shown_once_and_signs_the_next_webhook(system: Any, db: Database) -> None:
    result = cli(system, "rotate-secret", "--grace-hours", "1")

    assert result.exit_code == 0, result.output
    assert "shown only now" in result.stdout
    [new_secret] = re.findall(r"^whsec_\S+$", result.stdout, flags=re.MULTILINE)
    assert new_secret != system.seed.webhook_secret
    assert "fingerprint" in result.stdout and "previous valid until" in result.stdout

    sent = send(system, "--secret", new_secret)
    assert sent.exit_code == 0, sent.output
    assert answer(sent)["status"] == "accepted"
    assert new_secret not in sent.output


def test_test_secret_exits_0_when_verified(system: Any) -> None:
    result = cli(system, "test-secret")

    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout and "NOT" not in result.stdout


def test_reprocessing_an_event_that_did_not_fail_shows_the_409(system: Any, db: Database) -> None:
    event_id = answer(send(system, "--secret", system.seed.webhook_secret))["id"]
    eventually(lambda: logged(db, event_id))
    entry_id = json.loads(cli(system, "events", "--json").stdout)["items"][0]["id"]

    result = cli(system, "reprocess", entry_id)

    assert result.exit_code == 1
    assert "Error 409: Only events that ended in error can be reprocessed" in result.output


def test_reprocessing_a_failed_event_queues_it(system: Any, db: Database) -> None:
    body = {
        "type": "membership.role_updated",
        "occurred_at": "2026-11-20T11:00:00Z",
        "member": {"dynamics_contact_id": str(uuid.uuid4())},
    }
    path = Path("role-missing.json")
    path.write_text(json.dumps(body))
    event_id = answer(send(system, "--secret", system.seed.webhook_secret, "--file", str(path)))[
        "id"
    ]
    eventually(lambda: logged(db, event_id))
    errors = cli(system, "events", "--status", "error", "--json")
    [failed] = json.loads(errors.stdout)["items"]

    result = cli(system, "reprocess", failed["id"])

    assert result.exit_code == 0, result.output
    assert f"Queued {event_id}" in result.stdout
    eventually(lambda: (row := logged(db, event_id)) and row["attempts"] == 2)


def test_health_shows_counts_and_rejections(system: Any) -> None:
    send(system, "--secret", system.seed.webhook_secret)
    send(system, "--secret", "whsec_" + "A" * 44)

    result = cli(system, "health")
    raw = cli(system, "health", "--json")

    assert result.exit_code == 0, result.output
    assert "SIGNATURE_MISMATCH" in result.stdout and "Outage" in result.stdout
    body = json.loads(raw.stdout)
    assert body["accepted_24h"] == 1 and body["rejected_by_reason_24h"] == {"SIGNATURE_MISMATCH": 1}


def test_api_errors_are_shown_with_their_field_errors(system: Any) -> None:
    result = cli(system, "events", "--cursor", "zzz")

    assert result.exit_code == 1
    assert "Error 422: The request is invalid" in result.output
    assert "cursor:" in result.output


def test_a_bad_token_exits_1_with_invalid_jwt_and_is_not_printed(system: Any) -> None:
    bad = "not-a-jwt-" + uuid.uuid4().hex

    result = cli(system, "status", token=bad)

    assert result.exit_code == 1
    assert "Invalid JWT" in result.output
    assert bad not in result.output


def test_an_unreachable_api_prints_a_hint() -> None:
    from portal_sync_dev.local.postgres import free_port

    result = runner.invoke(
        app,
        [
            "--base-url",
            f"http://127.0.0.1:{free_port()}",
            "--token",
            "t0ken-value",
            "--org",
            str(uuid.uuid4()),
            "status",
        ],
    )

    assert result.exit_code == 1
    assert "is `make run` running" in result.output
    assert "t0ken-value" not in result.output


def test_run_json_in_the_current_directory_is_picked_up(
    system: Any, db: Database, tmp_path: Path
) -> None:
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "run.json").write_text(json.dumps(system.run_info()))

    sent = runner.invoke(app, ["send"])
    status = runner.invoke(app, ["status", "--json"])

    assert sent.exit_code == 0, sent.output
    assert answer(sent)["status"] == "accepted"
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["organization_id"] == str(system.seed.org_id)
    for result in (sent, status):
        assert system.seed.admin_token not in result.output
        assert system.seed.webhook_secret not in result.output


def test_a_sample_sent_next_to_make_run_exists_in_the_dynamics_stand_in_too(
    system: Any, db: Database, tmp_path: Path
) -> None:
    """A member who reached the app through a webhook is in Dynamics as well, so that changes
    the app sends to Dynamics for them (website visibility) find their contact."""
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "run.json").write_text(json.dumps(system.run_info()))
    contact = str(uuid.uuid4())

    sent = runner.invoke(
        app,
        [
            "send",
            "--sample",
            "membership.created",
            "--contact-id",
            contact,
            "--role",
            "peer_mentor",
        ],
    )
    deactivated = runner.invoke(
        app, ["send", "--sample", "membership.deactivated", "--contact-id", contact]
    )

    assert sent.exit_code == 0 and deactivated.exit_code == 0, sent.output + deactivated.output
    standin = system.dynamics
    assert standin.contact(contact)["firstname"] == "Kari"
    (membership,) = [
        r for r in standin.rows("hlf_memberships") if r["_hlf_contactid_value"] == contact
    ]
    assert membership["hlf_role"] == 100000001 and membership["statecode"] == 1
    assert eventually(
        lambda: db.one("select 1 as found from profiles where dynamics_contact_id = %s", contact)
    )


def test_missing_configuration_says_what_to_pass() -> None:
    result = runner.invoke(app, ["status"])

    assert result.exit_code == 2
    assert "--base-url" in result.output


def test_lint_database_reports_what_supabases_advisors_would(database: Database) -> None:
    clean = runner.invoke(app, ["lint-database", "--database-url", database.url])
    assert clean.exit_code == 0, clean.output
    assert "ERROR" not in clean.output and "WARN" not in clean.output
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute("create table public.lint_probe (id int primary key)")
    try:
        flagged = runner.invoke(app, ["lint-database", "--database-url", database.url])
    finally:
        with psycopg.connect(database.url, autocommit=True) as conn:
            conn.execute("drop table public.lint_probe")
    assert flagged.exit_code == 1
    assert "rls_disabled_in_public" in flagged.output and "lint_probe" in flagged.output


def test_import_follows_the_run_to_its_end_and_status_shows_it(system: Any, db: Database) -> None:
    result = cli(system, "import")  # the demo environment's 1,000 members

    assert result.exit_code == 0, result.output
    assert re.search(r"import\W+succeeded \(admin\)", result.stdout), result.stdout
    rows = re.search(r"([\d,]+) read, ([\d,]+) changed", result.stdout)
    assert rows is not None and int(rows[1].replace(",", "")) >= 2000
    members = db.one(
        "select count(*) as n from organization_memberships where organization_id = %s",
        system.seed.org_id,
    )
    assert members is not None and members["n"] >= 1000
    shown = cli(system, "status")
    assert re.search(r"import\W+succeeded", shown.stdout), shown.stdout
    assert re.search(r"reconciliation\W+never ran", shown.stdout), shown.stdout

    reconciled = cli(system, "reconcile", "--json")
    assert reconciled.exit_code == 0, reconciled.output
    run = json.loads(reconciled.stdout[reconciled.stdout.index("{") :])
    assert (run["kind"], run["phase"], run["rows_changed"]) == ("reconcile", "succeeded", 0)


def test_a_run_refused_exits_1_with_the_reason(system: Any, db: Database) -> None:
    with db.connect() as conn:
        conn.execute(
            "update integration_configs set enabled = false where organization_id = %s",
            (system.seed.org_id,),
        )
    result = cli(system, "reconcile")
    assert result.exit_code == 1
    assert "disabled" in result.output
