"""What the benchmarks run against: a throwaway migrated PostgreSQL database, and `make run`'s
system in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from portal_sync_dev import ROOT
from portal_sync_dev.bench.workload import BenchError


class BenchDatabase:
    """The embedded PostgreSQL in a temporary directory, or a throwaway database on the server
    in DATABASE_URL (as the tests do); migrated, and removed afterwards."""

    def __init__(self, work_dir: Path) -> None:
        self._work_dir = work_dir
        self._server: Any = None
        self._external: str | None = os.environ.get("DATABASE_URL") or None
        self._name: str | None = None
        self.url = ""
        self.functions_url = ""

    def __enter__(self) -> BenchDatabase:
        from portal_sync_dev.database.migrations import migrate
        from portal_sync_dev.database.supabase_project import as_url, login_functions_role

        if self._external:
            import psycopg

            self._name = f"portal_sync_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(self._external, autocommit=True) as admin:
                admin.execute(f'create database "{self._name}"')
            self.url = as_url(psycopg.conninfo.make_conninfo(self._external, dbname=self._name))
        else:
            from portal_sync_dev.local.postgres import EmbeddedPostgres

            self._server = EmbeddedPostgres(self._work_dir / "pgdata").start()
            self.url = self._server.url
        migrate(self.url)
        # The functions connect as their own role, under row-level security, as deployed.
        self.functions_url = login_functions_role(self.url, "portal-sync-bench")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.destroy()
        elif self._external and self._name:
            import psycopg

            with psycopg.connect(self._external, autocommit=True) as admin:
                admin.execute(f'drop database if exists "{self._name}" with (force)')


class SystemProcess:
    """`make run`'s system (`python -m portal_sync_dev.local.run`) in a process of its own, on a
    free port, with its state in the work directory and the benchmark's database."""

    def __init__(self, work_dir: Path, database_url: str) -> None:
        self.state_dir = work_dir / "system"
        self.database_url = database_url
        self.log_path = work_dir / "system.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> SystemProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env.pop("PORTAL_SYNC_REAL_AWS", None)
        env.update(
            {
                "PORT": "0",
                "PORTAL_SYNC_STATE_DIR": str(self.state_dir),
                "DATABASE_URL": self.database_url,
            }
        )
        run_file = self.state_dir / "run.json"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "portal_sync_dev.local.run"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180
        while not run_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise BenchError(f"the local system did not start:\n{tail}")
            time.sleep(0.2)
        time.sleep(0.2)  # written in one call, but be sure it is complete
        self.info = json.loads(run_file.read_text())
        return self

    @property
    def jwt_secret(self) -> str:
        return (self.state_dir / "jwt_secret").read_text().strip()

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
