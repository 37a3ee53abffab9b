"""Keyset cursors for pages newest first: the last row's (time, id), opaque to clients."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID


def encode_cursor(at: datetime, id: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """ValueError when `cursor` is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id = json.loads(raw)
        return datetime.fromisoformat(at), UUID(id)
    except (ValueError, TypeError, AttributeError) as exc:  # UUID(5): AttributeError
        raise ValueError("not a cursor of this list") from exc


def encode_name_cursor(name: str, id: UUID) -> str:
    """For pages in name order (organisations): the last row's (name, id)."""
    raw = json.dumps(["name", name, str(id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_name_cursor(cursor: str) -> tuple[str, UUID]:
    """ValueError when `cursor` is not a name cursor of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, name, id = json.loads(raw)
        # Text PostgreSQL can compare: no NUL, no lone surrogate (a 422, never a 500).
        if kind != "name" or not isinstance(name, str) or "\x00" in name:
            raise ValueError("not a name cursor")
        name.encode("utf-8")
        return name, UUID(id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError("not a cursor of this list") from exc
