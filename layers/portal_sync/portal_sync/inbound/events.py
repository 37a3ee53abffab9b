"""The events the sync applies, independent of the wire format they arrived in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

# A GUID already in that spelling, as Dataverse writes them: returned as it is, without the
# UUID round trip (an import normalises each of its rows' ids several times).
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize_id(value: str) -> str:
    """Dynamics GUIDs in one spelling (lower case, hyphenated), other ids as they were sent."""
    if _CANONICAL_GUID.fullmatch(value):
        return value
    try:
        return str(UUID(value))
    except ValueError:
        return value


SourceId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(normalize_id)]

# The range of believable change times (docs/inbound.md). A time outside it is a sender's
# clock or data error: applied, a far-future time would make every later change of the member
# stale, and a year-1 time in a positive offset is year 0 in UTC, which PostgreSQL stores but
# psycopg cannot read back.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(minutes=5)
IMPLAUSIBLE_TIME = "implausible_time"


def plausible_event_time(moment: datetime) -> datetime:
    """The one rule for every event's time, whatever format it arrived in (portal events,
    Dataverse's `modifiedon` and `/Date(...)/` values, rows read from the Web API)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    # Compared, never converted: converting year 1 at +14:00 to UTC overflows.
    if aware < EARLIEST_EVENT_TIME:
        problem = "is before the year 2000"
    elif aware > datetime.now(UTC) + FUTURE_TOLERANCE:
        problem = "is more than 5 minutes in the future"
    else:
        return moment
    raise PydanticCustomError(
        IMPLAUSIBLE_TIME,
        "the time of the change ({time}) {problem}: the sender's clock or data is wrong. It "
        "was not applied, so that it cannot make later changes of the member look out of "
        "date; correct the time at the source and send the change again",
        {"time": aware.isoformat(), "problem": problem},
    )


EventTime = Annotated[datetime, AfterValidator(plausible_event_time)]


class EventType(StrEnum):
    MEMBERSHIP_CREATED = "membership.created"
    MEMBERSHIP_ROLE_UPDATED = "membership.role_updated"
    MEMBERSHIP_DEACTIVATED = "membership.deactivated"
    MEMBERSHIP_REACTIVATED = "membership.reactivated"
    # A change to the member's own details (a Dataverse contact update) that is none of the above.
    MEMBER_UPDATED = "member.updated"
    COURSE_ENROLLED = "course.enrolled"
    COURSE_UNENROLLED = "course.unenrolled"


class MemberDetails(BaseModel):
    """The member as the source knows them. A field left as None was not sent: it is kept as is."""

    model_config = ConfigDict(str_strip_whitespace=True)

    dynamics_contact_id: SourceId
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)


class CourseDetails(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    dynamics_course_id: SourceId
    name: str | None = Field(default=None, max_length=500)


class SyncEvent(BaseModel):
    """One change to apply to one member of one organisation."""

    type: EventType
    occurred_at: EventTime
    member: MemberDetails
    role: str | None = Field(default=None, max_length=100)
    course: CourseDetails | None = None
    # Where it came from, for the sync log: e.g. ("Update", "contact") for Dataverse.
    source_message: str | None = None
    source_table: str | None = None
    # The Dynamics row of a membership table, when the member is only known through it.
    dynamics_row_id: SourceId | None = None


@dataclass(frozen=True)
class NotApplicable:
    """A well-formed message that needs nothing applied (unmapped table, echo of our own write)."""

    message: str
    source_message: str | None = None
    source_table: str | None = None


@dataclass(frozen=True)
class Unusable:
    """A message that cannot be applied as it is: shown to admins as an error, not retried."""

    message: str
    source_message: str | None = None
    source_table: str | None = None


ParsedEvent = SyncEvent | NotApplicable | Unusable
