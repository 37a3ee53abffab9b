"""Keyset cursors, opaque to clients: the last row's (time, id) for pages newest first, or its
(name, id) for pages in name order. A cursor is its values as JSON, base64url without padding."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from uuid import UUID


def _pack(*values: Any) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unpack(cursor: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def encode_cursor(at: datetime, id: UUID) -> str:
    return _pack(at.isoformat(), str(id))


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """ValueError when `cursor` is not one of ours."""
    try:
        at, id = _unpack(cursor)
        return datetime.fromisoformat(at), UUID(id)
    except (ValueError, TypeError, AttributeError) as exc:  # UUID(5): AttributeError
        raise ValueError("not a cursor of this list") from exc


def encode_name_cursor(name: str, id: UUID) -> str:
    """For pages in name order (organisations): the last row's (name, id)."""
    return _pack("name", name, str(id))


def decode_name_cursor(cursor: str) -> tuple[str, UUID]:
    """ValueError when `cursor` is not a name cursor of ours."""
    try:
        kind, name, id = _unpack(cursor)
        # Text PostgreSQL can compare: no NUL, no lone surrogate (a 422, never a 500).
        if kind != "name" or not isinstance(name, str) or "\x00" in name:
            raise ValueError("not a name cursor")
        name.encode("utf-8")
        return name, UUID(id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError("not a cursor of this list") from exc
