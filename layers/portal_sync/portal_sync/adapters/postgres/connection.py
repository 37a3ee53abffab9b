"""One PostgreSQL connection per execution environment.

Lambda reuses an execution environment for many invocations, one at a time, so a single
connection kept at module level is both the cheapest and the bounded choice (reserved
concurrency x 1 connections). `prepare_threshold=None` keeps psycopg from creating server-side
prepared statements, which a transaction-mode pooler (Supabase's Supavisor, PgBouncer) cannot
route back to the same backend.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import psycopg
from psycopg.rows import dict_row

from portal_sync.unavailable import DatabaseUnavailable


class ConnectionProvider:
    """Hands out one live connection, reconnecting after the server dropped it."""

    # Every provider of the process, for discard_all (a SnapStart restore's dead sockets).
    _all: ClassVar[weakref.WeakSet[ConnectionProvider]] = weakref.WeakSet()

    def __init__(
        self, url: str | Callable[[], str], connect_timeout: int = 3, *, autocommit: bool = False
    ) -> None:
        """`url`, or what gives it when the first connection is opened (a secret's value)."""
        self._url = url
        self._connect_timeout = connect_timeout
        # Off by default: callers group their statements in `conn.transaction()` blocks. On,
        # for callers whose every statement stands alone, each is its own transaction and
        # costs one round trip instead of three (BEGIN, statement, COMMIT).
        self.autocommit = autocommit
        self._conn: psycopg.Connection[dict[str, object]] | None = None
        self._lock = threading.Lock()
        ConnectionProvider._all.add(self)

    def get(self) -> psycopg.Connection[dict[str, object]]:
        with self._lock:
            conn = self._conn
            if conn is not None and not conn.closed and not conn.broken:
                return conn
            try:
                url = self._url if isinstance(self._url, str) else self._url()
            except Exception as exc:  # Secrets Manager unreachable: as unavailable as the server
                raise DatabaseUnavailable("The database URL could not be read") from exc
            try:
                self._conn = psycopg.connect(
                    url,
                    autocommit=self.autocommit,
                    prepare_threshold=None,
                    connect_timeout=self._connect_timeout,
                    row_factory=dict_row,
                    application_name="portal-sync",
                )
            except psycopg.OperationalError as exc:
                self._conn = None
                raise DatabaseUnavailable("PostgreSQL is not reachable") from exc
            return self._conn

    def discard(self) -> None:
        """Drops the connection after an error that may have left it unusable."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    @classmethod
    def discard_all(cls) -> None:
        """Drops every provider's connection: the next call of each opens a new one."""
        for provider in list(cls._all):
            provider.discard()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[dict[str, object]]]:
        """One transaction on the connection; a dropped connection is DatabaseUnavailable (and
        discarded, so the next call reconnects), whatever statement it happened in."""
        try:
            conn = self.get()
            with conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.discard()
            raise DatabaseUnavailable("PostgreSQL is not reachable") from exc
