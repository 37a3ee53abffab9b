"""AWS clients, created once per execution environment and only when first used.

botocore alone, not boto3: the clients are the same (boto3.client is botocore's create_client on a
session boto3 wraps), and boto3's own import and session set-up (resources, s3transfer, its
handlers) add ~15 ms to the first request of every function that calls AWS, for nothing we use.
botocore itself is imported on first use, so requests that never call AWS never pay for it.

Endpoints come from botocore's own configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`,
...), which is how `make run` and the tests point the functions at moto.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _session() -> Any:
    from botocore.session import get_session

    # One session for every client: credentials are resolved once per execution environment.
    return get_session()


@cache
def client(service: str) -> Any:
    from botocore.config import Config

    # Ingest answers Dataverse within its 60 s timeout and should fail fast (503) rather than hang.
    fast = Config(
        connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
    )
    return _session().create_client(service, config=fast)
