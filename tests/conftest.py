"""Shared fixtures: a real PostgreSQL, AWS emulated by moto's server, the whole local system.

PostgreSQL is the embedded server unless DATABASE_URL names one; then a throwaway database is
created on that server (and dropped afterwards), so the tests never touch existing data.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from portal_sync_dev.database import supabase_project  # noqa: E402
from portal_sync_dev.database.migrations import migrate  # noqa: E402
from portal_sync_dev.local.postgres import EmbeddedPostgres  # noqa: E402

T = TypeVar("T")

# Each test starts from empty queues; real SQS (and moto by default) allow one purge a minute.
os.environ["MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"] = "false"
# A retired webhook secret stops verifying when a warm ingest's cache expires; tests wait 2 s.
os.environ.setdefault("SOURCE_CACHE_SECONDS", "2")

APP_TABLES = (
    "audit_logs, webhook_receipts, portal_sync_event_payloads, portal_sync_events, "
    "integration_configs, course_enrollments, organization_memberships, profiles, "
    "platform_admins, organizations, auth.users"
)


FUNCTIONS_PASSWORD = "portal-sync-test"


class Database:
    """The test database, prepared as a Supabase project's is and migrated.

    `url` connects as the migrating role (a superuser here, `postgres` on Supabase): tests set
    up and inspect state with it. `functions_url` connects as the functions' own role, under
    row-level security, as the deployed functions do.
    """

    def __init__(self, url: str, server: EmbeddedPostgres | None) -> None:
        self.url = url
        self.server = server
        self.functions_url = supabase_project.login_functions_role(url, FUNCTIONS_PASSWORD)

    def connect(self) -> psycopg.Connection[Any]:
        from psycopg.rows import dict_row

        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row)

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return list(conn.execute(sql, params or None).fetchall())

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        found = self.rows(sql, *params)
        return found[0] if found else None

    def truncate(self) -> None:
        # Work the previous test started may still be running (a website-sync execution, a
        # queued redelivery); its row locks can deadlock with TRUNCATE's table locks, so a
        # deadlock or lock timeout is retried rather than failing the next test's setup.
        for attempt in range(10):
            try:
                with self.connect() as conn:
                    conn.execute("set lock_timeout = '2s'")
                    conn.execute(f"truncate {APP_TABLES} cascade")
                return
            except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
                if attempt == 9:
                    raise
                time.sleep(0.2)


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"portal_sync_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(external, autocommit=True) as admin:
            admin.execute(f'create database "{name}"')
        url = supabase_project.as_url(psycopg.conninfo.make_conninfo(external, dbname=name))
        migrate(url)
        yield Database(url, None)
        with psycopg.connect(external, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data").start()
    migrate(server.url)
    yield Database(server.url, server)
    server.destroy()


@pytest.fixture
def db(database: Database) -> Database:
    """The database, emptied for this test."""
    database.truncate()
    return database


def eventually(check: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.05) -> T:
    """Polls until `check` returns something truthy (the system works asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def local_system(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The whole product as `make run` starts it, on a free loopback port, for the session."""
    from portal_sync_dev.local.system import LocalSystem

    system = LocalSystem(
        state_dir=tmp_path_factory.mktemp("local"),
        port=0,
        database_url=database.url,
        functions_password=FUNCTIONS_PASSWORD,
        schedule_on_timer=False,
    ).start()
    yield system
    system.stop(stop_database=False)


@pytest.fixture
def system(local_system: Any, db: Database) -> Any:
    """The running system with an empty database (the demo organisation re-seeded) and queues."""
    import boto3

    # Executions an earlier test started (an import's mentors reconsidered, say) would still
    # call the Dynamics stand-in, taking answers this test plans: they end first.
    sfn = boto3.client("stepfunctions")
    machines = [local_system.aws.state_machine_arn, local_system.aws.sync_run_state_machine_arn]
    eventually(
        lambda: (
            not any(
                sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
                for arn in machines
                if arn
            )
        ),
        timeout=120,
        interval=0.2,
    )
    sqs = boto3.client("sqs")
    for url in (local_system.aws.event_queue_url, local_system.aws.dead_letter_queue_url):
        sqs.purge_queue(QueueUrl=url)
    local_system.reseed()
    # The seed's writes may ask for mentors to be reconsidered, which the database announces
    # to website-sync at once: that work ends before the test looks.
    eventually(lambda: not db.one("select 1 from visibility_reconsiderations"), timeout=10)
    return local_system
