"""functions/website_sync: its settings, and what its routes, tasks and schedule use: a
VisibilityService in one transaction, the token verifier, and the start of deliveries.

Only deliveries (the state machine's `apply_visibility` task) talk to Dynamics, so the Web API
client (httpx) and the Dynamics targets are built on the first delivery, never for a request or
the schedule; the Step Functions starter (botocore) on the first dispatch, the on-call topic on
the first outage notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.outage_store import PostgresOutageStore
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.bootstrap import shared
from portal_sync.bootstrap.snapstart import prepare_for_snapshots
from portal_sync.observability import error_facts, logger
from portal_sync.settings import WebsiteSyncSettings
from portal_sync.visibility.delivery import RetryPolicy
from portal_sync.visibility.outages import OutageAlerts
from portal_sync.visibility.service import VisibilityService

if TYPE_CHECKING:
    import psycopg

    from portal_sync.access.authority import Authority
    from portal_sync.adapters.aws.on_call_topic import OnCallTopic
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi
    from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier


@cache
def settings() -> WebsiteSyncSettings:
    return WebsiteSyncSettings()


@cache
def connections() -> ConnectionProvider:
    return shared.connection_provider(settings())


@cache
def verifier() -> SupabaseJwtVerifier:
    return shared.jwt_verifier(settings())


@cache
def web_api() -> DataverseWebApi:
    return shared.web_api(settings())


@cache
def starter() -> StepFunctionsStarter:
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter

    return StepFunctionsStarter(client("stepfunctions"), settings().website_state_machine_arn)


@cache
def on_call() -> OnCallTopic | None:
    if not settings().on_call_topic_arn:
        return None
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.on_call_topic import OnCallTopic

    return OnCallTopic(client("sns"), settings().on_call_topic_arn)


@contextmanager
def outage_alerts() -> Iterator[OutageAlerts]:
    """The organisations' outages in one transaction: notices marked sent commit with it."""
    with connections().transaction() as conn:
        yield OutageAlerts(PostgresOutageStore(conn), on_call())


@contextmanager
def visibility(*, delivering: bool = False) -> Iterator[VisibilityService]:
    """A VisibilityService in one transaction: a status change, its outbox row and its log
    entry commit together, or not at all. `delivering`: with what `apply` writes to Dynamics."""
    with connections().transaction() as conn:
        repo = PostgresVisibilityRepository(conn)
        yield VisibilityService(
            repo,
            authority=partial(_authority, conn),
            targets=shared.dynamics_targets(settings(), repo) if delivering else None,
            writer=web_api() if delivering else None,
            users=web_api() if delivering else None,
            retry=RetryPolicy(
                settings().visibility_max_retries, settings().visibility_retry_interval_seconds
            ),
        )


def _authority(conn: psycopg.Connection[Any], user_id: UUID) -> Authority:
    # The admin API's reading of who may do what; imported on the first access check, which the
    # tasks and the schedule never make.
    from portal_sync.adapters.postgres.admin_repository import PostgresAdminRepository

    return PostgresAdminRepository(conn).authority(user_id)


def dispatch_pending() -> int:
    """Starts the deliveries of recorded changes, after the transaction that recorded them
    committed; returns how many started. A failure is only logged: the changes wait in the
    outbox, and the schedule starts them."""
    try:
        with visibility() as service:
            return service.dispatch(starter())
    except Exception as exc:
        logger.error(
            "Could not dispatch visibility changes; the schedule will", extra=error_facts(exc)
        )
        return 0


# With SnapStart, a restored environment makes its connections and clients again; the snapshot
# already holds the modules of token verification, the Step Functions client and the Web API client (httpx).
prepare_for_snapshots(
    prime=("jwt", "jwt.algorithms", "botocore.session", "botocore.config", "httpx")
)
