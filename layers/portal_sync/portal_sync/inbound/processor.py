"""Processing queued messages: receipt bookkeeping, idempotency, parsing, applying, logging.

Knows nothing of SQS, Lambda or transactions. The batch strategy (inbound/batch.py) hands it a
whole batch (process_batch, through a repository that reads and writes set-wise), and when that
fails, one message at a time, each inside its own savepoint (process); the strategy decides
about retries and parking.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from portal_sync.inbound.apply import apply_event
from portal_sync.inbound.dataverse.context import (
    DataverseFormatError,
    looks_like_dataverse,
    parse_context,
)
from portal_sync.inbound.dataverse.mapping import (
    DEFAULT_FIELD_MAPPING,
    FieldMapping,
    MappingContext,
    map_context,
)
from portal_sync.inbound.events import EventType, NotApplicable, ParsedEvent, SyncEvent, Unusable
from portal_sync.inbound.identity import member_environment
from portal_sync.inbound.log_context import about_message
from portal_sync.inbound.nesting import TOO_DEEP, nested_deeper_than
from portal_sync.inbound.portal_event import parse_portal_event
from portal_sync.inbound.ports import (
    BatchSyncRepository,
    DeliveryClaim,
    RowReader,
    RowUnreadable,
    SyncRepository,
)
from portal_sync.inbound.queue_message import QueuedEvent, QueuedReceipt
from portal_sync.inbound.sync_log import LogStatus, SyncLogEntry
from portal_sync.observability import tracer

_DONE = (LogStatus.SUCCESS, LogStatus.SKIPPED)
SIZE_EXCEEDED_HEADER = "x-ms-dynamics-msg-size-exceeded"


# Events after which a peer mentor's website visibility may have to change.
MENTOR_ROLE = "peer_mentor"
# Who the visibility changes of inbound events are recorded as (peer_mentor_sync_log.actor).
VISIBILITY_ACTOR = "system:inbound"
_MEMBERSHIP_CHANGES = {
    EventType.MEMBERSHIP_CREATED,
    EventType.MEMBERSHIP_ROLE_UPDATED,
    EventType.MEMBERSHIP_DEACTIVATED,
    EventType.MEMBERSHIP_REACTIVATED,
}


def _may_change_visibility(event: SyncEvent) -> bool:
    # A new member who is not a peer mentor has nothing on the website: no need to look.
    if event.type is EventType.MEMBERSHIP_CREATED:
        return event.role == MENTOR_ROLE
    return event.type in _MEMBERSHIP_CHANGES


class EventProcessor:
    def __init__(
        self,
        repo: SyncRepository,
        on_membership_change: Callable[[UUID, UUID], None] | None = None,
        row_reader: RowReader | None = None,
    ) -> None:
        self._repo = repo
        # Reads a row Dataverse left out of an event over 256 KB (None: none can be read).
        self._row_reader = row_reader
        # Told (organisation, profile) after a successful membership change, in the same
        # transaction: website visibility follows the membership (docs/website-visibility.md).
        self._on_membership_change = on_membership_change

    @tracer.capture_method
    def process(self, message: QueuedEvent | QueuedReceipt) -> LogStatus | None:
        """Applies the message; returns the logged status, or None when nothing was logged
        (a receipt, a duplicate delivery, or an event already applied)."""
        changed: list[tuple[UUID, UUID]] = []
        status = self._process(message, None, changed)
        self._notify(changed)
        return status

    @tracer.capture_method
    def process_batch(
        self, messages: Sequence[QueuedEvent | QueuedReceipt]
    ) -> list[LogStatus | None]:
        """Applies a batch through a BatchSyncRepository (the processor's own), which reads the
        batch's rows up front and writes them at the end: a few statements for the batch
        instead of a few per message. One result per message, as process() would give; on an
        exception nothing of the batch may be kept (roll the transaction back)."""
        repo = self._repo
        assert isinstance(repo, BatchSyncRepository), "process_batch needs a batch repository"
        repo.prepare(messages)
        parsed: list[ParsedEvent | None] = []
        for message in messages:
            with about_message(message):  # parsing may read the row from Dynamics, and log
                event = (
                    self._parse(message)
                    if isinstance(message, QueuedEvent)
                    # An event already applied is left alone (and not parsed for nothing).
                    and repo.logged_status(message.organization_id, message.event_id) not in _DONE
                    else None
                )
            if isinstance(message, QueuedEvent) and isinstance(event, SyncEvent):
                # Told before the next message is parsed: it may name a row this one creates.
                repo.expect_member(message.organization_id, event)
            parsed.append(event)
        repo.prepare_members()
        changed: list[tuple[UUID, UUID]] = []
        statuses: list[LogStatus | None] = []
        for message, event in zip(messages, parsed, strict=True):
            with about_message(message):
                statuses.append(self._process(message, event, changed))
        repo.flush()
        # After the flush: the website's visibility is worked out from the written membership.
        self._notify(changed)
        return statuses

    def _notify(self, changed: list[tuple[UUID, UUID]]) -> None:
        if self._on_membership_change is not None:
            for organization_id, profile_id in dict.fromkeys(changed):
                self._on_membership_change(organization_id, profile_id)

    def _process(
        self,
        message: QueuedEvent | QueuedReceipt,
        parsed: ParsedEvent | None,
        changed: list[tuple[UUID, UUID]],
    ) -> LogStatus | None:
        if isinstance(message, QueuedReceipt):
            self._repo.record_receipt(message.receipt)
            return None
        if self._repo.claim_delivery(message.receipt) is DeliveryClaim.DUPLICATE:
            return None
        organization_id = message.organization_id
        if self._repo.logged_status(organization_id, message.event_id) in _DONE:
            return None

        if parsed is None:
            parsed = self._parse(message)
        entry = SyncLogEntry(
            organization_id=organization_id,
            event_id=message.event_id,
            event_type="unknown",
            status=LogStatus.ERROR,
            message="",
            received_at=message.receipt.received_at,
            receipt_id=message.receipt.id,
            correlation_id=message.correlation_id,
        )
        if isinstance(parsed, SyncEvent):
            settings = self._repo.integration(organization_id)
            environment = member_environment(organization_id, settings.dataverse_organization_id)
            applied = apply_event(self._repo, organization_id, parsed, environment)
            entry.event_type = parsed.type.value
            entry.source_message, entry.source_table = parsed.source_message, parsed.source_table
            entry.source_modified_at = parsed.occurred_at
            entry.status, entry.message, entry.profile_id = (
                applied.status,
                applied.message,
                applied.profile_id,
            )
            if (
                applied.status is LogStatus.SUCCESS
                and applied.profile_id is not None
                and _may_change_visibility(parsed)
            ):
                changed.append((organization_id, applied.profile_id))
        else:
            entry.event_type = _unparsed_type(message, parsed)
            entry.source_message, entry.source_table = parsed.source_message, parsed.source_table
            entry.message = parsed.message
            entry.status = (
                LogStatus.SKIPPED if isinstance(parsed, NotApplicable) else LogStatus.ERROR
            )
        self._repo.write_log(entry)
        if entry.status is LogStatus.ERROR:
            self._repo.keep_payload(organization_id, message.event_id, message.model_dump_json())
        return entry.status

    def record_failure(self, message: QueuedEvent, reason: str, attempts: int) -> None:
        """The last attempt failed too: show the event as an error that an admin can reprocess.
        `attempts`: how many times it was tried (the failed ones left nothing in the log)."""
        self._repo.write_log(
            SyncLogEntry(
                organization_id=message.organization_id,
                event_id=message.event_id,
                event_type=_declared_type(message),
                status=LogStatus.ERROR,
                message=reason,
                received_at=message.receipt.received_at,
                receipt_id=message.receipt.id,
                correlation_id=message.correlation_id,
                attempts=attempts,
            )
        )
        self._repo.keep_payload(
            message.organization_id, message.event_id, message.model_dump_json()
        )

    def _parse(self, message: QueuedEvent) -> ParsedEvent:
        try:
            payload = json.loads(message.body())
        except ValueError:
            return Unusable("The event body is not valid JSON")
        except RecursionError:
            return Unusable(TOO_DEEP)
        if not isinstance(payload, dict):
            return Unusable("The event body is not a JSON object")
        if nested_deeper_than(payload):
            # Decoding it would exhaust the stack on every attempt: an error at once instead.
            return Unusable(TOO_DEEP)
        if b"\\u0000" in message.body():
            # PostgreSQL text cannot hold NUL: applying it would fail on every attempt.
            return Unusable("The event contains NUL characters (\\u0000), which cannot be stored")
        if not looks_like_dataverse(payload):
            return parse_portal_event(payload)
        try:
            context = parse_context(payload)
        except DataverseFormatError as exc:
            return Unusable(str(exc))
        settings = self._repo.integration(message.organization_id)
        try:
            mapping = (
                FieldMapping.model_validate(settings.field_mapping)
                if settings.field_mapping
                else DEFAULT_FIELD_MAPPING
            )
        except ValidationError:
            return Unusable(
                "The organisation's field mapping is invalid; correct it in the integration settings",
                context.message_name,
                context.primary_entity_name,
            )
        organization_id = message.organization_id
        reader = self._row_reader

        def read_row(entity_set: str, row_id: str, select: Sequence[str]) -> dict[str, Any] | None:
            if reader is None:
                raise RowUnreadable.no_connection()
            return reader.read_row(organization_id, entity_set, row_id, select)

        try:
            return map_context(
                context,
                MappingContext(
                    field_mapping=mapping,
                    application_user_ids=settings.application_user_ids,
                    dataverse_organization_id=settings.dataverse_organization_id,
                    # Its value is not documented: the header's presence is the flag.
                    size_exceeded=SIZE_EXCEEDED_HEADER in message.headers,
                    resolve_contact=lambda table, row: self._repo.resolve_contact(
                        organization_id, table, row
                    ),
                    read_row=read_row,
                ),
            )
        except RowUnreadable as exc:
            # Retrying cannot help: an error kept for reprocessing once an admin fixed it.
            return Unusable(str(exc), context.message_name, context.primary_entity_name)


def _unparsed_type(message: QueuedEvent, parsed: NotApplicable | Unusable) -> str:
    if parsed.source_table or parsed.source_message:
        return f"dataverse.{parsed.source_table or 'unknown'}.{parsed.source_message or 'unknown'}".lower()
    return _declared_type(message)


def _declared_type(message: QueuedEvent) -> str:
    """The type the sender declared, for the log of an event that could not be parsed."""
    try:
        payload: Any = json.loads(message.body())
    except (ValueError, RecursionError):
        return "unknown"
    if isinstance(payload, dict):
        if isinstance(payload.get("type"), str):
            return str(payload["type"]).replace("\x00", "")[:100]  # text cannot hold NUL
        if looks_like_dataverse(payload):
            table, verb = payload.get("PrimaryEntityName"), payload.get("MessageName")
            return f"dataverse.{table}.{verb}".lower()[:100]
    return "unknown"
