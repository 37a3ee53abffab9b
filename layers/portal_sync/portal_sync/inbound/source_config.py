"""A webhook source: which organisation it belongs to and how its requests are verified.

The configuration lives in Secrets Manager (one secret per source id) rather than PostgreSQL:
accepting a webhook must keep working while the database is down, and the signing secrets must
be encrypted at rest anyway (Secrets Manager encrypts with KMS).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, Field

# What a source id may be (the admin API refuses any other): the ingest answers any other as an
# unknown source at once, so a scanner's random path costs no Secrets Manager call.
SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
_SOURCE_ID = re.compile(SOURCE_ID_PATTERN)


def is_source_id(text: str) -> bool:
    return _SOURCE_ID.fullmatch(text) is not None


class SignatureMode(StrEnum):
    STANDARD_WEBHOOKS = "standard-webhooks"
    HEADER_KEY = "header-key"


class SigningKey(BaseModel):
    """One secret: a `whsec_...` value (standard-webhooks) or a static header value (header-key).

    `expires_at` is set on the previous key when a new one is rotated in: it stays valid for the
    grace period and is then ignored.
    """

    value: str
    created_at: datetime | None = None
    expires_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


class SourceConfig(BaseModel):
    source_id: str
    organization_id: UUID
    enabled: bool = True
    mode: SignatureMode = SignatureMode.STANDARD_WEBHOOKS
    keys: list[SigningKey] = Field(default_factory=list)
    header_name: str = "x-portal-sync-key"

    def active_keys(self, now: datetime | None = None) -> list[str]:
        moment = now or datetime.now(UTC)
        return [key.value for key in self.keys if key.value and key.is_active(moment)]
