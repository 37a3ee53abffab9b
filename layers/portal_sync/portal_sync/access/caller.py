"""Who is calling: a signed-in Supabase user, as the access rules and the audit log see them."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class Caller:
    user_id: UUID
    email: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names them: the user id (stable), never the token."""
        return str(self.user_id)
