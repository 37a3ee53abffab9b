"""Supabase's database linter (splinter) on our schema: no ERROR and no WARN finding
(tools/portal_sync_dev/database/lint.py).

The lints are checked first: for each one that can fire on a simple schema, a deliberately bad
object in a scratch database (a Supabase-shaped one, supabase_project.prepare) is reported, and
the same object fixed is not. Most cases run in one transaction that is rolled back; the two
lints that read statistics (0005 unused_index, 0020 table_bloat) need committed objects.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Database, eventually
from portal_sync_dev.database import lint as database_lint
from portal_sync_dev.database.lint import LINTS, Finding, Lint, Relation, Role, lint, run
from portal_sync_dev.database.supabase_project import as_url, prepare

LINTS_BY_NAME = {each.name: each for each in LINTS}
# What a plain PostgreSQL server prepared as a Supabase project lacks: Supabase Storage and
# pg_graphql.
NEEDS_THE_PLATFORM = {
    "public_bucket_allows_listing",
    "pg_graphql_anon_table_exposed",
    "pg_graphql_authenticated_table_exposed",
}


def _create_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    return name


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


def _url(server_url: str, name: str) -> str:
    return as_url(psycopg.conninfo.make_conninfo(server_url, dbname=name))


@pytest.fixture(scope="module")
def scratch_url(database: Database) -> Iterator[str]:
    """A database on the test server with Supabase's roles and `auth` schema, nothing else."""
    name = _create_database(database.url, "lint")
    try:
        url = _url(database.url, name)
        prepare(url)
        yield url
    finally:
        _drop_database(database.url, name)


@pytest.fixture
def scratch(scratch_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the scratch database whose changes are rolled back after the test."""
    with psycopg.connect(scratch_url) as conn:
        yield conn
        conn.rollback()


def findings_of(
    conn: psycopg.Connection[Any],
    name: str,
    exposed_schemas: Sequence[str] = database_lint.DEFAULT_EXPOSED_SCHEMAS,
) -> dict[str, Finding]:
    report = run(conn, exposed_schemas)
    assert name not in {skipped.lint.name for skipped in report.skipped}, report
    return {f.cache_key: f for f in report.findings if f.name == name}


@dataclass(frozen=True)
class Case:
    name: str
    bad: str
    fix: str
    cache_key: str
    exposed_schemas: tuple[str, ...] = database_lint.DEFAULT_EXPOSED_SCHEMAS
    id: str = ""


SECURITY_DEFINER_FUNCTION = """
    create function public.promote() returns void
    language plpgsql security definer set search_path = '' as $$ begin end $$;
"""
NOTES_WITH_RLS = """
    create table public.notes (id int primary key, owner uuid, editor uuid);
    alter table public.notes enable row level security;
"""

CASES = (
    Case(
        "unindexed_foreign_keys",
        "create table public.parents (id int primary key);"
        " create table public.children (id int primary key, parent_id int references public.parents);",
        "create index on public.children (parent_id)",
        "unindexed_foreign_keys_public_children_children_parent_id_fkey",
    ),
    Case(
        "auth_users_exposed",
        "create view public.members as select id, email from auth.users;"
        " grant select on public.members to authenticated;",
        # A security_invoker view reads auth.users as the caller, under its row-level security.
        "alter view public.members set (security_invoker = on)",
        "auth_users_exposed_public_members",
    ),
    Case(
        "auth_rls_initplan",
        NOTES_WITH_RLS
        + "create policy mine on public.notes for select to authenticated using (owner = auth.uid())",
        "alter policy mine on public.notes using (owner = (select auth.uid()))",
        "auth_rls_init_plan_public_notes_mine",
    ),
    Case(
        "auth_rls_initplan",
        NOTES_WITH_RLS + "create policy mine on public.notes for update to authenticated"
        " using (owner = (select auth.uid())) with check (current_setting('app.x', true) = 'y')",
        "alter policy mine on public.notes"
        " with check ((select current_setting('app.x', true)) = 'y')",
        "auth_rls_init_plan_public_notes_mine",
        id="auth_rls_initplan-current_setting-in-with-check",
    ),
    Case(
        # Adapted from splinter, which accepts this policy: one call is wrapped, one is not.
        "auth_rls_initplan",
        NOTES_WITH_RLS + "create policy mine on public.notes for select to authenticated"
        " using (owner = (select auth.uid()) or editor = auth.uid())",
        "alter policy mine on public.notes using ((select auth.uid()) in (owner, editor))",
        "auth_rls_init_plan_public_notes_mine",
        id="auth_rls_initplan-one-of-two-calls-wrapped",
    ),
    Case(
        "no_primary_key",
        "create table public.loose (v int not null)",
        "alter table public.loose add primary key (v)",
        "no_primary_key_public_loose",
    ),
    Case(
        "multiple_permissive_policies",
        NOTES_WITH_RLS
        + "create policy own on public.notes for select to authenticated using (owner = (select auth.uid()));"
        " create policy edited on public.notes for all to authenticated using (editor = (select auth.uid()));",
        "drop policy edited on public.notes;"
        " alter policy own on public.notes using ((select auth.uid()) in (owner, editor))",
        "multiple_permissive_policies_public_notes_authenticated_SELECT",
    ),
    Case(
        "policy_exists_rls_disabled",
        "create table public.notes (id int primary key);"
        " create policy none on public.notes for select to authenticated using (false);",
        "alter table public.notes enable row level security",
        "policy_exists_rls_disabled_public_notes",
    ),
    Case(
        "rls_enabled_no_policy",
        NOTES_WITH_RLS,
        "create policy none on public.notes for select to authenticated using (false)",
        "rls_enabled_no_policy_public_notes",
    ),
    Case(
        "duplicate_index",
        "create table public.notes (id int primary key, v int);"
        " create index notes_v on public.notes (v); create index notes_v_again on public.notes (v);",
        "drop index public.notes_v_again",
        "duplicate_index_public_notes_{notes_v,notes_v_again}",
    ),
    Case(
        "security_definer_view",
        "create view public.totals as select 1 as n; grant select on public.totals to anon;",
        "alter view public.totals set (security_invoker = on)",
        "security_definer_view_public_totals",
    ),
    Case(
        "function_search_path_mutable",
        "create function public.answer() returns int language sql as 'select 42'",
        "alter function public.answer() set search_path = ''",
        "function_search_path_mutable_public_answer_"
        + hashlib.md5(b"select 42", usedforsecurity=False).hexdigest(),
    ),
    Case(
        "rls_disabled_in_public",
        "create table public.notes (id int primary key); grant select on public.notes to anon;",
        "alter table public.notes enable row level security",
        "rls_disabled_in_public_public_notes",
    ),
    Case(
        "rls_disabled_in_public",
        "create table public.notes (id int primary key); grant select on public.notes to anon;",
        # Not granted to the API roles: not served at all.
        "revoke all on public.notes from anon, authenticated",
        "rls_disabled_in_public_public_notes",
        id="rls_disabled_in_public-revoked",
    ),
    Case(
        "extension_in_public",
        "create extension citext schema public",
        "create schema extensions_here; alter extension citext set schema extensions_here",
        "extension_in_public_citext",
    ),
    Case(
        "rls_references_user_metadata",
        "create table public.notes (id int primary key, org text);"
        " alter table public.notes enable row level security;"
        " create policy by_org on public.notes for select to authenticated"
        " using (org = ((select auth.jwt()) -> 'user_metadata' ->> 'org'))",
        "alter policy by_org on public.notes"
        " using (org = ((select auth.jwt()) -> 'app_metadata' ->> 'org'))",
        "rls_references_user_metadata_public_notes_by_org",
    ),
    Case(
        "materialized_view_in_api",
        "create materialized view public.counts as select 1 as n;"
        " grant select on public.counts to anon;",
        "revoke select on public.counts from anon, authenticated",
        "materialized_view_in_api_public_counts",
    ),
    Case(
        "foreign_table_in_api",
        "create foreign data wrapper lint_fdw; create server lint_server foreign data wrapper lint_fdw;"
        " create foreign table public.remote (id int) server lint_server;"
        " grant select on public.remote to anon;",
        "revoke select on public.remote from anon, authenticated",
        "foreign_table_in_api_public_remote",
    ),
    Case(
        "unsupported_reg_types",
        "create table public.hooks (id int primary key, handler regproc)",
        "alter table public.hooks alter column handler type text",
        "unsupported_reg_types_public_hooks_handler",
    ),
    Case(
        "insecure_queue_exposed_in_api",
        "create schema pgmq; create table pgmq.q_jobs (msg_id bigint primary key);"
        " grant usage on schema pgmq to anon; grant select on pgmq.q_jobs to anon;",
        "alter table pgmq.q_jobs enable row level security",
        "insecure_queue_exposed_in_api_pgmq_q_jobs",
        exposed_schemas=("public", "graphql_public", "pgmq_public"),
    ),
    Case(
        "fkey_to_auth_unique",
        "create table public.contacts (id int primary key, phone text references auth.users (phone))",
        "alter table public.contacts drop constraint contacts_phone_fkey",
        "fkey_to_auth_unique_public_contacts_contacts_phone_fkey",
    ),
    Case(
        "extension_versions_outdated",
        "create schema extensions_here; create extension citext version '1.4' schema extensions_here",
        "alter extension citext update",
        "extension_versions_outdated_citext_1.4",
    ),
    Case(
        "sensitive_columns_exposed",
        "create table public.accounts (id int primary key, Password text);"
        " grant select on public.accounts to anon;",
        "alter table public.accounts enable row level security",
        "sensitive_columns_exposed_public_accounts",
    ),
    Case(
        "rls_policy_always_true",
        NOTES_WITH_RLS
        + 'create policy "anyone edits" on public.notes for update to authenticated using (true)',
        'alter policy "anyone edits" on public.notes using (owner = (select auth.uid()))',
        "rls_policy_always_true_public_notes_anyone edits",
    ),
    Case(
        "rls_policy_always_true",
        NOTES_WITH_RLS
        + 'create policy "anyone adds" on public.notes for insert with check (1 = 1)',
        'alter policy "anyone adds" on public.notes with check (owner = (select auth.uid()))',
        "rls_policy_always_true_public_notes_anyone adds",
        id="rls_policy_always_true-insert-to-public",
    ),
    Case(
        "public_bucket_allows_listing",
        # Supabase Storage's two tables, as far as the lint reads them.
        "create schema storage;"
        " create table storage.buckets (id text primary key, name text not null, public boolean not null default false);"
        " create table storage.objects (bucket_id text references storage.buckets, name text);"
        " alter table storage.objects enable row level security;"
        " insert into storage.buckets values ('avatars', 'Avatars', true);"
        ' create policy "list avatars" on storage.objects for select to public'
        " using (bucket_id = 'avatars');",
        'alter policy "list avatars" on storage.objects'
        " using (bucket_id = 'avatars' and name like 'public/%')",
        "public_bucket_allows_listing_avatars",
    ),
    Case(
        "anon_security_definer_function_executable",
        # PostgreSQL grants EXECUTE to PUBLIC, and so to anon, unless it is revoked.
        SECURITY_DEFINER_FUNCTION,
        "revoke execute on function public.promote() from public, anon",
        "anon_security_definer_function_executable_public_promote_",
    ),
    Case(
        "authenticated_security_definer_function_executable",
        SECURITY_DEFINER_FUNCTION,
        "revoke execute on function public.promote() from public, anon, authenticated",
        "authenticated_security_definer_function_executable_public_promote_",
    ),
)


@pytest.mark.parametrize("case", CASES, ids=[case.id or case.name for case in CASES])
def test_a_lint_reports_a_bad_object_and_not_the_fixed_one(
    scratch: psycopg.Connection[Any], case: Case
) -> None:
    scratch.execute(case.bad)
    found = findings_of(scratch, case.name, case.exposed_schemas)
    assert case.cache_key in found, f"{case.name} did not report {case.cache_key}: {found}"
    finding = found[case.cache_key]
    the_lint = LINTS_BY_NAME[case.name]
    assert (finding.level, finding.title) == (the_lint.level, the_lint.title)
    assert finding.detail

    scratch.execute(case.fix)
    assert case.cache_key not in findings_of(scratch, case.name, case.exposed_schemas)


def test_every_lint_that_can_fire_here_has_a_case() -> None:
    untested = set(LINTS_BY_NAME) - {case.name for case in CASES} - NEEDS_THE_PLATFORM
    # Both read statistics and have tests of their own below.
    assert untested == {"unused_index", "table_bloat"}


def test_a_queue_is_exposed_only_where_pgmq_public_is(scratch: psycopg.Connection[Any]) -> None:
    queue = next(case for case in CASES if case.name == "insecure_queue_exposed_in_api")
    scratch.execute(queue.bad)
    assert findings_of(scratch, queue.name) == {}


def test_a_select_policy_using_true_is_not_always_true(scratch: psycopg.Connection[Any]) -> None:
    """Public read access is often meant: splinter leaves `for select using (true)` alone."""
    scratch.execute(
        NOTES_WITH_RLS + "create policy everyone on public.notes for select using (true)"
    )
    assert findings_of(scratch, "rls_policy_always_true") == {}


def test_only_an_index_never_scanned_is_unused(scratch_url: str) -> None:
    key = "unused_index_public_lookups_lookups_code"
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        try:
            conn.execute(
                "create table public.lookups (id int primary key, code int);"
                " insert into public.lookups select i, i from generate_series(1, 1000) i;"
                " create index lookups_code on public.lookups (code); analyze public.lookups;"
            )
            assert key in findings_of(conn, "unused_index")

            conn.execute("set enable_seqscan = off")
            plan = conn.execute("explain select * from public.lookups where code = 7").fetchall()
            assert "lookups_code" in str(plan)
            conn.execute("select * from public.lookups where code = 7").fetchall()
            # The scan is counted when this backend reports its statistics (when idle, at most
            # once a second): this makes the report right after this statement.
            conn.execute("select pg_stat_force_next_flush()")
            with psycopg.connect(scratch_url, autocommit=True) as other:
                eventually(lambda: key not in findings_of(other, "unused_index"))
        finally:
            conn.execute("drop table if exists public.lookups")


def test_a_table_mostly_of_dead_rows_is_bloated(scratch_url: str) -> None:
    """About 24 MiB of pages holding 120 live rows (splinter's threshold: 70 times the pages
    the rows need, and 20 MiB wasted); VACUUM FULL, the remedy, clears it."""
    key = "table_bloat_public_bloated"
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        try:
            # Rows of about 1.8 kB, under the size at which PostgreSQL compresses or moves
            # them out of line: four to a page, 3,000 pages; every page but the last few dead.
            conn.execute(
                "create table public.bloated (id int primary key, pad text);"
                " insert into public.bloated"
                "   select i, repeat('x', 1800) from generate_series(1, 12000) i;"
                " delete from public.bloated where id % 100 <> 0;"
            )
            conn.execute("analyze public.bloated")
            assert key in findings_of(conn, "table_bloat")
            conn.execute("vacuum full public.bloated")
            assert key not in findings_of(conn, "table_bloat")
        finally:
            conn.execute("drop table if exists public.bloated")


def test_every_lint_runs_on_a_supabase_shaped_database(scratch: psycopg.Connection[Any]) -> None:
    """Only the lints of what the Supabase platform adds are skipped; a lint that fails on
    something else (a mistake in its query) would be skipped too, and show here."""
    report = run(scratch)
    assert {skipped.lint.name for skipped in report.skipped} == NEEDS_THE_PLATFORM, report
    notes = {skipped.lint.name: skipped.reason for skipped in report.skipped}
    assert notes["pg_graphql_anon_table_exposed"] == "needs extension pg_graphql"
    assert "relation storage.buckets" in notes["public_bucket_allows_listing"]


def test_a_lint_whose_objects_are_missing_is_skipped_with_a_note(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database without the `auth` schema (the server's roles are cluster-wide, so they exist).
    name = _create_database(database.url, "lint_plain")
    try:
        with psycopg.connect(_url(database.url, name)) as conn:
            report = run(conn)
            reasons = {skipped.lint.name: skipped.reason for skipped in report.skipped}
            assert reasons["auth_users_exposed"] == "needs relation auth.users"
            assert report.failing == []

            (tmp_path / "9001_needs_a_role.sql").write_text("select 'x', 'y' where false")
            (tmp_path / "9002_reads_a_missing_table.sql").write_text(
                "select detail, cache_key from extensions.nothing_here"
            )
            monkeypatch.setattr(database_lint, "SQL_DIR", tmp_path)
            made_up = (
                Lint("9001", "needs_a_role", "ERROR", "Needs a role", (Role("no_such_role_9001"),)),
                Lint("9002", "reads_a_missing_table", "ERROR", "Reads a missing table"),
                Lint("9003", "needs_a_relation", "WARN", "Needs", (Relation("extensions.x"),)),
            )
            report = run(conn, lints=made_up)
            assert report.findings == []
            reasons = {skipped.lint.name: skipped.reason for skipped in report.skipped}
            assert reasons == {
                "needs_a_role": "needs role no_such_role_9001",
                "reads_a_missing_table": "an object it reads is missing: relation"
                ' "extensions.nothing_here" does not exist',
                "needs_a_relation": "needs relation extensions.x",
            }
    finally:
        _drop_database(database.url, name)


def test_lint_leaves_the_connection_as_it_was(scratch_url: str) -> None:
    with psycopg.connect(scratch_url) as conn:
        conn.execute("set local search_path = public, auth")
        lint(conn, exposed_schemas=("public",))
        row = conn.execute(
            "select current_setting('search_path'), current_setting('pgrst.db_schemas', true)"
        ).fetchone()
        assert row is not None
        assert row[0] == "public, auth"
        assert row[1] in (None, "")
        conn.rollback()
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        lint(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_migrated_schema_has_no_error_or_warn_findings(database: Database) -> None:
    with psycopg.connect(database.url) as conn:
        report = run(conn)
    failing = report.failing
    assert not failing, (
        f"Supabase's database linter reports {len(failing)} ERROR/WARN finding(s) on the"
        f" migrated schema:\n{database_lint.format_findings(failing)}\n\nEvery finding and"
        f" note:\n{database_lint.format_report(report)}"
    )
