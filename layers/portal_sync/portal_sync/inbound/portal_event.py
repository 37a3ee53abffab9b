"""The portal-event JSON format (docs/inbound.md, "Portal events"), for senders such as relays
and Power Automate flows that build their own JSON instead of forwarding Dataverse's context."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from portal_sync.inbound.events import (
    CourseDetails,
    EventType,
    MemberDetails,
    NotApplicable,
    ParsedEvent,
    SyncEvent,
    Unusable,
    plausible_event_time,
)

_COURSE_EVENTS = (EventType.COURSE_ENROLLED, EventType.COURSE_UNENROLLED)
# The signed delivery the admin console sends to check a secret end to end: applied as nothing.
TEST_EVENT_TYPE = "webhook.test"


class PortalEvent(BaseModel):
    # Unknown keys are ignored so that senders can add fields without breaking the sync.
    model_config = ConfigDict(extra="ignore")

    type: EventType
    # RFC 3339 with an offset: a time without one is ambiguous and would break ordering.
    occurred_at: Annotated[AwareDatetime, AfterValidator(plausible_event_time)]
    member: MemberDetails
    # Trimmed like the member's details, and no longer than SyncEvent.role allows: a longer one
    # must be reported here, not fail when the SyncEvent is built.
    role: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    course: CourseDetails | None = None

    @model_validator(mode="after")
    def _required_for_type(self) -> Self:
        if self.type is EventType.MEMBERSHIP_ROLE_UPDATED and not self.role:
            raise ValueError("role is required for membership.role_updated")
        if self.type in _COURSE_EVENTS and self.course is None:
            raise ValueError(f"course is required for {self.type.value}")
        return self


def parse_portal_event(payload: dict[str, Any]) -> ParsedEvent:
    if payload.get("type") == TEST_EVENT_TYPE:
        return NotApplicable("Test delivery from the admin console: the secret verified")
    try:
        event = PortalEvent.model_validate(payload)
    except ValidationError as exc:
        return Unusable(f"The portal event is invalid: {_describe(exc)}")
    return SyncEvent(
        type=event.type,
        occurred_at=event.occurred_at,
        member=event.member,
        role=event.role,
        course=event.course,
    )


def _describe(exc: ValidationError) -> str:
    """Field paths and what is wrong, never the values: the message is shown to admins and
    may otherwise echo personal data."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "event"
        problems.append(f"{path}: {error['msg']}")
    return "; ".join(problems)
