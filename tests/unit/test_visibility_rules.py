"""When a peer mentor may appear on the public website (docs/website-visibility.md)."""

from __future__ import annotations

from datetime import date

import pytest
from portal_sync.visibility.rules import MentorFacts, desired_visibility, reasons_hidden

TODAY = date(2026, 11, 23)


def facts(**changes: object) -> MentorFacts:
    base: dict[str, object] = {
        "membership_active": True,
        "paused": False,
        "hidden_manually": False,
        "certified_until": date(2027, 1, 1),
    }
    return MentorFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_an_active_certified_mentor_is_visible() -> None:
    assert desired_visibility(facts(), TODAY) is True
    assert reasons_hidden(facts(), TODAY) == []


def test_the_certificate_is_valid_through_its_last_day() -> None:
    assert desired_visibility(facts(certified_until=TODAY), TODAY) is True
    assert reasons_hidden(facts(certified_until=date(2026, 11, 22)), TODAY) == [
        "the certificate expired on 2026-11-22"
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"membership_active": False}, "the membership is inactive"),
        ({"paused": True}, "the mentor is paused"),
        ({"certified_until": None}, "no valid certificate is registered"),
        ({"hidden_manually": True}, "a coordinator hid the mentor"),
    ],
)
def test_each_reason_hides_the_mentor(change: dict[str, object], reason: str) -> None:
    assert desired_visibility(facts(**change), TODAY) is False
    assert reasons_hidden(facts(**change), TODAY) == [reason]


def test_every_reason_is_reported() -> None:
    everything = facts(membership_active=False, paused=True, certified_until=None)
    assert len(reasons_hidden(everything, TODAY)) == 3
