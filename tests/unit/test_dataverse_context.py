"""Reading Dataverse's `RemoteExecutionContext` (WCF JSON) into plain values.

The documented sample must parse field by field; every wire encoding in docs/dataverse-mapping.md must decode
to a useful Python value; and no body, however odd, may crash the parser with anything but a
`DataverseFormatError` (an event lost to a parser crash is lost for good: Dataverse does not
retry a 500).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from conftest import ROOT
from dataverse_payloads import (
    DEFAULT_ORGANIZATION_ID,
    DEFAULT_STEP_ID,
    DEFAULT_USER_ID,
    dataverse_context,
    date,
    entity,
    entity_collection,
    lookup,
    money,
    operation_date,
    option,
    options,
    set_state_parent,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from portal_sync.inbound.dataverse.context import (
    DataverseFormatError,
    Entity,
    EntityRef,
    ExecutionContext,
    decode_operation_created_on,
    decode_value,
    looks_like_dataverse,
    parse_context,
)
from portal_sync.inbound.dataverse.mapping import DEFAULT_FIELD_MAPPING, MappingContext, map_context
from portal_sync.inbound.events import NotApplicable, SyncEvent, Unusable

SAMPLE = ROOT / "tests" / "fixtures" / "dataverse" / "contact-update-async.json"
SAMPLE_CONTACT = "6d81597f-0f9f-e711-8122-000d3aa2331c"
SAMPLE_USER = "11bb11bb-cc22-dd33-ee44-55ff55ff55ff"
CONTACT = "8f1c2a3b-4d5e-4f60-9a7b-1c2d3e4f5a6b"
ACCOUNT = "a1b2c3d4-0000-4000-8000-00000000aaaa"
APP_USER = "9a9a9a9a-0000-4000-8000-000000000001"


def sample() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(SAMPLE.read_text())
    return payload


# --- Microsoft's documented sample ----------------------------------------------------------


def test_documented_sample_identifies_the_change() -> None:
    """What was changed, on which row: the envelope the whole sync depends on."""
    ctx = parse_context(sample())

    assert ctx.message_name == "Update"
    assert ctx.primary_entity_name == "contact"
    assert ctx.primary_entity_id == SAMPLE_CONTACT


def test_documented_sample_target_is_the_changed_contact() -> None:
    ctx = parse_context(sample())

    assert isinstance(ctx.target, Entity)
    assert ctx.target.logical_name == "contact"
    assert ctx.target.id == SAMPLE_CONTACT
    assert ctx.target.attributes["firstname"] == "James"
    assert ctx.target.attributes["fullname"] == "James Glynn (sample)"
    # Dates and lookups inside the Target decode too; a null column stays None (cleared).
    assert ctx.target.attributes["modifiedon"] == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)
    assert ctx.target.attributes["modifiedby"] == EntityRef("systemuser", SAMPLE_USER, None)
    assert "modifiedonbehalfby" in ctx.target.attributes
    assert ctx.target.attributes["modifiedonbehalfby"] is None


def test_documented_sample_post_image_is_read_under_its_alias() -> None:
    """Async steps register images under an alias; the rest of the row lives there."""
    ctx = parse_context(sample())

    assert ctx.pre_images == {}
    assert set(ctx.post_images) == {"AsynchronousStepPrimaryName"}
    image = ctx.post_images["AsynchronousStepPrimaryName"]
    assert image.logical_name == "contact"
    assert image.id == SAMPLE_CONTACT
    assert image.attributes == {"fullname": "James Glynn (sample)", "contactid": SAMPLE_CONTACT}


def test_documented_sample_carries_who_where_and_which_delivery() -> None:
    """User ids spot echoes, OrganizationId the environment, Depth loops, and OperationId with
    the step's id names one delivery (never the CorrelationId, shared by a whole chain)."""
    ctx = parse_context(sample())

    assert ctx.user_id == SAMPLE_USER
    assert ctx.initiating_user_id == SAMPLE_USER
    assert ctx.organization_id == "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    assert ctx.depth == 1
    assert ctx.operation_id == "4af10637-4ea2-e711-8122-000d3aa2331c"
    assert ctx.owning_extension_id == "75417616-4ea2-e711-8122-000d3aa2331c"
    assert ctx.correlation_id == "aaaa0000-bb11-2222-33cc-444444dddddd"


def test_documented_sample_parent_context_is_parsed() -> None:
    ctx = parse_context(sample())

    assert ctx.parent is not None
    assert ctx.parent.message_name == "Update"
    assert ctx.parent.primary_entity_name == "contact"
    assert isinstance(ctx.parent.target, Entity)
    assert ctx.parent.target.attributes["firstname"] == "James"
    assert ctx.parent.parent is None  # "ParentContext": null ends the chain


def test_documented_sample_operation_created_on_applies_its_offset() -> None:
    """`/Date(1506409448000-0700)/` is ms + offset (docs/dataverse-mapping.md): 00:04:08 UTC, one second after
    the row's modifiedon, not 07:04:08 as a naive reading of the number would say."""
    ctx = parse_context(sample())

    assert ctx.operation_created_on == datetime(2017, 9, 26, 0, 4, 8, tzinfo=UTC)


def test_a_set_state_parent_context_is_readable() -> None:
    """A deactivation arrives as an Update whose parent is the SetState request."""
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"statecode": option(1), "statuscode": option(2)},
        parent_context=set_state_parent("contact", CONTACT, 1, 2),
    )

    ctx = parse_context(payload)

    assert ctx.parent is not None
    assert ctx.parent.message_name == "SetState"
    assert ctx.parent.target is None  # SetState has an EntityMoniker, not a Target


def test_the_pre_image_says_what_a_column_held_before_the_update() -> None:
    """An Update's Target holds what was sent; only the pre-image says whether it changed."""
    payload = json.loads(
        (
            ROOT / "tests" / "fixtures" / "dataverse" / "contact-resave-unchanged-state.json"
        ).read_text()
    )

    ctx = parse_context(payload)

    assert "statecode" in ctx.changed_attributes()
    assert ctx.before("statecode") == (True, 0)
    assert ctx.before("hlf_nosuchcolumn") == (False, None)
    assert parse_context(dataverse_context("Update", "contact", CONTACT, {})).before(
        "statecode"
    ) == (False, None)


def test_shared_variables_are_read_here_or_from_the_parent_context() -> None:
    """A Web API request's `?tag=` is a shared variable of the context the request entered."""
    tagged = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "Kari"}, shared_variables={"tag": "x"}
    )
    child = dataverse_context("Update", "contact", CONTACT, {"firstname": "Kari"}, depth=2)
    child["ParentContext"] = tagged
    child["SharedVariables"] = [{"key": "IsAutoTransact", "value": True}]

    assert parse_context(tagged).shared_variable("tag") == "x"
    assert parse_context(child).shared_variable("tag") == "x"
    assert parse_context(child).shared_variable("IsAutoTransact") is True
    assert parse_context(sample()).shared_variable("tag") is None


def test_a_parent_context_without_an_envelope_is_dropped_not_fatal() -> None:
    payload = dataverse_context("Update", "contact", CONTACT, {"firstname": "Kari"})
    payload["ParentContext"] = {"Depth": 1, "InputParameters": []}

    ctx = parse_context(payload)

    assert ctx.parent is None
    assert ctx.message_name == "Update"


# --- OperationCreatedOn -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("/Date(1506409448000-0700)/", datetime(2017, 9, 26, 0, 4, 8, tzinfo=UTC)),
        ("/Date(1506409448000+0130)/", datetime(2017, 9, 26, 8, 34, 8, tzinfo=UTC)),
        ("/Date(1506409448000+0000)/", datetime(2017, 9, 26, 7, 4, 8, tzinfo=UTC)),
        ("/Date(1506409448000)/", datetime(2017, 9, 26, 7, 4, 8, tzinfo=UTC)),
        ("/Date(1506409448123)/", datetime(2017, 9, 26, 7, 4, 8, 123000, tzinfo=UTC)),
        ("/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
        # Just past datetime's range as a number, back inside it once the offset is applied.
        ("/Date(253402300800000-0100)/", datetime(9999, 12, 31, 23, 0, tzinfo=UTC)),
    ],
)
def test_operation_created_on_is_milliseconds_plus_offset(wire: str, expected: datetime) -> None:
    """A zero or absent offset leaves the plain UTC milliseconds; otherwise the offset is added."""
    assert decode_operation_created_on(wire) == expected


@pytest.mark.parametrize(
    "wire",
    [None, "", 1506409448000, "2017-09-26T00:04:08Z", "/Date(abc)/", "Date(1506409448000)", {}],
)
def test_operation_created_on_that_is_not_a_wcf_date_is_unknown(wire: Any) -> None:
    assert decode_operation_created_on(wire) is None


@pytest.mark.parametrize(
    "wire",
    [
        "/Date(253402300799000+0100)/",  # 9999-12-31T23:59:59 plus an hour: past datetime.max
        "/Date(-62135596800000-0100)/",  # 0001-01-01T00:00:00 minus an hour: before datetime.min
        "/Date(-99999999999999999999-0100)/",
        "/Date(99999999999999999999)/",
        "/Date(" + "9" * 5000 + ")/",  # more digits than Python's int() accepts from text
    ],
)
def test_operation_created_on_out_of_range_is_unknown_not_a_crash(wire: str) -> None:
    assert decode_operation_created_on(wire) is None


def test_operation_created_on_builder_round_trips_through_the_decoder() -> None:
    """The payload builder writes offsets the way Dataverse does (instant - offset)."""
    moment = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)

    for offset in (-420, 0, 60, 330):
        assert decode_operation_created_on(operation_date(moment, offset)) == moment


# --- attribute encodings (docs/dataverse-mapping.md) -------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        pytest.param("Kari", "Kari", id="text"),
        pytest.param("Line one\nline two", "Line one\nline two", id="memo"),
        pytest.param(42, 42, id="whole number"),
        pytest.param(-3.25, -3.25, id="float"),
        pytest.param(True, True, id="two-options"),
        pytest.param(False, False, id="two-options false"),
        pytest.param(CONTACT, CONTACT, id="GUID string"),
        pytest.param(None, None, id="cleared"),
        pytest.param(
            "/Date(1608015600000)/", datetime(2020, 12, 15, 7, 0, tzinfo=UTC), id="date/time"
        ),
        pytest.param("/Date(0)/", datetime(1970, 1, 1, tzinfo=UTC), id="epoch"),
        pytest.param(option(1), 1, id="choice"),
        pytest.param(option(100000001), 100000001, id="custom choice"),
        pytest.param(options(100000000, 100000002), [100000000, 100000002], id="multi-select"),
        pytest.param(options(), [], id="multi-select empty"),
        pytest.param(money(21.5), Decimal("21.5"), id="money"),
        pytest.param(money(0), Decimal("0"), id="money zero"),
        pytest.param(money("21.5"), Decimal("21.5"), id="money as text"),
        pytest.param(money("kr 21,50"), None, id="money junk"),
        pytest.param(money(None), None, id="money null"),
        pytest.param(money(True), None, id="money boolean"),
        pytest.param({"__type": "Money:x", "Value": {"a": 1}}, None, id="money object"),
        pytest.param({"__type": "Money:x"}, None, id="money without value"),
        pytest.param(
            lookup("account", ACCOUNT.upper(), "Oslo lokallag"),
            EntityRef("account", ACCOUNT, "Oslo lokallag"),
            id="lookup",
        ),
        pytest.param(
            lookup("systemuser", ACCOUNT), EntityRef("systemuser", ACCOUNT, None), id="owner"
        ),
        pytest.param({**lookup("account", ACCOUNT), "Id": None}, None, id="lookup without id"),
        pytest.param(
            {"__type": "BooleanManagedProperty:x", "Value": True, "CanBeChanged": False},
            True,
            id="unknown type with Value",
        ),
        pytest.param(
            {"__type": "Wrapper:x", "Value": option(3)}, 3, id="unknown type wrapping a choice"
        ),
        pytest.param(
            {"__type": "AliasedValue:x", "AttributeLogicalName": "name"},
            {"__type": "AliasedValue:x", "AttributeLogicalName": "name"},
            id="unknown type without Value",
        ),
        pytest.param({"something": 1}, {"something": 1}, id="plain object"),
        pytest.param("/Date(soon)/", "/Date(soon)/", id="text that only looks like a date"),
    ],
)
def test_decode_value_reads_every_documented_encoding(wire: Any, expected: Any) -> None:
    decoded = decode_value(wire)

    assert decoded == expected
    assert type(decoded) is type(expected)


def test_decoded_dates_are_aware_utc_instants() -> None:
    """Naive datetimes would break ordering against `occurred_at` values from elsewhere."""
    decoded = decode_value(date(datetime(2026, 11, 20, 9, 30, 15, 250000, tzinfo=UTC)))

    assert decoded == datetime(2026, 11, 20, 9, 30, 15, 250000, tzinfo=UTC)
    assert decoded.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "wire",
    ["/Date(" + "9" * 5000 + ")/", "/Date(99999999999999999999)/", "/Date(-99999999999999999)/"],
)
def test_a_date_column_out_of_range_does_not_crash(wire: str) -> None:
    """One odd column must never lose the whole event."""
    assert decode_value(wire) is None


def test_entity_collection_is_a_list_of_entities() -> None:
    """Activity-party lists: each party is an Entity with its own (decoded) attributes."""
    parties = entity_collection(
        entity(
            "activityparty",
            None,
            {
                "partyid": lookup("contact", CONTACT.upper(), "Kari"),
                "participationtypemask": option(2),
            },
        ),
        entity("activityparty", None, {"addressused": "kari@example.org"}),
    )

    decoded = decode_value(parties)

    assert decoded == [
        Entity(
            "activityparty",
            None,
            {"partyid": EntityRef("contact", CONTACT, "Kari"), "participationtypemask": 2},
        ),
        Entity("activityparty", None, {"addressused": "kari@example.org"}),
    ]


@pytest.mark.parametrize(
    "wire",
    [
        {"__type": "EntityCollection:x", "Entities": None},
        {"__type": "EntityCollection:x"},
        {"__type": "EntityCollection:x", "Entities": ["junk", 1, None]},
    ],
)
def test_entity_collection_without_entities_is_empty(wire: Any) -> None:
    assert decode_value(wire) == []


def test_entity_formatted_values_and_keys_are_read() -> None:
    decoded = decode_value(
        entity(
            "Contact",
            CONTACT.upper(),
            {"StateCode": option(1), "FirstName": "Kari"},
            formatted_values={"statecode": "Inactive"},
        )
    )

    assert decoded == Entity(
        "contact",
        CONTACT,
        {"statecode": 1, "firstname": "Kari"},
        {"statecode": "Inactive"},
    )


# --- normalisation and merging ----------------------------------------------------------------


def test_upper_case_guids_are_normalised_to_lower_case() -> None:
    """Dataverse spells GUIDs in either case; one spelling keeps members from being duplicated."""
    contact = CONTACT.upper()
    payload = dataverse_context(
        "Update",
        "Contact",
        contact,
        {"parentcustomerid": lookup("account", ACCOUNT.upper())},
        user_id=DEFAULT_USER_ID.upper(),
        initiating_user_id="{" + DEFAULT_USER_ID.upper() + "}",
        organization_id=DEFAULT_ORGANIZATION_ID.upper(),
        operation_id="4AF10637-4EA2-E711-8122-000D3AA2331C",
        step_id=DEFAULT_STEP_ID.upper(),
        correlation_id="AAAA0000-BB11-2222-33CC-444444DDDDDD",
        post_image={"contactid": contact},
    )

    ctx = parse_context(payload)

    assert ctx.primary_entity_name == "contact"
    assert ctx.primary_entity_id == CONTACT
    assert isinstance(ctx.target, Entity)
    assert ctx.target.id == CONTACT
    assert ctx.target.attributes["parentcustomerid"] == EntityRef("account", ACCOUNT, None)
    assert ctx.post_images["PostImage"].id == CONTACT
    assert ctx.user_id == DEFAULT_USER_ID
    assert ctx.initiating_user_id == DEFAULT_USER_ID
    assert ctx.organization_id == DEFAULT_ORGANIZATION_ID
    assert ctx.operation_id == "4af10637-4ea2-e711-8122-000d3aa2331c"
    assert ctx.owning_extension_id == DEFAULT_STEP_ID
    assert ctx.correlation_id == "aaaa0000-bb11-2222-33cc-444444dddddd"


def test_attributes_merge_pre_image_then_post_image_then_target() -> None:
    """An Update's Target holds only the changed columns; the images hold the rest of the row,
    and the Target is the newest word on a column."""
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Target"},
        pre_image={"firstname": "Pre", "lastname": "Pre", "emailaddress1": "pre@example.org"},
        post_image={"firstname": "Post", "lastname": "Post"},
    )

    ctx = parse_context(payload)

    merged = ctx.attributes()
    assert merged["firstname"] == "Target"
    assert merged["lastname"] == "Post"
    assert merged["emailaddress1"] == "pre@example.org"


def test_changed_attributes_are_the_targets_columns_only() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"statecode": option(1), "statuscode": option(2)},
        pre_image={"statecode": option(0), "firstname": "Kari"},
        post_image={"statecode": option(1), "lastname": "Nordmann"},
    )

    ctx = parse_context(payload)

    assert ctx.changed_attributes() == {"contactid", "statecode", "statuscode"}


def test_a_delete_changes_no_columns_and_keeps_its_reference_target() -> None:
    payload = dataverse_context(
        "Delete",
        "hlf_membership",
        CONTACT.upper(),
        pre_image={"hlf_contactid": lookup("contact", ACCOUNT)},
    )

    ctx = parse_context(payload)

    assert ctx.target == EntityRef("hlf_membership", CONTACT, None)
    assert ctx.changed_attributes() == set()
    assert ctx.attributes() == {"hlf_contactid": EntityRef("contact", ACCOUNT, None)}


def test_input_parameters_as_a_plain_object_are_read_too() -> None:
    """Some relays re-serialise the context with ordinary JSON objects for dictionaries."""
    payload = dataverse_context("Update", "contact", CONTACT, {"firstname": "Kari"})
    payload["InputParameters"] = {"Target": entity("contact", CONTACT, {"firstname": "Kari"})}

    ctx = parse_context(payload)

    assert isinstance(ctx.target, Entity)
    assert ctx.target.attributes == {"firstname": "Kari"}


def test_extra_input_parameters_and_junk_entries_are_ignored() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        extra_input_parameters={"SuppressDuplicateDetection": False, "tag": "relay"},
    )
    payload["InputParameters"] += [None, "junk", {"value": 1}, {"key": 3, "value": 4}]

    ctx = parse_context(payload)

    assert isinstance(ctx.target, Entity)
    assert ctx.target.attributes["firstname"] == "Kari"


# --- the envelope is required -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["MessageName", "PrimaryEntityName"])
@pytest.mark.parametrize("value", [None, "", 7, ["Update"], "missing"])
def test_a_context_without_message_or_table_is_a_format_error(key: str, value: Any) -> None:
    """Without these we cannot tell what changed: the event is unusable, not guessed at."""
    payload = sample()
    if value == "missing":
        del payload[key]
    else:
        payload[key] = value

    with pytest.raises(DataverseFormatError, match=key):
        parse_context(payload)


def test_only_the_envelope_is_required() -> None:
    ctx = parse_context({"MessageName": "Update", "PrimaryEntityName": "contact"})

    assert ctx.target is None
    assert ctx.primary_entity_id is None
    assert ctx.operation_created_on is None
    assert ctx.attributes() == {}


# --- telling the two body formats apart --------------------------------------------------------


def test_the_documented_sample_looks_like_dataverse() -> None:
    assert looks_like_dataverse(sample())


def test_a_built_context_looks_like_dataverse() -> None:
    assert looks_like_dataverse(dataverse_context("Create", "contact", CONTACT, {}))


def test_a_portal_event_does_not_look_like_dataverse() -> None:
    portal_event = {
        "type": "membership.created",
        "occurred_at": "2026-11-20T10:00:00Z",
        "member": {"dynamics_contact_id": CONTACT, "first_name": "Kari"},
    }

    assert not looks_like_dataverse(portal_event)


# --- robustness: nothing but DataverseFormatError, ever ----------------------------------------

_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_wcf_dates = st.builds(
    lambda ms, offset: f"/Date({ms}{offset})/",
    # Around datetime's range too: an offset must not push a valid number out of it.
    st.integers(min_value=-(10**20), max_value=10**20)
    | st.sampled_from([253402300799999, -62135596800000]),
    st.sampled_from(["", "+0000", "-0700", "+0130", "+9959", "-9959"]),
)
_keys = st.sampled_from(
    ["__type", "Value", "Id", "LogicalName", "Name", "Attributes", "Entities", "key", "value"]
) | st.text(max_size=8)
_types = st.sampled_from(
    ["Entity", "EntityReference", "EntityCollection", "OptionSetValue", "Money", "Unknown", ""]
).map(lambda name: f"{name}:http://schemas.microsoft.com/xrm/2011/Contracts")


def _wire_values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """JSON containers, plus containers shaped like the WCF types with junk inside."""
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(_keys, children, max_size=4)
        | st.fixed_dictionaries({"__type": _types, "Value": children})
        | st.fixed_dictionaries(
            {"__type": _types, "Id": children | st.uuids().map(str), "LogicalName": children}
        )
        | st.fixed_dictionaries(
            {"__type": _types},
            optional={"Attributes": _pair_lists(children), "Entities": st.lists(children)},
        )
        | st.fixed_dictionaries({"LogicalName": children, "Id": children})
    )


def _pair_lists(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    pair = st.fixed_dictionaries({}, optional={"key": _columns | values, "value": values}) | values
    return st.lists(pair, max_size=5) | values


_columns = st.sampled_from(
    [
        "firstname",
        "lastname",
        "emailaddress1",
        "mobilephone",
        "statecode",
        "modifiedon",
        "hlf_contactid",
        "hlf_role",
        "hlf_courseid",
        "FirstName",
    ]
) | st.text(max_size=8)
json_values = st.recursive(_json_leaves | _wcf_dates, _wire_values, max_leaves=20)


def _entities(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {},
        optional={
            "__type": _types,
            "Attributes": _pair_lists(values),
            "FormattedValues": _pair_lists(values),
            "Id": values | st.uuids().map(lambda u: str(u).upper()),
            "LogicalName": values | _columns,
        },
    )


_aliases = st.sampled_from(["PreImage", "PostImage", "AsynchronousStepPrimaryName"])
dataverse_like = st.fixed_dictionaries(
    {
        "MessageName": st.sampled_from(["Create", "Update", "Delete", "Associate"]) | st.text(),
        "PrimaryEntityName": (
            st.sampled_from(["contact", "hlf_membership", "hlf_courseenrollment", "account"])
            | st.text()
        ),
    },
    optional={
        "InputParameters": st.lists(
            st.fixed_dictionaries(
                {"key": st.just("Target") | st.text(max_size=5), "value": _entities(json_values)}
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "PreEntityImages": st.lists(
            st.fixed_dictionaries({"key": _aliases, "value": _entities(json_values)}), max_size=2
        )
        | json_values,
        "PostEntityImages": st.lists(
            st.fixed_dictionaries({"key": _aliases, "value": _entities(json_values)}), max_size=2
        )
        | json_values,
        "PrimaryEntityId": st.uuids().map(str) | json_values,
        "UserId": st.uuids().map(str) | json_values,
        "InitiatingUserId": st.uuids().map(str) | json_values,
        "OrganizationId": st.uuids().map(str) | json_values,
        "OperationId": st.uuids().map(str) | json_values,
        "OwningExtension": st.fixed_dictionaries({"Id": json_values}) | json_values,
        "OperationCreatedOn": _wcf_dates | json_values,
        "Depth": st.integers() | json_values,
        "ParentContext": json_values,
    },
)
any_payload = dataverse_like | st.dictionaries(st.text(max_size=8), json_values, max_size=6)

_mapped_columns = st.sampled_from(
    [
        "firstname",
        "lastname",
        "emailaddress1",
        "mobilephone",
        "statecode",
        "statuscode",
        "modifiedon",
        "hlf_contactid",
        "hlf_role",
        "hlf_courseid",
    ]
)
# Values a mapped column may really carry, and some it should not.
_column_values = (
    _json_leaves
    | _wcf_dates
    | st.integers(min_value=-1, max_value=3).map(option)
    | st.sampled_from([100000000, 100000001, 100000002, 100000003, 100000099]).map(option)
    | st.builds(
        lookup,
        st.sampled_from(["contact", "hlf_course"]),
        st.uuids().map(lambda u: str(u).upper()) | st.text(max_size=300),
        st.none() | st.text(max_size=600),
    )
    | st.builds(money, st.floats() | st.text(max_size=5))
    | json_values
)
_rows = st.dictionaries(_mapped_columns | _columns, _column_values, max_size=6)


@st.composite
def built_contexts(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed contexts on the mapped tables, with arbitrary values in the mapped columns."""
    message = draw(st.sampled_from(["Create", "Update", "Delete"]))
    delete = message == "Delete"
    return dataverse_context(
        message,
        draw(st.sampled_from(["contact", "hlf_membership", "hlf_courseenrollment"])),
        draw(st.uuids().map(str) | st.text(max_size=250)),
        {} if delete else draw(_rows),
        modified_on=None if delete else draw(st.none() | st.datetimes(timezones=st.just(UTC))),
        operation_created_on=draw(_wcf_dates | st.datetimes(timezones=st.just(UTC))),
        user_id=draw(st.sampled_from([DEFAULT_USER_ID, APP_USER])),
        pre_image=draw(st.none() | _rows),
        post_image=draw(st.none() | _rows),
    )


@settings(max_examples=200, deadline=None)
@given(payload=any_payload)
def test_parse_context_never_fails_with_anything_but_a_format_error(
    payload: dict[str, Any],
) -> None:
    try:
        ctx = parse_context(payload)
    except DataverseFormatError:
        return
    assert isinstance(ctx, ExecutionContext)


@settings(max_examples=200, deadline=None)
@given(
    payload=built_contexts() | dataverse_like,
    known_contact=st.none() | st.uuids().map(str) | st.text(max_size=300),
    application_users=st.sets(st.sampled_from([APP_USER, APP_USER.upper()])).map(frozenset),
    organization=st.sampled_from([None, DEFAULT_ORGANIZATION_ID.upper()]) | st.uuids().map(str),
    size_exceeded=st.booleans(),
)
def test_mapping_any_parsed_context_never_raises(
    payload: dict[str, Any],
    known_contact: str | None,
    application_users: frozenset[str],
    organization: str | None,
    size_exceeded: bool,
) -> None:
    """Whatever Dataverse sends, the worker gets an event, a skip or an error for admins."""
    try:
        ctx = parse_context(payload)
    except DataverseFormatError:
        return
    mapping = MappingContext(
        field_mapping=DEFAULT_FIELD_MAPPING,
        application_user_ids=application_users,
        dataverse_organization_id=organization,
        size_exceeded=size_exceeded,
        resolve_contact=lambda table, row: known_contact,
    )

    result = map_context(ctx, mapping)

    assert isinstance(result, SyncEvent | NotApplicable | Unusable)
    if isinstance(result, SyncEvent):
        # Ordering compares these instants: they must never be naive.
        assert result.occurred_at.tzinfo is not None
