"""The portal-event JSON format (docs/inbound.md, "Portal events"), for relays and Power Automate
flows that build their own JSON: every contract type parses, and an invalid event becomes an
error admins can read, without echoing the personal data it carried."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from portal_sync.inbound.events import EventType, SyncEvent, Unusable
from portal_sync.inbound.portal_event import parse_portal_event

CONTACT = "8f1c2a3b-4d5e-4f60-9a7b-1c2d3e4f5a6b"
COURSE = "c0c0c0c0-aaaa-4bbb-8ccc-ddddeeeeffff"
# Distinctive personal data: it must never show up in an error message shown to admins.
SECRET_EMAIL = "ingrid.odegaard.7731@example.no"
SECRET_NAME = "Ingeborg-Zyxwvut"
SECRET_PHONE = "+47 912 77 310"


def event(event_type: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": event_type,
        "occurred_at": "2026-11-20T10:00:00Z",
        "member": {
            "dynamics_contact_id": CONTACT,
            "first_name": SECRET_NAME,
            "last_name": "Nordmann",
            "email": SECRET_EMAIL,
            "phone": SECRET_PHONE,
        },
    }
    if event_type == "membership.role_updated":
        payload["role"] = "peer_mentor"
    if event_type.startswith("course."):
        payload["course"] = {"dynamics_course_id": COURSE, "name": "Likepersonkurs"}
    payload.update(changes)
    return payload


def parsed(payload: dict[str, Any]) -> SyncEvent:
    result = parse_portal_event(payload)
    assert isinstance(result, SyncEvent), result
    return result


def unusable(payload: dict[str, Any]) -> str:
    result = parse_portal_event(payload)
    assert isinstance(result, Unusable), result
    return result.message


CONTRACT_TYPES = [
    "membership.created",
    "membership.role_updated",
    "membership.deactivated",
    "membership.reactivated",
    "course.enrolled",
    "course.unenrolled",
]


@pytest.mark.parametrize("event_type", CONTRACT_TYPES)
def test_every_contract_type_parses(event_type: str) -> None:
    result = parsed(event(event_type))

    assert result.type == EventType(event_type)
    assert result.occurred_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert result.member.dynamics_contact_id == CONTACT
    assert result.member.first_name == SECRET_NAME
    assert result.member.email == SECRET_EMAIL
    assert result.member.phone == SECRET_PHONE


def test_role_updated_carries_the_role() -> None:
    result = parsed(event("membership.role_updated", role="coordinator"))

    assert result.role == "coordinator"


def test_membership_created_may_carry_a_role() -> None:
    result = parsed(event("membership.created", role="peer_mentor"))

    assert result.type is EventType.MEMBERSHIP_CREATED
    assert result.role == "peer_mentor"


@pytest.mark.parametrize("event_type", ["course.enrolled", "course.unenrolled"])
def test_course_events_carry_the_course(event_type: str) -> None:
    result = parsed(event(event_type))

    assert result.course is not None
    assert result.course.dynamics_course_id == COURSE
    assert result.course.name == "Likepersonkurs"


def test_member_details_not_sent_are_none_so_they_are_kept() -> None:
    result = parsed(
        {
            "type": "membership.deactivated",
            "occurred_at": "2026-11-20T10:00:00Z",
            "member": {"dynamics_contact_id": CONTACT},
        }
    )

    assert result.member.first_name is None
    assert result.member.email is None


def test_occurred_at_with_an_offset_is_the_same_instant() -> None:
    result = parsed(event("membership.created", occurred_at="2026-11-20T11:00:00+01:00"))

    assert result.occurred_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert result.occurred_at.utcoffset() == timedelta(hours=1)
    assert result.occurred_at.tzinfo == timezone(timedelta(hours=1))


def test_occurred_at_without_a_timezone_is_unusable() -> None:
    """A local time without an offset is ambiguous and would break stale-event ordering."""
    message = unusable(event("membership.created", occurred_at="2026-11-20T10:00:00"))

    assert "occurred_at" in message


@pytest.mark.parametrize("occurred_at", [None, "", "yesterday", "2026-13-45T10:00:00Z"])
def test_occurred_at_that_is_not_a_time_is_unusable(occurred_at: Any) -> None:
    message = unusable(event("membership.created", occurred_at=occurred_at))

    assert "occurred_at" in message


def test_missing_occurred_at_is_unusable() -> None:
    payload = event("membership.created")
    del payload["occurred_at"]

    assert "occurred_at" in unusable(payload)


@pytest.mark.parametrize("event_type", ["membership.updated", "MEMBERSHIP.CREATED", "", None, 3])
def test_an_unknown_type_is_unusable(event_type: Any) -> None:
    message = unusable(event("membership.created", type=event_type))

    assert "type" in message


def test_a_missing_type_is_unusable() -> None:
    payload = event("membership.created")
    del payload["type"]

    assert "type" in unusable(payload)


@pytest.mark.parametrize("role", [None, "", "   "])
def test_role_updated_without_a_role_is_unusable(role: Any) -> None:
    payload = event("membership.role_updated", role=role)

    assert "role" in unusable(payload)


def test_a_role_is_trimmed_like_the_members_details() -> None:
    """Flows that concatenate JSON leave stray spaces; " peer_mentor" would match no role."""
    result = parsed(event("membership.role_updated", role="  peer_mentor \n"))

    assert result.role == "peer_mentor"


def test_a_role_longer_than_the_app_stores_is_unusable_not_a_crash() -> None:
    message = unusable(event("membership.role_updated", role="r" * 101))

    assert "role" in message


def test_role_updated_with_the_role_key_absent_is_unusable() -> None:
    payload = event("membership.role_updated")
    del payload["role"]

    assert "role" in unusable(payload)


@pytest.mark.parametrize("event_type", ["course.enrolled", "course.unenrolled"])
def test_course_events_without_a_course_are_unusable(event_type: str) -> None:
    payload = event(event_type)
    del payload["course"]

    assert "course" in unusable(payload)


def test_a_course_without_its_id_is_unusable() -> None:
    message = unusable(event("course.enrolled", course={"name": "Likepersonkurs"}))

    assert "course.dynamics_course_id" in message


@pytest.mark.parametrize(
    "member",
    [None, {}, {"dynamics_contact_id": ""}, {"dynamics_contact_id": None}, "someone"],
    ids=["null", "empty", "blank id", "null id", "text"],
)
def test_a_member_without_a_contact_id_is_unusable(member: Any) -> None:
    message = unusable(event("membership.created", member=member))

    assert "member" in message


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"occurred_at": SECRET_EMAIL}, id="personal data as the time"),
        pytest.param({"type": SECRET_NAME}, id="personal data as the type"),
        pytest.param({"role": SECRET_NAME * 20, "type": "membership.role_updated"}, id="role"),
        pytest.param(
            {"member": {"dynamics_contact_id": SECRET_EMAIL * 10, "first_name": SECRET_NAME}},
            id="contact id too long",
        ),
        pytest.param(
            {"member": {"dynamics_contact_id": CONTACT, "email": SECRET_EMAIL * 20}},
            id="email too long",
        ),
        pytest.param(
            {"member": {"dynamics_contact_id": CONTACT, "first_name": ["Ingeborg", SECRET_NAME]}},
            id="name not text",
        ),
        pytest.param(
            {"member": {"dynamics_contact_id": CONTACT, "phone": {"number": SECRET_PHONE}}},
            id="phone not text",
        ),
        pytest.param({"course": {"dynamics_course_id": 7, "name": SECRET_NAME}}, id="course"),
    ],
)
def test_error_messages_never_contain_submitted_values(broken: dict[str, Any]) -> None:
    """The message is shown to admins and logged: it names fields, never personal data."""
    payload = event("course.enrolled", **broken)

    message = unusable(payload)

    assert message.startswith("The portal event is invalid")
    for secret in (SECRET_EMAIL, SECRET_NAME, SECRET_PHONE, "Ingeborg", "7731"):
        assert secret not in message


def test_error_messages_name_every_invalid_field() -> None:
    message = unusable(
        event("membership.created", occurred_at="2026-11-20T10:00:00", member={"email": "x"})
    )

    assert "occurred_at" in message
    assert "member.dynamics_contact_id" in message


def test_guid_contact_and_course_ids_are_normalised_to_lower_case() -> None:
    """Dynamics spells GUIDs in either case; one spelling keeps one profile per contact."""
    payload = event(
        "course.enrolled",
        member={"dynamics_contact_id": CONTACT.upper()},
        course={"dynamics_course_id": "{" + COURSE.upper() + "}"},
    )

    result = parsed(payload)

    assert result.member.dynamics_contact_id == CONTACT
    assert result.course is not None
    assert result.course.dynamics_course_id == COURSE


def test_non_guid_contact_ids_are_kept_as_sent() -> None:
    payload = event("membership.created", member={"dynamics_contact_id": " CONTACT-42 "})

    assert parsed(payload).member.dynamics_contact_id == "CONTACT-42"


def test_unknown_keys_are_ignored() -> None:
    """Senders may add fields (their own ids, trace data) without breaking the sync."""
    payload = copy.deepcopy(event("membership.role_updated"))
    payload["flow_run_id"] = "08585-abc"
    payload["member"]["membership_number"] = 12345
    payload["member"]["address"] = {"city": "Bergen"}

    result = parsed(payload)

    assert result.type is EventType.MEMBERSHIP_ROLE_UPDATED
    assert result.role == "peer_mentor"
    assert "membership_number" not in result.member.model_dump()


@pytest.mark.parametrize(
    ("occurred_at", "problem"),
    [
        ("2999-01-01T00:00:00Z", "more than 5 minutes in the future"),
        # Year 1 at +14:00 is year 0 in UTC: stored, PostgreSQL's answer is unreadable to psycopg.
        ("0001-01-01T00:00:00+14:00", "before the year 2000"),
        ("1999-12-31T23:59:59Z", "before the year 2000"),
    ],
)
def test_an_implausible_time_is_unusable_with_a_message_an_admin_understands(
    occurred_at: str, problem: str
) -> None:
    """Applied, a far-future time would make every later change of the member stale."""
    message = unusable(event("membership.created", occurred_at=occurred_at))

    assert message.startswith("The portal event is invalid: occurred_at: ")
    assert problem in message and "not applied" in message
    assert SECRET_EMAIL not in message


def test_times_from_2000_until_five_minutes_ahead_are_plausible() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=4)
    for moment in ("2000-01-01T00:00:00Z", soon.isoformat()):
        assert parsed(event("membership.deactivated", occurred_at=moment)).occurred_at
