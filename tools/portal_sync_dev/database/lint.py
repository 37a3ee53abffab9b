"""Supabase's database linter (splinter), as the project's own checks.

Supabase's dashboard runs splinter's lints (https://github.com/supabase/splinter, one query per
lint under `lints/`) on a project's database and reports each finding as ERROR, WARN or INFO.
`make test` runs the same lints on the migrated test database and fails on any ERROR or WARN
(tests/integration/test_database_lint.py), so a migration that Supabase's Security or
Performance Advisor would flag does not land.

Each lint's query is a file of lints/ beside this module, written here from splinter's
query of the same number: the same name, level, title, conditions and cache key, with the
differences noted at the top of the file (0003, 0009 and 0019 are adapted). Every query returns
`detail` and `cache_key`; LINTS below gives each its name, level, title, the splinter lint it
follows (`source`) and Supabase's page for it (`docs`).

Exposed schemas: splinter reads the schemas PostgREST serves from `pgrst.db_schemas`, which a
Supabase project sets for PostgREST's role. `run` sets it for its own transaction from
`exposed_schemas` instead, so no PostgREST configuration is needed. It also sets
`search_path = ''` (as splinter does: the policy expressions are deparsed with every name
schema-qualified, which 0003 and 0015 match on) and `portal_sync_lint.platform_schemas`, the
schemas of Supabase's platform and of well-known extensions that splinter leaves out
(PLATFORM_SCHEMAS); the lint files read that setting rather than repeating the list. Everything
runs in a transaction (a savepoint when the caller is in one) that is rolled back, so the
caller's connection is left as it was.

What runs where: the lints need a database with Supabase's roles (`anon`, `authenticated`: a
plain PostgreSQL server prepared by supabase_project.py has them). A lint whose requirement is
missing (a role, a relation, an extension) is skipped with a note (`Report.skipped`), and so is
one whose query meets a missing object anyway; nothing raises.

Levels: ERROR and WARN findings fail the test; INFO findings are reported, not failing:
0001 unindexed_foreign_keys, 0004 no_primary_key, 0005 unused_index (it reads the statistics
since their last reset: on a fresh test database every non-unique index is "unused"),
0008 rls_enabled_no_policy (a table only the back end reads, on purpose) and 0020 table_bloat.

Conditional (skipped with a note where the object is missing, always so on the plain test
server): 0025 public_bucket_allows_listing needs Supabase Storage (`storage.buckets`,
`storage.objects`); 0026 pg_graphql_anon_table_exposed and 0027
pg_graphql_authenticated_table_exposed need the pg_graphql extension, which only the Supabase
platform ships. On a Supabase project with pg_graphql enabled, 0027 reports every table the app
reads as `authenticated` (they must be selectable for the Data API): disable pg_graphql if the
app does not use GraphQL, or accept those findings there.

Omitted: splinter's 0012 auth_allow_anonymous_sign_ins has no query in `lints/` (it reads
Supabase Auth's configuration, which is not in the database; the dashboard evaluates it). Every
query of splinter's `lints/` (0001-0011, 0013-0029) is here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import errors, sql
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

Level = Literal["ERROR", "WARN", "INFO"]
FAILING_LEVELS: frozenset[str] = frozenset({"ERROR", "WARN"})
SQL_DIR = Path(__file__).with_name("lints")
SPLINTER = "https://github.com/supabase/splinter/blob/main/lints/"
SUPABASE_DOCS = "https://supabase.com/docs/guides/database/database-linter?lint="
DEFAULT_EXPOSED_SCHEMAS = ("public", "graphql_public")

# The schemas splinter's lints leave out (its list): Supabase's platform, and extensions'.
PLATFORM_SCHEMAS = (
    "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config", "_timescaledb_internal",
    "auth", "cron", "extensions", "graphql", "graphql_public", "information_schema", "net",
    "pgmq", "pgroonga", "pgsodium", "pgsodium_masks", "pgtle", "pgbouncer", "pg_catalog",
    "realtime", "repack", "storage", "supabase_functions", "supabase_migrations", "tiger",
    "topology", "vault",
)  # fmt: skip

# A lint's query meeting one of these has met an object that is not there.
MISSING_OBJECT_ERRORS = (
    errors.UndefinedTable,
    errors.UndefinedObject,
    errors.UndefinedFunction,
    errors.UndefinedColumn,
    errors.InvalidSchemaName,
)


@dataclass(frozen=True)
class Finding:
    name: str
    level: Level
    title: str
    detail: str
    cache_key: str

    @property
    def fails(self) -> bool:
        return self.level in FAILING_LEVELS

    def __str__(self) -> str:
        return f"{self.level} {self.name}: {self.detail} [{self.cache_key}]"


@dataclass(frozen=True)
class Role:
    name: str

    def query(self) -> sql.Composed:
        return sql.SQL("select exists (select from pg_catalog.pg_roles where rolname = {})").format(
            sql.Literal(self.name)
        )

    def __str__(self) -> str:
        return f"role {self.name}"


@dataclass(frozen=True)
class Relation:
    qualified_name: str

    def query(self) -> sql.Composed:
        return sql.SQL("select pg_catalog.to_regclass({}) is not null").format(
            sql.Literal(self.qualified_name)
        )

    def __str__(self) -> str:
        return f"relation {self.qualified_name}"


@dataclass(frozen=True)
class Extension:
    name: str

    def query(self) -> sql.Composed:
        return sql.SQL(
            "select exists (select from pg_catalog.pg_extension where extname = {})"
        ).format(sql.Literal(self.name))

    def __str__(self) -> str:
        return f"extension {self.name}"


Requirement = Role | Relation | Extension
API_ROLES = (Role("anon"), Role("authenticated"))


@dataclass(frozen=True)
class Lint:
    """One of splinter's lints: `number` and `name` make its file name here and in splinter."""

    number: str
    name: str
    level: Level
    title: str
    requires: tuple[Requirement, ...] = ()
    # splinter's file and docs page, where they are not named `{number}_{name}`.
    splinter_file: str | None = None
    docs_page: str | None = None

    @property
    def path(self) -> Path:
        return SQL_DIR / f"{self.number}_{self.name}.sql"

    @property
    def source(self) -> str:
        """The splinter lint this one follows."""
        return SPLINTER + (self.splinter_file or f"{self.number}_{self.name}.sql")

    @property
    def docs(self) -> str:
        return SUPABASE_DOCS + (self.docs_page or f"{self.number}_{self.name}")

    def query(self) -> str:
        return self.path.read_text()


LINTS: tuple[Lint, ...] = (
    Lint("0001", "unindexed_foreign_keys", "INFO", "Unindexed foreign keys"),
    Lint("0002", "auth_users_exposed", "ERROR", "Exposed Auth Users",
         (*API_ROLES, Relation("auth.users"))),
    Lint("0003", "auth_rls_initplan", "WARN", "Auth RLS Initialization Plan"),
    Lint("0004", "no_primary_key", "INFO", "No Primary Key"),
    Lint("0005", "unused_index", "INFO", "Unused Index"),
    Lint("0006", "multiple_permissive_policies", "WARN", "Multiple Permissive Policies"),
    Lint("0007", "policy_exists_rls_disabled", "ERROR", "Policy Exists RLS Disabled"),
    Lint("0008", "rls_enabled_no_policy", "INFO", "RLS Enabled No Policy"),
    Lint("0009", "duplicate_index", "WARN", "Duplicate Index"),
    Lint("0010", "security_definer_view", "ERROR", "Security Definer View", API_ROLES),
    Lint("0011", "function_search_path_mutable", "WARN", "Function Search Path Mutable"),
    Lint("0013", "rls_disabled_in_public", "ERROR", "RLS Disabled in Public", API_ROLES),
    Lint("0014", "extension_in_public", "WARN", "Extension in Public"),
    Lint("0015", "rls_references_user_metadata", "ERROR", "RLS references user metadata"),
    Lint("0016", "materialized_view_in_api", "WARN", "Materialized View in API", API_ROLES),
    Lint("0017", "foreign_table_in_api", "WARN", "Foreign Table in API", API_ROLES),
    Lint("0018", "unsupported_reg_types", "WARN", "Unsupported reg types"),
    Lint("0019", "insecure_queue_exposed_in_api", "ERROR", "Insecure Queue Exposed in API",
         API_ROLES),
    Lint("0020", "table_bloat", "INFO", "Table Bloat"),
    Lint("0021", "fkey_to_auth_unique", "ERROR", "Foreign Key to Auth Unique Constraint"),
    Lint("0022", "extension_versions_outdated", "WARN", "Extension Versions Outdated"),
    Lint("0023", "sensitive_columns_exposed", "ERROR", "Sensitive Columns Exposed", API_ROLES),
    Lint("0024", "rls_policy_always_true", "WARN", "RLS Policy Always True",
         docs_page="0024_permissive_rls_policy"),
    Lint("0025", "public_bucket_allows_listing", "WARN", "Public Bucket Allows Listing",
         (Relation("storage.buckets"), Relation("storage.objects"))),
    Lint("0026", "pg_graphql_anon_table_exposed", "WARN",
         "Public Can See Object in GraphQL Schema", (Extension("pg_graphql"), Role("anon"))),
    Lint("0027", "pg_graphql_authenticated_table_exposed", "WARN",
         "Signed-In Users Can See Object in GraphQL Schema",
         (Extension("pg_graphql"), Role("authenticated"))),
    Lint("0028", "anon_security_definer_function_executable", "WARN",
         "Public Can Execute SECURITY DEFINER Function", (Role("anon"),)),
    Lint("0029", "authenticated_security_definer_function_executable", "WARN",
         "Signed-In Users Can Execute SECURITY DEFINER Function", (Role("authenticated"),)),
)  # fmt: skip


@dataclass(frozen=True)
class Skipped:
    lint: Lint
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.lint.number} {self.lint.name}: {self.reason}"


@dataclass(frozen=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def failing(self) -> list[Finding]:
        """The ERROR and WARN findings."""
        return [finding for finding in self.findings if finding.fails]

    def __str__(self) -> str:
        return format_report(self)


def run(
    conn: psycopg.Connection[Any],
    exposed_schemas: Sequence[str] = DEFAULT_EXPOSED_SCHEMAS,
    lints: Sequence[Lint] = LINTS,
) -> Report:
    """Runs `lints` on the database of `conn` (a psycopg 3 connection, in autocommit or not);
    `exposed_schemas`: the schemas the Data API serves (Supabase's "Exposed schemas")."""
    report = Report()
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(
            "select pg_catalog.set_config('pgrst.db_schemas', %s, true),"
            " pg_catalog.set_config('portal_sync_lint.platform_schemas', %s, true),"
            " pg_catalog.set_config('search_path', '', true)",
            (",".join(exposed_schemas), ",".join(PLATFORM_SCHEMAS)),
        )
        for each in lints:
            missing = _missing(cur, each)
            if missing:
                report.skipped.append(Skipped(each, f"needs {', '.join(missing)}"))
                continue
            try:
                with conn.transaction():
                    rows = cur.execute(each.query()).fetchall()
            except MISSING_OBJECT_ERRORS as error:
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                report.skipped.append(Skipped(each, f"an object it reads is missing: {first_line}"))
                continue
            report.findings.extend(
                Finding(each.name, each.level, each.title, detail, cache_key)
                for detail, cache_key in rows
            )
    return report


def lint(
    conn: psycopg.Connection[Any],
    exposed_schemas: Sequence[str] = DEFAULT_EXPOSED_SCHEMAS,
) -> list[Finding]:
    """Every finding of splinter's lints on the database of `conn` (see `run`); the lints that
    could not run are logged."""
    report = run(conn, exposed_schemas)
    for skipped in report.skipped:
        log.info("%s", skipped)
    return report.findings


def _missing(cur: psycopg.Cursor[tuple[Any, ...]], each: Lint) -> list[str]:
    missing = []
    for requirement in each.requires:
        row = cur.execute(requirement.query()).fetchone()
        if not (row and row[0]):
            missing.append(str(requirement))
    return missing


def format_findings(findings: Sequence[Finding]) -> str:
    """One finding a line, the failing levels first, with the lint's page."""
    order = {"ERROR": 0, "WARN": 1, "INFO": 2}
    by_name = {each.name: each for each in LINTS}
    lines = []
    for finding in sorted(findings, key=lambda f: (order[f.level], f.name, f.cache_key)):
        lint_ = by_name.get(finding.name)
        docs = f" ({lint_.docs})" if lint_ else ""
        lines.append(f"{finding.level:<5} {finding.title}{docs}\n      {finding.detail}")
    return "\n".join(lines)


def format_report(report: Report) -> str:
    parts = [format_findings(report.findings) or "no findings"]
    parts.extend(str(skipped) for skipped in report.skipped)
    return "\n".join(parts)
