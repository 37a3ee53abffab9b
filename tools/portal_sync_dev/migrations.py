"""Applies infra/migrations with dbmate (the same command the README gives for Supabase)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = ROOT / "infra" / "migrations"


def dbmate_executable() -> str:
    beside_python = Path(sys.executable).with_name("dbmate")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("dbmate")
    if not found:
        raise RuntimeError("dbmate is not installed: run `make install`")
    return found


def migrate(database_url: str) -> None:
    """Brings the database up to the newest migration; safe to call on every start."""
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [
            dbmate_executable(),
            "--migrations-dir", str(MIGRATIONS_DIR),
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
