"""Where an organisation's mentor visibility is written: settings from PostgreSQL, credentials
from Secrets Manager (written there by the admin API, never stored in the database)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from portal_sync.adapters.aws.secret_formats import dynamics_secret_name, read_dynamics_secret
from portal_sync.adapters.postgres.visibility_repository import PostgresVisibilityRepository
from portal_sync.dataverse.connection import DynamicsConnection
from portal_sync.visibility.ports import DynamicsTarget


class SecretsDynamicsTargets:
    def __init__(
        self,
        repo: PostgresVisibilityRepository,
        secrets_client: Any,
        secret_prefix: str,
        authority_url: str,
    ) -> None:
        self._repo = repo
        self._secrets = secrets_client
        self._prefix = secret_prefix
        self._authority_url = authority_url

    def target(self, organization_id: UUID) -> DynamicsTarget | None:
        settings = self._repo.dynamics_settings(organization_id)
        if not settings or not settings["dynamics_base_url"]:
            return None
        try:
            secret = read_dynamics_secret(
                self._secrets.get_secret_value(
                    SecretId=dynamics_secret_name(self._prefix, organization_id)
                )["SecretString"]
            )
        except self._secrets.exceptions.ResourceNotFoundException:
            return None
        connection = DynamicsConnection(
            base_url=settings["dynamics_base_url"],
            auth_type=settings["dynamics_auth_type"],
            secret=secret,
            tenant_id=settings["dynamics_tenant_id"],
            client_id=settings["dynamics_client_id"],
            authority_url=self._authority_url,
        )
        return DynamicsTarget(connection, settings["website_visibility_column"])
