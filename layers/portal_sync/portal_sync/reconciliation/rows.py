"""Rows read from Dynamics as the events a webhook would have carried, through the field
mapping (inbound/dataverse/mapping.py), so that an import applies by the rules of every event.

A row read is the row as Dynamics has it now: it goes through the mapping exactly as the row
re-read for a change over 256 KB does (its state and role taken as they are, a contact's
active state left to its memberships' own rows). A `$deletedEntity` is a Delete of the row:
the mapping makes it the membership's deactivation or the enrolment's end; the contact and the
course of a deleted enrolment come from what the app stored for its row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from portal_sync.inbound.dataverse.context import Entity, EntityRef, ExecutionContext
from portal_sync.inbound.dataverse.mapping import (
    MappingContext,
    TableMapping,
    current_row_target,
    map_context,
    map_current_row,
)
from portal_sync.inbound.events import NotApplicable, ParsedEvent, normalize_id

NO_ROW_ID = "The row read from Dynamics has no id"
# (table, row id) -> (contact id, course id or None) the app stored for the row, or None.
StoredRow = Callable[[str, str], tuple[str, str | None] | None]


def row_id_of(table_name: str, row: dict[str, Any]) -> str | None:
    """A Web API row's id: its primary key column, `<table>id` (contactid, hlf_membershipid)."""
    value = row.get(f"{table_name}id")
    return normalize_id(value.strip()).lower() if isinstance(value, str) and value.strip() else None


def event_of_row(
    table_name: str, table: TableMapping, row: dict[str, Any], mapping: MappingContext, row_id: str
) -> ParsedEvent:
    """The row (whose id is `row_id`, row_id_of's) as an Update whose Target is the row: a row
    read has no user (never an echo) and comes from the organisation's own environment (the
    runs build `mapping` so)."""
    target = current_row_target(table_name, row_id, table, row, "Update")
    return map_current_row(_context("Update", table_name, row_id, target, None), mapping)


def event_of_deletion(
    table_name: str,
    table: TableMapping,
    row_id: str,
    deleted_at: datetime,
    mapping: MappingContext,
    stored_row: StoredRow,
) -> ParsedEvent:
    row_id = normalize_id(row_id).lower()
    pre_images: dict[str, Entity] = {}
    if table.kind != "member":
        stored = stored_row(table_name, row_id)
        if stored is None:
            return NotApplicable(
                "A row deleted in Dynamics that the app never stored; nothing to end",
                "Delete",
                table_name,
            )
        contact_id, course_id = stored
        attributes: dict[str, Any] = {}
        assert table.contact_column is not None  # TableMapping's validation
        attributes[table.contact_column] = EntityRef("contact", contact_id)
        if table.course_column and course_id:
            attributes[table.course_column] = EntityRef("", course_id)
        pre_images["stored"] = Entity(table_name, row_id, attributes)
    context = _context("Delete", table_name, row_id, EntityRef(table_name, row_id), deleted_at)
    context.pre_images.update(pre_images)
    as_deleted = MappingContext(
        field_mapping=mapping.field_mapping,
        application_user_ids=frozenset(),
        dataverse_organization_id=None,
        size_exceeded=False,
        resolve_contact=mapping.resolve_contact,
    )
    return map_context(context, as_deleted)


def _context(
    message: str,
    table_name: str,
    row_id: str,
    target: Entity | EntityRef,
    at: datetime | None,
) -> ExecutionContext:
    return ExecutionContext(
        message_name=message,
        primary_entity_name=table_name,
        primary_entity_id=row_id,
        target=target,
        pre_images={},
        post_images={},
        user_id=None,
        initiating_user_id=None,
        organization_id=None,
        depth=1,
        operation_id=None,
        owning_extension_id=None,
        operation_created_on=at,
        correlation_id=None,
    )
