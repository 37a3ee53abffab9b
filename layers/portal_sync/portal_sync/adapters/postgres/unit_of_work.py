"""The UnitOfWork of inbound/ports.py on PostgreSQL: the consumer's transaction, its savepoints,
and the sync repositories on its connection.

A dropped connection is DatabaseUnavailable whatever statement it broke in (and is discarded,
so the next invocation reconnects). A statement that failed on a connection that still works
(a constraint, a deadlock, a timeout) is the batch's or the message's failure, left as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from portal_sync.adapters.postgres.batched_sync_repository import BatchedSyncRepository
from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.sync_repository import PostgresSyncRepository
from portal_sync.unavailable import DatabaseUnavailable


class PostgresUnitOfWork:
    def __init__(self, connections: ConnectionProvider) -> None:
        self._connections = connections
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The connection of the open transaction (for what else it must write, in it)."""
        assert self._conn is not None, "only inside transaction()"
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._connections.get()  # DatabaseUnavailable when it cannot connect
        try:
            with conn.transaction():
                self._conn = conn
                yield
        except DatabaseUnavailable:
            self._connections.discard()
            raise
        except Exception as exc:
            if _lost(conn):
                self._connections.discard()
                raise DatabaseUnavailable("PostgreSQL is not reachable") from exc
            raise
        finally:
            self._conn = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        conn = self.connection
        try:
            with conn.transaction():
                yield
        except Exception as exc:
            if _lost(conn):
                raise DatabaseUnavailable("PostgreSQL is not reachable") from exc
            raise

    def batch_repository(self) -> BatchedSyncRepository:
        return BatchedSyncRepository(self.connection)

    def repository(self) -> PostgresSyncRepository:
        return PostgresSyncRepository(self.connection)

    def is_database_failure(self, error: Exception) -> bool:
        # Statement timeouts, lock timeouts, deadlocks, serialization failures: psycopg's
        # OperationalError, on a connection that is still usable.
        return isinstance(error, psycopg.OperationalError)


def _lost(conn: psycopg.Connection[Any]) -> bool:
    return conn.broken or conn.closed
