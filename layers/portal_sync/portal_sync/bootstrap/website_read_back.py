"""The read-back of the website column (visibility/read_back.py), built for functions/website_sync
from the same parts as its deliveries (bootstrap/website_sync.py): its settings and database
connection, the Web API client and the organisations' Dynamics targets. Each batch runs in a
transaction of its own.

The Web API client (httpx) is built on the first read of a batch, as on the first delivery.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from portal_sync.adapters.postgres.read_back_store import PostgresReadBackStore
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.bootstrap import shared
from portal_sync.bootstrap.website_sync import connections, settings, web_api
from portal_sync.dataverse.connection import DynamicsConnection
from portal_sync.visibility.read_back import ReadBack, ReadBackWork


@contextmanager
def read_back_work() -> Iterator[ReadBackWork]:
    """One batch's store, repository and Dynamics targets, in one transaction: the repairs
    and the pass's progress commit together."""
    with connections().transaction() as conn:
        repo = PostgresVisibilityRepository(conn)
        yield ReadBackWork(
            PostgresReadBackStore(conn), repo, shared.dynamics_targets(settings(), repo)
        )


class _WebApiOnFirstRead:
    """The Web API client, built when a batch is first read: a schedule run with no
    organisation due imports no httpx."""

    def read_column(
        self, connection: DynamicsConnection, contact_ids: Sequence[str], column: str
    ) -> dict[str, bool | None]:
        return web_api().read_column(connection, contact_ids, column)


def read_back() -> ReadBack:
    return ReadBack(read_back_work, _WebApiOnFirstRead())
