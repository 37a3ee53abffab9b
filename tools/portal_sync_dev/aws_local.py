"""AWS emulated in process with moto's server on loopback, and the resources the functions use."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import boto3

from portal_sync_dev.postgres import free_port

REGION = "eu-north-1"
EVENT_QUEUE = "portal-sync-events"
DEAD_LETTER_QUEUE = "portal-sync-events-dlq"
SOURCE_SECRET_PREFIX = "portal-sync/sources/"  # noqa: S105 - a name prefix
MAX_RECEIVE_COUNT = 10


@dataclass(frozen=True)
class AwsResources:
    endpoint_url: str | None
    event_queue_url: str
    dead_letter_queue_url: str


def start_moto() -> tuple[Any, str]:
    """Starts moto's server in a thread; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def use_endpoint(endpoint_url: str) -> None:
    """Points every boto3 client of this process (the functions' too) at the emulator."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_DEFAULT_REGION"] = os.environ.get("AWS_DEFAULT_REGION", REGION)


def provision(endpoint_url: str | None) -> AwsResources:
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=EVENT_QUEUE,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )["QueueUrl"]
    return AwsResources(endpoint_url, queue_url, dlq_url)


def put_source_secret(source_id: str, config: dict[str, Any]) -> None:
    """Creates or replaces a webhook source's configuration in Secrets Manager."""
    secrets = boto3.client("secretsmanager")
    name = f"{SOURCE_SECRET_PREFIX}{source_id}"
    body = json.dumps(config, default=str)
    try:
        secrets.put_secret_value(SecretId=name, SecretString=body)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=name, SecretString=body)
