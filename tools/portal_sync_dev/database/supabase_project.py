"""A plain PostgreSQL server made to look like a Supabase project's database, before migrations.

`make run` and `make test` run on the embedded PostgreSQL (or `DATABASE_URL`), which has none of
what Supabase creates for a project: its API roles, the role Supabase Auth connects as, the
`auth` schema. Our migrations grant to those roles and write policies with `auth.uid()`, so they
are created first, from supabase_project.sql (see there for the sources). A database that is
already a Supabase project (one whose `auth.users` we did not create) is left alone.

Supabase has two settings for what a new table in `public` is granted to the API roles
(`anon`, `authenticated`, `service_role`): everything (`granted`, projects created before
2026-05-30 until 2026-10-30) or nothing (`revoked`, the current default). The migrations must be
right under both, so the tests build a database of each.

The functions connect as a role of their own (created by the migrations, without a login):
`login_functions_role` gives it a login and returns the URL to use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

DefaultPrivileges = Literal["granted", "revoked"]
BOOTSTRAP_SQL = Path(__file__).with_name("supabase_project.sql")
# Marks the `auth` schema as ours: a database carrying it may be prepared again.
MARKER = "portal-sync local Supabase stand-in"
# The role the functions connect as (infra/migrations/20261201000001_data_api_access.sql).
FUNCTIONS_ROLE = "portal_sync_functions"
API_ROLES = ("anon", "authenticated", "service_role")


def is_supabase_project(conn: psycopg.Connection[object]) -> bool:
    """True for a real Supabase project's database (its own `auth.users`, not our stand-in)."""
    row = conn.execute(
        "select to_regclass('auth.users') is not null,"
        " coalesce(obj_description(to_regnamespace('auth'), 'pg_namespace'), '')"
    ).fetchone()
    assert row is not None
    has_users, comment = row
    return bool(has_users) and comment != MARKER


def prepare(database_url: str, default_privileges: DefaultPrivileges = "granted") -> bool:
    """Creates the Supabase roles, `auth` schema and default privileges; False when the database
    is a Supabase project already (nothing is changed then)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if is_supabase_project(conn):
            return False
        conn.execute(BOOTSTRAP_SQL.read_text())
        conn.execute(
            sql.SQL("comment on schema auth is {}").format(sql.Literal(MARKER)),
        )
        _set_default_privileges(conn, default_privileges)
    return True


def _set_default_privileges(conn: psycopg.Connection[object], setting: DefaultPrivileges) -> None:
    """What tables, functions and sequences created in `public` by the migrating role (Supabase's
    `postgres`) are granted: Supabase's "Default privileges for new entities" switch."""
    verb = (
        sql.SQL("grant all on {} to {}")
        if setting == "granted"
        else sql.SQL("revoke all on {} from {}")
    )
    roles = sql.SQL(", ").join(sql.Identifier(role) for role in API_ROLES)
    for kind in ("tables", "functions", "sequences"):
        conn.execute(
            sql.SQL("alter default privileges in schema public ")
            + verb.format(sql.SQL(kind), roles)
        )


def login_functions_role(database_url: str, password: str) -> str:
    """Gives FUNCTIONS_ROLE a login with `password` (as docs/supabase.md has it done on a
    project) and returns the URL the functions use: the database of `database_url` (the
    migrating role's), as that role.

    Behind Supabase's pooler the user name carries the project ref (`postgres.<ref>`): the
    functions' role keeps that suffix.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter role {} with login password {}").format(
                sql.Identifier(FUNCTIONS_ROLE), sql.Literal(password)
            )
        )
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    user = str(params.get("user") or "postgres")
    _, dot, project_ref = user.partition(".")
    params["user"] = FUNCTIONS_ROLE + (dot + project_ref if dot else "")
    params["password"] = password
    return as_url(psycopg.conninfo.make_conninfo(**params))


def as_url(conninfo: str) -> str:
    """A postgresql:// URL of a connection string (dbmate and the docs' examples take URLs;
    psycopg's make_conninfo returns key=value pairs)."""
    from urllib.parse import quote

    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(params.get("user", "postgres")), safe="")
    password = f":{quote(str(params['password']), safe='')}" if params.get("password") else ""
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    sslmode = params.get("sslmode", "disable")
    return f"postgresql://{user}{password}@{host}:{port}/{params['dbname']}?sslmode={sslmode}"
