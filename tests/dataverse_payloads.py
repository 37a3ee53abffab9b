"""Builders for Dataverse webhook bodies (`RemoteExecutionContext`) in the WCF JSON Dataverse posts.

The shape follows Microsoft's documented sample (`fixtures/dataverse/contact-update-async.json`)
and docs/dataverse-mapping.md: dictionaries as lists of `{"key", "value"}`, `__type`d entities, option sets,
money and lookups, dates as `/Date(ms)/`. Attribute values passed to `dataverse_context` are
already-encoded wire values: build them with `date`, `option`, `options`, `money`, `lookup` and
`entity_collection`, or pass plain JSON values (text, numbers, booleans, GUID strings, None).

    from dataverse_payloads import dataverse_context, lookup, option

    body = dataverse_context(
        "Create", "hlf_membership", MEMBERSHIP_ID,
        {"hlf_contactid": lookup("contact", CONTACT_ID), "hlf_role": option(100000001)},
        modified_on=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )

Every call returns a fresh dict: tests may delete or change keys to build broken variants.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
ENTITY_TYPE = f"Entity:{CONTRACTS}"
ENTITY_REFERENCE_TYPE = f"EntityReference:{CONTRACTS}"
ENTITY_COLLECTION_TYPE = f"EntityCollection:{CONTRACTS}"
OPTION_SET_VALUE_TYPE = f"OptionSetValue:{CONTRACTS}"
MONEY_TYPE = f"Money:{CONTRACTS}"

# Stable identities of the Dataverse environment the builders pretend to be.
DEFAULT_ORGANIZATION_ID = "0a5c9c1b-7e3b-4a3e-9f4b-2b1d6e3f4a10"
DEFAULT_ORGANIZATION_NAME = "org2f3a1c"
DEFAULT_BUSINESS_UNIT_ID = "e2b9dd85-e89e-e711-8122-000d3aa2331c"
# A person working in Dynamics (not the integration's application user).
DEFAULT_USER_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
# The registered step (`sdkmessageprocessingstep`) that posts the webhook.
DEFAULT_STEP_ID = "33333333-4444-4555-8666-777777777777"

# What a synchronous step may send as its OperationId: there is no system job behind it.
ZERO_GUID = "00000000-0000-0000-0000-000000000000"

PRE_IMAGE_ALIAS = "PreImage"
POST_IMAGE_ALIAS = "PostImage"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


# --- attribute encoders ---------------------------------------------------------------------


def millis(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("Dataverse dates are instants: pass an aware datetime")
    return (moment - _EPOCH) // _MILLISECOND


def date(moment: datetime) -> str:
    """A date/time column: `/Date(ms)/`, milliseconds since the epoch, UTC."""
    return f"/Date({millis(moment)})/"


def operation_date(moment: datetime, offset_minutes: int = 0) -> str:
    """`OperationCreatedOn` as Dataverse writes it: `/Date(ms+hhmm)/`.

    With an offset the number is NOT the UTC instant (docs/dataverse-mapping.md): the instant is ms + offset,
    so for a given instant the number written is instant - offset.
    """
    if offset_minutes == 0:
        return date(moment)
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"/Date({millis(moment) - offset_minutes * 60_000}{sign}{hours:02d}{minutes:02d})/"


def option(value: int) -> dict[str, Any]:
    """A choice, `statecode` or `statuscode` value."""
    return {"__type": OPTION_SET_VALUE_TYPE, "Value": value}


def options(*values: int) -> list[dict[str, Any]]:
    """A multi-select choice: an array of OptionSetValues."""
    return [option(value) for value in values]


def money(amount: float | int | str | Decimal | None) -> dict[str, Any]:
    """A currency value. Decimals are written as JSON numbers, as .NET does."""
    value: Any = float(amount) if isinstance(amount, Decimal) else amount
    return {"__type": MONEY_TYPE, "Value": value}


def lookup(table: str, row_id: str, name: str | None = None) -> dict[str, Any]:
    """A lookup, customer or owner column (an EntityReference); also a Delete's Target."""
    return {
        "__type": ENTITY_REFERENCE_TYPE,
        "Id": row_id,
        "KeyAttributes": [],
        "LogicalName": table,
        "Name": name,
        "RowVersion": None,
    }


def entity(
    table: str,
    row_id: str | None,
    attributes: Mapping[str, Any],
    *,
    formatted_values: Mapping[str, str] | None = None,
    typed: bool = True,
    row_version: str | None = None,
) -> dict[str, Any]:
    """An Entity. Images in Microsoft's sample carry no `__type`: pass `typed=False` for those."""
    body: dict[str, Any] = {}
    if typed:
        body["__type"] = ENTITY_TYPE
    body.update(
        {
            "Attributes": pairs(attributes),
            "EntityState": None,
            "FormattedValues": pairs(formatted_values or {}),
            "Id": row_id,
            "KeyAttributes": [],
            "LogicalName": table,
            "RelatedEntities": [],
            "RowVersion": row_version,
        }
    )
    return body


def entity_collection(*entities: dict[str, Any], entity_name: str | None = None) -> dict[str, Any]:
    """An EntityCollection column (e.g. an activity's party list) of `entity(...)` dicts."""
    return {
        "__type": ENTITY_COLLECTION_TYPE,
        "Entities": list(entities),
        "EntityName": entity_name,
        "MinActiveRowVersion": "-1",
        "MoreRecords": False,
        "PagingCookie": None,
        "TotalRecordCount": -1,
        "TotalRecordCountLimitExceeded": False,
    }


def pairs(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A .NET dictionary as WCF JSON writes it: a list of `{"key", "value"}`."""
    return [{"key": key, "value": value} for key, value in values.items()]


# --- the whole context ----------------------------------------------------------------------


def dataverse_context(
    message: str,
    table: str,
    row_id: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    modified_on: datetime | None = None,
    operation_created_on: datetime | str | None = None,
    user_id: str = DEFAULT_USER_ID,
    initiating_user_id: str | None = None,
    organization_id: str = DEFAULT_ORGANIZATION_ID,
    operation_id: str | None = None,
    step_id: str = DEFAULT_STEP_ID,
    correlation_id: str | None = None,
    pre_image: Mapping[str, Any] | None = None,
    post_image: Mapping[str, Any] | None = None,
    target_is_reference: bool | None = None,
    formatted_values: Mapping[str, str] | None = None,
    extra_input_parameters: Mapping[str, Any] | None = None,
    parent_context: dict[str, Any] | None = None,
    depth: int = 1,
    mode: int = 1,
    stage: int = 40,
    shared_variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `RemoteExecutionContext` as a Dataverse webhook step posts it.

    - `attributes` become the Target's columns (an Update's Target holds only the changed ones);
      the row's primary key column (`<table>id`) is added as Dataverse does, and `modifiedon`
      when `modified_on` is given.
    - The Target is an EntityReference when `target_is_reference` is true; by default that is
      the case for `Delete` only. A reference Target takes no attributes.
    - `pre_image` / `post_image` are attribute dicts registered under the aliases
      `PreImage` / `PostImage`.
    - `operation_created_on` defaults to `modified_on`, else now; a string is written as is
      (e.g. `operation_date(moment, -420)` for an offset).
    - `operation_id` defaults to a fresh GUID: each call is a new delivery. With `mode=0`
      (synchronous) `RequestId` equals it, as in Dataverse (whose synchronous steps may also
      send an all-zero `OperationId`: see `ZERO_GUID`).
    - `shared_variables`: the context's `SharedVariables` (a Web API request's `?tag=` arrives
      there as `tag`).
    """
    attributes = dict(attributes or {})
    reference = message == "Delete" if target_is_reference is None else target_is_reference
    if reference and (attributes or modified_on is not None):
        raise ValueError("an EntityReference Target carries no attributes")
    operation_id = operation_id or str(uuid.uuid4())
    if operation_created_on is None:
        operation_created_on = modified_on or datetime.now(UTC)

    if reference:
        target = lookup(table, row_id)
    else:
        columns = {f"{table}id": row_id, **attributes}
        if modified_on is not None:
            columns["modifiedon"] = date(modified_on)
        target = entity(table, row_id, columns, formatted_values=formatted_values)

    input_parameters: dict[str, Any] = {"Target": target}
    input_parameters.update(extra_input_parameters or {})
    output_parameters = {"id": row_id} if message == "Create" else {}
    pre_images = {} if pre_image is None else {PRE_IMAGE_ALIAS: pre_image}
    post_images = {} if post_image is None else {POST_IMAGE_ALIAS: post_image}

    return {
        "BusinessUnitId": DEFAULT_BUSINESS_UNIT_ID,
        "CorrelationId": correlation_id or str(uuid.uuid4()),
        "Depth": depth,
        "InitiatingUserId": initiating_user_id or user_id,
        "InputParameters": pairs(input_parameters),
        "IsExecutingOffline": False,
        "IsInTransaction": mode == 0,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": mode,
        "OperationCreatedOn": (
            operation_created_on
            if isinstance(operation_created_on, str)
            else date(operation_created_on)
        ),
        "OperationId": operation_id,
        "OrganizationId": organization_id,
        "OrganizationName": DEFAULT_ORGANIZATION_NAME,
        "OutputParameters": pairs(output_parameters),
        "OwningExtension": {
            "Id": step_id,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": f"portal-sync: {table} {message}",
            "RowVersion": None,
        },
        "ParentContext": parent_context,
        "PostEntityImages": pairs(
            {
                alias: entity(table, row_id, image, typed=False)
                for alias, image in post_images.items()
            }
        ),
        "PreEntityImages": pairs(
            {
                alias: entity(table, row_id, image, typed=False)
                for alias, image in pre_images.items()
            }
        ),
        "PrimaryEntityId": row_id,
        "PrimaryEntityName": table,
        "RequestId": operation_id if mode == 0 else None,
        "SecondaryEntityName": "none",
        "SharedVariables": pairs(shared_variables or {}),
        "Stage": stage,
        "UserId": user_id,
    }


def set_state_parent(
    table: str, row_id: str, state: int, status: int, *, user_id: str = DEFAULT_USER_ID
) -> dict[str, Any]:
    """The `ParentContext` of a deactivation: a `SetState` request whose child is the Update."""
    return {
        "BusinessUnitId": DEFAULT_BUSINESS_UNIT_ID,
        "CorrelationId": str(uuid.uuid4()),
        "Depth": 1,
        "InitiatingUserId": user_id,
        "InputParameters": pairs(
            {
                "EntityMoniker": lookup(table, row_id),
                "State": option(state),
                "Status": option(status),
            }
        ),
        "MessageName": "SetState",
        "Mode": 0,
        "OperationId": str(uuid.uuid4()),
        "OrganizationId": DEFAULT_ORGANIZATION_ID,
        "OwningExtension": None,
        "ParentContext": None,
        "PostEntityImages": [],
        "PreEntityImages": [],
        "PrimaryEntityId": row_id,
        "PrimaryEntityName": table,
        "SharedVariables": [],
        "Stage": 30,
        "UserId": user_id,
    }


def size_exceeded(context: dict[str, Any]) -> dict[str, Any]:
    """The context as Dataverse posts it when it exceeded 256 KB: `InputParameters`, both image
    lists and `ParentContext` stripped (the `x-ms-dynamics-msg-size-exceeded` header is set)."""
    return {
        **context,
        "InputParameters": [],
        "PreEntityImages": [],
        "PostEntityImages": [],
        "ParentContext": None,
    }
