"""AWS emulated in process with moto's server on loopback, and the resources the functions use."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from portal_sync_dev import ROOT
from portal_sync_dev.local.postgres import free_port

REGION = "eu-north-1"
EVENT_QUEUE = "portal-sync-events"
DEAD_LETTER_QUEUE = "portal-sync-events-dlq"
SOURCE_SECRET_PREFIX = "portal-sync/sources/"  # noqa: S105 - a name prefix
MAX_RECEIVE_COUNT = 10


ON_CALL_TOPIC = "portal-sync-on-call"
# Locally on-call alerts land in this queue (subscribed to the topic), where tests and
# `make run` users can read them.
ON_CALL_INBOX = "portal-sync-on-call-inbox"
# What `oncall_alerts_url` lists (local/on_call.py collects it).
ON_CALL_ALERTS = "portal-sync-on-call-alerts"
STATE_MACHINE = "portal-sync-website-visibility"
WEBSITE_SYNC_FUNCTION = "website_sync"
STATE_MACHINE_FILE = ROOT / "infra" / "statemachines" / "website_visibility.asl.json"
SYNC_RUN_STATE_MACHINE = "portal-sync-sync-run"
RECONCILE_FUNCTION = "reconcile"
SYNC_RUN_STATE_MACHINE_FILE = ROOT / "infra" / "statemachines" / "sync_run.asl.json"


@dataclass(frozen=True)
class AwsResources:
    endpoint_url: str | None
    event_queue_url: str
    dead_letter_queue_url: str
    on_call_topic_arn: str = ""
    on_call_inbox_url: str = ""
    state_machine_arn: str = ""
    sync_run_state_machine_arn: str = ""


def start_moto() -> tuple[Any, str]:
    """Starts moto's server in a thread; returns (server, endpoint URL).

    Step Functions executions really run (moto's ASL interpreter), and their Lambda tasks call
    our own handlers in this process (see `LocalLambdaRuntime`), so the deployed state machine
    definition is what runs locally too.
    """
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    port = free_port()
    # The interpreter calls the other emulated services through this port.
    os.environ["MOTO_PORT"] = str(port)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


class LocalLambdaRuntime:
    """Runs moto's Lambda invocations with our handlers in process, instead of in Docker.

    Only the Lambda *runtime* is replaced: the invocation still goes through moto's Lambda API
    (so Step Functions sees real payloads, function errors and error types).
    """

    _handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
    _installed = False

    @classmethod
    def register(cls, function_name: str, invoke: Callable[[dict[str, Any]], Any]) -> None:
        cls._handlers[function_name] = invoke
        if not cls._installed:
            from moto.awslambda import models

            models.LambdaFunction._invoke_lambda = _invoke_registered  # type: ignore[method-assign]
            cls._installed = True


def _invoke_registered(function: Any, event: Any = None) -> tuple[str, bool, str]:
    handler = LocalLambdaRuntime._handlers.get(function.function_name)
    if handler is None:
        return json.dumps({"errorType": "ResourceNotFound", "errorMessage": "no handler"}), True, ""
    payload = json.loads(event) if isinstance(event, str | bytes) else (event or {})
    try:
        return json.dumps(handler(payload), default=str), False, ""
    except Exception as exc:  # reported to the caller as Lambda does
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        return json.dumps(error), True, ""


def state_machine_definition(substitutions: dict[str, Any], path: Path = STATE_MACHINE_FILE) -> str:
    """The deployed definition, with SAM's DefinitionSubstitutions applied the same way."""
    text = path.read_text()
    definition = re.sub(r"\$\{(\w+)\}", lambda m: str(substitutions[m.group(1)]), text)
    json.loads(definition)  # fails loudly if a substitution broke the JSON
    return definition


def provision_website_sync(retry_interval_seconds: int) -> tuple[str, str, str]:
    """On-call topic (with an inbox queue for tests and one for `oncall_alerts_url`), the
    website-sync function and the state machine; returns (topic ARN, inbox queue URL, state
    machine ARN)."""
    sns = boto3.client("sns")
    topic_arn = sns.create_topic(Name=ON_CALL_TOPIC)["TopicArn"]
    inbox_url = _subscribed_queue(topic_arn, ON_CALL_INBOX)
    _subscribed_queue(topic_arn, ON_CALL_ALERTS)
    definition = state_machine_definition(
        {
            "WebsiteSyncFunctionArn": _function(WEBSITE_SYNC_FUNCTION),
            "RetryIntervalSeconds": retry_interval_seconds,
        }
    )
    return topic_arn, inbox_url, _state_machine(STATE_MACHINE, definition)


def on_call_alerts_queue() -> str:
    return str(boto3.client("sqs").get_queue_url(QueueName=ON_CALL_ALERTS)["QueueUrl"])


def _subscribed_queue(topic_arn: str, name: str) -> str:
    sqs = boto3.client("sqs")
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def provision_sync_runs(retry_interval_seconds: int) -> str:
    """The reconcile function and the sync-run state machine; returns its ARN."""
    definition = state_machine_definition(
        {
            "ReconcileFunctionArn": _function(RECONCILE_FUNCTION),
            "RetryIntervalSeconds": retry_interval_seconds,
        },
        SYNC_RUN_STATE_MACHINE_FILE,
    )
    return _state_machine(SYNC_RUN_STATE_MACHINE, definition)


def _role() -> str:
    iam = boto3.client("iam")
    try:
        return str(iam.get_role(RoleName="portal-sync-local")["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(
            iam.create_role(RoleName="portal-sync-local", AssumeRolePolicyDocument="{}")["Role"][
                "Arn"
            ]
        )


def _function(name: str) -> str:
    """A function in moto's Lambda whose invocations run our handler in process."""
    lambda_client = boto3.client("lambda")
    try:
        return str(lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except lambda_client.exceptions.ResourceNotFoundException:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("app.py", "# runs in process: see LocalLambdaRuntime\n")
        return str(
            lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=_role(),
                Handler="app.handler",
                Code={"ZipFile": archive.getvalue()},
            )["FunctionArn"]
        )


def _state_machine(name: str, definition: str) -> str:
    sfn = boto3.client("stepfunctions")
    existing = [
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == name
    ]
    if existing:
        sfn.update_state_machine(stateMachineArn=existing[0], definition=definition)
        return str(existing[0])
    return str(
        sfn.create_state_machine(name=name, definition=definition, roleArn=_role())[
            "stateMachineArn"
        ]
    )


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
    put_secret(f"{SOURCE_SECRET_PREFIX}{source_id}", config)


def put_secret(name: str, value: dict[str, Any]) -> None:
    secrets = boto3.client("secretsmanager")
    body = json.dumps(value, default=str)
    try:
        secrets.put_secret_value(SecretId=name, SecretString=body)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=name, SecretString=body)
