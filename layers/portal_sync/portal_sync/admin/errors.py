"""What the admin logic refuses with, beside access.authority.Forbidden. The admin API's
handler answers each with its status and the message as written here (docs/admin-api.md,
"Authentication and authority")."""

from __future__ import annotations


class NotFound(Exception):
    """404: the organisation, its integration or the event does not exist."""


class Conflict(Exception):
    """409: the request contradicts the current state (a source id in use, an event that
    cannot be reprocessed)."""


class InvalidSettings(Exception):
    """422: validation beyond one field's shape; `errors` are (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


class InvalidCursor(ValueError):
    """422 on `cursor`: not a next_cursor this API handed out (storage raises it on decoding)."""

    def __init__(self) -> None:
        super().__init__("cursor is not one this API handed out")
