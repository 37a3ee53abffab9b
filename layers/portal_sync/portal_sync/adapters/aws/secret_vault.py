"""The admin API's SecretVault (admin/ports.py) in Secrets Manager: webhook source
configurations and Dynamics credentials.

The ingest reads the same secrets (adapters/aws/source_store.py), in the formats of
secret_formats.py. Secrets Manager encrypts them with KMS, and only the functions whose
policies name these prefixes can read them (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from portal_sync.adapters.aws import secret_formats
from portal_sync.inbound.source_config import SourceConfig
from portal_sync.observability import tracer


class SecretsManagerVault:
    def __init__(self, client: Callable[[], Any], source_prefix: str, dynamics_prefix: str) -> None:
        # The client's factory, called when a secret is read or written: most admin requests
        # touch none, and creating a client (botocore, its service model) is tens of ms of a
        # cold start.
        self._client_factory = client
        self._source_prefix = source_prefix
        self._dynamics_prefix = dynamics_prefix

    @property
    def _client(self) -> Any:
        return self._client_factory()

    @tracer.capture_method
    def read_source(self, source_id: str) -> SourceConfig | None:
        try:
            response = self._client.get_secret_value(
                SecretId=secret_formats.source_secret_name(self._source_prefix, source_id)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        return secret_formats.read_source(source_id, response["SecretString"])

    @tracer.capture_method
    def write_source(self, config: SourceConfig) -> None:
        self._put(
            secret_formats.source_secret_name(self._source_prefix, config.source_id),
            secret_formats.write_source(config),
        )

    @tracer.capture_method
    def delete_source(self, source_id: str) -> None:
        try:
            # At once: a secret pending deletion cannot be read, which the ingest would have to
            # tell apart from an outage. Its keys live on in the source's new secret.
            self._client.delete_secret(
                SecretId=secret_formats.source_secret_name(self._source_prefix, source_id),
                ForceDeleteWithoutRecovery=True,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise

    @tracer.capture_method
    def write_dynamics_credentials(self, organization_id: UUID, secret: str) -> None:
        self._put(
            secret_formats.dynamics_secret_name(self._dynamics_prefix, organization_id),
            secret_formats.write_dynamics_secret(secret),
        )

    def _put(self, name: str, body: str) -> None:
        try:
            self._client.put_secret_value(SecretId=name, SecretString=body)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self._client.create_secret(Name=name, SecretString=body)
