"""When a peer mentor may be shown on the public website: the first step of the visibility flow
(rules → outbox → delivery; docs/website-visibility.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date


@dataclass(frozen=True)
class MentorFacts:
    membership_active: bool
    paused: bool
    hidden_manually: bool
    certified_until: date | None


def reasons_hidden(facts: MentorFacts, today: date) -> list[str]:
    """Why the mentor must not be visible, in words a coordinator understands; empty: visible."""
    reasons = []
    if not facts.membership_active:
        reasons.append("the membership is inactive")
    if facts.paused:
        reasons.append("the mentor is paused")
    if facts.certified_until is None:
        reasons.append("no valid certificate is registered")
    elif facts.certified_until < today:
        reasons.append(f"the certificate expired on {facts.certified_until.isoformat()}")
    if facts.hidden_manually:
        reasons.append("a coordinator hid the mentor")
    return reasons


def desired_visibility(facts: MentorFacts, today: date) -> bool:
    return not reasons_hidden(facts, today)


def reasons_restore_is_refused(facts: MentorFacts, today: date) -> list[str]:
    """What still hides the mentor once a coordinator lifts their own hiding: a restore cannot
    override the membership, a pause or the certificate."""
    return reasons_hidden(replace(facts, hidden_manually=False), today)
