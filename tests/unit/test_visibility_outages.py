"""On-call notices of an organisation's website visibility outage (visibility/outages.py): what
they say, and that a failed publish loses none."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from portal_sync.adapters.aws.on_call_topic import sns_subject
from portal_sync.visibility.outages import NoticeKind, OutageAlerts, OutageNotice, worded

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ORG = uuid.UUID("00000000-0000-4000-8000-00000000000a")
OPENED = OutageNotice(
    outage_id=uuid.uuid4(),
    kind="opened",
    organization_id=ORG,
    organization_name="Likeperson Tromsø",
    started_at=NOW - timedelta(minutes=8),
    recovered_at=None,
    cause="Dynamics is unavailable right now (HTTP 503); the change will be retried",
    mentors_affected=50,
    mentors_waiting=50,
)


@dataclass
class Store:
    notices: list[OutageNotice]
    sent: list[tuple[UUID, NoticeKind]] = field(default_factory=list)

    def close_recovered_outages(self) -> int:
        return 0

    def unsent_outage_notices(self, limit: int) -> list[OutageNotice]:
        return self.notices[:limit]

    def mark_notice_sent(self, outage_id: UUID, kind: NoticeKind) -> None:
        self.sent.append((outage_id, kind))


@dataclass
class Topic:
    fail_after: int | None = None
    published: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, subject: str, message: str) -> None:
        if self.fail_after is not None and len(self.published) >= self.fail_after:
            raise ConnectionError("SNS unreachable")
        self.published.append((subject, message))


def test_an_outage_alert_counts_the_mentors_and_says_what_happens_next() -> None:
    alert = worded(OPENED, NOW)

    assert alert.subject == "portal sync: website visibility failing for Likeperson Tromsø"
    assert f"organisation Likeperson Tromsø ({ORG})" in alert.message
    assert "since 2026-12-02 11:52 UTC: 50 peer mentors affected so far" in alert.message
    assert f"First failure: {OPENED.cause}." in alert.message
    assert "tried again automatically" in alert.message
    assert f"retry-failed?organization_id={ORG}" in alert.message


def test_a_recovery_notice_says_how_many_and_how_long() -> None:
    notice = replace(OPENED, kind="recovered", recovered_at=NOW, mentors_waiting=0)

    recovered = worded(notice, NOW)

    assert recovered.subject == "portal sync: website visibility recovered for Likeperson Tromsø"
    assert "all 50 peer mentors affected since 2026-12-02 11:52 UTC" in recovered.message
    assert "after 8 minutes" in recovered.message


def test_a_failed_publish_leaves_that_notice_and_the_rest_for_the_next_schedule() -> None:
    second = replace(OPENED, outage_id=uuid.uuid4(), organization_id=uuid.uuid4())
    store, topic = Store([OPENED, second]), Topic(fail_after=1)

    assert OutageAlerts(store, topic, lambda: NOW).send() == 1

    assert store.sent == [(OPENED.outage_id, "opened")]
    assert len(topic.published) == 1


def test_without_a_topic_nothing_is_marked_sent() -> None:
    store = Store([OPENED])

    assert OutageAlerts(store, None, lambda: NOW).send() == 0
    assert store.sent == []


@pytest.mark.parametrize(
    ("subject", "sent"),
    [
        ("visibility failing for Tromsø", "visibility failing for Tromso"),
        ("… Ålesund og Bærum\n", "... Alesund og Baerum "),
    ],
)
def test_sns_subjects_are_ascii_on_one_line(subject: str, sent: str) -> None:
    assert sns_subject(subject) == sent


def test_a_long_subject_is_cut_under_snss_limit() -> None:
    cut = sns_subject("portal sync: website visibility failing for " + "Likeperson " * 20)
    assert len(cut) < 100 and cut.endswith("...")
