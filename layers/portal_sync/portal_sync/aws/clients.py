"""boto3 clients, created once per execution environment and only when first used.

Endpoints come from boto3's own configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`, ...),
which is how `make run` and the tests point the functions at moto.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.config import Config

# Ingest answers Dataverse within its 60 s timeout and should fail fast (503) rather than hang.
_FAST = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})


@cache
def client(service: str) -> Any:
    import boto3  # imported on first use: functions that never call AWS never pay for it

    return boto3.client(service, config=_FAST)
