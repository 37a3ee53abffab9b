"""On-call hears of a Dynamics outage once per organisation (docs/website-visibility.md,
"Alerts"), not once per mentor.

A delivery that gives up (delivery.py's `record_failure`) joins its organisation's open outage,
opening it if there is none. The website-sync schedule then publishes, for each outage, one
alert with the number of mentors affected, and, once every one of them is delivered, one
recovery notice. Nothing needs a person per mentor: the redeliveries go on by themselves. An
outage that heals before its alert went out pages nobody at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol
from uuid import UUID

from portal_sync.observability import logger, tracer

NoticeKind = Literal["opened", "recovered"]


@dataclass(frozen=True)
class OutageNotice:
    """A notice of an outage that on-call has not been sent yet."""

    outage_id: UUID
    kind: NoticeKind
    organization_id: UUID
    organization_name: str
    started_at: datetime
    recovered_at: datetime | None
    cause: str
    mentors_affected: int
    mentors_waiting: int  # of those, not delivered yet


@dataclass(frozen=True)
class OnCallMessage:
    subject: str
    message: str


class OutageStore(Protocol):
    def close_recovered_outages(self) -> int:
        """Marks recovered the open outages whose mentors are all delivered; how many."""
        ...

    def unsent_outage_notices(self, limit: int) -> list[OutageNotice]:
        """The notices to send, oldest outage first, locked for the caller's transaction
        (two schedules never send one twice)."""
        ...

    def mark_notice_sent(self, outage_id: UUID, kind: NoticeKind) -> None: ...


class OnCallPublisher(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def worded(notice: OutageNotice, now: datetime) -> OnCallMessage:
    """What on-call reads: which organisation, how many mentors, what failed, what happens next
    and what they can do (never a mentor's personal data: counts and ids only)."""
    org = f"{notice.organization_name} ({notice.organization_id})"
    mentors = f"{notice.mentors_affected} peer mentor{'s' if notice.mentors_affected != 1 else ''}"
    since = f"{notice.started_at:%Y-%m-%d %H:%M} UTC"
    if notice.kind == "opened":
        return OnCallMessage(
            f"portal sync: website visibility failing for {notice.organization_name}",
            f"Website visibility changes of organisation {org} cannot be delivered to Dynamics "
            f"since {since}: {mentors} affected so far, and a paused or uncertified mentor may "
            f"still be shown on the public website. First failure: {notice.cause}. Every "
            "change is tried again automatically (at growing intervals, up to hourly) and this "
            "alert is not repeated for this outage; one notice follows when all of them are "
            "delivered. Fix the cause, then POST /api/v1/website-sync/retry-failed"
            f"?organization_id={notice.organization_id} to deliver them at once.",
        )
    ended = notice.recovered_at or now
    return OnCallMessage(
        f"portal sync: website visibility recovered for {notice.organization_name}",
        f"Website visibility of organisation {org} is delivered to Dynamics again: all "
        f"{mentors} affected since {since} are up to date, after "
        f"{_minutes((ended - notice.started_at).total_seconds())}. Nothing is left to do.",
    )


class OutageAlerts:
    def __init__(
        self,
        store: OutageStore,
        publisher: OnCallPublisher | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`publisher` None: alerts are not configured (they wait, unsent, until they are)."""
        self._store = store
        self._publisher = publisher
        self._now = now

    @tracer.capture_method
    def close_recovered(self) -> int:
        return self._store.close_recovered_outages()

    @tracer.capture_method
    def send(self, limit: int = 20) -> int:
        """Publishes the notices not sent yet; each is marked sent only once published, so a
        failed publish is sent by the next schedule. Returns how many went out."""
        if self._publisher is None:
            return 0
        sent = 0
        for notice in self._store.unsent_outage_notices(limit):
            message = worded(notice, self._now())
            try:
                self._publisher.publish(message.subject, message.message)
            except Exception as exc:  # the ones sent stay marked; the rest wait for the next
                logger.error(
                    "Could not alert on-call of a website visibility outage; the next schedule "
                    "tries again",
                    extra={"error": type(exc).__name__, "notice": notice.kind},
                )
                break
            self._store.mark_notice_sent(notice.outage_id, notice.kind)
            sent += 1
            logger.info(
                "On-call told of a website visibility outage",
                extra={
                    "notice": notice.kind,
                    "organization_id": str(notice.organization_id),
                    "mentors_affected": notice.mentors_affected,
                },
            )
        return sent
