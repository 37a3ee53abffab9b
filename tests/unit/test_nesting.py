"""How deep an event's JSON may nest: counted without recursion, so any depth can be asked."""

from __future__ import annotations

import json
from typing import Any

from portal_sync.inbound.nesting import MAX_NESTING, nested_deeper_than


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"v": value}
    return value


def test_depth_up_to_the_limit_is_fine_and_one_more_is_too_deep() -> None:
    assert not nested_deeper_than(nested(MAX_NESTING))
    assert nested_deeper_than(nested(MAX_NESTING + 1))


def test_scalars_and_flat_values_are_not_nested() -> None:
    assert not nested_deeper_than("text")
    assert not nested_deeper_than({"a": 1, "b": [1, 2, 3]})


def test_a_value_deeper_than_the_stack_is_counted_without_overflowing() -> None:
    assert nested_deeper_than(nested(100_000))


def test_a_real_dataverse_context_is_far_from_the_limit() -> None:
    from conftest import ROOT

    for capture in (ROOT / "tests" / "fixtures" / "dataverse").glob("*.json"):
        assert not nested_deeper_than(json.loads(capture.read_text()), MAX_NESTING // 3), capture
