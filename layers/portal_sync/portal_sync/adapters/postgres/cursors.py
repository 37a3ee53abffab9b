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
    except (ValueError, TypeError) as exc:
        raise ValueError("not a cursor of this list") from exc
