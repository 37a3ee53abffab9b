"""Each function's settings, read from its environment once per execution environment.

A function reads only its own model (`FUNCTION_SETTINGS` names them; template.yaml sets their
variables). A required setting has no default: missing, the cold start fails with its name,
instead of a queue URL or state machine ARN silently becoming "" and a feature a no-op.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets Manager name prefixes: one secret per webhook source id, one per organisation's Dynamics.
# Dataverse's largest page (reconciliation/runs.py's DEFAULT_PAGE_SIZE, which settings cannot
# import: logic never imports the settings, nor these them).
DEFAULT_PAGE_SIZE = 5000
SOURCE_SECRET_PREFIX = "portal-sync/sources/"  # noqa: S105 (a name prefix, not a secret)
DYNAMICS_SECRET_PREFIX = "portal-sync/dynamics/"  # noqa: S105

Required = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class FunctionSettings(BaseSettings):
    """Deployed, the database URL is a secret (`DATABASE_URL_SECRET_ARN`, read once per
    execution environment: bootstrap/shared.py): an environment variable is readable by anyone
    who may read the function's configuration. `DATABASE_URL` itself is for `make run`."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str = Field(default="", description="PostgreSQL URL (`make run`, tests).")
    database_url_secret_arn: str = Field(
        default="", description="The Secrets Manager secret holding the PostgreSQL URL."
    )
    database_connect_timeout_seconds: int = 3

    @model_validator(mode="after")
    def _a_database(self) -> Self:
        if not (self.database_url.strip() or self.database_url_secret_arn.strip()):
            raise ValueError("DATABASE_URL_SECRET_ARN (or DATABASE_URL) must be set")
        return self


class DynamicsClientSettings(BaseSettings):
    """What a function that calls the Dynamics Web API needs."""

    dynamics_secret_prefix: str = Field(
        default=DYNAMICS_SECRET_PREFIX,
        description="Secrets Manager name prefix of the Dynamics credentials (one per org).",
    )
    entra_authority_url: str = Field(
        default="https://login.microsoftonline.com",
        description="Microsoft Entra ID, where Dynamics OAuth tokens come from.",
    )
    dynamics_timeout_seconds: float = 10.0
    # Per Dynamics environment and execution environment; Dataverse allows 6,000 requests per
    # 5 minutes per user, so 10/s keeps a burst of changes well inside its limits.
    dynamics_max_requests_per_second: float = 10.0
    # Lets a Dynamics base URL be plain http on this machine: `make run`'s Dataverse stand-in.
    # Never set on AWS (a test of the template checks).
    allow_local_dynamics: bool = False


class SupabaseAuthSettings(BaseSettings):
    """What a function that verifies Supabase access tokens needs: the project's JWKS
    (preferred: asymmetric keys, nothing secret), its HS256 secret, or both. Deployed, the HS256
    secret is a Secrets Manager secret (`SUPABASE_JWT_SECRET_ARN`): it mints any token."""

    supabase_jwt_secret: str = Field(default="", description="HS256 secret (`make run`).")
    supabase_jwt_secret_arn: str = Field(
        default="", description="The Secrets Manager secret holding the HS256 secret."
    )
    supabase_jwks_url: str = Field(default="", description="JWKS for ES256/RS256 tokens.")

    @model_validator(mode="after")
    def _one_key_at_least(self) -> Self:
        if not (self.supabase_jwt_secret or self.supabase_jwt_secret_arn or self.supabase_jwks_url):
            raise ValueError(
                "SUPABASE_JWKS_URL or SUPABASE_JWT_SECRET_ARN (or SUPABASE_JWT_SECRET) must be set"
            )
        return self


class IngestSettings(FunctionSettings):
    """functions/webhook_ingest."""

    event_queue_url: Required = Field(description="SQS queue of accepted webhook events.")
    source_secret_prefix: str = Field(
        default=SOURCE_SECRET_PREFIX,
        description="Secrets Manager name prefix; one secret per webhook source id.",
    )
    # Dataverse caps its own payloads at 256 KB; twice that leaves room for relays that wrap them.
    max_body_bytes: int = 512 * 1024
    signature_tolerance_seconds: int = 300
    # How long a source's secret is cached before Secrets Manager is asked again. A signature
    # that fails against the cached secret forces one refresh, so rotation works at once.
    # It is also how long a retired secret may still verify on a warm Lambda.
    source_cache_seconds: int = 30
    # Forced refreshes for one source: a small burst, then one per this interval, so that a
    # flood of bad signatures cannot turn into a flood of Secrets Manager calls.
    source_refresh_interval_seconds: float = 1.0
    # After PostgreSQL failed, ingest stops asking it for this long (receipts ride on the queue).
    database_retry_after_seconds: float = 15.0


class ConsumerSettings(FunctionSettings, DynamicsClientSettings):
    """functions/process_event."""

    event_queue_url: Required = Field(description="Where failed events are backed off.")
    website_state_machine_arn: Required = Field(
        description="Started for mentors an inbound change hid or restored."
    )
    # SQS redrive: the consumer parks a message in the dead-letter queue after this many receives.
    max_receive_count: int = 10
    # A message that failed for a transient reason comes back after base * 2^(n-1) seconds.
    retry_base_seconds: int = 30
    retry_max_seconds: int = 900


class AdminApiSettings(FunctionSettings, SupabaseAuthSettings):
    """functions/admin_api."""

    event_queue_url: Required = Field(description="Where reprocessed events are queued.")
    dead_letter_queue_url: Required = Field(
        description="Where SQS parks events; admins reprocess them from there."
    )
    source_secret_prefix: str = Field(default=SOURCE_SECRET_PREFIX)
    dynamics_secret_prefix: str = Field(default=DYNAMICS_SECRET_PREFIX)
    public_base_url: str = Field(
        default="", description="Base URL of the webhook endpoint; the request's own if unset."
    )
    allow_local_dynamics: bool = False
    sync_run_state_machine_arn: Required = Field(
        description="Started for the imports and reconciliations admins ask for."
    )


class WebsiteSyncSettings(FunctionSettings, SupabaseAuthSettings, DynamicsClientSettings):
    """functions/website_sync."""

    website_state_machine_arn: Required = Field(
        description="The state machine that delivers mentor visibility changes."
    )
    # An execution's attempts (visibility/delivery.py's RetryPolicy): template parameters
    # VisibilityMaxRetries and VisibilityRetryIntervalSeconds.
    visibility_max_retries: int = Field(default=5, ge=0, le=20)
    visibility_retry_interval_seconds: float = Field(default=30.0, ge=1)
    on_call_topic_arn: str = Field(
        default="",
        description="Where an organisation's website visibility outage is told to on-call "
        "(once per outage, and once when it recovers); empty: notices wait unsent.",
    )


class ReconcileSettings(FunctionSettings, DynamicsClientSettings):
    """functions/reconcile."""

    sync_run_state_machine_arn: Required = Field(
        description="The state machine that reads a run's pages (one execution per run)."
    )
    website_state_machine_arn: Required = Field(
        description="Started for mentors an imported change hid or restored."
    )
    # Rows per page (Prefer: odata.maxpagesize); Dataverse allows up to 5,000.
    sync_page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=5000)
    # A change a reconciliation finds is drift (a lost webhook) once it is this old.
    reconcile_drift_grace_seconds: int = Field(default=120, ge=0)


# Which model each function (its folder under functions/) reads.
FUNCTION_SETTINGS: dict[str, type[FunctionSettings]] = {
    "webhook_ingest": IngestSettings,
    "process_event": ConsumerSettings,
    "admin_api": AdminApiSettings,
    "website_sync": WebsiteSyncSettings,
    "reconcile": ReconcileSettings,
}
