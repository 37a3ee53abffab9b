"""functions/process_event: its settings, each invocation's batch strategy, and what follows a
batch (the website visibility deliveries to start, the back-off of failed messages).

The Web API client (httpx) is built on the first event over 256 KB whose row must be read, the
Step Functions starter and the SQS client (botocore) on the first batch that needs them: a
batch that needs none of them pays for none.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.adapters.postgres.unit_of_work import PostgresUnitOfWork
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.bootstrap import shared
from portal_sync.inbound.batch import BatchApply
from portal_sync.inbound.ports import RowReader
from portal_sync.inbound.processor import VISIBILITY_ACTOR
from portal_sync.settings import ConsumerSettings
from portal_sync.visibility.service import VisibilityService

if TYPE_CHECKING:
    from portal_sync.adapters.aws.sqs_retry import SqsBackOff
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi


@cache
def settings() -> ConsumerSettings:
    return ConsumerSettings()


@cache
def connections() -> ConnectionProvider:
    return shared.connection_provider(settings())


@cache
def web_api() -> DataverseWebApi:
    return shared.web_api(settings())


def batch_apply() -> BatchApply:
    """A new one per invocation: its row reader remembers failing Dynamics environments for
    one invocation only."""
    work = PostgresUnitOfWork(connections())

    def reconsider(organization_id: UUID, profile_id: UUID) -> None:
        # In the batch's transaction: the outbox row commits with the membership change.
        repo = PostgresVisibilityRepository(work.connection)
        VisibilityService(repo).reconsider(organization_id, profile_id, VISIBILITY_ACTOR)

    return BatchApply(
        work,
        max_receive_count=settings().max_receive_count,
        row_reader=_DynamicsRows(work),
        on_membership_change=reconsider,
    )


def start_visibility_changes() -> None:
    """Starts the deliveries of the changes recorded (and committed) so far."""
    with connections().transaction() as conn:
        VisibilityService(PostgresVisibilityRepository(conn)).dispatch(_starter())


def back_off(records: Sequence[dict[str, Any]]) -> None:
    _back_off().back_off(records)


@cache
def _starter() -> StepFunctionsStarter:
    # Imported when a batch first reconsidered a mentor: botocore stays out of the cold start.
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter

    return StepFunctionsStarter(client("stepfunctions"), settings().website_state_machine_arn)


@cache
def _back_off() -> SqsBackOff:
    # Imported on the first failed message, for the same reason.
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.sqs_retry import SqsBackOff

    config = settings()
    return SqsBackOff(
        client("sqs"),
        config.event_queue_url,
        base_seconds=config.retry_base_seconds,
        max_seconds=config.retry_max_seconds,
    )


class _DynamicsRows:
    """The RowReader of events over 256 KB, built when the first such event needs it: the Web
    API client (httpx) stays out of the cold start and out of every batch without one."""

    def __init__(self, work: PostgresUnitOfWork) -> None:
        self._work = work
        self._reader: RowReader | None = None

    def read_row(
        self, organization_id: UUID, entity_set: str, row_id: str, select: Sequence[str]
    ) -> dict[str, Any] | None:
        if self._reader is None:
            from portal_sync.adapters.dynamics.row_reader import WebApiRowReader

            # The organisation's Dynamics settings are read in the batch's transaction.
            repo = PostgresVisibilityRepository(self._work.connection)
            self._reader = WebApiRowReader(shared.dynamics_targets(settings(), repo), web_api())
        return self._reader.read_row(organization_id, entity_set, row_id, select)
