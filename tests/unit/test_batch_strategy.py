"""The consumer's batch strategy (portal_sync/inbound/batch.py) against an in-memory database.

The fake keeps what the repositories write in plain tables and rolls a transaction or a savepoint
back by restoring a copy, so the tests see what a batch leaves behind: applied together, applied
one message at a time after a bad message, or nothing at all when the database is gone. The last
tests drive the SQS side (portal_sync/entrypoints/sqs_batch.py): the partial batch response, the
back-off of failed records, the visibility deliveries started after a batch.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from dataverse_payloads import dataverse_context, option, size_exceeded
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import FailureKind, Operation
from portal_sync.entrypoints.sqs_batch import EventBatchProcessor, queued_delivery
from portal_sync.inbound.batch import BatchApply, Delivery
from portal_sync.inbound.events import CourseDetails, MemberDetails, SyncEvent
from portal_sync.inbound.ports import (
    DeliveryClaim,
    EnrollmentState,
    IntegrationSettings,
    MemberState,
)
from portal_sync.inbound.processor import SIZE_EXCEEDED_HEADER
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.receipts import Outcome, Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry
from portal_sync.observability import logger as app_logger
from portal_sync.unavailable import DatabaseUnavailable
from support import LogLines, capture_log_lines, portal_event, sqs_record

ORG = uuid.UUID("6f1c2a9e-3b7d-4c1e-9a2f-5d8e7b6c4a30")
MAX_RECEIVES = 10


class Refused(Exception):
    """What a constraint of the database does to a row it will not store."""


class Deadlock(Exception):
    """A failure of the database itself on a connection that still works."""


@dataclass
class Tables:
    receipts: dict[UUID, str] = field(default_factory=dict)  # receipt id -> outcome
    accepted: set[tuple[str, str]] = field(default_factory=set)  # (source, delivery id)
    log: dict[str, SyncLogEntry] = field(default_factory=dict)  # by event id
    payloads: dict[str, str] = field(default_factory=dict)  # by event id
    profiles: dict[str, UUID] = field(default_factory=dict)  # by contact id
    memberships: dict[UUID, dict[str, Any]] = field(default_factory=dict)  # by profile id


class Database:
    """Tables, and what goes wrong with them."""

    def __init__(self) -> None:
        self.tables = Tables()
        # Contact id -> what writing that member raises.
        self.failing: dict[str, Exception] = {}
        # Set: the connection drops at the next statement.
        self.dropped = False

    def statement(self) -> None:
        if self.dropped:
            raise DatabaseUnavailable("PostgreSQL is not reachable")

    def applied(self) -> dict[str, str]:
        """Event id -> status logged."""
        return {event_id: entry.status.value for event_id, entry in self.tables.log.items()}


class Repository:
    """SyncRepository and BatchSyncRepository on the tables (a batch writes as it goes: the
    transaction's rollback undoes it all the same)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def _t(self) -> Tables:
        self._db.statement()
        return self._db.tables

    def claim_delivery(self, receipt: Receipt) -> DeliveryClaim:
        t = self._t
        if receipt.id in t.receipts:
            return DeliveryClaim.REDELIVERY
        key = (receipt.source_id, receipt.delivery_id or "")
        if key in t.accepted:
            t.receipts[receipt.id] = Outcome.DUPLICATE
            return DeliveryClaim.DUPLICATE
        t.accepted.add(key)
        t.receipts[receipt.id] = receipt.outcome
        return DeliveryClaim.FIRST

    def record_receipt(self, receipt: Receipt) -> None:
        self._t.receipts.setdefault(receipt.id, receipt.outcome)

    def integration(self, organization_id: UUID) -> IntegrationSettings:
        return IntegrationSettings()

    def logged_status(self, organization_id: UUID, event_id: str) -> LogStatus | None:
        entry = self._t.log.get(event_id)
        return entry.status if entry else None

    def write_log(self, entry: SyncLogEntry) -> None:
        self._t.log[entry.event_id] = entry

    def keep_payload(self, organization_id: UUID, event_id: str, message: str) -> None:
        self._t.payloads[event_id] = message

    def resolve_contact(self, organization_id: UUID, table: str, row_id: str) -> str | None:
        return None

    def lock_member(self, organization_id: UUID, contact_id: str) -> MemberState | None:
        t = self._t
        profile_id = t.profiles.get(contact_id)
        if profile_id is None:
            return None
        membership = t.memberships.get(profile_id, {})
        return MemberState(
            profile_id,
            membership.get("status"),
            membership.get("role"),
            membership.get("source_modified_at"),
        )

    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        t = self._t
        if details.dynamics_contact_id in self._db.failing:
            raise self._db.failing[details.dynamics_contact_id]
        profile_id = uuid.uuid4()
        t.profiles[details.dynamics_contact_id] = profile_id
        return profile_id

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None:
        self._db.statement()

    def upsert_membership(
        self,
        organization_id: UUID,
        profile_id: UUID,
        *,
        role: str,
        status: str,
        source_modified_at: datetime | None,
        dynamics_row_id: str | None,
    ) -> None:
        self._t.memberships[profile_id] = {
            "role": role,
            "status": status,
            "source_modified_at": source_modified_at,
        }

    def lock_enrollment(
        self, organization_id: UUID, profile_id: UUID, course_id: str
    ) -> EnrollmentState | None:
        return None

    def upsert_enrollment(
        self,
        organization_id: UUID,
        profile_id: UUID,
        course: CourseDetails,
        *,
        status: str,
        source_modified_at: datetime,
        dynamics_row_id: str | None,
    ) -> None:
        self._db.statement()

    def prepare(self, messages: Sequence[QueuedEvent | QueuedReceipt]) -> None:
        self._db.statement()

    def expect_member(self, organization_id: UUID, event: SyncEvent) -> None:
        pass

    def prepare_members(self) -> None:
        self._db.statement()

    def flush(self) -> None:
        self._db.statement()


class UnitOfWork:
    """Transactions and savepoints on the tables: a rollback restores the copy taken at the start."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.repositories: list[str] = []  # which kind each transaction used: the path taken

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.statement()
        with self._rolled_back_on_error():
            yield

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._rolled_back_on_error():
            yield

    @contextmanager
    def _rolled_back_on_error(self) -> Iterator[None]:
        saved = copy.deepcopy(self._db.tables)
        try:
            yield
        except BaseException:
            self._db.tables = saved
            raise

    def batch_repository(self) -> Repository:
        self.repositories.append("together")
        return Repository(self._db)

    def repository(self) -> Repository:
        self.repositories.append("one at a time")
        return Repository(self._db)

    def is_database_failure(self, error: Exception) -> bool:
        return isinstance(error, Deadlock)


def queued(body: bytes, event_id: str, headers: dict[str, str] | None = None) -> QueuedEvent:
    receipt = Receipt(
        id=uuid.uuid4(),
        source_id="source",
        organization_id=ORG,
        delivery_id=event_id,
        outcome=Outcome.ACCEPTED,
        received_at=datetime.now(UTC),
    )
    return QueuedEvent(
        receipt=receipt,
        event_id=event_id,
        correlation_id=f"corr-{event_id}",
        headers=headers or {},
        body_b64=base64.b64encode(body).decode(),
    )


def member_created(contact: str, role: str | None = None) -> Delivery:
    message = queued(portal_event("membership.created", contact, role=role), f"ev-{contact}")
    return Delivery(f"m-{contact}", message, attempts=1)


@dataclass
class Consumer:
    db: Database
    work: UnitOfWork
    reconsidered: list[tuple[UUID, UUID]]
    strategy: BatchApply


def consumer(**kwargs: Any) -> Consumer:
    db = Database()
    work = UnitOfWork(db)
    reconsidered: list[tuple[UUID, UUID]] = []
    strategy = BatchApply(
        work,
        max_receive_count=MAX_RECEIVES,
        on_membership_change=lambda org, profile: reconsidered.append((org, profile)),
        **kwargs,
    )
    return Consumer(db, work, reconsidered, strategy)


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    with capture_log_lines() as lines:
        yield lines


# -- the strategy ------------------------------------------------------------------------------


def test_a_batch_that_applies_together_reports_no_failure_and_applies_every_message() -> None:
    c = consumer()
    batch = [member_created(contact) for contact in ("a", "b", "c")]

    outcome = c.strategy.apply(batch)

    assert outcome.failed == {}
    assert outcome.applied == {"m-a": "success", "m-b": "success", "m-c": "success"}
    assert c.db.applied() == {"ev-a": "success", "ev-b": "success", "ev-c": "success"}
    assert sorted(c.db.tables.profiles) == ["a", "b", "c"]
    assert c.work.repositories == ["together"]  # no second pass


def test_one_bad_message_fails_alone_and_the_rest_of_its_batch_is_applied() -> None:
    c = consumer()
    c.db.failing["b"] = Refused("check constraint")
    batch = [member_created(contact) for contact in ("a", "b", "c")]

    outcome = c.strategy.apply(batch)

    assert list(outcome.failed) == ["m-b"]
    assert isinstance(outcome.failed["m-b"], Refused)
    assert outcome.applied == {"m-a": "success", "m-c": "success"}
    assert c.db.applied() == {"ev-a": "success", "ev-c": "success"}  # b: nothing, yet
    assert sorted(c.db.tables.profiles) == ["a", "c"]
    # Rolled back alone: not even its delivery is claimed, so its retry is not a duplicate.
    assert c.db.tables.accepted == {("source", "ev-a"), ("source", "ev-c")}
    assert c.work.repositories == ["together", "one at a time"]


def test_a_connection_lost_mid_batch_fails_the_whole_batch_without_the_fallback() -> None:
    c = consumer()
    c.db.failing["b"] = DatabaseUnavailable("PostgreSQL is not reachable")
    batch = [member_created(contact) for contact in ("a", "b", "c")]

    outcome = c.strategy.apply(batch)

    assert set(outcome.failed) == {"m-a", "m-b", "m-c"}
    assert all(isinstance(e, DatabaseUnavailable) for e in outcome.failed.values())
    assert outcome.applied == {}
    assert c.work.repositories == ["together"]  # not tried one at a time
    assert c.db.tables == Tables()  # a, written before the connection went, is not kept


def test_a_database_that_cannot_be_reached_fails_the_whole_batch() -> None:
    c = consumer()
    c.db.dropped = True

    outcome = c.strategy.apply([member_created(contact) for contact in ("a", "b")])

    assert set(outcome.failed) == {"m-a", "m-b"} and outcome.applied == {}
    assert c.work.repositories == []


def test_a_connection_lost_during_the_fallback_fails_the_whole_batch_and_keeps_nothing() -> None:
    c = consumer()
    c.db.failing["a"] = DatabaseUnavailable("PostgreSQL is not reachable")
    c.db.failing["b"] = Refused("check constraint")
    batch = [member_created(contact) for contact in ("c", "b", "a")]

    outcome = c.strategy.apply(batch)

    assert set(outcome.failed) == {"m-a", "m-b", "m-c"}
    assert outcome.applied == {}
    assert c.db.tables == Tables()  # c, applied before the connection went, rolled back too


def test_a_failed_message_is_not_logged_before_its_last_attempt() -> None:
    c = consumer()
    c.db.failing["a"] = Refused("check constraint")
    delivery = member_created("a")

    outcome = c.strategy.apply([Delivery(delivery.id, delivery.message, MAX_RECEIVES - 1)])

    assert list(outcome.failed) == ["m-a"]
    assert c.db.tables.log == {} and c.db.tables.payloads == {}


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (Refused("check constraint"), "an unexpected error occurred"),
        (Deadlock("deadlock detected"), "the database was unreachable"),
        (
            DynamicsError(FailureKind.UNAVAILABLE, Operation.READ_ROW, status_code=503),
            "Dynamics did not answer the read of the row (the change exceeded 256 KB)",
        ),
    ],
)
def test_the_last_attempt_logs_the_event_as_parked_saying_why_in_words(
    error: Exception, cause: str
) -> None:
    c = consumer()
    c.db.failing["a"] = error
    first = member_created("a")
    last = Delivery(first.id, first.message, MAX_RECEIVES)

    outcome = c.strategy.apply([last, member_created("b")])

    assert list(outcome.failed) == ["m-a"]  # still reported: SQS parks it
    assert outcome.applied == {"m-b": "success"}
    entry = c.db.tables.log["ev-a"]
    assert entry.status is LogStatus.ERROR
    assert entry.message == (
        f"Could not be applied after {MAX_RECEIVES} attempts: {cause}. "
        "The event is parked for reprocessing."
    )
    assert entry.attempts == MAX_RECEIVES
    assert entry.event_type == "membership.created"
    assert entry.correlation_id == "corr-ev-a"
    # Kept for an administrator's reprocessing, as queued.
    assert json.loads(c.db.tables.payloads["ev-a"])["event_id"] == "ev-a"
    assert "ev-a" not in c.db.tables.profiles


def test_the_visibility_of_mentors_is_reconsidered_for_the_changes_kept_only() -> None:
    c = consumer()
    c.db.failing["bad-mentor"] = Refused("check constraint")
    batch = [
        member_created("mentor", role="peer_mentor"),
        member_created("bad-mentor", role="peer_mentor"),
        member_created("member"),
    ]

    outcome = c.strategy.apply(batch)

    assert outcome.mentors_reconsidered
    assert c.reconsidered[-1] == (ORG, c.db.tables.profiles["mentor"])
    assert list(outcome.failed) == ["m-bad-mentor"]

    only_bad = consumer()
    only_bad.db.failing["bad-mentor"] = Refused("check constraint")

    outcome = only_bad.strategy.apply([member_created("bad-mentor", role="peer_mentor")])

    assert not outcome.mentors_reconsidered  # its reconsideration was rolled back with it


def test_the_outcome_names_errors_by_class_only_as_traces_record_it() -> None:
    """The Tracer records the strategy's answer in X-Ray: a database error's message quotes the
    failing row (personal data), so the outcome shows what failed, not what it said."""
    c = consumer()
    c.db.failing["b"] = Refused("Failing row contains (Kari, Nordmann, kari@example.org)")

    outcome = c.strategy.apply([member_created("a"), member_created("b")])

    assert repr(outcome) == (
        "BatchOutcome(applied={'m-a': 'success'}, failed={'m-b': 'Refused'}, "
        "mentors_reconsidered=False)"
    )


# -- what the log says --------------------------------------------------------------------------


class LoggingRowReader:
    """Reads nothing (the row was deleted since), logging as the Web API client does."""

    def read_row(
        self, organization_id: UUID, entity_set: str, row_id: str, select: Sequence[str]
    ) -> dict[str, Any] | None:
        app_logger.warning("Dynamics throttled the read; waiting", extra={"entity_set": entity_set})
        return None


def size_exceeded_update(event_id: str) -> Delivery:
    context = dataverse_context(
        "Update",
        "hlf_membership",
        str(uuid.uuid4()),
        {"hlf_role": option(100000000)},
        modified_on=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )
    body = json.dumps(size_exceeded(context)).encode()
    message = queued(body, event_id, headers={SIZE_EXCEEDED_HEADER: "true"})
    return Delivery(f"m-{event_id}", message, attempts=1)


def test_lines_logged_while_a_batch_is_applied_together_name_their_event(
    log_lines: LogLines,
) -> None:
    c = consumer(row_reader=LoggingRowReader())
    batch = [member_created("a"), size_exceeded_update("big"), member_created("c")]
    # What an earlier invocation in this process left (a handler's own correlation id).
    before = {**app_logger.get_current_keys(), **app_logger.thread_safe_get_current_keys()}

    outcome = c.strategy.apply(batch)

    assert outcome.failed == {} and c.work.repositories == ["together"]
    assert outcome.applied["m-big"] == "skipped"
    [line] = log_lines.saying("Dynamics throttled the read")
    assert line["correlation_id"] == "corr-big" and line["event_id"] == "big"
    assert "correlation_ids" not in line
    after = {**app_logger.get_current_keys(), **app_logger.thread_safe_get_current_keys()}
    assert after == before  # none left over, none replaced


def test_lines_about_the_whole_batch_name_all_its_events(log_lines: LogLines) -> None:
    c = consumer()
    c.db.failing["b"] = Refused("check constraint")
    batch = [member_created(contact) for contact in ("a", "b")]

    c.strategy.apply(batch)

    [fallback] = log_lines.saying("could not be applied together")
    assert fallback["correlation_ids"] == ["corr-ev-a", "corr-ev-b"]
    assert fallback["error"] == "Refused"
    [failed] = log_lines.saying("Event failed")
    assert failed["correlation_id"] == "corr-ev-b" and failed["event_id"] == "ev-b"
    assert "check constraint" not in json.dumps(log_lines.lines)  # facts, not the message

    c.db.dropped = True
    c.strategy.apply(batch)

    [outage] = log_lines.saying("PostgreSQL unavailable")
    assert outage["correlation_ids"] == ["corr-ev-a", "corr-ev-b"]


# -- the SQS side ------------------------------------------------------------------------------


@dataclass
class AfterBatch:
    started: int = 0
    backed_off: list[list[str]] = field(default_factory=list)

    def start_visibility_changes(self) -> None:
        self.started += 1

    def back_off(self, records: Sequence[dict[str, Any]]) -> None:
        self.backed_off.append([r["messageId"] for r in records])


def invoke(strategy: BatchApply, records: list[dict[str, Any]], after: AfterBatch) -> Any:
    """The batch as the handler hands it over: Powertools' processor around the strategy."""
    processor = EventBatchProcessor(
        strategy,
        start_visibility_changes=after.start_visibility_changes,
        back_off=after.back_off,
    )
    with processor(records, queued_delivery):
        processor.process()
    return processor.response()


def record_of(delivery: Delivery) -> dict[str, Any]:
    return sqs_record(delivery.id, delivery.message.model_dump_json(), delivery.attempts)


def test_sqs_is_told_of_the_failed_message_only_and_it_alone_is_backed_off() -> None:
    c = consumer()
    c.db.failing["b"] = Refused("check constraint")
    after = AfterBatch()
    records = [record_of(member_created(contact)) for contact in ("a", "b", "c")]

    response = invoke(c.strategy, records, after)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-b"}]}
    assert after.backed_off == [["m-b"]]
    assert after.started == 0  # no mentor among them


def test_a_batch_applied_whole_answers_no_failures_and_starts_the_mentors_deliveries() -> None:
    c = consumer()
    after = AfterBatch()
    records = [record_of(member_created("mentor", role="peer_mentor"))]

    response = invoke(c.strategy, records, after)

    assert response == {"batchItemFailures": []}
    assert after.started == 1 and after.backed_off == []


def test_a_database_outage_fails_every_record_and_backs_them_all_off() -> None:
    c = consumer()
    c.db.dropped = True
    after = AfterBatch()
    records = [record_of(member_created(contact)) for contact in ("a", "b")]

    response = invoke(c.strategy, records, after)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-a"}, {"itemIdentifier": "m-b"}]}
    assert after.backed_off == [["m-a", "m-b"]]


def test_a_message_our_ingest_did_not_queue_is_dropped_not_retried(log_lines: LogLines) -> None:
    c = consumer()
    after = AfterBatch()
    malformed = sqs_record("m-x", json.dumps({"kind": "something-else"}))

    response = invoke(c.strategy, [malformed, record_of(member_created("a"))], after)

    assert response == {"batchItemFailures": []}
    assert c.db.applied() == {"ev-a": "success"}
    [dropped] = log_lines.saying("Dropping a malformed queue message")
    assert dropped["message_id"] == "m-x"


def test_a_failure_to_start_the_deliveries_leaves_them_to_the_schedule(
    log_lines: LogLines,
) -> None:
    c = consumer()

    def unreachable() -> None:
        raise ConnectionError("Step Functions is not reachable")

    processor = EventBatchProcessor(
        c.strategy, start_visibility_changes=unreachable, back_off=AfterBatch().back_off
    )
    with processor([record_of(member_created("mentor", role="peer_mentor"))], queued_delivery):
        processor.process()

    assert processor.response() == {"batchItemFailures": []}  # the event is applied all the same
    [line] = log_lines.saying("Could not start website visibility changes")
    assert line["correlation_ids"] == ["corr-ev-mentor"]
