"""A full import and reconciliations against the real PostgreSQL and the Dataverse stand-in:
the change-tracking reader (adapters/dynamics/change_tracking.py), the run store
(adapters/postgres/run_store.py) and the logic (portal_sync/reconciliation/) together."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from conftest import Database
from portal_sync.adapters.dynamics.change_tracking import ChangeTrackingReader
from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.run_store import PostgresRunStore
from portal_sync.adapters.rate_limiter import RateLimiter
from portal_sync.dataverse.connection import DynamicsConnection
from portal_sync.reconciliation.ports import Phase, Run, RunActive, RunKind
from portal_sync.reconciliation.runs import Reconciliation
from portal_sync.visibility.ports import DynamicsTarget
from portal_sync_dev.local.dataverse_standin import (
    ROLE_COORDINATOR,
    DataverseStandIn,
    LoadedMember,
)

TENANT, CLIENT_ID, SECRET = "tenant", "portal-sync-client", "client-secret"
MEMBERS = 240
PAGE_SIZE = 50


class Targets:
    def __init__(self, standin: DataverseStandIn) -> None:
        self.connection = DynamicsConnection(
            base_url=standin.url,
            auth_type="oauth_client_credentials",
            secret=SECRET,
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            authority_url=standin.url,
        )

    def target(self, organization_id: UUID) -> DynamicsTarget:
        return DynamicsTarget(self.connection, visibility_column="hlf_visible")


class Crash(Exception):
    pass


class CrashingStore(PostgresRunStore):
    """Dies as it writes the checkpoint of its `crash_at`-th page (the rows already written in
    the same transaction are rolled back with it), as a killed worker would."""

    def __init__(self, connections: ConnectionProvider, crash_at: int) -> None:
        super().__init__(connections)
        self._saves, self._crash_at = 0, crash_at

    def save_run(self, run: Run) -> None:
        super().save_run(run)
        self._saves += 1
        if self._saves == self._crash_at:
            raise Crash()


@pytest.fixture
def standin() -> Iterator[DataverseStandIn]:
    server = DataverseStandIn(port=0, timeout_seconds=5.0).start()
    server.add_client(TENANT, CLIENT_ID, SECRET)
    yield server
    server.stop()


@pytest.fixture
def org(db: Database) -> UUID:
    org_id = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("insert into organizations (id, name) values (%s, 'Import')", (org_id,))
        conn.execute(
            "insert into integration_configs (organization_id, source_id) values (%s, %s)",
            (org_id, f"import-{org_id}"),
        )
    return org_id


@pytest.fixture
def connections(db: Database) -> Iterator[ConnectionProvider]:
    provider = ConnectionProvider(db.functions_url)
    yield provider
    provider.discard()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sync_for(
    store: PostgresRunStore, standin: DataverseStandIn, http: httpx.Client
) -> Reconciliation:
    reader = ChangeTrackingReader(Targets(standin), http, RateLimiter(100.0, 20), allow_local=True)
    return Reconciliation(store, reader, page_size=PAGE_SIZE)


def run_to_end(sync: Reconciliation, run: Run) -> None:
    for _ in range(500):
        if sync.next_page(run.id).done:
            sync.finish(run.id)
            return
    raise AssertionError("the run did not end")


def app_members(db: Database, org: UUID) -> list[dict[str, Any]]:
    return db.rows(
        """
        select p.dynamics_contact_id, p.first_name, p.last_name, p.email, p.is_active,
               m.role, m.status, m.source_modified_at, m.dynamics_row_id
          from profiles p join organization_memberships m on m.profile_id = p.id
         where m.organization_id = %s order by p.dynamics_contact_id
        """,
        org,
    )


def run_row(db: Database, run_id: UUID) -> dict[str, Any]:
    found = db.one("select * from portal_sync_runs where id = %s", run_id)
    assert found is not None
    return found


def expected_role(member: LoadedMember) -> str:
    return {100000000: "member", 100000001: "peer_mentor", 100000002: "coordinator"}.get(
        member.role, "admin"
    )


def test_a_full_import_brings_every_member_with_role_and_status(
    db: Database,
    org: UUID,
    standin: DataverseStandIn,
    connections: ConnectionProvider,
    http: httpx.Client,
) -> None:
    loaded = standin.load_members(MEMBERS)
    sync = sync_for(PostgresRunStore(connections), standin, http)

    run = sync.start(org, RunKind.IMPORT)
    run_to_end(sync, run)

    found = {m["dynamics_contact_id"]: m for m in app_members(db, org)}
    assert len(found) == MEMBERS
    for member in loaded:
        row = found[member.contact_id]
        assert row["role"] == expected_role(member)
        assert row["status"] == ("inactive" if member.statecode else "active")
        assert (row["first_name"], row["email"]) == (member.firstname, member.email)
        assert row["dynamics_row_id"] == member.membership_id
    stored = run_row(db, run.id)
    assert stored["phase"] == "succeeded"
    assert (stored["rows_read"], stored["rows_changed"], stored["rows_failed"]) == (
        2 * MEMBERS,
        2 * MEMBERS,
        0,
    )
    assert stored["pages_read"] >= 2 * MEMBERS // PAGE_SIZE
    links = db.rows(
        "select table_name from portal_sync_delta_links where organization_id = %s", org
    )
    assert {r["table_name"] for r in links} == {"contact", "hlf_membership", "hlf_courseenrollment"}
    created = db.one(
        "select count(*) as n from portal_sync_events where organization_id = %s"
        " and status = 'success' and message like '%%created%%'",
        org,
    )
    assert created is not None and created["n"] == MEMBERS


def test_reconciliation_heals_lost_webhooks_and_an_expired_delta_link_reads_everything(
    db: Database,
    org: UUID,
    standin: DataverseStandIn,
    connections: ConnectionProvider,
    http: httpx.Client,
) -> None:
    loaded = standin.load_members(60)
    sync = sync_for(PostgresRunStore(connections), standin, http)
    run_to_end(sync, sync.start(org, RunKind.IMPORT))
    # Changes whose webhooks were lost, and a deletion.
    standin.update_row(
        "hlf_memberships", loaded[1].membership_id, post_webhook=False, hlf_role=ROLE_COORDINATOR
    )
    standin.update_row("hlf_memberships", loaded[2].membership_id, post_webhook=False, statecode=1)
    standin.delete_row("hlf_memberships", loaded[3].membership_id, post_webhook=False)

    run = sync.start(org, RunKind.RECONCILE)
    run_to_end(sync, run)

    found = {m["dynamics_contact_id"]: m for m in app_members(db, org)}
    assert found[loaded[1].contact_id]["role"] == "coordinator"
    assert found[loaded[2].contact_id]["status"] == "inactive"
    assert found[loaded[3].contact_id]["status"] == "inactive"
    assert not found[loaded[3].contact_id]["is_active"]
    stored = run_row(db, run.id)
    assert (stored["rows_read"], stored["rows_changed"], stored["full_read"]) == (3, 3, False)

    standin.update_row("hlf_memberships", loaded[4].membership_id, post_webhook=False, statecode=1)
    standin.expire_delta_tokens()
    fallback = sync.start(org, RunKind.RECONCILE)
    run_to_end(sync, fallback)

    stored = run_row(db, fallback.id)
    assert stored["phase"] == "succeeded" and stored["full_read"] and stored["error"] is None
    assert stored["rows_changed"] == 1
    assert {m["dynamics_contact_id"]: m for m in app_members(db, org)}[loaded[4].contact_id][
        "status"
    ] == "inactive"


@pytest.mark.parametrize("crash_at", [2, 5])
def test_an_import_killed_between_pages_resumes_to_the_same_database(
    db: Database,
    org: UUID,
    standin: DataverseStandIn,
    connections: ConnectionProvider,
    http: httpx.Client,
    crash_at: int,
) -> None:
    standin.load_members(120)
    sync = sync_for(PostgresRunStore(connections), standin, http)
    run_to_end(sync, sync.start(org, RunKind.IMPORT))
    uninterrupted = [
        {k: v for k, v in m.items() if k != "source_modified_at"} | {"at": m["source_modified_at"]}
        for m in app_members(db, org)
    ]
    with db.connect() as conn:
        conn.execute("delete from profiles")
        conn.execute("delete from portal_sync_runs")
        conn.execute("delete from portal_sync_events")

    crashing = sync_for(CrashingStore(connections, crash_at), standin, http)
    run = crashing.start(org, RunKind.IMPORT)
    with pytest.raises(Crash):
        for _ in range(100):
            crashing.next_page(run.id)
    run_to_end(crashing, run)

    resumed = [
        {k: v for k, v in m.items() if k != "source_modified_at"} | {"at": m["source_modified_at"]}
        for m in app_members(db, org)
    ]
    assert resumed == uninterrupted
    stored = run_row(db, run.id)
    assert (stored["rows_read"], stored["rows_changed"]) == (240, 240)


def test_a_second_run_of_an_organisation_is_refused_by_the_database(
    db: Database,
    org: UUID,
    standin: DataverseStandIn,
    connections: ConnectionProvider,
    http: httpx.Client,
) -> None:
    # Two workers, two connections: the unique index decides, not a process lock.
    first = sync_for(PostgresRunStore(connections), standin, http)
    other = ConnectionProvider(db.functions_url)
    second = sync_for(PostgresRunStore(other), standin, http)
    run = first.start(org, RunKind.IMPORT)

    try:
        with pytest.raises(RunActive) as refused:
            second.start(org, RunKind.RECONCILE)
        assert refused.value.run.id == run.id

        first.fail(run.id, "stopped by the test")
        assert run_row(db, run.id)["phase"] == Phase.FAILED.value
        # Once it ended the next may start (never read yet: it is the organisation's import).
        assert second.start(org, RunKind.RECONCILE).kind is RunKind.IMPORT
    finally:
        other.discard()
