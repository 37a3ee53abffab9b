"""What several functions build the same way: the connection, the token verifier, the Dynamics
Web API client and its targets, each from the calling function's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from portal_sync.adapters.postgres.connection import ConnectionProvider

if TYPE_CHECKING:
    from portal_sync.adapters.aws.dynamics_targets import SecretsDynamicsTargets
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi
    from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier
    from portal_sync.settings import DynamicsClientSettings, FunctionSettings, SupabaseAuthSettings
    from portal_sync.visibility.ports import DynamicsSettings


def connection_provider(
    settings: FunctionSettings, *, autocommit: bool = False
) -> ConnectionProvider:
    """The execution environment's one connection; a deployed function's URL comes from its
    secret when the first connection is opened (not at import)."""
    return ConnectionProvider(
        lambda: settings.database_url or secret_string(settings.database_url_secret_arn),
        settings.database_connect_timeout_seconds,
        autocommit=autocommit,
    )


def jwt_verifier(settings: SupabaseAuthSettings) -> SupabaseJwtVerifier:
    from portal_sync.entrypoints.http.supabase_jwt import SupabaseJwtVerifier

    hs256 = settings.supabase_jwt_secret
    if not hs256 and settings.supabase_jwt_secret_arn:
        hs256 = secret_string(settings.supabase_jwt_secret_arn)
    return SupabaseJwtVerifier(hs256, settings.supabase_jwks_url)


def secret_string(arn: str) -> str:
    """A secret of the function's own settings, once per execution environment (the client
    caches nothing itself; a rotation reaches a function on its next cold start)."""
    from portal_sync.adapters.aws.secret_settings import secret_string as read

    return read(arn)


def web_api(settings: DynamicsClientSettings) -> DataverseWebApi:
    """The Web API client of an execution environment (httpx is imported only here)."""
    from portal_sync.adapters.dynamics.web_api import DataverseWebApi
    from portal_sync.adapters.rate_limiter import RateLimiter

    rate = settings.dynamics_max_requests_per_second
    return DataverseWebApi(
        timeout_seconds=settings.dynamics_timeout_seconds,
        rate_limiter=RateLimiter(rate, burst=max(1, int(rate))),
        allow_local=settings.allow_local_dynamics,
    )


class DynamicsSettingsSource(Protocol):
    def dynamics_settings(self, organization_id: UUID) -> DynamicsSettings | None: ...


def dynamics_targets(
    settings: DynamicsClientSettings, repo: DynamicsSettingsSource
) -> SecretsDynamicsTargets:
    """Each organisation's Dynamics settings from `repo` (in the caller's transaction), its
    credentials from Secrets Manager."""
    from portal_sync.adapters.aws.clients import client
    from portal_sync.adapters.aws.dynamics_targets import SecretsDynamicsTargets

    return SecretsDynamicsTargets(
        repo.dynamics_settings,
        client("secretsmanager"),
        settings.dynamics_secret_prefix,
        settings.entra_authority_url,
    )
