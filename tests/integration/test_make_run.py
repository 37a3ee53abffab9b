"""`make run` as a developer starts it: `python -m portal_sync_dev.local.run` in its own process.

The process gets its own database (created on the tests' server), its own state directory and
its own emulated AWS, so nothing it seeds touches the session's system.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from conftest import ROOT, Database, eventually
from portal_sync_dev.local.seed import new_webhook_secret
from support import portal_event, signed_headers

# Set by the session's system for its own functions; the new process must start its own.
INHERITED = (
    "AWS_ENDPOINT_URL",
    "MOTO_PORT",
    "PORTAL_SYNC_REAL_AWS",
    "DATABASE_URL",
    "PUBLIC_BASE_URL",
    "DEMO_WEBHOOK_SECRET",
)


@pytest.fixture
def empty_database(database: Database) -> Iterator[str]:
    """A database of its own on the tests' server; `make run` migrates it."""
    name = f"portal_sync_run_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    yield urlsplit(database.url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


def make_run(state_dir: Path, database_url: str, **env: str) -> subprocess.Popen[bytes]:
    """What `make run` runs, on a port the OS chooses."""
    environment = {k: v for k, v in os.environ.items() if k not in INHERITED}
    environment.update(
        PORT="0", PORTAL_SYNC_STATE_DIR=str(state_dir), DATABASE_URL=database_url, **env
    )
    output = (state_dir / "output.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "portal_sync_dev.local.run"],
        cwd=ROOT,
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def ready(process: subprocess.Popen[bytes], state_dir: Path) -> dict[str, Any]:
    def run_json() -> dict[str, Any] | None:
        if process.poll() is not None:
            log = (state_dir / "output.log").read_text(errors="replace")
            raise AssertionError(f"make run exited with {process.returncode}:\n{log}")
        path = state_dir / "run.json"
        loaded: dict[str, Any] | None = json.loads(path.read_text()) if path.exists() else None
        return loaded

    return eventually(run_json, timeout=90, interval=0.2)


def test_demo_webhook_secret_from_the_environment_signs_the_demo_source(
    tmp_path: Path, empty_database: str
) -> None:
    """docs/cli.md: DEMO_WEBHOOK_SECRET, when set, is the demo source's secret, even
    over the secret an earlier `make run` remembered under .local."""
    remembered = new_webhook_secret()
    (tmp_path / "demo_webhook_secret").write_text(remembered)
    chosen = new_webhook_secret()

    process = make_run(tmp_path, empty_database, DEMO_WEBHOOK_SECRET=chosen)
    try:
        run = ready(process, tmp_path)
        contact = str(uuid.uuid4())
        body = portal_event("membership.created", contact)

        accepted = httpx.post(
            run["webhook_url"], content=body, headers=signed_headers(chosen, body), timeout=15
        )
        refused = httpx.post(
            run["webhook_url"], content=body, headers=signed_headers(remembered, body), timeout=15
        )

        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["status"] == "accepted"
        assert refused.status_code == 401
        assert run["webhook_secret"] == chosen
        with psycopg.connect(run["database_url"], autocommit=True) as conn:
            applied = eventually(
                lambda: conn.execute(
                    "select 1 from profiles where dynamics_contact_id = %s", (contact,)
                ).fetchone(),
                timeout=15,
            )
            reasons = conn.execute(
                "select reason from webhook_receipts where outcome = 'rejected'"
            ).fetchall()
        assert applied
        assert reasons == [("SIGNATURE_MISMATCH",)]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert (tmp_path / "demo_webhook_secret").read_text() == remembered  # left as it was


def test_run_json_gives_a_token_to_read_the_dynamics_stand_in_with_curl(
    tmp_path: Path, empty_database: str
) -> None:
    """docs/cli.md: `dynamics_sandbox_token` reads the stand-in's rows, which hold the demo
    environment's 1,000 members (and the demo mentor) for an import to bring into the app."""
    process = make_run(tmp_path, empty_database)
    try:
        run = ready(process, tmp_path)
        headers = {"Authorization": f"Bearer {run['dynamics_sandbox_token']}"}
        base = f"{run['dynamics_sandbox_url']}/api/data/v9.2"

        contacts = httpx.get(f"{base}/contacts?$select=firstname", headers=headers, timeout=15)
        memberships = httpx.get(
            f"{base}/hlf_memberships?$select=hlf_role,_hlf_contactid_value",
            headers=headers,
            timeout=15,
        )
        anonymous = httpx.get(f"{base}/contacts?$select=firstname", timeout=15)

        assert contacts.status_code == 200, contacts.text
        assert len(contacts.json()["value"]) == 1001
        assert len(memberships.json()["value"]) == 1001
        assert anonymous.status_code == 401
        assert run["dynamics_sandbox_token"] not in (tmp_path / "output.log").read_text()

        # A change through the Web API posts Dataverse's webhook to the demo Dynamics source.
        mentor = run["demo_mentor_id"]
        with psycopg.connect(run["database_url"], autocommit=True) as conn:
            found = conn.execute(
                "select dynamics_contact_id from profiles where id = %s", (mentor,)
            ).fetchone()
            assert found is not None
            changed = httpx.patch(
                f"{base}/contacts({found[0]})",
                json={"mobilephone": "+47 900 00 000"},
                headers={**headers, "OData-MaxVersion": "4.0", "OData-Version": "4.0"},
                timeout=15,
            )
            assert changed.status_code == 204
            receipt = eventually(
                lambda: conn.execute(
                    "select outcome from webhook_receipts where source_id = 'demo-dynamics'"
                ).fetchone(),
                timeout=15,
            )
        assert receipt == ("accepted",)
        stats = httpx.get(f"{run['dynamics_sandbox_url']}/_standin/webhooks", timeout=15).json()
        assert stats["posted"] == 1 and stats["dropped"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_fresh_make_run_imports_the_demo_environments_members_within_a_minute(
    tmp_path: Path, empty_database: str
) -> None:
    """The demo organisation has a Dynamics connection and has never run: the schedule's first
    tick imports the stand-in's 1,000 members, and sync/status shows the run."""
    process = make_run(tmp_path, empty_database, SCHEDULE_SECONDS="2")
    try:
        run = ready(process, tmp_path)
        status_url = f"{run['base_url']}/functions/v1/admin-api/orgs/{run['org_id']}/sync/status"
        headers = {"authorization": f"Bearer {run['org_admin_token']}"}

        def imported() -> dict[str, Any] | None:
            body = httpx.get(status_url, headers=headers, timeout=15).json()
            done = body.get("full_import") or {}
            return body if done.get("phase") == "succeeded" else None

        body = eventually(imported, timeout=60, interval=0.5)
        # Never read before: the schedule's reconciliation is the organisation's import.
        assert body["full_import"]["trigger"] == "schedule"
        assert body["full_import"]["rows_failed"] == 0
        assert body["next_reconciliation_at"] is not None
        with psycopg.connect(run["database_url"], autocommit=True) as conn:
            row = conn.execute(
                "select count(*) from organization_memberships m join profiles p"
                " on p.id = m.profile_id where m.organization_id = %s"
                " and p.dynamics_contact_id is not null",
                (run["org_id"],),
            ).fetchone()
        assert row is not None and row[0] == 1001  # 1,000 members and the demo mentor
        # Nothing went wrong: on-call has nothing (run.json's oncall_alerts_url lists it).
        assert httpx.get(run["oncall_alerts_url"], timeout=5).json() == []
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
