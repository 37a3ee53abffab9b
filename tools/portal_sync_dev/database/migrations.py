"""Applies infra/migrations with dbmate (the same command docs/supabase.md gives for a Supabase project).

On a server that is not a Supabase project (the embedded PostgreSQL, `DATABASE_URL`), what
Supabase creates for a project is created first (supabase_project.py).

dbmate's bookkeeping lives in `portal_sync.schema_migrations`, outside the schemas the Data API
exposes (in `public` anyone with the anon key could read and rewrite it). A database migrated
before that has it in `public`: it is moved first, so dbmate finds what was applied.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from portal_sync_dev import ROOT
from portal_sync_dev.database.supabase_project import DefaultPrivileges, prepare

MIGRATIONS_DIR = ROOT / "infra" / "migrations"
MIGRATIONS_TABLE = "portal_sync.schema_migrations"


def dbmate_executable() -> str:
    beside_python = Path(sys.executable).with_name("dbmate")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("dbmate")
    if not found:
        raise RuntimeError("dbmate is not installed: run `make install`")
    return found


def move_legacy_bookkeeping(database_url: str) -> None:
    """`public.schema_migrations` (dbmate's default) moves to MIGRATIONS_TABLE."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select to_regclass('public.schema_migrations') is not null,"
            " to_regclass('portal_sync.schema_migrations') is not null"
        ).fetchone()
        if row is not None and row[0] and not row[1]:
            with conn.transaction():
                conn.execute("create schema if not exists portal_sync")
                conn.execute("alter table public.schema_migrations set schema portal_sync")


def migrate(database_url: str, default_privileges: DefaultPrivileges = "granted") -> None:
    """Brings the database up to the newest migration; safe to call on every start.
    `default_privileges`: Supabase's setting for new tables, where the project is made here."""
    prepare(database_url, default_privileges)
    move_legacy_bookkeeping(database_url)
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [
            dbmate_executable(),
            "--migrations-dir", str(MIGRATIONS_DIR),
            "--migrations-table", MIGRATIONS_TABLE,
            "--no-dump-schema",
            "--wait",
            "up",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{result.stdout}\n{result.stderr}")


def main() -> None:
    """`make migrate`: the migrations on DATABASE_URL (a Supabase project's direct connection)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: the database to migrate (direct connection)")
    migrate(url)
    print("migrated")


if __name__ == "__main__":
    main()
