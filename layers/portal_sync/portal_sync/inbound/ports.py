"""What applying queued events needs from outside: storage and its transactions (PostgreSQL:
adapters/postgres/sync_repository.py, batched_sync_repository.py, unit_of_work.py) and the
rows Dynamics left out of events over 256 KB (adapters/dynamics/row_reader.py)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from portal_sync.inbound.events import CourseDetails, MemberDetails, SyncEvent
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.receipts import Receipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry


class DeliveryClaim(StrEnum):
    FIRST = "first"  # the first accepted delivery of this id
    # The message's own receipt is recorded already: written by the ingest when it accepted
    # the delivery, or by an earlier attempt (SQS delivers at least once).
    REDELIVERY = "redelivery"
    DUPLICATE = "duplicate"  # another delivery of an id already accepted


@dataclass(frozen=True)
class MemberState:
    profile_id: UUID
    membership_status: str | None  # None: no membership in this organisation
    role: str | None
    source_modified_at: datetime | None  # of the newest membership change applied
    details_modified_at: datetime | None = None  # of the newest profile-details change applied
    # The Dynamics environment the contact belongs to (inbound/identity.py); None: not known.
    environment: str | None = None


@dataclass(frozen=True)
class EnrollmentState:
    status: str
    source_modified_at: datetime | None


@dataclass(frozen=True)
class IntegrationSettings:
    field_mapping: dict[str, Any] | None = None
    application_user_ids: frozenset[str] = frozenset()
    dataverse_organization_id: str | None = None


class SyncRepository(Protocol):
    def claim_delivery(self, receipt: Receipt) -> DeliveryClaim: ...
    def record_receipt(self, receipt: Receipt) -> None: ...
    def integration(self, organization_id: UUID) -> IntegrationSettings: ...
    def logged_status(self, organization_id: UUID, event_id: str) -> LogStatus | None: ...
    def write_log(self, entry: SyncLogEntry) -> None: ...
    def keep_payload(self, organization_id: UUID, event_id: str, message: str) -> None: ...
    def resolve_contact(self, organization_id: UUID, table: str, row_id: str) -> str | None: ...
    def lock_member(self, organization_id: UUID, contact_id: str) -> MemberState | None: ...
    def create_profile(
        self, details: MemberDetails, modified_at: datetime | None, environment: str
    ) -> UUID | None:
        """The new profile's id, a contact of `environment`; None when the contact exists
        already (created concurrently, or by another environment).
        `modified_at` None: the details carry no time (any later-arriving change applies)."""

    def update_profile(
        self, profile_id: UUID, details: MemberDetails, modified_at: datetime
    ) -> None: ...
    def upsert_membership(
        self,
        organization_id: UUID,
        profile_id: UUID,
        *,
        role: str,
        status: str,
        source_modified_at: datetime | None,
        dynamics_row_id: str | None,
    ) -> None: ...
    def lock_enrollment(
        self, organization_id: UUID, profile_id: UUID, course_id: str
    ) -> EnrollmentState | None: ...
    def upsert_enrollment(
        self,
        organization_id: UUID,
        profile_id: UUID,
        course: CourseDetails,
        *,
        status: str,
        source_modified_at: datetime,
        dynamics_row_id: str | None,
    ) -> None: ...


@runtime_checkable
class BatchSyncRepository(SyncRepository, Protocol):
    """A SyncRepository for one batch: told up front what the batch holds, so that it can read
    it set-wise, and told when the batch is done, so that it can write it set-wise."""

    def prepare(self, messages: Sequence[QueuedEvent | QueuedReceipt]) -> None:
        """Reads what the batch's receipts and event ids already have."""

    def expect_member(self, organization_id: UUID, event: SyncEvent) -> None:
        """An event of the batch, parsed: its member is read by prepare_members(), and its
        Dynamics row resolves to its contact for the messages after it."""

    def prepare_members(self) -> None:
        """Reads (and locks) the expected members, their memberships and enrolments."""

    def flush(self) -> None:
        """Writes what the batch changed."""


class UnitOfWork(Protocol):
    """The transaction a batch is applied in, its savepoints, and the repositories inside it.

    Whatever statement the database turns out unreachable in, or drops the connection in, the
    block raises DatabaseUnavailable (portal_sync/unavailable.py): only the whole batch can be
    retried then, later.
    """

    def transaction(self) -> AbstractContextManager[None]:
        """The batch's transaction: committed when the block ends, rolled back on an exception."""

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside the transaction: a block rolled back alone on an exception."""

    def batch_repository(self) -> BatchSyncRepository:
        """Inside the transaction: a repository that reads and writes the batch set-wise."""

    def repository(self) -> SyncRepository:
        """Inside the transaction: a repository for one message at a time."""

    def is_database_failure(self, error: Exception) -> bool:
        """Whether `error` was the database's own (a statement timeout, a deadlock) rather
        than the event's, on a connection that still works."""


NO_DYNAMICS_CONNECTION = (
    "Dynamics left out the row data because the change exceeded 256 KB, and no Dynamics "
    "connection is configured to read the row: configure the Dynamics connection in the "
    "integration settings, then reprocess the event"
)


class RowUnreadable(Exception):
    """A row cannot be read from Dynamics and retrying will not change that (no connection
    configured, credentials refused, a bad table name). `str(error)` is meant for admins: the
    sync log's message of the event, worded here whatever the reader."""

    @classmethod
    def no_connection(cls) -> RowUnreadable:
        return cls(NO_DYNAMICS_CONNECTION)

    @classmethod
    def refused(cls, dynamics_failure: str) -> RowUnreadable:
        """`dynamics_failure`: what went wrong, for admins (DynamicsError.message)."""
        return cls(
            "Dynamics left out the row data because the change exceeded 256 KB, and the row "
            f"could not be read from Dynamics. {dynamics_failure}; then reprocess the event"
        )


class RowReader(Protocol):
    """Reads a row from the organisation's Dynamics (for events whose context exceeded 256 KB,
    which Dataverse sends without the row)."""

    def read_row(
        self, organization_id: UUID, entity_set: str, row_id: str, select: Sequence[str]
    ) -> dict[str, Any] | None:
        """The row as the Web API returns it, with `select`'s columns (a lookup as
        `_<column>_value`); None when it does not exist. Raises RowUnreadable when retrying
        cannot help; any other exception is transient (the event is retried)."""
