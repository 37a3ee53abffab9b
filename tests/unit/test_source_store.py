"""Source configurations from Secrets Manager (moto): caching, refresh on rotation, failures."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from portal_sync.adapters.aws.source_store import (
    MISS_BURST,
    REFRESH_BURST,
    SourceStore,
)
from portal_sync.unavailable import SourceStoreUnavailable

ORG = str(uuid.uuid4())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-north-1")


class CountingClient:
    """Counts the calls reaching Secrets Manager (the real moto client does the work)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        return self.client.get_secret_value(**kwargs)  # type: ignore[no-any-return]


def put(secrets: Any, source_id: str, keys: list[str]) -> None:
    body = json.dumps({"organization_id": ORG, "keys": [{"value": k} for k in keys]})
    try:
        secrets.put_secret_value(SecretId=f"p/{source_id}", SecretString=body)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=f"p/{source_id}", SecretString=body)


def store(client: Any, clock: Clock) -> SourceStore:
    return SourceStore(client, "p/", max_age_seconds=60, refresh_interval_seconds=1, clock=clock)


def test_cached_until_max_age(secrets: Any) -> None:
    clock, client = Clock(), CountingClient(secrets)
    put(secrets, "src", ["whsec_a"])
    sources = store(client, clock)

    assert sources.get("src").active_keys() == ["whsec_a"]
    put(secrets, "src", ["whsec_b"])
    assert sources.get("src").active_keys() == ["whsec_a"]
    clock.now += 61
    assert sources.get("src").active_keys() == ["whsec_b"]
    assert client.calls == 2


def test_refresh_sees_a_rotated_secret_at_once_but_is_rate_limited(secrets: Any) -> None:
    clock, client = Clock(), CountingClient(secrets)
    put(secrets, "src", ["whsec_a"])
    sources = store(client, clock)
    sources.get("src")
    put(secrets, "src", ["whsec_b", "whsec_a"])  # rotated right after it was cached

    assert sources.refresh("src").active_keys() == ["whsec_b", "whsec_a"]
    for _ in range(50):  # a flood of bad signatures
        sources.refresh("src")
    assert client.calls == 1 + REFRESH_BURST  # the burst, then nothing within the same second
    clock.now += 3
    for _ in range(50):
        sources.refresh("src")
    assert client.calls == 1 + REFRESH_BURST + 3  # one more per second of flood


def test_unknown_source_is_none_and_a_source_created_next_is_seen_at_once(secrets: Any) -> None:
    clock, client = Clock(), CountingClient(secrets)
    sources = store(client, clock)

    assert sources.get("new-src") is None
    put(secrets, "new-src", ["whsec_a"])  # onboarded right after a webhook named it

    assert sources.get("new-src").active_keys() == ["whsec_a"]


def test_never_seen_source_ids_cannot_cost_a_secrets_manager_call_each(secrets: Any) -> None:
    """600 made-up ids: a bounded number of calls, and nothing kept per id."""
    clock, client = Clock(), CountingClient(secrets)
    put(secrets, "real", ["whsec_a"])
    sources = store(client, clock)
    assert sources.get("real") is not None
    calls_before = client.calls

    for n in range(600):
        assert sources.get(f"made-up-{n}") is None
        if n % 60 == 59:
            clock.now += 1  # 600 ids over 10 seconds

    assert client.calls - calls_before <= MISS_BURST + 10
    assert set(vars(sources)["_cache"]) == {"real"}  # the cache holds sources that exist only
    # The source that exists keeps verifying during the flood, also after its cache expired.
    clock.now += 61
    assert sources.get("real").active_keys() == ["whsec_a"]
    # A source created during the flood is seen once the flood leaves a look-up free.
    put(secrets, "created-now", ["whsec_b"])
    clock.now += 1
    assert sources.get("created-now").active_keys() == ["whsec_b"]


def test_refreshing_an_unknown_id_spends_the_shared_budget(secrets: Any) -> None:
    clock, client = Clock(), CountingClient(secrets)
    sources = store(client, clock)

    for n in range(100):
        assert sources.refresh(f"made-up-{n}") is None

    assert client.calls <= MISS_BURST


def test_ids_that_cannot_name_a_secret_never_reach_secrets_manager(secrets: Any) -> None:
    client = CountingClient(secrets)
    sources = store(client, Clock())
    assert sources.get("../../etc") is None
    assert sources.get("x" * 200) is None
    assert client.calls == 0


def test_unreachable_secrets_manager_is_unavailable_not_unknown() -> None:
    dead = boto3.client(
        "secretsmanager",
        region_name="eu-north-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=0.2, retries={"max_attempts": 1}),
    )
    with pytest.raises(SourceStoreUnavailable):
        store(dead, Clock()).get("src")


def test_a_source_whose_secret_is_pending_deletion_is_unknown_not_an_outage(secrets: Any) -> None:
    """Deleted in the console with a recovery window: 401 for the sender, not a 503 retry loop."""
    put(secrets, "gone", ["whsec_a"])
    secrets.delete_secret(SecretId="p/gone", RecoveryWindowInDays=7)

    assert store(CountingClient(secrets), Clock()).get("gone") is None
