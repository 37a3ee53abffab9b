"""From a parsed Dataverse change to the sync event it means, through the field mapping.

The mapping decides what HLF's Dynamics changes do to the app: a contact's details, a
membership's role and state, course enrolments. Unmapped things are skipped, echoes of our own
write-backs are skipped, and what cannot be used becomes an error for admins, never a crash.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import ROOT
from dataverse_payloads import (
    DEFAULT_ORGANIZATION_ID,
    DEFAULT_USER_ID,
    dataverse_context,
    lookup,
    money,
    operation_date,
    option,
    set_state_parent,
)
from portal_sync.inbound.dataverse.context import parse_context
from portal_sync.inbound.dataverse.mapping import (
    DEFAULT_FIELD_MAPPING,
    FieldMapping,
    MappingContext,
    RowRead,
    TableMapping,
    entity_set_name,
    map_context,
)
from portal_sync.inbound.events import (
    EventType,
    NotApplicable,
    ParsedEvent,
    SyncEvent,
    Unusable,
)
from pydantic import ValidationError

CAPTURES = ROOT / "tests" / "fixtures" / "dataverse"
SAMPLE = CAPTURES / "contact-update-async.json"
SAMPLE_CONTACT = "6d81597f-0f9f-e711-8122-000d3aa2331c"
SAMPLE_USER = "11bb11bb-cc22-dd33-ee44-55ff55ff55ff"

CONTACT = "8f1c2a3b-4d5e-4f60-9a7b-1c2d3e4f5a6b"
MEMBERSHIP = "c0ffee00-1234-4567-89ab-cdef01234567"
ENROLMENT = "e0e0e0e0-1111-4222-8333-444455556666"
COURSE = "c0c0c0c0-aaaa-4bbb-8ccc-ddddeeeeffff"
APP_USER = "9a9a9a9a-0000-4000-8000-000000000001"  # the integration's Dataverse application user
MODIFIED = datetime(2026, 11, 20, 10, 15, 30, tzinfo=UTC)
OPERATION = datetime(2026, 11, 20, 10, 15, 31, tzinfo=UTC)


def no_contact(table: str, row_id: str) -> str | None:
    return None


def mapping_context(
    *,
    field_mapping: FieldMapping = DEFAULT_FIELD_MAPPING,
    application_user_ids: frozenset[str] = frozenset(),
    dataverse_organization_id: str | None = None,
    size_exceeded: bool = False,
    resolve_contact: Callable[[str, str], str | None] = no_contact,
    read_row: RowRead | None = None,
) -> MappingContext:
    return MappingContext(
        field_mapping=field_mapping,
        application_user_ids=application_user_ids,
        dataverse_organization_id=dataverse_organization_id,
        size_exceeded=size_exceeded,
        resolve_contact=resolve_contact,
        read_row=read_row,
    )


def mapped(payload: dict[str, Any], **settings: Any) -> ParsedEvent:
    return map_context(parse_context(payload), mapping_context(**settings))


def mapped_event(payload: dict[str, Any], **settings: Any) -> SyncEvent:
    result = mapped(payload, **settings)
    assert isinstance(result, SyncEvent), result
    return result


class ContactLookups:
    """A `resolve_contact` that remembers what it was asked."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, table: str, row_id: str) -> str | None:
        self.calls.append((table, row_id))
        return self.answer


# --- contacts -----------------------------------------------------------------------------------


def test_documented_sample_is_a_member_update_with_the_new_first_name() -> None:
    event = mapped_event(json.loads(SAMPLE.read_text()))

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.dynamics_contact_id == SAMPLE_CONTACT
    assert event.member.first_name == "James"
    # Columns the change did not carry are kept as they are, not cleared.
    assert (event.member.last_name, event.member.email, event.member.phone) == (None, None, None)
    assert (event.source_message, event.source_table) == ("Update", "contact")


def test_documented_sample_is_timed_by_the_rows_modifiedon_not_operation_created_on() -> None:
    """Ordering uses the row's own modifiedon (00:04:07); OperationCreatedOn (00:04:08) is when
    the async job was queued and would misorder quick successive edits."""
    event = mapped_event(json.loads(SAMPLE.read_text()))

    assert event.occurred_at == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)


def test_contact_create_is_a_new_membership_with_all_details() -> None:
    payload = dataverse_context(
        "Create",
        "contact",
        CONTACT,
        {
            "firstname": "Ingrid",
            "lastname": "Ødegård",
            "emailaddress1": "ingrid@example.no",
            "mobilephone": "+47 912 34 567",
            "statecode": option(0),
            "statuscode": option(1),
        },
        modified_on=MODIFIED,
        mode=0,
    )

    event = mapped_event(payload)

    # statecode 0 on a Create is the initial state, not a reactivation.
    assert event.type is EventType.MEMBERSHIP_CREATED
    assert event.member.model_dump() == {
        "dynamics_contact_id": CONTACT,
        "first_name": "Ingrid",
        "last_name": "Ødegård",
        "email": "ingrid@example.no",
        "phone": "+47 912 34 567",
    }
    assert event.occurred_at == MODIFIED
    assert (event.source_message, event.source_table) == ("Create", "contact")


def test_contact_update_clears_a_column_sent_as_null_and_keeps_columns_not_sent() -> None:
    """Null means "cleared in Dynamics" (clear it here too); absent means "unchanged"."""
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"mobilephone": None, "lastname": "Hansen"},
        modified_on=MODIFIED,
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.phone == ""
    assert event.member.last_name == "Hansen"
    assert event.member.first_name is None
    assert event.member.email is None


def test_contact_update_to_statecode_inactive_deactivates_the_membership() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"statecode": option(1), "statuscode": option(2)},
        modified_on=MODIFIED,
        parent_context=set_state_parent("contact", CONTACT, 1, 2),
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBERSHIP_DEACTIVATED
    assert event.member.dynamics_contact_id == CONTACT
    assert event.occurred_at == MODIFIED


def test_contact_update_to_statecode_active_reactivates_the_membership() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"statecode": option(0), "statuscode": option(1)},
        modified_on=MODIFIED,
        pre_image={"statecode": option(1), "statuscode": option(2)},
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBERSHIP_REACTIVATED


def test_a_resaved_contact_whose_state_did_not_change_is_not_a_reactivation() -> None:
    """A flow or import that reads the contact and writes it back sends `statecode` 0 while
    the pre-image also says 0: taken as a reactivation, it would give a member whose
    membership was ended in Dynamics app access again. Only the details apply."""
    payload = json.loads((CAPTURES / "contact-resave-unchanged-state.json").read_text())

    event = mapped_event(payload)

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.dynamics_contact_id == CONTACT
    assert event.member.first_name == "Ingrid"


def test_a_resaved_inactive_contact_is_not_deactivated_again() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari", "statecode": option(1)},
        modified_on=MODIFIED,
        pre_image={"statecode": option(1), "firstname": "Karin"},
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.first_name == "Kari"


@pytest.mark.parametrize(
    ("statecode", "event_type"),
    [(0, EventType.MEMBER_UPDATED), (1, EventType.MEMBERSHIP_DEACTIVATED)],
    ids=["active: details only", "inactive: deactivates"],
)
def test_without_a_pre_image_a_sent_state_never_reactivates(
    statecode: int, event_type: EventType
) -> None:
    """Without a pre-image (a registration missing it) whether the state changed is unknown:
    an active state is not taken as a reactivation; an inactive one still deactivates (the
    row is inactive, and deactivating again changes nothing)."""
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari", "statecode": option(statecode)},
        modified_on=MODIFIED,
    )

    event = mapped_event(payload)

    assert event.type is event_type
    assert event.member.first_name == "Kari"


def test_an_inactive_state_only_in_the_images_is_not_a_deactivation() -> None:
    """Editing the name of an already inactive contact must not deactivate them again (and the
    images of an Update carry the whole row, statecode included)."""
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        modified_on=MODIFIED,
        pre_image={"statecode": option(1), "firstname": "Karin"},
        post_image={"statecode": option(1), "firstname": "Kari"},
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.first_name == "Kari"


def test_contact_update_uses_the_post_image_for_columns_not_changed() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"emailaddress1": "new@example.org"},
        modified_on=MODIFIED,
        post_image={"firstname": "Kari", "emailaddress1": "new@example.org"},
    )

    event = mapped_event(payload)

    assert event.member.email == "new@example.org"
    assert event.member.first_name == "Kari"


def test_contact_delete_deactivates_timed_by_operation_created_on() -> None:
    """A Delete's Target is a reference without modifiedon: the operation's time stands in."""
    payload = dataverse_context(
        "Delete",
        "contact",
        CONTACT.upper(),
        operation_created_on=operation_date(OPERATION, -420),
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBERSHIP_DEACTIVATED
    assert event.member.dynamics_contact_id == CONTACT
    assert event.member.first_name is None
    assert event.occurred_at == OPERATION


def test_occurred_at_falls_back_to_the_post_image_modifiedon() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        post_image={"modifiedon": "/Date(1795340000000)/"},
        operation_created_on=OPERATION,
    )

    event = mapped_event(payload)

    assert event.occurred_at == datetime.fromtimestamp(1795340000, UTC)


# --- memberships --------------------------------------------------------------------------------


def test_membership_create_maps_contact_role_and_row() -> None:
    payload = dataverse_context(
        "Create",
        "hlf_membership",
        MEMBERSHIP.upper(),
        {
            "hlf_contactid": lookup("contact", CONTACT.upper(), "Ingrid Ødegård"),
            "hlf_role": option(100000001),
            "statecode": option(0),
        },
        modified_on=MODIFIED,
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBERSHIP_CREATED
    assert event.role == "peer_mentor"
    assert event.member.dynamics_contact_id == CONTACT
    assert event.dynamics_row_id == MEMBERSHIP
    assert event.occurred_at == MODIFIED
    assert (event.source_message, event.source_table) == ("Create", "hlf_membership")


def test_membership_create_without_a_role_gets_the_default_role() -> None:
    payload = dataverse_context(
        "Create",
        "hlf_membership",
        MEMBERSHIP,
        {"hlf_contactid": lookup("contact", CONTACT)},
        modified_on=MODIFIED,
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBERSHIP_CREATED
    assert event.role == "member"


def test_membership_role_change_is_a_role_update() -> None:
    payload = dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP,
        {"hlf_role": option(100000002)},
        modified_on=MODIFIED,
        post_image={"hlf_contactid": lookup("contact", CONTACT), "hlf_role": option(100000002)},
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBERSHIP_ROLE_UPDATED
    assert event.role == "coordinator"
    assert event.member.dynamics_contact_id == CONTACT
    assert event.dynamics_row_id == MEMBERSHIP


def test_membership_role_value_not_in_the_mapping_is_unusable_naming_the_column() -> None:
    """A new choice added in Dynamics but not yet mapped: tell the admin which column."""
    payload = dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP,
        {"hlf_role": option(100000099)},
        modified_on=MODIFIED,
        post_image={"hlf_contactid": lookup("contact", CONTACT)},
    )

    result = mapped(payload)

    assert isinstance(result, Unusable)
    assert "hlf_role" in result.message
    assert "100000099" in result.message
    assert (result.source_message, result.source_table) == ("Update", "hlf_membership")


def test_membership_deactivation_and_reactivation() -> None:
    def state_change(state: int) -> dict[str, Any]:
        return dataverse_context(
            "Update",
            "hlf_membership",
            MEMBERSHIP,
            {"statecode": option(state), "statuscode": option(state + 1)},
            modified_on=MODIFIED,
            pre_image={"hlf_contactid": lookup("contact", CONTACT), "statecode": option(1 - state)},
            post_image={"hlf_contactid": lookup("contact", CONTACT), "hlf_role": option(100000000)},
        )

    deactivated = mapped_event(state_change(1))
    reactivated = mapped_event(state_change(0))

    assert deactivated.type is EventType.MEMBERSHIP_DEACTIVATED
    assert reactivated.type is EventType.MEMBERSHIP_REACTIVATED
    assert deactivated.member.dynamics_contact_id == CONTACT


def test_membership_update_without_the_lookup_resolves_the_contact_by_row() -> None:
    """Update steps often carry no images: the membership row is known from an earlier event."""
    lookups = ContactLookups(CONTACT)
    payload = dataverse_context(
        "Update", "hlf_membership", MEMBERSHIP.upper(), {"hlf_role": option(100000003)}
    )

    event = mapped_event(payload, resolve_contact=lookups)

    assert lookups.calls == [("hlf_membership", MEMBERSHIP)]
    assert event.type is EventType.MEMBERSHIP_ROLE_UPDATED
    assert event.role == "admin"
    assert event.member.dynamics_contact_id == CONTACT


def test_a_membership_resaved_with_its_state_and_role_is_only_its_role() -> None:
    """Sent, not changed: the state the pre-image already had is no reactivation."""
    payload = dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP,
        {"statecode": option(0), "hlf_role": option(100000001)},
        modified_on=MODIFIED,
        pre_image={"hlf_contactid": lookup("contact", CONTACT), "statecode": option(0)},
    )

    event = mapped_event(payload)

    assert (event.type, event.role) == (EventType.MEMBERSHIP_ROLE_UPDATED, "peer_mentor")


def test_membership_delete_without_an_image_resolves_the_contact_by_row() -> None:
    lookups = ContactLookups(CONTACT)
    payload = dataverse_context(
        "Delete", "hlf_membership", MEMBERSHIP, operation_created_on=OPERATION
    )

    event = mapped_event(payload, resolve_contact=lookups)

    assert lookups.calls == [("hlf_membership", MEMBERSHIP)]
    assert event.type is EventType.MEMBERSHIP_DEACTIVATED
    assert event.member.dynamics_contact_id == CONTACT
    assert event.dynamics_row_id == MEMBERSHIP
    assert event.occurred_at == OPERATION


def test_membership_delete_with_a_pre_image_uses_its_lookup() -> None:
    lookups = ContactLookups(None)
    payload = dataverse_context(
        "Delete",
        "hlf_membership",
        MEMBERSHIP,
        pre_image={"hlf_contactid": lookup("contact", CONTACT), "hlf_role": option(100000001)},
    )

    event = mapped_event(payload, resolve_contact=lookups)

    assert lookups.calls == []
    assert event.type is EventType.MEMBERSHIP_DEACTIVATED
    assert event.member.dynamics_contact_id == CONTACT


@pytest.mark.parametrize(
    "payload",
    [
        dataverse_context("Update", "hlf_membership", MEMBERSHIP, {"hlf_role": option(100000001)}),
        dataverse_context("Delete", "hlf_membership", MEMBERSHIP),
    ],
    ids=["update", "delete"],
)
def test_membership_of_an_unknown_contact_is_unusable(payload: dict[str, Any]) -> None:
    """Neither the payload nor our records say whose membership it is: an error for admins,
    with what to configure in Dynamics, rather than a guess."""
    lookups = ContactLookups(None)

    result = mapped(payload, resolve_contact=lookups)

    assert lookups.calls == [("hlf_membership", MEMBERSHIP)]
    assert isinstance(result, Unusable)
    assert "hlf_contactid" in result.message


def test_membership_update_of_unmapped_columns_only_is_skipped() -> None:
    payload = dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP,
        {"hlf_notes": "Met at the course"},
        modified_on=MODIFIED,
        post_image={"hlf_contactid": lookup("contact", CONTACT)},
    )

    assert isinstance(mapped(payload), NotApplicable)


# --- course enrolments ----------------------------------------------------------------------------


def test_course_enrolment_create_enrols_the_member_in_the_course() -> None:
    payload = dataverse_context(
        "Create",
        "hlf_courseenrollment",
        ENROLMENT,
        {
            "hlf_contactid": lookup("contact", CONTACT.upper(), "Ingrid Ødegård"),
            "hlf_courseid": lookup("hlf_course", COURSE.upper(), "Likepersonkurs"),
            "statecode": option(0),
        },
        modified_on=MODIFIED,
    )

    event = mapped_event(payload)

    assert event.type is EventType.COURSE_ENROLLED
    assert event.member.dynamics_contact_id == CONTACT
    assert event.course is not None
    assert event.course.dynamics_course_id == COURSE
    assert event.course.name == "Likepersonkurs"
    assert event.dynamics_row_id == ENROLMENT
    assert event.occurred_at == MODIFIED


def test_course_enrolment_deactivated_unenrols_the_member() -> None:
    payload = dataverse_context(
        "Update",
        "hlf_courseenrollment",
        ENROLMENT,
        {"statecode": option(1), "statuscode": option(2)},
        modified_on=MODIFIED,
        post_image={
            "hlf_contactid": lookup("contact", CONTACT),
            "hlf_courseid": lookup("hlf_course", COURSE, "Likepersonkurs"),
        },
    )

    event = mapped_event(payload)

    assert event.type is EventType.COURSE_UNENROLLED
    assert event.member.dynamics_contact_id == CONTACT
    assert event.course is not None
    assert event.course.dynamics_course_id == COURSE


def test_course_enrolment_without_the_course_is_unusable() -> None:
    payload = dataverse_context(
        "Create",
        "hlf_courseenrollment",
        ENROLMENT,
        {"hlf_contactid": lookup("contact", CONTACT)},
        modified_on=MODIFIED,
    )

    result = mapped(payload)

    assert isinstance(result, Unusable)
    assert "hlf_courseid" in result.message


# --- what is skipped ------------------------------------------------------------------------------


def test_an_unmapped_table_is_skipped_not_an_error() -> None:
    payload = dataverse_context(
        "Update", "account", CONTACT, {"name": "Oslo lokallag"}, modified_on=MODIFIED
    )

    result = mapped(payload)

    assert isinstance(result, NotApplicable)
    assert "account" in result.message
    assert (result.source_message, result.source_table) == ("Update", "account")


def test_an_unsynchronised_message_on_a_mapped_table_is_skipped() -> None:
    payload = dataverse_context("Associate", "contact", CONTACT, {}, modified_on=MODIFIED)

    result = mapped(payload)

    assert isinstance(result, NotApplicable)
    assert "Associate" in result.message


@pytest.mark.parametrize(
    ("configured", "sent"),
    [(APP_USER, APP_USER), (APP_USER.upper(), APP_USER), (APP_USER, APP_USER.upper())],
    ids=["same case", "configured upper", "sent upper"],
)
def test_changes_made_by_our_application_user_are_echoes(configured: str, sent: str) -> None:
    """Our own write-backs fire HLF's Update webhook back at us; applying them would loop."""
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        modified_on=MODIFIED,
        user_id=sent,
        initiating_user_id=sent,
    )

    result = mapped(payload, application_user_ids=frozenset({configured}))

    assert isinstance(result, NotApplicable)
    assert "Echo" in result.message


def test_changes_made_by_other_users_are_not_echoes() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        modified_on=MODIFIED,
        user_id=DEFAULT_USER_ID,
    )

    event = mapped_event(payload, application_user_ids=frozenset({APP_USER}))

    assert event.type is EventType.MEMBER_UPDATED


def test_a_persons_edit_through_a_step_running_as_the_integration_user_is_applied() -> None:
    """A step registered to run as the integration user shows that user as `UserId` for
    everyone's changes: only `InitiatingUserId` says who made the change."""
    payload = json.loads((CAPTURES / "contact-update-run-as-integration-user.json").read_text())
    integration_user = payload["UserId"]
    assert payload["InitiatingUserId"] != integration_user

    event = mapped_event(payload, application_user_ids=frozenset({integration_user}))

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.first_name == "Inga"


def test_our_tagged_write_back_is_an_echo_before_the_application_user_is_known() -> None:
    """Our Web API requests carry `?tag=portal-sync`, which Dataverse hands on in
    `SharedVariables`: recognised even while the integration's application user ids are
    not known yet."""
    payload = json.loads((CAPTURES / "contact-update-echo-tagged.json").read_text())

    result = mapped(payload, application_user_ids=frozenset())

    assert isinstance(result, NotApplicable)
    assert "Echo" in result.message


def test_another_tag_is_not_our_echo() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        modified_on=MODIFIED,
        shared_variables={"tag": "hlf-import-tool"},
    )

    event = mapped_event(payload)

    assert event.type is EventType.MEMBER_UPDATED


def test_a_merge_is_skipped_saying_how_its_changes_arrive() -> None:
    """Merging two contacts: Dataverse deactivates the subordinate contact and re-points its
    rows at the master, changes that arrive (and are applied) as those rows' own."""
    payload = dataverse_context(
        "Merge",
        "contact",
        CONTACT,
        target_is_reference=True,
        extra_input_parameters={
            "SubordinateId": "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d",
            "UpdateContent": None,
            "PerformParentingChecks": False,
        },
    )

    result = mapped(payload)

    assert isinstance(result, NotApplicable)
    assert "Merge" in result.message and "master" in result.message


# --- what is unusable ------------------------------------------------------------------------------


def test_an_event_from_another_dynamics_environment_is_unusable() -> None:
    payload = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "Kari"}, modified_on=MODIFIED
    )

    result = mapped(payload, dataverse_organization_id="00aa00aa-bb11-cc22-dd33-44ee44ee44ee")

    assert isinstance(result, Unusable)
    assert "environment" in result.message


def test_the_configured_environment_matches_in_any_case() -> None:
    payload = dataverse_context(
        "Update",
        "contact",
        CONTACT,
        {"firstname": "Kari"},
        modified_on=MODIFIED,
        organization_id=DEFAULT_ORGANIZATION_ID.upper(),
    )

    event = mapped_event(payload, dataverse_organization_id=DEFAULT_ORGANIZATION_ID.upper())

    assert event.member.first_name == "Kari"


def test_an_event_whose_row_data_was_stripped_for_size_is_unusable_without_a_reader() -> None:
    """Over 256 KB Dataverse drops InputParameters and images but keeps the envelope."""
    payload = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "Kari"}, modified_on=MODIFIED
    )
    payload.update(InputParameters=[], PreEntityImages=[], PostEntityImages=[], ParentContext=None)

    result = mapped(payload, size_exceeded=True)

    assert isinstance(result, Unusable)
    assert "256 KB" in result.message


def test_an_event_without_a_target_is_unusable() -> None:
    payload = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "Kari"}, modified_on=MODIFIED
    )
    payload["InputParameters"] = []

    result = mapped(payload)

    assert isinstance(result, Unusable)
    assert "Target" in result.message


def test_an_event_without_any_time_is_unusable() -> None:
    """Without modifiedon or OperationCreatedOn it cannot be ordered against other changes."""
    payload = dataverse_context("Update", "contact", CONTACT, {"firstname": "Kari"})
    del payload["OperationCreatedOn"]

    result = mapped(payload)

    assert isinstance(result, Unusable)
    assert "time" in result.message


@pytest.mark.parametrize(
    ("times", "problem"),
    [
        pytest.param(
            {"modified_on": datetime(2999, 1, 1, tzinfo=UTC)},
            "more than 5 minutes in the future",
            id="Target modifiedon in 2999",
        ),
        pytest.param(
            {"post_image": {"modifiedon": "/Date(631152000000)/"}},  # 1990-01-01
            "before the year 2000",
            id="post-image modifiedon in 1990",
        ),
        pytest.param(
            # 0001-01-01T00:00:00 written with a +14:00 offset (ms + offset, docs/dataverse-mapping.md).
            {"operation_created_on": "/Date(-62135596800000+1400)/"},
            "before the year 2000",
            id="OperationCreatedOn in year 1",
        ),
    ],
)
def test_an_implausible_change_time_is_unusable_and_says_why(
    times: dict[str, Any], problem: str
) -> None:
    """The same rule as for portal events: a far-future time would make every later change
    of the member stale, a year-1 time cannot be read back from PostgreSQL."""
    message_name = "Delete" if "operation_created_on" in times else "Update"
    attributes = {} if message_name == "Delete" else {"statecode": option(1)}
    payload = dataverse_context(message_name, "contact", CONTACT, attributes, **times)
    if "operation_created_on" not in times:
        payload["OperationCreatedOn"] = "junk"  # the row's modifiedon is what counts

    result = mapped(payload)

    assert isinstance(result, Unusable), result
    assert result.message.startswith("The Dataverse event is invalid: the time of the change")
    assert problem in result.message and "not applied" in result.message
    assert (result.source_message, result.source_table) == (message_name, "contact")


def test_a_value_the_app_cannot_store_is_unusable_naming_the_field() -> None:
    payload = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "K" * 201}, modified_on=MODIFIED
    )

    result = mapped(payload)

    assert isinstance(result, Unusable)
    assert "first_name" in result.message
    assert "K" * 201 not in result.message


# --- custom field mappings ----------------------------------------------------------------------


CUSTOM_MAPPING = FieldMapping.model_validate(
    {
        "tables": {
            "Cr4F2_Medlemskap": {
                "kind": "membership",
                "contact_column": "Cr4F2_KontaktId",
                "role_column": "Cr4F2_Rolle",
                "role_values": {"1": "likeperson", "2": "leder"},
                "default_role": "deltaker",
                "state_column": "Cr4F2_Status",
                "active_states": [10],
                "inactive_states": [20, 30],
                "modified_on_column": "Cr4F2_EndretDato",
            },
            "Kontakt": {
                "kind": "member",
                "profile_columns": {"first_name": "Fornavn", "email": "EPost"},
            },
        }
    }
)


def test_a_custom_mapping_reads_its_own_table_columns_and_role_values() -> None:
    """Organisations name their tables and columns as they like; the mapping is written by an
    admin (any case), while Dataverse sends lower-case logical names."""
    payload = dataverse_context(
        "Create",
        "cr4f2_medlemskap",
        MEMBERSHIP,
        {
            "cr4f2_kontaktid": lookup("contact", CONTACT),
            "cr4f2_rolle": option(2),
            "cr4f2_status": option(10),
            "cr4f2_endretdato": "/Date(1795340000000)/",
        },
        operation_created_on=OPERATION,
    )

    event = mapped_event(payload, field_mapping=CUSTOM_MAPPING)

    assert event.type is EventType.MEMBERSHIP_CREATED
    assert event.role == "leder"
    assert event.member.dynamics_contact_id == CONTACT
    assert event.occurred_at == datetime.fromtimestamp(1795340000, UTC)


def test_a_custom_mapping_uses_its_own_state_values() -> None:
    payload = dataverse_context(
        "Update",
        "cr4f2_medlemskap",
        MEMBERSHIP,
        {"cr4f2_status": option(30)},
        modified_on=MODIFIED,
        post_image={"cr4f2_kontaktid": lookup("contact", CONTACT)},
    )

    event = mapped_event(payload, field_mapping=CUSTOM_MAPPING)

    assert event.type is EventType.MEMBERSHIP_DEACTIVATED


def test_a_custom_member_table_maps_its_profile_columns() -> None:
    payload = dataverse_context(
        "Update",
        "kontakt",
        CONTACT,
        {"fornavn": "Kari", "epost": "kari@example.org", "firstname": "Ignored"},
        modified_on=MODIFIED,
    )

    event = mapped_event(payload, field_mapping=CUSTOM_MAPPING)

    assert event.type is EventType.MEMBER_UPDATED
    assert event.member.first_name == "Kari"
    assert event.member.email == "kari@example.org"
    assert event.member.last_name is None


def test_a_custom_mapping_skips_the_default_tables() -> None:
    payload = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "Kari"}, modified_on=MODIFIED
    )

    assert isinstance(mapped(payload, field_mapping=CUSTOM_MAPPING), NotApplicable)


@pytest.mark.parametrize(
    "table",
    [
        pytest.param({"kind": "membership", "role_column": "hlf_role"}, id="membership no contact"),
        pytest.param(
            {"kind": "course_enrollment", "contact_column": "c"}, id="enrolment no course"
        ),
        pytest.param({"kind": "member", "active_states": [0, 1]}, id="state active and inactive"),
        pytest.param({"kind": "member", "colour": "blue"}, id="unknown table key"),
        pytest.param({"kind": "contact"}, id="unknown kind"),
        pytest.param({"kind": "member", "profile_columns": {"age": "c"}}, id="unknown profile"),
        pytest.param(
            {"kind": "membership", "contact_column": "c", "role_values": {"x": "admin"}},
            id="role value not a number",
        ),
    ],
)
def test_an_invalid_table_mapping_is_rejected(table: dict[str, Any]) -> None:
    """A mapping that cannot work is refused when it is saved, not when events arrive."""
    with pytest.raises(ValidationError):
        FieldMapping.model_validate({"tables": {"hlf_table": table}})


def test_a_field_mapping_with_unknown_keys_is_rejected() -> None:
    with pytest.raises(ValidationError):
        FieldMapping.model_validate({"tables": {}, "tabels": {}})


def test_the_default_mapping_round_trips_through_json() -> None:
    """Stored as JSON per organisation: saving and loading must not change its meaning."""
    reloaded = FieldMapping.model_validate_json(DEFAULT_FIELD_MAPPING.model_dump_json())

    assert reloaded == DEFAULT_FIELD_MAPPING
    assert isinstance(reloaded.tables["hlf_membership"], TableMapping)
    assert reloaded.tables["hlf_membership"].role_values[100000001] == "peer_mentor"


def test_a_profile_column_that_is_not_text_does_not_clear_the_detail() -> None:
    """A mapping pointing a profile field at a money or unnamed lookup column keeps the value."""
    mapping = FieldMapping.model_validate(
        {"tables": {"contact": {"kind": "member", "profile_columns": {"phone": "creditlimit"}}}}
    )
    payload = dataverse_context(
        "Update",
        "contact",
        str(uuid.uuid4()),
        {"creditlimit": money(12.5)},
        modified_on=datetime(2026, 11, 20, tzinfo=UTC),
    )

    event = map_context(
        parse_context(payload), MappingContext(mapping, frozenset(), None, False, lambda t, r: None)
    )

    assert isinstance(event, SyncEvent)
    assert event.member.phone is None


def stripped(payload: dict[str, Any]) -> dict[str, Any]:
    """As Dataverse sends a context over 256 KB."""
    return {
        **payload,
        "InputParameters": [],
        "PreEntityImages": [],
        "PostEntityImages": [],
        "ParentContext": None,
    }


class Rows:
    """A `read_row` over rows as the Web API returns them; remembers what it was asked."""

    def __init__(self, **rows: dict[str, Any]) -> None:
        self.rows = rows
        self.asked: list[tuple[str, str, list[str]]] = []

    def __call__(self, entity_set: str, row_id: str, select: Any) -> dict[str, Any] | None:
        self.asked.append((entity_set, row_id, list(select)))
        return self.rows.get(row_id)


def test_a_membership_over_256_kb_is_mapped_from_the_row_read_from_dynamics() -> None:
    rows = Rows(
        **{
            MEMBERSHIP: {
                "@odata.etag": 'W/"7"',
                "hlf_membershipid": MEMBERSHIP,
                "hlf_role": 100000002,
                "statecode": 1,
                "modifiedon": "2026-11-20T10:16:00Z",
                "_hlf_contactid_value": CONTACT.upper(),
                "_hlf_contactid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
            }
        }
    )
    payload = dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP,
        {"hlf_role": option(100000000)},
        modified_on=MODIFIED,
    )

    event = mapped_event(stripped(payload), size_exceeded=True, read_row=rows)

    assert (event.type, event.role) == (EventType.MEMBERSHIP_DEACTIVATED, "coordinator")
    assert event.member.dynamics_contact_id == CONTACT
    assert event.occurred_at == datetime(2026, 11, 20, 10, 16, tzinfo=UTC)
    assert event.dynamics_row_id == MEMBERSHIP
    ((entity_set, row_id, select),) = rows.asked
    assert (entity_set, row_id) == ("hlf_memberships", MEMBERSHIP)
    assert {"hlf_role", "statecode", "modifiedon", "_hlf_contactid_value"} <= set(select)


def test_an_enrolment_over_256_kb_takes_the_course_and_its_name_from_the_lookup() -> None:
    rows = Rows(
        **{
            ENROLMENT: {
                "statecode": 0,
                "modifiedon": "2026-11-20T10:16:00Z",
                "_hlf_contactid_value": CONTACT,
                "_hlf_courseid_value": COURSE,
                "_hlf_courseid_value@OData.Community.Display.V1.FormattedValue": "Likeperson",
            }
        }
    )
    payload = dataverse_context(
        "Create", "hlf_courseenrollment", ENROLMENT, {}, modified_on=MODIFIED
    )

    event = mapped_event(stripped(payload), size_exceeded=True, read_row=rows)

    assert event.type is EventType.COURSE_ENROLLED
    assert event.course is not None
    assert (event.course.dynamics_course_id, event.course.name) == (COURSE, "Likeperson")
    assert rows.asked[0][0] == "hlf_courseenrollments"


def test_a_contact_over_256_kb_clears_what_dynamics_has_cleared() -> None:
    rows = Rows(**{CONTACT: {"firstname": "Kari", "mobilephone": None, "statecode": 0}})
    payload = dataverse_context("Create", "contact", CONTACT, {}, modified_on=MODIFIED)

    event = mapped_event(stripped(payload), size_exceeded=True, read_row=rows)

    assert event.type is EventType.MEMBERSHIP_CREATED
    assert (event.member.first_name, event.member.phone) == ("Kari", "")
    # No modifiedon came back: the operation's time orders it.
    assert event.occurred_at == MODIFIED


def test_an_update_over_256_kb_of_a_row_deleted_since_is_not_applicable() -> None:
    payload = dataverse_context(
        "Update",
        "hlf_membership",
        MEMBERSHIP,
        {"hlf_role": option(100000000)},
        modified_on=MODIFIED,
    )

    result = mapped(stripped(payload), size_exceeded=True, read_row=Rows())

    assert isinstance(result, NotApplicable)
    assert "no longer exists in Dynamics" in result.message


def test_a_delete_over_256_kb_needs_no_read() -> None:
    lookups = ContactLookups(CONTACT)
    rows = Rows()
    payload = dataverse_context(
        "Delete", "hlf_membership", MEMBERSHIP, operation_created_on=OPERATION
    )

    event = mapped_event(
        stripped(payload), size_exceeded=True, read_row=rows, resolve_contact=lookups
    )

    assert event.type is EventType.MEMBERSHIP_DEACTIVATED
    assert event.member.dynamics_contact_id == CONTACT
    assert rows.asked == []


def test_no_row_is_read_for_unmapped_tables_or_echoes() -> None:
    rows = Rows()
    unmapped = dataverse_context("Update", "account", MEMBERSHIP, {}, modified_on=MODIFIED)
    echo = dataverse_context(
        "Update", "contact", CONTACT, {}, modified_on=MODIFIED, user_id=APP_USER
    )

    assert isinstance(mapped(stripped(unmapped), size_exceeded=True, read_row=rows), NotApplicable)
    assert isinstance(
        mapped(
            stripped(echo),
            size_exceeded=True,
            read_row=rows,
            application_user_ids=frozenset({APP_USER}),
        ),
        NotApplicable,
    )
    assert rows.asked == []


@pytest.mark.parametrize(
    ("table", "entity_set"),
    [
        ("contact", "contacts"),
        ("hlf_membership", "hlf_memberships"),
        ("hlf_courseenrollment", "hlf_courseenrollments"),
        ("hlf_activity", "hlf_activities"),
        ("hlf_class", "hlf_classes"),
        ("hlf_journey", "hlf_journeys"),
    ],
)
def test_entity_set_names_follow_dataverse_defaults(table: str, entity_set: str) -> None:
    assert entity_set_name(table, TableMapping(kind="member")) == entity_set


def test_an_entity_set_name_in_the_mapping_wins() -> None:
    table = TableMapping(kind="member", entity_set="hlf_people")

    assert entity_set_name("hlf_person", table) == "hlf_people"


@pytest.mark.parametrize(
    ("statecode", "event_type"),
    [(0, EventType.MEMBER_UPDATED), (1, EventType.MEMBERSHIP_DEACTIVATED)],
)
def test_a_contact_update_over_256_kb_never_reactivates(
    statecode: int, event_type: EventType
) -> None:
    """Whether the change reactivated the contact is unknown: an active contact's re-read row
    updates the details only (a membership deactivated by its own row stays so); an inactive
    one deactivates, as Dynamics has it."""
    rows = Rows(**{CONTACT: {"firstname": "Kari", "statecode": statecode}})
    payload = dataverse_context(
        "Update", "contact", CONTACT, {"firstname": "K"}, modified_on=MODIFIED
    )

    event = mapped_event(stripped(payload), size_exceeded=True, read_row=rows)

    assert event.type is event_type
    assert event.member.first_name == "Kari"
