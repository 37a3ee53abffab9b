"""From a Dataverse change to a sync event, through the organisation's field mapping.

The field mapping says which Dataverse tables matter and what their columns mean: the contact
table carries the member's details, a membership table their role and state, an enrolment table
their courses. Everything not mapped is skipped, never an error (docs/dataverse-mapping.md).
`map_context` never raises: a change it cannot use becomes `Unusable` with a message for admins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from portal_sync.dataverse import echo
from portal_sync.dataverse.annotations import FORMATTED_VALUE, LOOKUP_LOGICAL_NAME
from portal_sync.inbound.dataverse.context import Entity, EntityRef, ExecutionContext
from portal_sync.inbound.events import (
    IMPLAUSIBLE_TIME,
    CourseDetails,
    EventType,
    MemberDetails,
    NotApplicable,
    ParsedEvent,
    SyncEvent,
    Unusable,
    normalize_id,
)

ProfileField = Literal["first_name", "last_name", "email", "phone"]

_LOOKUP_VALUE = re.compile(r"^_(.+)_value$")
# A Merge is not applied as such: what it does to mapped rows reaches us as changes of those
# rows, the subordinate contact's deactivation and its related rows re-pointed at the master
# (by webhook, else by the next reconciliation), each under the usual rules (docs/decisions.md).
MERGE_SKIPPED = (
    "A Merge is applied through the changes of the rows it touches (the subordinate contact "
    "deactivated, its memberships moved to the master); nothing to apply for the Merge itself"
)
# Reading a row from Dynamics: (entity set, row id, columns) -> the Web API's row, or None.
RowRead = Callable[[str, str, Sequence[str]], dict[str, Any] | None]


class TableMapping(BaseModel):
    """What one Dataverse table means to the sync."""

    model_config = ConfigDict(extra="forbid")

    # member: the row is the contact itself; membership: a row per member and organisation with
    # a role and a state; course_enrollment: a row per member and course.
    kind: Literal["member", "membership", "course_enrollment"]
    # The lookup column pointing at the contact (membership and enrolment tables).
    contact_column: str | None = None
    modified_on_column: str = "modifiedon"
    profile_columns: dict[ProfileField, str] = Field(default_factory=dict)
    role_column: str | None = None
    # Choice values (integers in Dataverse) to the app's role names.
    role_values: dict[int, str] = Field(default_factory=dict)
    default_role: str = "member"
    state_column: str = "statecode"
    active_states: list[int] = Field(default_factory=lambda: [0])
    inactive_states: list[int] = Field(default_factory=lambda: [1])
    course_column: str | None = None
    course_name_column: str | None = None
    # The table's Web API entity set (URL) name, when it is not the default plural; as
    # Dataverse spells it (URLs are case-sensitive).
    entity_set: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator(
        "contact_column",
        "modified_on_column",
        "role_column",
        "state_column",
        "course_column",
        "course_name_column",
    )
    @classmethod
    def _logical_name(cls, value: str | None) -> str | None:
        # Dataverse logical names are lower case; the payload decoder lower-cases keys too.
        return value.strip().lower() if value is not None else None

    @field_validator("profile_columns")
    @classmethod
    def _logical_names(cls, value: dict[ProfileField, str]) -> dict[ProfileField, str]:
        return {key: column.strip().lower() for key, column in value.items()}

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind != "member" and not self.contact_column:
            raise ValueError(f"a {self.kind} table needs contact_column (the contact lookup)")
        if self.kind == "course_enrollment" and not self.course_column:
            raise ValueError("a course_enrollment table needs course_column")
        if set(self.active_states) & set(self.inactive_states):
            raise ValueError("a state cannot be both active and inactive")
        return self


class FieldMapping(BaseModel):
    """Per organisation: Dataverse table logical name -> what it means."""

    model_config = ConfigDict(extra="forbid")

    tables: dict[str, TableMapping]

    @field_validator("tables")
    @classmethod
    def _lower_case_tables(cls, value: dict[str, TableMapping]) -> dict[str, TableMapping]:
        return {name.strip().lower(): table for name, table in value.items()}


DEFAULT_FIELD_MAPPING = FieldMapping(
    tables={
        "contact": TableMapping(
            kind="member",
            profile_columns={
                "first_name": "firstname",
                "last_name": "lastname",
                "email": "emailaddress1",
                "phone": "mobilephone",
            },
        ),
        "hlf_membership": TableMapping(
            kind="membership",
            contact_column="hlf_contactid",
            role_column="hlf_role",
            role_values={
                100000000: "member",
                100000001: "peer_mentor",
                100000002: "coordinator",
                100000003: "admin",
            },
        ),
        "hlf_courseenrollment": TableMapping(
            kind="course_enrollment",
            contact_column="hlf_contactid",
            course_column="hlf_courseid",
        ),
    }
)


@dataclass(frozen=True)
class MappingContext:
    field_mapping: FieldMapping
    # Our own Dataverse application users: changes they made are echoes of our write-backs.
    application_user_ids: frozenset[str]
    # The Dataverse OrganizationId the organisation is configured for (None: not checked).
    dataverse_organization_id: str | None
    # Dataverse stripped the row data because the context exceeded 256 KB.
    size_exceeded: bool
    # The contact of a membership or enrolment row already known to us (for deletes).
    resolve_contact: Callable[[str, str], str | None]
    # Reads the row from Dynamics when Dataverse left it out (None: no way to read it).
    read_row: RowRead | None = None


def map_context(ctx: ExecutionContext, mapping: MappingContext) -> ParsedEvent:
    """Never raises, except what `mapping.read_row` raises (a Dynamics outage is retried)."""
    table_mapping = _mapped_table(ctx, mapping)
    if not isinstance(table_mapping, TableMapping):
        return table_mapping
    # A row re-read from Dynamics stands in for the Target: its state is the row's own now.
    row_state = False
    if mapping.size_exceeded:
        reread = _with_current_row(ctx, table_mapping, mapping)
        if not isinstance(reread, ExecutionContext):
            return reread
        ctx, row_state = reread, ctx.message_name == "Update"
    return _event(ctx, table_mapping, mapping, row_state)


def map_current_row(ctx: ExecutionContext, mapping: MappingContext) -> ParsedEvent:
    """A change whose Target is the row as Dynamics has it now (`current_row_target`: a row an
    import read): as `map_context` maps a change over 256 KB once its row is read again."""
    table_mapping = _mapped_table(ctx, mapping)
    if not isinstance(table_mapping, TableMapping):
        return table_mapping
    return _event(ctx, table_mapping, mapping, row_state=ctx.message_name == "Update")


def _mapped_table(ctx: ExecutionContext, mapping: MappingContext) -> TableMapping | ParsedEvent:
    """The table's mapping, or why the change is not one to apply."""
    message, table = ctx.message_name, ctx.primary_entity_name
    table_mapping = mapping.field_mapping.tables.get(table)
    if table_mapping is None:
        return NotApplicable(f"Table '{table}' is not in the field mapping", message, table)
    if message == "Merge":
        return NotApplicable(MERGE_SKIPPED, message, table)
    if message not in ("Create", "Update", "Delete"):
        return NotApplicable(f"'{message}' messages are not synchronised", message, table)
    if _is_echo(ctx, mapping.application_user_ids):
        return NotApplicable(
            "Echo of a change made by this integration in Dynamics; nothing to apply",
            message,
            table,
        )
    expected_org = mapping.dataverse_organization_id
    if expected_org and ctx.organization_id != expected_org.lower():
        return Unusable(
            "The event comes from a different Dynamics environment than the one configured",
            message,
            table,
        )
    return table_mapping


def _event(
    ctx: ExecutionContext, table_mapping: TableMapping, mapping: MappingContext, row_state: bool
) -> ParsedEvent:
    message, table = ctx.message_name, ctx.primary_entity_name
    if ctx.target is None:
        return Unusable("The Dataverse event has no Target row", message, table)
    occurred_at = _occurred_at(ctx, table_mapping)
    if occurred_at is None:
        return Unusable("The Dataverse event carries no modification time", message, table)

    try:
        match table_mapping.kind:
            case "member":
                return _member_event(ctx, table_mapping, occurred_at)
            case "membership":
                return _membership_event(ctx, table_mapping, occurred_at, mapping, row_state)
            case "course_enrollment":
                return _course_event(ctx, table_mapping, occurred_at, mapping, row_state)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        # The event's time (modifiedon, OperationCreatedOn) checked by SyncEvent's rule.
        implausible = [e["msg"] for e in errors if e["type"] == IMPLAUSIBLE_TIME]
        if implausible:
            return Unusable(f"The Dataverse event is invalid: {implausible[0]}", message, table)
        fields = ", ".join(".".join(map(str, error["loc"])) for error in errors)
        return Unusable(f"The row has values the app cannot store ({fields})", message, table)


def _with_current_row(
    ctx: ExecutionContext, table: TableMapping, mapping: MappingContext
) -> ExecutionContext | ParsedEvent:
    """The context of a change Dataverse sent without its row (over 256 KB), with the row as
    Dynamics has it now standing in for the Target. A Delete needs only the row id."""
    message, table_name, row_id = ctx.message_name, ctx.primary_entity_name, ctx.primary_entity_id
    if row_id is None:
        return Unusable("The Dataverse event names no row (PrimaryEntityId)", message, table_name)
    if message == "Delete":
        return replace(ctx, target=EntityRef(table_name, row_id))
    if mapping.read_row is None:
        return Unusable(
            "Dynamics left out the row data because the change exceeded 256 KB; "
            "reprocess it once the row can be read from Dynamics",
            message,
            table_name,
        )
    row = mapping.read_row(entity_set_name(table_name, table), row_id, select_columns(table))
    if row is None:
        return NotApplicable(
            "Dynamics left out the row data (the change exceeded 256 KB) and the row no longer "
            "exists in Dynamics (deleted since); nothing to apply",
            message,
            table_name,
        )
    target = current_row_target(table_name, row_id, table, row, message)
    return replace(ctx, target=target, pre_images={}, post_images={})


def current_row_target(
    table_name: str, row_id: str, table: TableMapping, row: dict[str, Any], message: str
) -> Entity:
    """The row as it is now, standing in for the Target of a `message` change: every column
    read counts as changed, so a membership or enrolment takes the state and role Dynamics has
    (each has its own clock)."""
    target = entity_from_row(table_name, row_id, table, row)
    state = target.attributes.get(table.state_column)
    if table.kind == "member" and message == "Update" and state not in table.inactive_states:
        # Whether this change reactivated the contact is unknown, and a contact's details
        # change must not reactivate a membership that its own row deactivated: details only.
        attributes = {k: v for k, v in target.attributes.items() if k != table.state_column}
        target = replace(target, attributes=attributes)
    return target


def entity_set_name(table_name: str, table: TableMapping) -> str:
    """The Web API's name for the table: the mapping's, else Dataverse's default plural."""
    if table.entity_set:
        return table.entity_set
    if re.search(r"[^aeiou]y$", table_name):
        return f"{table_name[:-1]}ies"
    if re.search(r"(s|x|z|ch|sh)$", table_name):
        return f"{table_name}es"
    return f"{table_name}s"


def select_columns(table: TableMapping) -> list[str]:
    """The columns the mapping reads, as the Web API's `$select` names them (a lookup as
    `_<column>_value`)."""
    columns = [table.modified_on_column, table.state_column, *table.profile_columns.values()]
    columns += [c for c in (table.role_column, table.course_name_column) if c]
    columns += [f"_{c}_value" for c in (table.contact_column, table.course_column) if c]
    return list(dict.fromkeys(columns))


def entity_from_row(
    table_name: str, row_id: str, table: TableMapping, row: dict[str, Any]
) -> Entity:
    """A Web API row (JSON) as the Entity a webhook would have carried: lookups as
    EntityRefs, the modification time as a datetime; annotations are dropped."""
    attributes: dict[str, Any] = {}
    for key, value in row.items():
        if "@" in key:
            continue
        lookup = _LOOKUP_VALUE.match(key)
        if lookup is None:
            attributes[key.lower()] = value
            continue
        column = lookup.group(1).lower()
        if not isinstance(value, str) or not value.strip():
            attributes[column] = None
            continue
        logical_name = row.get(f"{key}@{LOOKUP_LOGICAL_NAME}")
        name = row.get(f"{key}@{FORMATTED_VALUE}")
        attributes[column] = EntityRef(
            logical_name.lower() if isinstance(logical_name, str) else "",
            normalize_id(value.strip()).lower(),
            name if isinstance(name, str) else None,
        )
    modified_on = attributes.get(table.modified_on_column)
    if isinstance(modified_on, str):
        try:
            moment = datetime.fromisoformat(modified_on)
        except ValueError:
            attributes[table.modified_on_column] = None
        else:  # the Web API writes UTC ("...Z"); a time without a zone is taken as UTC too
            attributes[table.modified_on_column] = (
                moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            )
    return Entity(logical_name=table_name, id=row_id, attributes=attributes)


def _is_echo(ctx: ExecutionContext, application_users: frozenset[str]) -> bool:
    """Our own write: made by one of the integration's application users, or tagged by our
    Web API request. `InitiatingUserId` only: `UserId` is whom the step runs as, which for a
    step registered to run as the integration user is everyone (docs/dataverse-mapping.md)."""
    if ctx.shared_variable(echo.SHARED_VARIABLE) == echo.REQUEST_TAG:
        return True
    users = {user.lower() for user in application_users}
    return ctx.initiating_user_id is not None and ctx.initiating_user_id in users


def _occurred_at(ctx: ExecutionContext, table: TableMapping) -> datetime | None:
    # Order by the row's own modifiedon (docs/dataverse-mapping.md): the Target's on Create/Update, else a
    # post-image's; a Delete has neither, so the operation's time stands in.
    candidates: list[Any] = []
    if isinstance(ctx.target, Entity):
        candidates.append(ctx.target.attributes.get(table.modified_on_column))
    candidates += [
        image.attributes.get(table.modified_on_column) for image in ctx.post_images.values()
    ]
    candidates.append(ctx.operation_created_on)
    return next((value for value in candidates if isinstance(value, datetime)), None)


def _state_event(
    ctx: ExecutionContext,
    table: TableMapping,
    on_active: EventType,
    on_inactive: EventType,
    row_state: bool = False,
) -> EventType | None:
    """The event a state change means, when this message changed the state column.

    An Update's Target holds what was *sent*, and Dataverse writes a column sent unchanged
    (a re-save, an import writing the row back): only a Target state that differs from the
    pre-image is a change. Without a pre-image of the state an inactive state is still taken
    as a deactivation (the row is inactive now, and deactivating again changes nothing),
    an active one is not a reactivation: whether this message reactivated the row is unknown,
    and a re-save must not give a member deactivated by another row access again. `row_state`:
    the Target is the row re-read from Dynamics, whose state is taken as it is."""
    if ctx.message_name == "Delete":
        return on_inactive
    if ctx.message_name == "Update" and table.state_column not in ctx.changed_attributes():
        return None
    state = ctx.attributes().get(table.state_column)
    if ctx.message_name == "Update" and not row_state:
        known, before = ctx.before(table.state_column)
        if known and before == state:
            return None  # sent, not changed
        if not known and state in table.active_states:
            return None
    if state in table.inactive_states:
        return on_inactive
    if state in table.active_states and ctx.message_name == "Update":
        return on_active
    return None


def _row_id(ctx: ExecutionContext) -> str | None:
    return ctx.target.id if ctx.target is not None and ctx.target.id else ctx.primary_entity_id


def _member_event(ctx: ExecutionContext, table: TableMapping, occurred_at: datetime) -> ParsedEvent:
    contact_id = _row_id(ctx)
    if contact_id is None:
        return Unusable("The contact has no id", ctx.message_name, ctx.primary_entity_name)
    attributes = ctx.attributes() if ctx.message_name != "Delete" else {}
    details: dict[str, Any] = {"dynamics_contact_id": contact_id}
    for field_name, column in table.profile_columns.items():
        if column not in attributes:
            continue
        raw, text = attributes[column], _text(attributes[column])
        if raw is None:
            details[field_name] = ""  # cleared in Dynamics: clear it here too
        elif text is not None:
            details[field_name] = text
        # A value that is not text (a mis-mapped money or lookup column) is left alone rather
        # than clearing what the member had.
    event_type = _state_event(
        ctx, table, EventType.MEMBERSHIP_REACTIVATED, EventType.MEMBERSHIP_DEACTIVATED
    )
    if event_type is None:
        event_type = (
            EventType.MEMBERSHIP_CREATED
            if ctx.message_name == "Create"
            else EventType.MEMBER_UPDATED
        )
    return SyncEvent(
        type=event_type,
        occurred_at=occurred_at,
        member=MemberDetails.model_validate(details),
        source_message=ctx.message_name,
        source_table=ctx.primary_entity_name,
    )


def _contact_of(ctx: ExecutionContext, table: TableMapping, mapping: MappingContext) -> str | None:
    assert table.contact_column is not None  # guaranteed by TableMapping's validation
    lookup = ctx.attributes().get(table.contact_column)
    if isinstance(lookup, EntityRef):
        return lookup.id
    if isinstance(lookup, str) and lookup:
        return lookup
    row_id = _row_id(ctx)
    return mapping.resolve_contact(ctx.primary_entity_name, row_id) if row_id else None


def _membership_event(
    ctx: ExecutionContext,
    table: TableMapping,
    occurred_at: datetime,
    mapping: MappingContext,
    row_state: bool,
) -> ParsedEvent:
    contact_id = _contact_of(ctx, table, mapping)
    if contact_id is None:
        return Unusable(
            f"The membership row does not say which contact it belongs to "
            f"(column '{table.contact_column}'); register a post-image with that column",
            ctx.message_name,
            ctx.primary_entity_name,
        )
    attributes = ctx.attributes()
    role = None
    if table.role_column and table.role_column in attributes:
        raw_role = attributes[table.role_column]
        role = table.role_values.get(raw_role) if isinstance(raw_role, int) else None
        if raw_role is not None and role is None:
            return Unusable(
                f"Role value {raw_role!r} of column '{table.role_column}' is not in the "
                "field mapping's role values",
                ctx.message_name,
                ctx.primary_entity_name,
            )
    event_type = _state_event(
        ctx, table, EventType.MEMBERSHIP_REACTIVATED, EventType.MEMBERSHIP_DEACTIVATED, row_state
    )
    if event_type is None:
        if ctx.message_name == "Create":
            event_type = EventType.MEMBERSHIP_CREATED
            role = role or table.default_role
        elif role is not None:
            event_type = EventType.MEMBERSHIP_ROLE_UPDATED
        else:
            return NotApplicable(
                "No mapped membership column changed", ctx.message_name, ctx.primary_entity_name
            )
    return SyncEvent(
        type=event_type,
        occurred_at=occurred_at,
        member=MemberDetails(dynamics_contact_id=contact_id),
        role=role,
        source_message=ctx.message_name,
        source_table=ctx.primary_entity_name,
        dynamics_row_id=_row_id(ctx),
    )


def _course_event(
    ctx: ExecutionContext,
    table: TableMapping,
    occurred_at: datetime,
    mapping: MappingContext,
    row_state: bool,
) -> ParsedEvent:
    contact_id = _contact_of(ctx, table, mapping)
    attributes = ctx.attributes()
    assert table.course_column is not None  # guaranteed by TableMapping's validation
    course = attributes.get(table.course_column)
    course_id = course.id if isinstance(course, EntityRef) else _text(course)
    if contact_id is None or not course_id:
        return Unusable(
            f"The enrolment row does not say which contact and course it is for (columns "
            f"'{table.contact_column}', '{table.course_column}'); register a pre-image with them",
            ctx.message_name,
            ctx.primary_entity_name,
        )
    name = _text(attributes.get(table.course_name_column)) if table.course_name_column else None
    if name is None and isinstance(course, EntityRef):
        name = course.name
    event_type = _state_event(
        ctx, table, EventType.COURSE_ENROLLED, EventType.COURSE_UNENROLLED, row_state
    )
    if event_type is None:
        if ctx.message_name != "Create":
            return NotApplicable(
                "No mapped enrolment column changed", ctx.message_name, ctx.primary_entity_name
            )
        event_type = EventType.COURSE_ENROLLED
    return SyncEvent(
        type=event_type,
        occurred_at=occurred_at,
        member=MemberDetails(dynamics_contact_id=contact_id),
        course=CourseDetails(dynamics_course_id=course_id, name=name),
        source_message=ctx.message_name,
        source_table=ctx.primary_entity_name,
        dynamics_row_id=_row_id(ctx),
    )


def _text(value: Any) -> str | None:
    """A column value as text: lookups by their name, other values as written."""
    if value is None:
        return None
    if isinstance(value, EntityRef):
        return value.name
    if isinstance(value, str | int | float):
        return str(value)
    return None
