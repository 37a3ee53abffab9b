"""Settings that are secrets (adapters/aws/secret_settings.py): a deployed function reads the
database URL and the JWT secret from Secrets Manager (moto), once per execution environment."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
from moto import mock_aws
from portal_sync.adapters.aws import clients, secret_settings
from portal_sync.adapters.postgres.connection import ConnectionProvider
from portal_sync.bootstrap import shared
from portal_sync.settings import WebsiteSyncSettings
from portal_sync.unavailable import DatabaseUnavailable


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        clients.client.cache_clear()
        clients._session.cache_clear()
        secret_settings.secret_string.cache_clear()
        yield boto3.client("secretsmanager")
    clients.client.cache_clear()
    clients._session.cache_clear()
    secret_settings.secret_string.cache_clear()


def test_the_database_url_and_the_jwt_secret_come_from_their_secrets(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = secrets.create_secret(
        Name="portal-sync/prod/database-url", SecretString="postgresql://u:p@db.example/postgres"
    )["ARN"]
    jwt_secret = secrets.create_secret(
        Name="portal-sync/prod/supabase-jwt-secret", SecretString="s" * 40
    )["ARN"]
    for name in ("DATABASE_URL", "SUPABASE_JWT_SECRET", "SUPABASE_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL_SECRET_ARN", database)
    monkeypatch.setenv("SUPABASE_JWT_SECRET_ARN", jwt_secret)
    monkeypatch.setenv("WEBSITE_STATE_MACHINE_ARN", "arn:aws:states:eu-north-1:1:stateMachine:x")
    settings = WebsiteSyncSettings()

    assert secret_settings.secret_string(database) == "postgresql://u:p@db.example/postgres"
    user = uuid.uuid4()
    token = jwt.encode(
        {"sub": str(user), "aud": "authenticated", "exp": int(time.time()) + 60},
        "s" * 40,
        algorithm="HS256",
    )
    # A token signed with the secret's value verifies: the verifier has it.
    assert shared.jwt_verifier(settings).verify(f"Bearer {token}").user_id == user
    # Read once per execution environment: a second read asks Secrets Manager nothing.
    secrets.delete_secret(SecretId=database, ForceDeleteWithoutRecovery=True)
    assert secret_settings.secret_string(database) == "postgresql://u:p@db.example/postgres"


def test_an_unreadable_database_secret_is_an_unavailable_database_not_a_crash(
    secrets: Any,
) -> None:
    missing = "arn:aws:secretsmanager:eu-north-1:000000000000:secret:portal-sync/prod/gone"
    provider = ConnectionProvider(lambda: secret_settings.secret_string(missing))

    with pytest.raises(DatabaseUnavailable, match="database URL could not be read"):
        provider.get()
