"""Parsing Dataverse's `RemoteExecutionContext` (the body of its webhooks) into plain values.

Dataverse serialises its .NET types with the WCF `DataContractJsonSerializer`: dates as
`/Date(ms)/`, choices as `{"__type": "OptionSetValue:...", "Value": n}`, lookups as
EntityReferences, and dictionaries as lists of `{"key", "value"}` pairs. No maintained Python
library reads this format, so it is decoded here, leniently: real captures carry unknown
`__type`s, nulls and extra parameters, and an odd attribute must never lose the whole event.
Only the envelope itself (message, table, row id) is required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from portal_sync.inbound.events import normalize_id

# Keys every RemoteExecutionContext carries; two of them tell it apart from a portal event.
_SIGNATURE_KEYS = ("MessageName", "PrimaryEntityName", "InputParameters", "OperationId")

# `/Date(1506409448000)/` or `/Date(1506409448000-0700)/` (escaped slashes are gone after JSON).
_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")


class DataverseFormatError(ValueError):
    """The body claims to be a Dataverse context but lacks what identifies the change."""


@dataclass(frozen=True)
class EntityRef:
    logical_name: str
    id: str
    name: str | None = None


@dataclass(frozen=True)
class Entity:
    logical_name: str
    id: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    formatted_values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionContext:
    message_name: str
    primary_entity_name: str
    primary_entity_id: str | None
    target: Entity | EntityRef | None
    pre_images: dict[str, Entity]
    post_images: dict[str, Entity]
    user_id: str | None
    initiating_user_id: str | None
    organization_id: str | None
    depth: int | None
    operation_id: str | None
    owning_extension_id: str | None
    operation_created_on: datetime | None
    correlation_id: str | None
    parent: ExecutionContext | None = None
    # Values plug-ins and the request share; a Web API request's `?tag=` arrives as `tag`.
    shared_variables: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        """The row as best known after the change: images first, the Target's changes on top."""
        merged: dict[str, Any] = {}
        for image in (*self.pre_images.values(), *self.post_images.values()):
            merged.update(image.attributes)
        if isinstance(self.target, Entity):
            merged.update(self.target.attributes)
        return merged

    def changed_attributes(self) -> set[str]:
        """The columns this message *sent* (an Update's Target holds only those). Dataverse
        writes every column a client sends, even unchanged: compare with `before` to know
        whether a value changed (docs/dataverse-mapping.md)."""
        return set(self.target.attributes) if isinstance(self.target, Entity) else set()

    def before(self, column: str) -> tuple[bool, Any]:
        """`(True, value)` when a pre-image carries the column (its value before this
        message), else `(False, None)`: without one, what the row held is unknown."""
        for image in self.pre_images.values():
            if column in image.attributes:
                return True, image.attributes[column]
        return False, None

    def shared_variable(self, key: str) -> Any:
        """A shared variable of this context or the nearest parent that has it (a request's
        `tag` is set where the request entered the pipeline)."""
        context: ExecutionContext | None = self
        while context is not None:
            if key in context.shared_variables:
                return context.shared_variables[key]
            context = context.parent
        return None


def looks_like_dataverse(payload: dict[str, Any]) -> bool:
    return sum(key in payload for key in _SIGNATURE_KEYS) >= 2


def parse_context(payload: dict[str, Any], *, _depth: int = 0) -> ExecutionContext:
    message_name = payload.get("MessageName")
    table = payload.get("PrimaryEntityName")
    if not isinstance(message_name, str) or not message_name:
        raise DataverseFormatError("The Dataverse context has no MessageName")
    if not isinstance(table, str) or not table:
        raise DataverseFormatError("The Dataverse context has no PrimaryEntityName")
    inputs = _pairs(payload.get("InputParameters"))
    parent_payload = payload.get("ParentContext")
    parent = None
    # ParentContext nests; a chain deeper than a few levels is not something we need to read.
    if isinstance(parent_payload, dict) and _depth < 4:
        try:
            parent = parse_context(parent_payload, _depth=_depth + 1)
        except DataverseFormatError:
            parent = None
    extension = payload.get("OwningExtension")
    return ExecutionContext(
        message_name=message_name,
        primary_entity_name=table.lower(),
        primary_entity_id=_guid(payload.get("PrimaryEntityId")),
        target=_target(inputs.get("Target")),
        pre_images=_images(payload.get("PreEntityImages")),
        post_images=_images(payload.get("PostEntityImages")),
        user_id=_guid(payload.get("UserId")),
        initiating_user_id=_guid(payload.get("InitiatingUserId")),
        organization_id=_guid(payload.get("OrganizationId")),
        depth=payload.get("Depth") if isinstance(payload.get("Depth"), int) else None,
        operation_id=_guid(payload.get("OperationId")),
        owning_extension_id=_guid(extension.get("Id")) if isinstance(extension, dict) else None,
        operation_created_on=decode_operation_created_on(payload.get("OperationCreatedOn")),
        correlation_id=_guid(payload.get("CorrelationId")),
        parent=parent,
        shared_variables=_pairs(payload.get("SharedVariables")),
    )


def decode_value(value: Any) -> Any:
    """One attribute value as a Python value. Never raises: unknown shapes pass through."""
    if isinstance(value, str):
        match = _DATE.match(value)
        if match:
            return _from_millis(match.group(1))
        return value
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    type_name = str(value.get("__type", "")).split(":", 1)[0]
    if type_name == "OptionSetValue":
        return value.get("Value")
    if type_name == "Money":
        return _decimal(value.get("Value"))
    untyped_reference = not type_name and {"LogicalName", "Id"} <= value.keys()
    if type_name == "EntityReference" or (untyped_reference and "Attributes" not in value):
        reference_id = _guid(value.get("Id"))
        if reference_id is None:
            return None
        name = value.get("Name")
        return EntityRef(
            str(value.get("LogicalName") or ""),
            reference_id,
            name if isinstance(name, str) else None,
        )
    if type_name == "EntityCollection":
        entities = value.get("Entities")
        return (
            [_entity(item) for item in entities if isinstance(item, dict)]
            if isinstance(entities, list)
            else []
        )
    if type_name == "Entity" or "Attributes" in value:
        return _entity(value)
    if "Value" in value:
        # An unknown wrapper (BooleanManagedProperty, a newer type...): its value is what matters.
        return decode_value(value["Value"])
    return value


def decode_operation_created_on(value: Any) -> datetime | None:
    """`OperationCreatedOn` as an instant. With an offset the number is not the UTC instant:
    `/Date(ms-0700)/` means ms + (-7 h), which is what matches the row's `modifiedon`."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value)
    if not match:
        return None
    offset = timedelta()
    if match.group(2):
        offset = timedelta(hours=int(match.group(3)), minutes=int(match.group(4)))
        if match.group(2) == "-":
            offset = -offset
    return _from_millis(match.group(1), offset)


def _from_millis(millis: str, offset: timedelta = timedelta()) -> datetime | None:
    """Epoch milliseconds (as written) plus an offset; None when no datetime can hold it."""
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + (timedelta(milliseconds=int(millis)) + offset)
    except (OverflowError, ValueError):
        # ValueError: more digits than int() converts from text (a junk or hostile value).
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _guid(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return normalize_id(value.strip()).lower()


def _pairs(value: Any) -> dict[str, Any]:
    """A WCF dictionary (`[{"key": k, "value": v}]`) as a dict; junk entries are ignored."""
    if isinstance(value, dict):
        return dict(value)
    result: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                result[item["key"]] = item.get("value")
    return result


def _entity(value: dict[str, Any]) -> Entity:
    attributes = {
        key.lower(): decode_value(raw) for key, raw in _pairs(value.get("Attributes")).items()
    }
    formatted = {
        key.lower(): raw
        for key, raw in _pairs(value.get("FormattedValues")).items()
        if isinstance(raw, str)
    }
    return Entity(
        logical_name=str(value.get("LogicalName") or "").lower(),
        id=_guid(value.get("Id")),
        attributes=attributes,
        formatted_values=formatted,
    )


def _target(value: Any) -> Entity | EntityRef | None:
    if not isinstance(value, dict):
        return None
    decoded = decode_value(value)
    if isinstance(decoded, Entity | EntityRef):
        return decoded
    return None


def _images(value: Any) -> dict[str, Entity]:
    return {
        alias: _entity(image) for alias, image in _pairs(value).items() if isinstance(image, dict)
    }
