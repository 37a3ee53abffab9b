"""The import row of `make bench`: a full import of a Dynamics environment's members (a contact
and a membership each) from the Dataverse stand-in, against a bare batched upsert of the same
rows in the same run.

The import is the engine's work without Step Functions: `Reconciliation` (the run, one page at
a time, as the engine's loop asks for them) with the run store on PostgreSQL and the
change-tracking reader on the stand-in's Web API, at the production page size. Timed from
`start` through every `next_page` to `finish`. The baseline writes the same profiles and
memberships the import's apply writes, with the same columns, `executemany` per page in one
transaction per page: no reading, no logic.

One run per worker process (`python -m portal_sync_dev.bench worker import CONFIG RESULT`): a
fresh interpreter, a fresh stand-in loaded with the members, a fresh organisation; the rows of
both sides are deleted afterwards, so every run starts from the same empty tables.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from portal_sync_dev.bench.workload import BenchError, chunks

# `make bench`'s environment: the issue's 100,000 members; --quick (and tests) fewer.
MEMBERS = 100_000
QUICK_MEMBERS = 10_000
# The stand-in is local: the limiter must never be what the import waits for.
RATE_PER_SECOND, BURST = 10_000.0, 100
TENANT, CLIENT_ID, SECRET = "bench-tenant", "portal-sync-bench", "bench-client-secret"
# What the field mapping makes of the stand-in's hlf_role choice values (DEFAULT_FIELD_MAPPING).
ROLES = {100000000: "member", 100000001: "peer_mentor", 100000002: "coordinator"}

BASELINE_PROFILES = """
insert into profiles (dynamics_contact_id, dynamics_environment, first_name, last_name, email,
                      phone, details_modified_at)
values (%(contact)s, %(environment)s, %(first_name)s, %(last_name)s, %(email)s, null, %(at)s)
on conflict (dynamics_contact_id) do update set
    first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email,
    details_modified_at = excluded.details_modified_at, updated_at = now()
"""
BASELINE_MEMBERSHIPS = """
insert into organization_memberships
    (organization_id, profile_id, role, status, source_modified_at, dynamics_row_id,
     last_synced_at)
select %(org)s, p.id, %(role)s, %(status)s, %(at)s, %(row_id)s, now()
  from profiles p where p.dynamics_contact_id = %(contact)s
on conflict (organization_id, profile_id) do update set
    role = excluded.role, status = excluded.status, source_modified_at =
    excluded.source_modified_at, dynamics_row_id = excluded.dynamics_row_id,
    last_synced_at = now(), updated_at = now()
"""
# What both sides write into, emptied after each (with what refers to it: cascade).
MEMBER_TABLES = ("profiles", "organization_memberships", "portal_sync_events")


def import_worker(config: dict[str, Any]) -> dict[str, Any]:
    """One run: the import, then the baseline, of `config["members"]` members."""
    from portal_sync_dev.local.dataverse_standin import DataverseStandIn

    members = int(config["members"])
    standin = DataverseStandIn(port=0, timeout_seconds=5.0).start()
    try:
        standin.add_client(TENANT, CLIENT_ID, SECRET)
        standin.load_members(members)
        contacts, memberships = standin.rows("contacts"), standin.rows("hlf_memberships")
        # Dataverse's rows are another service's memory: out of this process's garbage
        # collections, which would otherwise walk them during the import.
        gc.collect()
        gc.freeze()
        # Both sides start from empty member tables (what the bench wrote before included).
        reset(config["database_url"], None)
        imported = measure_import(config, standin)
        expect_members(config["database_url"], imported["organization_id"], members)
        reset(config["database_url"], imported["organization_id"])
        bare = measure_baseline(
            config["database_url"], contacts, memberships, imported["page_size"]
        )
        expect_members(config["database_url"], bare["organization_id"], members)
        reset(config["database_url"], bare["organization_id"])
    finally:
        standin.stop()
    return {
        "members": members,
        "import": imported,
        "baseline": bare,
        "ratio": imported["rows_per_s"] / bare["rows_per_s"],
    }


class TimedReader:
    """The change-tracking reader, timed: how long the import waited for its pages (the
    request, the stand-in's answer, the JSON parse)."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.seconds = 0.0
        self.requests = 0

    def read_page(
        self,
        organization_id: UUID,
        entity_set: str,
        select: Sequence[str],
        link: str | None,
        page_size: int,
    ) -> Any:
        started = time.perf_counter()
        try:
            return self._reader.read_page(organization_id, entity_set, select, link, page_size)
        finally:
            self.seconds += time.perf_counter() - started
            self.requests += 1


def measure_import(config: dict[str, Any], standin: Any) -> dict[str, Any]:
    import httpx
    from portal_sync.adapters.dynamics.change_tracking import ChangeTrackingReader
    from portal_sync.adapters.postgres.connection import ConnectionProvider
    from portal_sync.adapters.postgres.run_store import PostgresRunStore
    from portal_sync.adapters.rate_limiter import RateLimiter
    from portal_sync.dataverse.connection import DynamicsConnection
    from portal_sync.reconciliation.ports import RunKind
    from portal_sync.reconciliation.runs import DEFAULT_PAGE_SIZE, Reconciliation
    from portal_sync.visibility.ports import DynamicsTarget

    connection = DynamicsConnection(
        base_url=standin.url,
        auth_type="oauth_client_credentials",
        secret=SECRET,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        authority_url=standin.url,
    )

    class Targets:
        def target(self, organization_id: UUID) -> DynamicsTarget:
            return DynamicsTarget(connection, visibility_column="hlf_visible")

    org = new_organization(config["database_url"], "import")
    # The functions' own role, under row-level security, as deployed.
    connections = ConnectionProvider(config["functions_database_url"])
    try:
        with httpx.Client() as http:
            reader = TimedReader(
                ChangeTrackingReader(
                    Targets(), http, RateLimiter(RATE_PER_SECOND, BURST), allow_local=True
                )
            )
            sync = Reconciliation(
                PostgresRunStore(connections), reader, page_size=DEFAULT_PAGE_SIZE
            )
            served_before = standin.served_seconds
            started = time.perf_counter()
            run = sync.start(org, RunKind.IMPORT)
            while True:
                outcome = sync.next_page(run.id)
                if outcome.wait_seconds is not None:
                    raise BenchError(f"the import was told to wait {outcome.wait_seconds} s")
                if outcome.done:
                    break
            finished = sync.finish(run.id)
            seconds = time.perf_counter() - started
            served = standin.served_seconds - served_before
    finally:
        connections.discard()
    if finished.phase.value != "succeeded" or finished.rows_failed:
        raise BenchError(f"the import ended {finished.phase.value}: {finished.error}")
    return {
        "organization_id": str(org),
        "page_size": DEFAULT_PAGE_SIZE,
        "rows": finished.rows_read,
        "rows_changed": finished.rows_changed,
        "pages": finished.pages_read,
        "requests": reader.requests,
        "seconds": seconds,
        "rows_per_s": finished.rows_read / seconds,
        # Server side: the stand-in's handlers, from a request's arrival to its answer sent.
        "standin_share": served / seconds,
        # Client side: the reader's calls, the stand-in's time included.
        "reading_share": reader.seconds / seconds,
    }


def measure_baseline(
    database_url: str,
    contacts: list[dict[str, Any]],
    memberships: list[dict[str, Any]],
    page_size: int,
) -> dict[str, Any]:
    import psycopg

    org = new_organization(database_url, "baseline")
    environment = f"organization:{org}"  # what the import's profiles get (no Dataverse id)
    # The rows as the import's apply writes them, prepared before the clock starts.
    profile_rows = [
        {
            "contact": c["contactid"],
            "environment": environment,
            "first_name": c["firstname"],
            "last_name": c["lastname"],
            "email": c["emailaddress1"],
            "at": _time(c["modifiedon"]),
        }
        for c in contacts
    ]
    membership_rows = [
        {
            "org": org,
            "contact": m["_hlf_contactid_value"],
            "role": ROLES.get(m["hlf_role"], "admin"),
            "status": "inactive" if m["statecode"] else "active",
            "at": _time(m["modifiedon"]),
            "row_id": m["hlf_membershipid"],
        }
        for m in memberships
    ]
    pages = [(BASELINE_PROFILES, page) for page in chunks(profile_rows, page_size)]
    pages += [(BASELINE_MEMBERSHIPS, page) for page in chunks(membership_rows, page_size)]
    # A connection as the functions open theirs: no server-side prepared statements.
    with psycopg.connect(database_url, prepare_threshold=None) as conn:
        started = time.perf_counter()
        for statement, page in pages:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(statement, page)
        seconds = time.perf_counter() - started
    rows = len(profile_rows) + len(membership_rows)
    return {
        "organization_id": str(org),
        "rows": rows,
        "pages": len(pages),
        "seconds": seconds,
        "rows_per_s": rows / seconds,
    }


def new_organization(database_url: str, name: str) -> UUID:
    import psycopg

    org = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("insert into organizations (id, name) values (%s, %s)", (org, name))
        conn.execute(
            "insert into integration_configs (organization_id, source_id) values (%s, %s)",
            (org, f"bench-{name}-{org}"),
        )
    return org


def expect_members(database_url: str, organization_id: str | UUID, members: int) -> None:
    """Both sides must have written every member: a faster side that wrote less is no figure."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from organization_memberships where organization_id = %s",
            (organization_id,),
        ).fetchone()
    found = row[0] if row else 0
    if found != members:
        raise BenchError(f"{found} memberships written, {members} expected")


def reset(database_url: str, organization_id: str | UUID | None) -> None:
    """The organisation deleted (its runs, delta links and settings go with it) and the member
    tables emptied as a new database's are. Truncated, not deleted from: dead rows and a later
    vacuum would leave statistics saying "empty", and the per-row trigger on `profiles`
    (link_to_account) then plans a sequential scan for every row written, run after run."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from organizations where id = %s", (organization_id,))
        conn.execute(f"truncate {', '.join(MEMBER_TABLES)} cascade")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
