"""SQS consumer: applies queued webhook events to PostgreSQL (CONTRACT.md section 4).

A batch is applied in one transaction, read and written set-wise (BatchedSyncRepository: a few
statements for the whole batch). If that fails for any reason but the connection, it is rolled
back and applied again one message at a time, each in a savepoint: a failing message rolls back
alone and is reported back to SQS (partial batch response). A message that keeps failing is
parked in the dead-letter queue by the redrive policy; on its last attempt it is written to the
sync log as an error so admins see it.
"""

from __future__ import annotations

import gc

# Cold start: the cyclic garbage collector is paused while the modules below are imported (it
# would walk the growing heap of module objects again and again, freeing nothing), and what
# the import built is frozen at the end of this module (see functions/webhook_ingest/app.py).
gc.disable()

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any
from uuid import UUID

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.adapters.aws.clients import client
from portal_sync.adapters.aws.sqs_retry import back_off
from portal_sync.adapters.postgres.batched_sync_repository import BatchedSyncRepository
from portal_sync.adapters.postgres.connection import ConnectionProvider, DatabaseUnavailable
from portal_sync.adapters.postgres.sync_repository import PostgresSyncRepository
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.inbound.ports import RowReader
from portal_sync.inbound.processor import EventProcessor
from portal_sync.inbound.queue_message import QueuedEvent, QueueMessage
from portal_sync.inbound.sync_log import LogStatus
from portal_sync.observability import error_facts, logger, metrics
from portal_sync.settings import get_settings
from portal_sync.visibility.service import VisibilityService
from pydantic import TypeAdapter, ValidationError

_messages: TypeAdapter[Any] = TypeAdapter(QueueMessage)
MembershipChanged = Callable[[UUID, UUID], None]


# One connection and one verifier per execution environment, built on first use.
connections = cache(ConnectionProvider.from_settings)


class DynamicsRows:
    """The RowReader of events over 256 KB for one invocation, built when the first such event
    needs it: the Web API client (httpx) stays out of every other batch's cold start."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._reader: RowReader | None = None

    def read_row(
        self, organization_id: UUID, entity_set: str, row_id: str, select: Sequence[str]
    ) -> dict[str, Any] | None:
        if self._reader is None:
            from portal_sync.adapters.aws.dynamics_targets import SecretsDynamicsTargets
            from portal_sync.adapters.dynamics.row_reader import WebApiRowReader

            targets = SecretsDynamicsTargets.from_settings(PostgresVisibilityRepository(self._conn))
            self._reader = WebApiRowReader(targets, web_api())
        return self._reader.read_row(organization_id, entity_set, row_id, select)


@cache
def web_api() -> Any:
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi

    return DataverseWebApi.from_settings()


def _failure_reason(exc: Exception, attempts: int) -> str:
    if isinstance(exc, DatabaseUnavailable | psycopg.OperationalError):
        cause = "the database was unreachable"
    elif _is_dynamics_error(exc):
        cause = "Dynamics did not answer the read of the row (the change exceeded 256 KB)"
    else:
        cause = "an unexpected error occurred"
    return (
        f"Could not be applied after {attempts} attempts: {cause}. "
        "The event is parked for reprocessing."
    )


def _is_dynamics_error(exc: Exception) -> bool:
    return isinstance(exc, DynamicsError)


def _start_visibility_changes(state_machine_arn: str) -> None:
    """Mentors hidden by a deactivation: start the deliveries now (the schedule would too)."""
    if not state_machine_arn:
        return
    from portal_sync.adapters.aws.step_functions import StepFunctionsStarter

    try:
        conn = connections().get()
        with conn.transaction():
            VisibilityService(PostgresVisibilityRepository(conn)).dispatch(
                StepFunctionsStarter(client("stepfunctions"), state_machine_arn)
            )
    except Exception:  # the changes wait safely in the outbox
        logger.exception("Could not start website visibility changes; the schedule will")


def _queue_messages(records: list[dict[str, Any]]) -> dict[str, QueueMessage]:
    """The batch's messages by SQS message id; what our ingest did not queue is dropped."""
    messages: dict[str, QueueMessage] = {}
    for record in records:
        try:
            messages[record["messageId"]] = _messages.validate_json(record["body"])
        except ValidationError:
            # Not something our ingest queued: nothing to apply and nowhere to log it.
            logger.error(
                "Dropping a malformed queue message", extra={"message_id": record["messageId"]}
            )
            metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
    return messages


def _count(statuses: list[LogStatus | None]) -> None:
    for status, count in Counter(s for s in statuses if s is not None).items():
        name = "EventFailed" if status is LogStatus.ERROR else f"Event{status.value.title()}"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)


def _apply_together(
    conn: psycopg.Connection[Any],
    messages: list[QueueMessage],
    reconsider: MembershipChanged,
    rows: DynamicsRows,
) -> bool:
    """The whole batch in one transaction, read and written set-wise (a few statements for the
    batch). False when it failed for a reason other than the connection: nothing of it is kept,
    and the caller applies the messages one at a time, so that a bad one fails alone."""
    events = EventProcessor(
        BatchedSyncRepository(conn), on_membership_change=reconsider, row_reader=rows
    )
    try:
        with conn.transaction():
            statuses = events.process_batch(messages)
    except DatabaseUnavailable:
        raise
    except Exception:
        if conn.broken or conn.closed:
            raise
        logger.warning(
            "The batch could not be applied together; applying one message at a time",
            extra=error_facts(sys.exc_info()[1]),
        )
        return False
    _count(statuses)
    return True


def _apply_one_by_one(
    conn: psycopg.Connection[Any],
    records: list[dict[str, Any]],
    messages: dict[str, QueueMessage],
    reconsider: MembershipChanged,
    rows: DynamicsRows,
    context: LambdaContext,
) -> dict[str, Any]:
    """One transaction for the batch, a savepoint per message: a failing message rolls back
    alone and is reported to SQS (partial batch response); on its last attempt it is logged as
    an error so admins see it."""
    max_receive_count = get_settings().max_receive_count
    events = EventProcessor(
        PostgresSyncRepository(conn), on_membership_change=reconsider, row_reader=rows
    )
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def apply_record(record: SQSRecord) -> None:
        message = messages.get(record.message_id)
        if message is None:
            return  # malformed, dropped above
        if isinstance(message, QueuedEvent):
            logger.append_keys(correlation_id=message.correlation_id, event_id=message.event_id)
        try:
            with conn.transaction():
                status = events.process(message)
        except Exception as exc:
            attempts = int(record.attributes.approximate_receive_count or 1)
            logger.error("Event failed", extra={"attempt": attempts, **error_facts(exc)})
            if isinstance(message, QueuedEvent) and attempts >= max_receive_count:
                with conn.transaction():
                    events.record_failure(message, _failure_reason(exc, attempts), attempts)
            raise
        finally:
            logger.remove_keys(["correlation_id", "event_id"])
        _count([status])

    with (
        conn.transaction(),
        processor(records=records, handler=apply_record, lambda_context=context),
    ):
        processor.process()
    return processor.response()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    records = event.get("Records", [])
    mentors_reconsidered = False
    try:
        conn = connections().get()
        mentors = VisibilityService(PostgresVisibilityRepository(conn))

        def reconsider(organization_id: UUID, profile_id: UUID) -> None:
            nonlocal mentors_reconsidered
            mentors_reconsidered = True
            mentors.reconsider(organization_id, profile_id, "system:inbound")

        messages = _queue_messages(records)
        rows = DynamicsRows(conn)
        if _apply_together(conn, list(messages.values()), reconsider, rows):
            response: dict[str, Any] = {"batchItemFailures": []}
        else:
            mentors_reconsidered = False
            response = _apply_one_by_one(conn, records, messages, reconsider, rows, context)
    except (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError):
        logger.exception("PostgreSQL unavailable; the whole batch will be retried")
        connections().discard()
        response = {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}

    if mentors_reconsidered:
        _start_visibility_changes(settings.website_state_machine_arn)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    if failed:
        metrics.add_metric(name="EventRetried", unit=MetricUnit.Count, value=len(failed))
        back_off(
            client("sqs"),
            settings.event_queue_url,
            [r for r in records if r["messageId"] in failed],
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        )
    return response


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
