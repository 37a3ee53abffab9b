"""Where an organisation's mentor visibility is written (the DynamicsTargets of
visibility/ports.py): its Dynamics settings, as the caller reads them (the visibility repository,
wired by bootstrap/), joined with its credentials from Secrets Manager, where the admin API
writes them (never in the database; docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from portal_sync.adapters.aws.secret_formats import dynamics_secret_name, read_dynamics_secret
from portal_sync.dataverse.connection import DynamicsConnection
from portal_sync.visibility.ports import DynamicsSettings, DynamicsTarget

SettingsOf = Callable[[UUID], DynamicsSettings | None]


class SecretsDynamicsTargets:
    def __init__(
        self,
        settings_of: SettingsOf,
        secrets_client: Any,
        secret_prefix: str,
        authority_url: str,
    ) -> None:
        self._settings_of = settings_of
        self._secrets = secrets_client
        self._prefix = secret_prefix
        self._authority_url = authority_url

    # Not traced: the Tracer records a method's answer in X-Ray, and this one holds the secret
    # (X-Ray already traces the Secrets Manager call itself).
    def target(self, organization_id: UUID) -> DynamicsTarget | None:
        """None when the organisation has no Dynamics settings or no credentials stored."""
        settings = self._settings_of(organization_id)
        if settings is None:
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
            base_url=settings.base_url,
            auth_type=settings.auth_type,
            secret=secret,
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            authority_url=self._authority_url,
            api_key_header=settings.api_key_header,
        )
        return DynamicsTarget(connection, settings.visibility_column, settings.application_user_id)
