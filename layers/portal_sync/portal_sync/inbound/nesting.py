"""How deep an event's JSON may nest before it is not read at all.

Python's JSON parser and the Dataverse decoder recurse once per level: a body nested a few
hundred levels deep that the ingest could still parse exhausts the consumer's stack, fails on
every attempt and would be retried until parked. No real event comes near the limit (a
Dataverse context with a few ParentContext levels and an activity party list nests about 30).
"""

from __future__ import annotations

from typing import Any

MAX_NESTING = 100
TOO_DEEP = (
    f"The event's JSON is nested more than {MAX_NESTING} levels deep, which no Dynamics or "
    "portal event is, so it was not read; check what sends it"
)


def nested_deeper_than(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether lists and objects in `value` nest more than `limit` levels. Iterative: a
    recursive walk would overflow on exactly the values it is meant to catch."""
    if not isinstance(value, dict | list):
        return False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
