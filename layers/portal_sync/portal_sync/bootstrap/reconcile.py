"""functions/reconcile: its settings, the engine's steps (a Reconciliation reading pages through
Dataverse change tracking), the schedule, and the start of executions and of the website
visibility deliveries that imported changes recorded.

The Web API client (httpx) and the change-tracking reader are built on the first page read,
never for the schedule; the Step Functions client (botocore) on the first start.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING
from uuid import UUID

from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.run_store import PostgresRunStore
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.bootstrap import shared
from portal_sync.observability import error_facts, logger
from portal_sync.reconciliation.ports import ChangePage, ChangeReader, Run
from portal_sync.reconciliation.runs import Reconciliation
from portal_sync.reconciliation.schedule import RunSchedule
from portal_sync.settings import ReconcileSettings
from portal_sync.visibility.ports import DynamicsSettings
from portal_sync.visibility.service import VisibilityService

if TYPE_CHECKING:
    from collections.abc import Sequence

    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter, SyncRunStarter

# Who the visibility changes of imported rows are recorded as (peer_mentor_sync_log.actor).
VISIBILITY_ACTOR = "system:reconciliation"


@cache
def settings() -> ReconcileSettings:
    return ReconcileSettings()


@cache
def connections() -> ConnectionProvider:
    return shared.connection_provider(settings())


def reconciliation() -> Reconciliation:
    return Reconciliation(
        PostgresRunStore(connections()),
        _PagesOnDemand(),
        page_size=settings().sync_page_size,
        on_membership_change=_reconsider,
        drift_grace=timedelta(seconds=settings().reconcile_drift_grace_seconds),
    )


def schedule() -> RunSchedule:
    return RunSchedule(PostgresRunStore(connections()), reconciliation(), _StartsOnDemand())


@cache
def run_starter() -> SyncRunStarter:
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.step_functions import SyncRunStarter

    return SyncRunStarter(client("stepfunctions"), settings().sync_run_state_machine_arn)


def start_visibility_changes() -> int:
    """Starts the deliveries of the visibility changes the committed pages recorded. A failure
    is only logged: the changes wait in the outbox, and the website-sync schedule starts them."""
    try:
        with connections().transaction() as conn:
            repo = PostgresVisibilityRepository(conn)
            return VisibilityService(repo).dispatch(_visibility_starter())
    except Exception as exc:
        logger.error(
            "Could not dispatch visibility changes; the schedule will", extra=error_facts(exc)
        )
        return 0


def _reconsider(organization_id: UUID, profile_id: UUID) -> None:
    # Inside the page's transaction (the provider's one connection): the outbox row commits
    # with the membership change.
    repo = PostgresVisibilityRepository(connections().get())
    VisibilityService(repo).reconsider(organization_id, profile_id, VISIBILITY_ACTOR)


@cache
def _visibility_starter() -> StepFunctionsStarter:
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter

    return StepFunctionsStarter(client("stepfunctions"), settings().website_state_machine_arn)


@cache
def _reader() -> ChangeReader:
    import httpx

    from portal_sync.adapters.dynamics.change_tracking import ChangeTrackingReader
    from portal_sync.adapters.rate_limiter import RateLimiter

    config = settings()
    rate = config.dynamics_max_requests_per_second
    return ChangeTrackingReader(
        shared.dynamics_targets(config, _DynamicsSettingsReader()),
        httpx.Client(timeout=config.dynamics_timeout_seconds),
        RateLimiter(rate, burst=max(1, int(rate))),
        timeout_seconds=config.dynamics_timeout_seconds,
        allow_local=config.allow_local_dynamics,
    )


class _StartsOnDemand:
    """The RunStarter, built when a tick first starts something: most ticks find nothing due,
    and botocore stays out of them."""

    def start(self, run: Run, attempt: str | None = None) -> None:
        run_starter().start(run, attempt)


class _PagesOnDemand:
    """The ChangeReader, built when the first page is read (the schedule never reads one)."""

    def read_page(
        self,
        organization_id: UUID,
        entity_set: str,
        select: Sequence[str],
        link: str | None,
        page_size: int,
    ) -> ChangePage:
        return _reader().read_page(organization_id, entity_set, select, link, page_size)


class _DynamicsSettingsReader:
    """An organisation's Dynamics settings in a transaction of their own: pages are read
    outside the page's transaction (no row lock held over a Web API call)."""

    def dynamics_settings(self, organization_id: UUID) -> DynamicsSettings | None:
        with connections().transaction() as conn:
            return PostgresVisibilityRepository(conn).dynamics_settings(organization_id)
