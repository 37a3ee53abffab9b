"""functions/website_sync's state machine tasks and schedule, through its handler, with the
VisibilityService on in-memory fakes (tests/unit/test_visibility_service.py) in place of the
bootstrap's: what the state machine receives, and the correlation id on their log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from portal_sync.bootstrap import website_read_back
from portal_sync.bootstrap import website_sync as wiring
from portal_sync.dataverse.failure import FailureKind
from portal_sync.observability import logger
from portal_sync.visibility.outages import NoticeKind, OutageAlerts, OutageNotice
from portal_sync.visibility.read_back import ReadBack, ReadBackWork
from portal_sync.visibility.service import VisibilityService
from test_visibility_service import (
    CONTACT,
    COORDINATOR,
    MENTOR,
    TODAY,
    FakeStarter,
    FakeTargets,
    World,
    dynamics_failure,
    world,  # noqa: F401 (the fixture)
)

import functions.website_sync.app as website_sync


@dataclass
class Context:
    """The attributes of a Lambda context that Powertools reads."""

    aws_request_id: str = "request-1"
    function_name: str = "portal-sync-website-sync-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-north-1:000000000000:function:portal-sync-website-sync-test"
    )


class Lines(logging.Handler):
    """The function's log lines, formatted when written (Powertools' JSON)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logger.registered_formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[list[dict[str, Any]]]:
    handler = Lines()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> World:  # noqa: F811
    """The bootstrap's services replaced by the world's; starting an execution fails."""

    @contextmanager
    def visibility(*, delivering: bool = False) -> Iterator[VisibilityService]:
        yield world.service

    @contextmanager
    def outage_alerts() -> Iterator[OutageAlerts]:
        yield OutageAlerts(NoOutages(), publisher=None)

    @contextmanager
    def read_back_work() -> Iterator[ReadBackWork]:
        yield ReadBackWork(NothingToReadBack(), world.repo, FakeTargets())

    monkeypatch.setattr(wiring, "visibility", visibility)
    monkeypatch.setattr(wiring, "outage_alerts", outage_alerts)
    monkeypatch.setattr(
        website_read_back, "read_back", lambda: ReadBack(read_back_work, world.writer)
    )
    monkeypatch.setattr(wiring, "starter", lambda: FakeStarter(failing=True))
    return world


class NothingToReadBack:
    """A ReadBackStore with no organisation due (tests/integration/test_visibility_read_back.py
    reads some back)."""

    def waiting(self, now: datetime, interval: timedelta, limit: int) -> list[UUID]:
        return []

    def claim(self, organization_id: UUID) -> Any:
        raise AssertionError("nothing is due")

    def mentors(self, *args: Any) -> Any:
        raise AssertionError("nothing is due")

    def save(self, progress: Any) -> None:
        raise AssertionError("nothing is due")


class NoOutages:
    """An OutageStore with no outage (tests/integration/test_visibility_outages.py has some)."""

    def close_recovered_outages(self) -> int:
        return 0

    def unsent_outage_notices(self, limit: int) -> list[OutageNotice]:
        return []

    def mark_notice_sent(self, outage_id: UUID, kind: NoticeKind) -> None:
        raise AssertionError("nothing to send")


def invoke(event: dict[str, Any]) -> Any:
    return website_sync.handler(event, Context())


def paused(wired: World) -> str:
    """Pauses the mentor: one change recorded, its id."""
    wired.service.pause(COORDINATOR, MENTOR, None, paused=True)
    [change_id] = wired.repo.changes
    return str(change_id)


def test_a_delivered_change_answers_the_state_machine(wired: World) -> None:
    change_id = paused(wired)

    answer = invoke({"task": "apply_visibility", "change_id": change_id})

    assert answer == {
        "status": "applied",
        "message": "Mentor hidden from the website",
        "error": None,
        "wait_seconds": None,
    }
    assert wired.writer.shown[CONTACT] is False


@pytest.mark.parametrize(
    ("kind", "facts", "error", "status"),
    [
        (FailureKind.UNAVAILABLE, {"status_code": 503}, "DynamicsUnavailable", "retry"),
        (
            FailureKind.THROTTLED,
            {"status_code": 429, "retry_after": 60},
            "DynamicsThrottled",
            "retry",
        ),
        (FailureKind.NOT_FOUND, {"status_code": 404}, "DynamicsRejected", "failed"),
    ],
)
def test_a_failed_attempt_is_a_status_for_the_state_machine_not_a_lambda_error(
    wired: World,
    lines: list[dict[str, Any]],
    kind: FailureKind,
    facts: dict[str, Any],
    error: str,
    status: str,
) -> None:
    change_id = paused(wired)
    failure = dynamics_failure(kind, **facts)
    wired.writer.failures.append(failure)

    # Answered, not raised: a raised error counts in AWS/Lambda Errors, which pages on-call.
    answer = invoke({"task": "apply_visibility", "change_id": change_id})

    assert (answer["status"], answer["error"], answer["message"]) == (
        status,
        error,
        failure.message,
    )
    if status == "retry":
        assert isinstance(answer["wait_seconds"], int) and answer["wait_seconds"] >= 1
    else:
        assert answer["wait_seconds"] is None
    assert wired.repo.mentor().last_error == failure.message
    [line] = [line for line in lines if line["message"] == "A website visibility attempt failed"]
    assert line["correlation_id"] == change_id
    assert (line["error"], line["reason"], line["outcome"]) == (error, failure.message, status)


def test_the_failure_task_takes_the_last_attempts_answer(wired: World) -> None:
    change_id = paused(wired)
    failure = dynamics_failure(FailureKind.NOT_FOUND, status_code=404)
    answered = {
        "status": "failed",
        "error": "DynamicsRejected",
        "message": failure.message,
        "wait_seconds": None,
    }

    answer = invoke(
        {"task": "record_visibility_failure", "change_id": change_id, "error": answered}
    )

    assert answer == {"message": failure.message, "current": True}
    assert wired.repo.mentor().last_error.startswith(f"{failure.message}. Tried again")


def test_the_failure_task_records_the_attempts_message_and_plans_the_redelivery(
    wired: World,
) -> None:
    change_id = paused(wired)
    error = dynamics_failure(FailureKind.NOT_FOUND, status_code=404)
    caught = {
        "Error": "DynamicsRejected",
        "Cause": json.dumps({"errorType": "DynamicsRejected", "errorMessage": error.message}),
    }

    answer = invoke({"task": "record_visibility_failure", "change_id": change_id, "error": caught})

    assert answer == {"message": error.message, "current": True}
    assert wired.repo.mentor().sync_state == "failed"
    assert wired.repo.mentor().last_error.startswith(f"{error.message}. Tried again")


def test_a_failure_outside_our_attempts_is_named(wired: World) -> None:
    change_id = paused(wired)
    caught = {"Error": "States.Timeout", "Cause": "not JSON"}

    invoke({"task": "record_visibility_failure", "change_id": change_id, "error": caught})

    assert wired.repo.mentor().last_error.startswith(
        "The change could not be delivered (States.Timeout). Tried again automatically"
    )


def test_the_schedule_sweeps_and_its_log_lines_carry_the_events_id(
    wired: World, lines: list[dict[str, Any]]
) -> None:
    wired.repo.save_mentor(replace(wired.repo.mentor(), certified_until=TODAY - timedelta(days=1)))
    event = {"id": "schedule-event-1", "source": "aws.events", "detail-type": "Scheduled Event"}

    answer = invoke(event)

    # Swept (and hidden), but its delivery could not be started: the next run starts it.
    assert answer == {
        "requested": 0,
        "reconsidered": 1,
        "read_back_mentors": 0,
        "hand_edits_repaired": 0,
        "read_back_organizations": 0,
        "redelivered": 0,
        "dispatched": 0,
        "outages_recovered": 0,
        "on_call_notices": 0,
    }
    assert wired.repo.mentor().desired is False
    [line] = [line for line in lines if "Could not start visibility deliveries" in line["message"]]
    assert line["correlation_id"] == "schedule-event-1"
    assert line["change_ids"] == [str(c) for c in wired.repo.changes]
