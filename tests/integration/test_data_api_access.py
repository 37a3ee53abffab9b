"""What the Data API lets each caller do, table by table (docs/supabase.md).

The app reads the database through PostgREST with the anon key and the member's JWT. PostgREST
runs each request in a transaction as `anon` or `authenticated` (`set local role`) with the
verified claims in `request.jwt.claims`; these tests do exactly that, on databases migrated
under both of Supabase's default-privilege settings for new tables (`granted`: every table
granted to the API roles, as older projects; `revoked`: nothing, the current default).

Callers: anon; an administrator of another organisation; a plain member (a peer mentor) of the
organisation; a coordinator; the organisation's administrator; a deactivated member. Every
caller's token claims to be an administrator of the organisation (as a stale or hand-made token
could): the policies read live rows, never claims.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from conftest import Database
from portal_sync_dev.database.lint import format_findings, run
from portal_sync_dev.database.migrations import migrate
from portal_sync_dev.database.supabase_project import as_url
from psycopg import errors

ORG_A = uuid.uuid4()
ORG_B = uuid.uuid4()
TABLES_APP_READS = (
    "organizations",
    "profiles",
    "organization_memberships",
    "course_enrollments",
    "peer_mentor_status",
)
TABLES_OF_THE_FUNCTIONS = (
    "integration_configs",
    "portal_sync_events",
    "portal_sync_event_payloads",
    "webhook_receipts",
    "audit_logs",
    "platform_admins",
    "peer_mentor_sync_log",
    "website_visibility_outbox",
    "portal_sync_runs",
    "portal_sync_delta_links",
    "visibility_reconsiderations",
    "visibility_read_backs",
    "visibility_outages",
    "visibility_outage_mentors",
)


@dataclass(frozen=True)
class Person:
    name: str
    user_id: uuid.UUID
    profile_id: uuid.UUID


# name -> (organisation, role, membership status, is a peer mentor with a status row)
PEOPLE = {
    "member": (ORG_A, "peer_mentor", "active", True),
    "coordinator": (ORG_A, "coordinator", "active", False),
    "org_admin": (ORG_A, "admin", "active", False),
    "deactivated": (ORG_A, "peer_mentor", "inactive", True),
    "other_org_admin": (ORG_B, "admin", "active", False),
    "other_org_mentor": (ORG_B, "peer_mentor", "active", True),
}
CALLERS = ("anon", "other_org_admin", "member", "coordinator", "org_admin", "deactivated")


def _build_world(conn: psycopg.Connection[Any]) -> dict[str, Person]:
    for org, name in ((ORG_A, "Chapter A"), (ORG_B, "Chapter B")):
        conn.execute("insert into organizations (id, name) values (%s, %s)", (org, name))
        conn.execute(
            "insert into integration_configs (organization_id, source_id) values (%s, %s)",
            (org, f"source-{org.hex[:8]}"),
        )
    people = {}
    for name, (org, role, status, mentor) in PEOPLE.items():
        user_id = uuid.uuid4()
        email = f"{name}-{user_id.hex[:6]}@example.org"
        # Signed up and verified: the link trigger joins account and synced profile.
        conn.execute(
            "insert into auth.users (id, aud, role, email, email_confirmed_at)"
            " values (%s, 'authenticated', 'authenticated', %s, now())",
            (user_id, email),
        )
        profile = conn.execute(
            "insert into profiles (dynamics_contact_id, first_name, email, is_active)"
            " values (%s, %s, %s, %s) returning id, auth_user_id",
            (str(uuid.uuid4()), name, email, status == "active"),
        ).fetchone()
        assert profile is not None and profile[1] == user_id, "profile linked to its account"
        conn.execute(
            "insert into organization_memberships (organization_id, profile_id, role, status)"
            " values (%s, %s, %s, %s)",
            (org, profile[0], role, status),
        )
        conn.execute(
            "insert into course_enrollments (organization_id, profile_id, dynamics_course_id, status)"
            " values (%s, %s, 'course-1', 'enrolled')",
            (org, profile[0]),
        )
        if mentor:
            conn.execute(
                "insert into peer_mentor_status (organization_id, profile_id) values (%s, %s)",
                (org, profile[0]),
            )
            conn.execute(
                "insert into peer_mentor_sync_log (organization_id, profile_id, action, message, actor)"
                " values (%s, %s, 'hide', 'hidden', 'test')",
                (org, profile[0]),
            )
            conn.execute(
                "insert into website_visibility_outbox (organization_id, profile_id, desired, reason)"
                " values (%s, %s, false, 'test')",
                (org, profile[0]),
            )
            conn.execute(
                "insert into visibility_reconsiderations (organization_id, profile_id, cause)"
                " values (%s, %s, 'test')",
                (org, profile[0]),
            )
        people[name] = Person(name, user_id, profile[0])
    for org in (ORG_A, ORG_B):
        conn.execute(
            "insert into portal_sync_events (organization_id, event_id, event_type, status, message,"
            " received_at) values (%s, 'evt-1', 'membership.created', 'error', 'x', now())",
            (org,),
        )
        conn.execute(
            "insert into portal_sync_event_payloads (organization_id, event_id, message)"
            " values (%s, 'evt-1', '{}')",
            (org,),
        )
        conn.execute(
            "insert into webhook_receipts (id, source_id, organization_id, outcome, received_at)"
            " values (%s, 'source', %s, 'accepted', now())",
            (uuid.uuid4(), org),
        )
        conn.execute(
            "insert into audit_logs (organization_id, actor, action) values (%s, 'x', 'y')", (org,)
        )
        conn.execute(
            "insert into portal_sync_runs (organization_id, kind, tables) values (%s, 'import', '{}')",
            (org,),
        )
        conn.execute(
            "insert into portal_sync_delta_links (organization_id, table_name, delta_link)"
            " values (%s, 'contact', 'https://example.org/api/data/v9.2/contacts?$deltatoken=1')",
            (org,),
        )
        conn.execute("insert into visibility_read_backs (organization_id) values (%s)", (org,))
        outage = conn.execute(
            "insert into visibility_outages (organization_id, cause) values (%s, 'test')"
            " returning id",
            (org,),
        ).fetchone()
        conn.execute(
            "insert into visibility_outage_mentors (outage_id, profile_id) values (%s, %s)",
            (outage[0], uuid.uuid4()),
        )
    conn.execute("insert into platform_admins (user_id) values (%s)", (uuid.uuid4(),))
    return people


@dataclass(frozen=True)
class World:
    database_url: str
    people: dict[str, Person]


def _world(url: str) -> World:
    with psycopg.connect(url, autocommit=True) as conn:
        return World(url, _build_world(conn))


@pytest.fixture(scope="module", params=["granted", "revoked"])
def world(request: pytest.FixtureRequest, database: Database) -> Iterator[World]:
    """A database migrated under one default-privilege setting, holding two organisations."""
    name = f"access_{request.param}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    url = as_url(psycopg.conninfo.make_conninfo(database.url, dbname=name))
    try:
        migrate(url, default_privileges=request.param)
        yield _world(url)
    finally:
        with psycopg.connect(database.url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


class Denied(Exception):
    pass


def as_caller(world: World, caller: str, statement: str) -> list[tuple[Any, ...]] | int:
    """Runs `statement` as PostgREST runs a request of `caller`; rows of a select, the row
    count of a change. Raises Denied when PostgreSQL refuses it (no privilege, or a row-level
    security check)."""
    with psycopg.connect(world.database_url) as conn:
        if caller == "anon":
            conn.execute("set local role anon")
            claims = {"role": "anon"}
        else:
            conn.execute("set local role authenticated")
            person = world.people[caller]
            claims = {
                "sub": str(person.user_id),
                "role": "authenticated",
                "aud": "authenticated",
                # Claims a user cannot be trusted on: everyone says they administer A.
                "org_roles": {str(ORG_A): "admin"},
                "app_metadata": {"org_roles": {str(ORG_A): "admin"}},
            }
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        try:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
        except errors.InsufficientPrivilege as exc:
            raise Denied(str(exc)) from None
        result = cursor.fetchall() if cursor.description else cursor.rowcount
        conn.rollback()
        return result


def visible(world: World, caller: str, table: str) -> set[str] | None:
    """Who the caller sees rows of, by person (or organisation); None: refused outright."""
    key = {
        "organizations": "id::text",
        "profiles": "id::text",
        "organization_memberships": "profile_id::text",
        "course_enrollments": "profile_id::text",
        "peer_mentor_status": "profile_id::text",
    }.get(table, "1::text")
    try:
        rows = as_caller(world, caller, f"select {key} from {table}")  # noqa: S608
    except Denied:
        return None
    assert isinstance(rows, list)
    names = {str(p.profile_id): p.name for p in world.people.values()}
    names |= {str(ORG_A): "org A", str(ORG_B): "org B"}
    return {names.get(row[0], row[0]) for row in rows}


A_PEOPLE = {name for name, (org, *_) in PEOPLE.items() if org == ORG_A}
A_MENTORS = {name for name, (org, _, _, mentor) in PEOPLE.items() if org == ORG_A and mentor}
B_PEOPLE = {name for name, (org, *_) in PEOPLE.items() if org == ORG_B}
B_MENTORS = {name for name, (org, _, _, mentor) in PEOPLE.items() if org == ORG_B and mentor}

# What each caller may read of the tables the app reads (CONTRACT section 7). Nobody else reads
# anything, and nobody but the functions reads the other tables.
EXPECTED_READS: dict[str, dict[str, set[str] | None]] = {
    "anon": dict.fromkeys(TABLES_APP_READS),
    "other_org_admin": {
        "organizations": {"org B"},
        "profiles": B_PEOPLE,
        "organization_memberships": B_PEOPLE,
        "course_enrollments": B_PEOPLE,
        "peer_mentor_status": B_MENTORS,
    },
    "member": {
        "organizations": {"org A"},
        "profiles": {"member"},
        "organization_memberships": {"member"},
        "course_enrollments": {"member"},
        "peer_mentor_status": {"member"},
    },
    "deactivated": {table: set() for table in TABLES_APP_READS},
    **{
        staff: {
            "organizations": {"org A"},
            "profiles": A_PEOPLE,
            "organization_memberships": A_PEOPLE,
            "course_enrollments": A_PEOPLE,
            "peer_mentor_status": A_MENTORS,
        }
        for staff in ("coordinator", "org_admin")
    },
}


def test_every_table_in_public_is_covered_and_has_row_level_security(world: World) -> None:
    with psycopg.connect(world.database_url) as conn:
        tables = conn.execute(
            "select c.relname, c.relrowsecurity from pg_class c"
            " where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')"
        ).fetchall()
    assert {name for name, _ in tables} == set(TABLES_APP_READS + TABLES_OF_THE_FUNCTIONS), (
        "a table was added to public: give it RLS, grants and a place in this matrix"
    )
    assert [name for name, rls in tables if not rls] == []


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("table", TABLES_APP_READS + TABLES_OF_THE_FUNCTIONS)
def test_select(world: World, caller: str, table: str) -> None:
    expected = EXPECTED_READS[caller].get(table)
    seen = visible(world, caller, table)
    if table in TABLES_OF_THE_FUNCTIONS or caller == "anon":
        assert seen is None, f"{caller} may read {table}: {seen}"
    else:
        assert seen == expected


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("table", TABLES_APP_READS + TABLES_OF_THE_FUNCTIONS)
def test_insert_and_delete_are_refused(world: World, caller: str, table: str) -> None:
    with pytest.raises(Denied):
        as_caller(world, caller, f"insert into {table} default values")
    with pytest.raises(Denied):
        as_caller(world, caller, f"delete from {table}")  # noqa: S608


# A column of each table to write back unchanged.
UPDATABLE = {
    "organizations": "name",
    "profiles": "is_active",
    "organization_memberships": "status",
    "course_enrollments": "status",
    "peer_mentor_status": "website_visible_desired",
    "integration_configs": "enabled",
    "portal_sync_events": "status",
    "portal_sync_event_payloads": "message",
    "webhook_receipts": "outcome",
    "audit_logs": "action",
    "platform_admins": "user_id",
    "peer_mentor_sync_log": "message",
    "website_visibility_outbox": "desired",
    "portal_sync_runs": "rows_read",
    "portal_sync_delta_links": "delta_link",
    "visibility_reconsiderations": "cause",
    "visibility_read_backs": "mentors_read",
    "visibility_outages": "cause",
    "visibility_outage_mentors": "failed_at",
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("table", sorted(UPDATABLE))
def test_updates_are_refused_beyond_pausing_and_certifying_mentors(
    world: World, caller: str, table: str
) -> None:
    # Reactivating oneself, changing one's role, becoming an administrator: all refused.
    column = UPDATABLE[table]
    with pytest.raises(Denied):
        as_caller(world, caller, f"update {table} set {column} = {column}")  # noqa: S608


@pytest.mark.parametrize("caller", CALLERS)
def test_staff_pause_and_certify_their_own_organisations_mentors_only(
    world: World, caller: str
) -> None:
    updates = {}
    for column in ("paused", "certified_until"):
        try:
            changed = as_caller(
                world,
                caller,
                f"update peer_mentor_status set {column} = {column} returning profile_id",  # noqa: S608
            )
        except Denied:
            changed = None
        names = {str(p.profile_id): p.name for p in world.people.values()}
        updates[column] = (
            None if changed is None else {names[str(row[0])] for row in changed}  # type: ignore[union-attr]
        )
    expected: set[str] | None = {
        "anon": None,
        "other_org_admin": B_MENTORS,
        "member": set(),
        "deactivated": set(),
        "coordinator": A_MENTORS,
        "org_admin": A_MENTORS,
    }[caller]
    assert updates == {"paused": expected, "certified_until": expected}


def test_staff_cannot_move_a_mentor_to_another_organisation(world: World) -> None:
    move = f"update peer_mentor_status set organization_id = '{ORG_B}'"  # noqa: S608
    with pytest.raises(Denied):
        as_caller(world, "coordinator", move)


def test_a_member_reads_nothing_from_the_moment_of_deactivation(world: World) -> None:
    member = world.people["member"]
    assert visible(world, "member", "profiles") == {"member"}
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute(
            "update organization_memberships set status = 'inactive' where profile_id = %s",
            (member.profile_id,),
        )
        conn.execute("update profiles set is_active = false where id = %s", (member.profile_id,))
    try:
        seen = {table: visible(world, "member", table) for table in TABLES_APP_READS}
        assert seen == {table: set() for table in TABLES_APP_READS}
    finally:
        with psycopg.connect(world.database_url, autocommit=True) as conn:
            conn.execute(
                "update organization_memberships set status = 'active' where profile_id = %s",
                (member.profile_id,),
            )
            conn.execute("update profiles set is_active = true where id = %s", (member.profile_id,))


def test_the_functions_role_reads_and_writes_every_table(world: World) -> None:
    with psycopg.connect(world.database_url) as conn:
        conn.execute("set local role portal_sync_functions")
        for table in TABLES_APP_READS + TABLES_OF_THE_FUNCTIONS:
            count = conn.execute(f"select count(*) from {table}").fetchone()  # noqa: S608
            assert count is not None and count[0] > 0, table
            column = UPDATABLE[table]
            assert conn.execute(f"update {table} set {column} = {column}").rowcount == count[0]  # noqa: S608
        conn.rollback()


def test_the_data_api_cannot_become_the_functions_role(database: Database) -> None:
    # PostgREST logs in as `authenticator` and switches only to roles granted to it.
    row = database.one(
        "select pg_has_role('authenticator', 'portal_sync_functions', 'member') as can,"
        " (select rolbypassrls from pg_roles where rolname = 'portal_sync_functions') as bypass"
    )
    assert row == {"can": False, "bypass": False}


def test_migration_bookkeeping_is_outside_the_exposed_schema(database: Database) -> None:
    row = database.one(
        "select to_regclass('public.schema_migrations') as public,"
        " to_regclass('portal_sync.schema_migrations') as private"
    )
    assert row is not None and row["public"] is None and row["private"] is not None
    exposed = database.one(
        "select has_schema_privilege('anon', 'portal_sync', 'usage') as anon,"
        " has_table_privilege('authenticated', 'portal_sync.schema_migrations', 'select') as reads"
    )
    assert exposed == {"anon": False, "reads": False}


def test_the_functions_connect_as_their_own_role(system: Any, database: Database) -> None:
    import httpx

    # Any request that reaches the database: the admin API reading the integration.
    response = httpx.get(
        f"{system.base_url}/functions/v1/admin-api/orgs/{system.seed.org_id}/integration",
        headers={"Authorization": f"Bearer {system.seed.org_admin_token}"},
    )
    assert response.status_code == 200
    users = {
        row["usename"]
        for row in database.rows(
            "select usename from pg_stat_activity where datname = current_database()"
            " and pid <> pg_backend_pid() and backend_type = 'client backend'"
        )
    }
    assert "portal_sync_functions" in users


def test_supabases_linter_finds_nothing_to_fix(world: World) -> None:
    """Under either default-privilege setting (tests/integration/test_database_lint.py checks
    the linter itself)."""
    with psycopg.connect(world.database_url) as conn:
        failing = run(conn).failing
    assert failing == [], format_findings(failing)
