"""The EventBridge schedule's event, as the functions it invokes recognise it."""

from __future__ import annotations

from typing import Any


def is_schedule(event: dict[str, Any]) -> bool:
    return event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event"
