"""The two kinds of secret in Secrets Manager, their names and their JSON: one reader and one
writer of each, for the admin API that writes them and the functions that read them.

- `<source prefix><source id>`: a webhook source's configuration (inbound/source_config.py),
  without its id (the name holds it);
- `<dynamics prefix><organisation id>`: `{"secret": ...}`, an organisation's Dynamics client
  secret or API key (never stored in PostgreSQL).
"""

from __future__ import annotations

import json
from uuid import UUID

from portal_sync.inbound.source_config import SourceConfig


def source_secret_name(prefix: str, source_id: str) -> str:
    return f"{prefix}{source_id}"


def read_source(source_id: str, secret_string: str) -> SourceConfig:
    """Raises ValueError (pydantic's ValidationError or a JSON error) for a malformed secret."""
    return SourceConfig.model_validate({**json.loads(secret_string), "source_id": source_id})


def write_source(config: SourceConfig) -> str:
    return config.model_dump_json(exclude={"source_id"})


def dynamics_secret_name(prefix: str, organization_id: UUID) -> str:
    return f"{prefix}{organization_id}"


def read_dynamics_secret(secret_string: str) -> str:
    """Raises ValueError or KeyError for a malformed secret."""
    return str(json.loads(secret_string)["secret"])


def write_dynamics_secret(secret: str) -> str:
    return json.dumps({"secret": secret})
