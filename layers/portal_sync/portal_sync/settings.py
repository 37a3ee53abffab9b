"""Runtime settings, read from the environment once per execution environment."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: str = Field(default="", description="PostgreSQL URL (Supabase pooler or direct).")
    event_queue_url: str = Field(default="", description="SQS queue of accepted webhook events.")
    source_secret_prefix: str = Field(
        default="portal-sync/sources/",
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
    database_connect_timeout_seconds: int = 3
    # SQS redrive: the consumer parks a message in the dead-letter queue after this many receives.
    max_receive_count: int = 10
    # A message that failed for a transient reason comes back after base * 2^(n-1) seconds.
    retry_base_seconds: int = 30
    retry_max_seconds: int = 900
    dead_letter_queue_url: str = Field(
        default="", description="Where SQS parks events; admins reprocess them from there."
    )
    dynamics_secret_prefix: str = Field(
        default="portal-sync/dynamics/",
        description="Secrets Manager name prefix of the Dynamics credentials (one per org).",
    )
    supabase_jwt_secret: str = Field(default="", description="HS256 secret of the project.")
    supabase_jwks_url: str = Field(default="", description="JWKS for ES256/RS256 tokens.")
    website_state_machine_arn: str = Field(
        default="", description="The state machine that delivers mentor visibility changes."
    )
    entra_authority_url: str = Field(
        default="https://login.microsoftonline.com",
        description="Microsoft Entra ID, where Dynamics OAuth tokens come from.",
    )
    dynamics_timeout_seconds: float = 10.0
    # Per Dynamics environment and execution environment; Dataverse allows 6,000 requests per
    # 5 minutes per user, so 10/s keeps a burst of changes well inside its limits.
    dynamics_max_requests_per_second: float = 10.0
    public_base_url: str = Field(
        default="", description="Base URL the webhook endpoint is served at."
    )
    # Lets a Dynamics base URL be plain http on this machine: `make run`'s Dataverse stand-in.
    # Never set on AWS (a test of the template checks).
    allow_local_dynamics: bool = False


@cache
def get_settings() -> Settings:
    return Settings()
